"""The classic fraud service, as every user of it knows it: Flask + scikit-learn + a pickle.

Run under gunicorn with sync workers (bench/serving/run.sh does):

    MODEL_PATH=/tmp/x/model.pkl gunicorn -w 2 -b 127.0.0.1:18601 flask_app:app

`GET /classify?f1=..&f2=..&f3=..` -> `[0]` or `[1]`; `GET /healthz` -> `Healthy`.
"""

import os
import pickle

from flask import Flask, jsonify, request

with open(os.environ.get("MODEL_PATH", "model.pkl"), "rb") as f:
    clf = pickle.load(f)

app = Flask(__name__)


@app.route("/classify")
def classify():
    f1 = float(request.args.get("f1"))
    f2 = float(request.args.get("f2"))
    f3 = float(request.args.get("f3"))
    return jsonify(clf.predict([[f1, f2, f3]]).tolist())


@app.route("/healthz")
def healthz():
    return "Healthy"
