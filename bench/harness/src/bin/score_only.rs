//! The fraud service's scoring alone, for the instruction-count benchmark
//! (`bench/serving/instructions.sh`): the work of one `GET /classify` without HTTP, request ids,
//! spans, metrics or logs.
//!
//! Loads the `production` version from `MODEL_STORE` exactly as the service does
//! (`Classifier::load`: digest check, validation, warm-up, drift window), then scores the same
//! row `N` times: the forest's probability, the class, and the drift window's `observe`, which is
//! what `routes::classify::score` does besides metrics and the shadow. Run under callgrind with
//! two values of `N`, the difference divided by the difference of `N` is the instructions one
//! request's scoring costs.
//!
//! ```sh
//! MODEL_STORE=/tmp/store target/release/score_only 1000 0.5,120.0,3
//! ```

use std::hint::black_box;

use anyhow::{Context as _, bail};
use fraud::model::Classifier;
use shared_lib::model_id::{AliasName, ModelName};
use shared_lib::registry::Registry;
use shared_lib::serving::ServableModel as _;
use shared_lib::store::{ObjectStore, StoreLocation};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(n), Some(row)) = (args.next(), args.next()) else {
        bail!("usage: score_only N f1,f2,f3 (MODEL_STORE names the store)");
    };
    let n: u64 = n.parse().context("N")?;
    let row: Vec<f64> = row
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("the row: comma-separated numbers")?;
    let store = std::env::var("MODEL_STORE").context("MODEL_STORE")?;
    let registry = Registry::new(ObjectStore::open(&StoreLocation::parse(&store)?).await?);
    let model = ModelName::parse("fraud")?;
    let version = registry
        .resolve_alias(&model, &AliasName::production())
        .await?;
    let manifest = registry.manifest(&model, version).await?;
    let artifact = registry.fetch_artifact(&manifest).await?;
    let classifier = Classifier::load(&manifest, &mut artifact.as_ref(), &())?;
    let mut fraud = 0u64;
    for _ in 0..n {
        let row = black_box(row.as_slice());
        let probability = classifier.0.predict_proba(row);
        let class = classifier.0.class_of(probability);
        if let Some(drift) = &classifier.1 {
            black_box(drift.observe(probability, row));
        }
        fraud += u64::from(black_box(class));
    }
    eprintln!("scored {n} rows, {fraud} as fraud");
    Ok(())
}
