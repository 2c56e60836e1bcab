"""Time Spark MLlib ALS (explicit, local[2]) and its RMSE on a train/test TSV pair."""
import json
import sys
import time

from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession
from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

train_path, test_path = sys.argv[1], sys.argv[2]
rank, iterations, reg = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])

wall = time.perf_counter()
spark = (SparkSession.builder.master("local[2]").appName("als-bench")
         .config("spark.driver.memory", "2g").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
schema = StructType([StructField("user", IntegerType()), StructField("item", IntegerType()),
                     StructField("rating", FloatType())])
train = spark.read.csv(train_path, sep="\t", schema=schema).cache()
test = spark.read.csv(test_path, sep="\t", schema=schema).cache()
n_train, n_test = train.count(), test.count()

als = ALS(rank=rank, maxIter=iterations, regParam=reg, userCol="user", itemCol="item",
          ratingCol="rating", coldStartStrategy="drop", seed=42, numUserBlocks=2, numItemBlocks=2)
start = time.perf_counter()
model = als.fit(train)
model.userFactors.count()
model.itemFactors.count()
fit_seconds = time.perf_counter() - start
predictions = model.transform(test)
rmse = RegressionEvaluator(metricName="rmse", labelCol="rating", predictionCol="prediction").evaluate(predictions)
scored = predictions.count()
spark.stop()
print(json.dumps({"system": "spark", "fit_seconds": fit_seconds, "rmse": rmse, "train_rows": n_train,
                  "test_rows": n_test, "scored_test_rows": scored,
                  "wall_seconds": time.perf_counter() - wall}))
