//! The Prometheus registry of a service and the metrics every service has.
//!
//! Names follow Prometheus conventions (`_total`, `_seconds`); labels are bounded: the route
//! template, the model, its version, the variant and an outcome class, never a user id.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use super::request_context::ServedBy;
use crate::Error;

/// Buckets for request latency: 100 µs to 2.5 s, dense where a scoring service lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A service's metrics: its registry, and the families every service shares.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
}

impl Metrics {
    /// A registry whose every metric carries the constant label `service`.
    ///
    /// # Errors
    /// [`Error::Telemetry`] when a metric cannot be registered (a duplicate name: a bug).
    pub fn new(service: &str) -> Result<Self, Error> {
        let registry = Registry::new_custom(
            None,
            Some([("service".to_owned(), service.to_owned())].into()),
        )
        .map_err(telemetry_error)?;
        let http = HttpMetrics::register(&registry)?;
        Ok(Self { registry, http })
    }

    /// For service-specific metrics, registered beside the shared ones.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on invalid metric names, which registration refused.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// A Prometheus registration or construction error, as the crate's [`Error::Telemetry`].
pub fn telemetry_error(e: prometheus::Error) -> Error {
    Error::Telemetry {
        reason: format!("metrics: {e}"),
    }
}

/// Registers a newly made metric family in `registry` and hands it back: the one way the
/// services add their families, with a bad definition or a duplicate name (both bugs) as
/// [`Error::Telemetry`].
///
/// # Errors
/// [`Error::Telemetry`].
pub fn register_metric<C>(registry: &Registry, made: prometheus::Result<C>) -> Result<C, Error>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let metric = made.map_err(telemetry_error)?;
    registry
        .register(Box::new(metric.clone()))
        .map_err(telemetry_error)?;
    Ok(metric)
}

/// How many label sets a [`LabelCache`] keeps; beyond it, lookups fall back to the family's
/// own (hashing) lookup. Labels are bounded, so a service stays far below this.
const LABEL_CACHE_LIMIT: usize = 256;

/// The labelled handles of metric families, found by comparing label values with the few sets
/// already seen. `MetricVec::with_label_values` hashes every label string (SipHash) and takes
/// the family's lock on every call, which was a measurable share of a request's instructions.
/// Only for families whose label sets are never removed: a removed set's cached handle would
/// no longer be exported.
pub struct LabelCache<M> {
    entries: Arc<RwLock<LabelSets<M>>>,
}

/// Each label set seen, with its handles.
type LabelSets<M> = Vec<(Box<[Box<str>]>, M)>;

impl<M> Clone for LabelCache<M> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
        }
    }
}

impl<M> Default for LabelCache<M> {
    fn default() -> Self {
        Self {
            entries: Arc::default(),
        }
    }
}

impl<M: Clone> LabelCache<M> {
    /// Calls `use_handles` with the handles of `labels`, made by `make` the first time.
    pub fn with<R>(
        &self,
        labels: &[&str],
        make: impl FnOnce() -> M,
        use_handles: impl FnOnce(&M) -> R,
    ) -> R {
        let same = |key: &[Box<str>]| {
            key.len() == labels.len() && key.iter().zip(labels).all(|(k, l)| **k == **l)
        };
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, handles)) = entries.iter().find(|(key, _)| same(key)) {
                return use_handles(handles);
            }
        }
        let handles = make();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() < LABEL_CACHE_LIMIT && !entries.iter().any(|(key, _)| same(key)) {
            let key = labels.iter().map(|l| Box::from(*l)).collect();
            entries.push((key, handles.clone()));
        }
        drop(entries);
        use_handles(&handles)
    }
}

/// Request duration and count by `{route, model, version, variant, outcome}`, and the requests
/// in flight.
#[derive(Clone)]
pub struct HttpMetrics {
    duration: HistogramVec,
    requests: IntCounterVec,
    in_flight: IntGauge,
    handles: LabelCache<(Histogram, IntCounter)>,
}

/// One request in flight: counted from [`HttpMetrics::enter`] until dropped, so a request whose
/// client goes away is uncounted too.
pub(crate) struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const LABELS: &[&str] = &["route", "model", "version", "variant", "outcome"];

impl HttpMetrics {
    fn register(registry: &Registry) -> Result<Self, Error> {
        let duration = register_metric(
            registry,
            HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "Time to answer a request.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                LABELS,
            ),
        )?;
        let requests = register_metric(
            registry,
            IntCounterVec::new(
                Opts::new("http_requests_total", "Requests answered."),
                LABELS,
            ),
        )?;
        let in_flight = register_metric(
            registry,
            IntGauge::new(
                "http_requests_in_flight",
                "Requests received and not yet answered (a scrape counts itself).",
            ),
        )?;
        Ok(Self {
            duration,
            requests,
            in_flight,
            handles: LabelCache::default(),
        })
    }

    /// Counts a request in flight until the guard drops.
    pub(crate) fn enter(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn observe(
        &self,
        route: &str,
        served: Option<&ServedBy>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let outcome = match status.as_u16() {
            500.. => "server_error",
            400.. => "client_error",
            _ => "success",
        };
        let (model, version, variant) =
            served.map_or(("", "", ""), |s| (&*s.model, &*s.version, &*s.variant));
        let labels = [route, model, version, variant, outcome];
        self.handles.with(
            &labels,
            || {
                (
                    self.duration.with_label_values(&labels),
                    self.requests.with_label_values(&labels),
                )
            },
            |(duration, requests)| {
                duration.observe(elapsed.as_secs_f64());
                requests.inc();
            },
        );
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics_route(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
