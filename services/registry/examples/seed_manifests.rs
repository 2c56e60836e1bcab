//! Seeds a model store with many versions of one model, for the start-up benchmark
//! (`scripts/bench-registry-startup.sh`).
//!
//! One real version is published through the registry core (artifact, claim, manifest); the
//! other `COUNT - 1` are copies of its manifest with the version changed, written 64 at a time,
//! so 10,000 versions take seconds to seed. Every copy is a valid manifest of its own version
//! (sharing the first one's artifact), exactly what the registry reads at start-up.
//!
//! ```sh
//! MODEL_STORE=s3://models/bench S3_ENDPOINT_URL=... AWS_REGION=... AWS_ACCESS_KEY_ID=... \
//!   AWS_SECRET_ACCESS_KEY=... cargo run -p registry --example seed_manifests -- 10000
//! ```

#![allow(clippy::print_stdout)] // It reports what it wrote.

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::registry::Registry;
use shared_lib::settings::Env;
use shared_lib::store::{ObjectKey, ObjectStore, PutMode, StoreLocation};

/// Writes in flight while seeding.
const SEED_CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: u32 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10000".into())
        .parse()
        .context("COUNT must be a whole number")?;
    let mut env = Env::from_process();
    let location = StoreLocation::from_env(&mut env);
    env.finish()?;
    let store = ObjectStore::open(&location.context("MODEL_STORE is invalid")?).await?;
    let started = std::time::Instant::now();

    let artifact = encode_artifact(ModelKind::FraudRandomForest, &vec![0.5_f64; 16])?;
    let first = Registry::new(store.clone())
        .publish(
            shared_lib::testing::fraud_draft("bench-seed"),
            Bytes::from(artifact.bytes),
            None,
        )
        .await?;
    let template = serde_json::to_value(&first)?;
    let model = first.model.to_string();
    let first_version = first.version.get();

    let mut writes = futures_util::stream::iter(first_version + 1..first_version + count)
        .map(|version| {
            let (store, model) = (store.clone(), model.clone());
            let mut manifest = template.clone();
            manifest["version"] = version.into();
            manifest["run_id"] = uuid::Uuid::new_v4().to_string().into();
            async move {
                let key = ObjectKey::parse(&format!(
                    "models/{model}/versions/{version:010}/manifest.json"
                ))?;
                let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest)?);
                store.put(&key, bytes, PutMode::Overwrite).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SEED_CONCURRENCY);
    while let Some(written) = writes.next().await {
        written?;
    }
    println!(
        "Seeded {count} versions of {model} (v{first_version}..=v{}) into {} in {:.1?}.",
        first_version + count - 1,
        store.describe(),
        started.elapsed()
    );
    Ok(())
}
