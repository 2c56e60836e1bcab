//! Shadow scoring off the request path: a bounded number of comparisons run on the blocking
//! pool after the response is decided; when they fall behind, new ones are dropped and counted,
//! so a slow shadow model can never slow the primary.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::metrics::ServingMetrics;
use crate::Error;

#[derive(Clone)]
pub struct ShadowRunner {
    model: String,
    metrics: ServingMetrics,
    permits: Arc<Semaphore>,
}

impl ShadowRunner {
    /// At most `concurrency` comparisons in flight.
    pub fn new(model: &str, metrics: ServingMetrics, concurrency: usize) -> Self {
        Self {
            model: model.to_owned(),
            metrics,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Runs `compare` (true = the shadow agrees with the primary) in the background.
    pub fn submit<F>(&self, compare: F)
    where
        F: FnOnce() -> Result<bool, Error> + Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.record("dropped");
            return;
        };
        let runner = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = match compare() {
                Ok(true) => "agree",
                Ok(false) => "disagree",
                Err(e) => {
                    tracing::warn!(error = %e, "Shadow scoring failed.");
                    "failed"
                }
            };
            drop(permit);
            runner.record(result);
        });
    }

    fn record(&self, result: &str) {
        self.metrics
            .shadow
            .with_label_values(&[self.model.as_str(), result])
            .inc();
    }
}
