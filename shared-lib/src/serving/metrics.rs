//! The serving metrics every model server exports, beside the HTTP ones.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
};

use crate::Error;
use crate::http::register_metric;
use crate::http::{LabelCache, Metrics};
use crate::models::drift::DriftReading;

/// `model_info`, reloads, A/B assignments, shadow comparisons and the score distribution.
#[derive(Clone)]
pub struct ServingMetrics {
    /// 1 for each loaded `{model, version, sha256, variant}`.
    pub model_info: IntGaugeVec,
    /// Reload attempts by `{model, slot, result}`: `loaded`, `failed`, `cached`.
    pub reloads: IntCounterVec,
    /// Requests by assigned `{model, variant}`.
    pub ab_assignments: IntCounterVec,
    /// The share of requests each `{model, variant}` is configured to get (0-1), set while an
    /// experiment runs: the "A/B split off its configured share" alert compares it with
    /// `ab_assignments_total`.
    pub ab_configured_share: GaugeVec,
    /// Shadow comparisons by `{model, result}`: `agree`, `disagree`, `dropped`, `failed`.
    pub shadow: IntCounterVec,
    /// Model scores by `{model, version, variant}`, for drift dashboards.
    pub scores: HistogramVec,
    /// PSI of the live scores against the version's held-out ones (`models::drift`).
    pub score_psi: GaugeVec,
    /// PSI of each live input feature against the version's held-out rows.
    pub feature_psi: GaugeVec,
    /// The `scores` handles by `{model, version, variant}`, for [`Self::observe_score`].
    score_handles: LabelCache<Histogram>,
}

impl ServingMetrics {
    /// Registers the families in the service's registry.
    ///
    /// # Errors
    /// [`Error::Telemetry`] on a duplicate registration (a bug).
    pub fn register(metrics: &Metrics) -> Result<Self, Error> {
        let registry = metrics.registry();
        let model_info = register_metric(
            registry,
            IntGaugeVec::new(
                Opts::new("model_info", "The loaded model versions (value 1)."),
                &["model", "version", "sha256", "variant"],
            ),
        )?;
        let reloads = register_metric(
            registry,
            IntCounterVec::new(
                Opts::new("model_reloads_total", "Model load attempts by result."),
                &["model", "slot", "result"],
            ),
        )?;
        let ab_assignments = register_metric(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "ab_assignments_total",
                    "Requests assigned to each experiment variant.",
                ),
                &["model", "variant"],
            ),
        )?;
        let ab_configured_share = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "ab_configured_share",
                    "The configured share of requests of each experiment variant (0-1).",
                ),
                &["model", "variant"],
            ),
        )?;
        let shadow = register_metric(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "shadow_comparisons_total",
                    "Shadow model results compared with the primary's.",
                ),
                &["model", "result"],
            ),
        )?;
        let scores = register_metric(
            registry,
            HistogramVec::new(
                HistogramOpts::new("prediction_score", "Distribution of model scores.")
                    .buckets((0..=20).map(|i| f64::from(i) * 0.05).collect()),
                &["model", "version", "variant"],
            ),
        )?;
        let score_psi = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "model_score_psi",
                    "Population Stability Index of the last 10,000 requests' scores against the \
                     version's held-out rows (over 0.25: a shift worth acting on).",
                ),
                &["model", "version", "variant"],
            ),
        )?;
        let feature_psi = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "model_feature_psi",
                    "Population Stability Index of an input feature over the last 10,000 \
                     requests against the version's held-out rows.",
                ),
                &["model", "version", "feature"],
            ),
        )?;
        Ok(Self {
            model_info,
            reloads,
            ab_assignments,
            ab_configured_share,
            shadow,
            scores,
            score_psi,
            feature_psi,
            score_handles: LabelCache::default(),
        })
    }

    /// Observes one score of `{model, version}` served as `variant` in `scores`.
    pub fn observe_score(&self, model: &str, version: &str, variant: &str, score: f64) {
        let labels = [model, version, variant];
        self.score_handles.with(
            &labels,
            || self.scores.with_label_values(&labels),
            |scores| scores.observe(score),
        );
    }

    /// Sets the drift gauges of `{model, version}` served as `variant`.
    pub fn record_drift(&self, model: &str, version: &str, variant: &str, reading: &DriftReading) {
        self.score_psi
            .with_label_values(&[model, version, variant])
            .set(reading.score);
        for (feature, psi) in &reading.features {
            self.feature_psi
                .with_label_values(&[model, version, feature.as_str()])
                .set(*psi);
        }
    }
}
