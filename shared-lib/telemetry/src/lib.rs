//! Logs and traces: JSON lines to stdout, and OpenTelemetry spans over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! The subscriber is built from a sink (z2p's pattern) so tests can capture the log lines, and
//! [`TelemetryGuard`] flushes pending spans when the process stops.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use suite_models::Error;
use suite_settings::Env;
use tracing::Subscriber;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry};

/// The name and the target of the per-request root span (exported as a trace; not formatted
/// into logs). Defined here, where logs are filtered by it; the HTTP layer opens spans with
/// `tracing::info_span!(target: REQUEST_SPAN, REQUEST_SPAN, ..)`.
pub const REQUEST_SPAN: &str = "http_request";

/// What to log and where to send traces.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `service.name` of exported spans, e.g. `fraud`.
    pub service: String,
    /// `RUST_LOG`; default `info`.
    pub log_filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://otel-collector:4318`; unset = no export.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    pub fn from_env(env: &mut Env, service: &str) -> Self {
        let otlp_endpoint = env
            .optional_string("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|url| {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    env.problem(
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        "must be an http:// or https:// URL",
                    );
                }
                url.trim_end_matches('/').to_owned()
            });
        let log_filter = env.string_or("RUST_LOG", "info");
        if let Err(e) = EnvFilter::try_new(&log_filter) {
            env.problem("RUST_LOG", e);
        }
        Self {
            service: env.string_or("OTEL_SERVICE_NAME", service),
            log_filter,
            otlp_endpoint,
        }
    }
}

/// Keeps the trace exporter alive; flushes it on [`TelemetryGuard::shutdown`] or drop.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every pending span and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "Trace exporter did not shut down cleanly.");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Builds the subscriber: an env filter, JSON lines into `sink`, and the OTLP layer if
/// configured. Does not install it.
///
/// # Errors
/// [`Error::Telemetry`] when the filter or the exporter cannot be built.
pub fn build_subscriber<W>(
    settings: &TelemetrySettings,
    sink: W,
) -> Result<(impl Subscriber + Send + Sync + 'static, TelemetryGuard), Error>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut filter = EnvFilter::try_new(&settings.log_filter).map_err(|e| Error::Telemetry {
        reason: format!("RUST_LOG: {e}"),
    })?;
    // Without OTLP export nothing reads the per-request root span (logs leave it out, below),
    // so its target is switched off: tracing then skips the span where it is written, instead
    // of building, entering and closing it for nobody (about 2,500 instructions a request).
    // The directive names the target exactly, so it holds whatever RUST_LOG says.
    if settings.otlp_endpoint.is_none() {
        filter = filter.add_directive(format!("{REQUEST_SPAN}=off").parse().map_err(|e| {
            Error::Telemetry {
                reason: format!("request span directive: {e}"),
            }
        })?);
    }
    // The per-request root span is for traces only: formatting its fields into every log line
    // cost a tenth of a request's CPU. Request logs carry the request id as an event field.
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(sink)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !(meta.is_span() && meta.name() == REQUEST_SPAN)
        }));
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => Some(build_tracer_provider(&settings.service, endpoint)?),
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(settings.service.clone())));
    let subscriber = Registry::default().with(filter).with(json).with(otel);
    Ok((subscriber, TelemetryGuard { provider }))
}

fn build_tracer_provider(service: &str, endpoint: &str) -> Result<SdkTracerProvider, Error> {
    // The exporter builds its reqwest client here.
    install_tls_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Telemetry {
            reason: format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"),
        })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// Makes ring the rustls crypto provider of this process; later calls do nothing.
///
/// reqwest is built without a provider of its own (its `rustls` feature means aws-lc-rs, whose C
/// build cost a cold build 74 s), so whatever builds a reqwest client calls this first: the OTLP
/// exporter here, the trainer's registry client, tests. A client built without it panics with
/// "No rustls crypto provider is configured". S3 (suite-storage) and Redis use ring as well.
pub fn install_tls_provider() {
    // Err means a provider is already installed, by an earlier call or by a test: keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Installs telemetry for the process: JSON logs to stdout, `log` records bridged, W3C trace
/// context propagation, OTLP export when configured (which installs rustls's crypto provider,
/// [`install_tls_provider`], as it builds its HTTP client).
///
/// # Errors
/// [`Error::Telemetry`] when it cannot be built or a global subscriber is already set.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, Error> {
    init_with_writer(settings, std::io::stdout)
}

/// As [`init`], with logs to `sink` (the trainer logs to stderr: its stdout is its result).
///
/// # Errors
/// [`Error::Telemetry`] when it cannot be built or a global subscriber is already set.
pub fn init_with_writer<W>(settings: &TelemetrySettings, sink: W) -> Result<TelemetryGuard, Error>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (subscriber, guard) = build_subscriber(settings, sink)?;
    subscriber.try_init().map_err(|e| Error::Telemetry {
        reason: e.to_string(),
    })?;
    // Every binary passes here, so this string is in a binary exactly when the feature is
    // compiled in: scripts/check-no-test-code.sh looks for the marker in release binaries.
    #[cfg(feature = "testing")]
    tracing::warn!(
        "Built with shared-lib's testing feature (ML-SERVING-TESTING-FEATURE-COMPILED-IN): \
         a test build, not for production."
    );
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn settings(otlp_endpoint: Option<String>) -> TelemetrySettings {
        TelemetrySettings {
            service: "telemetry-test".into(),
            log_filter: "info".into(),
            otlp_endpoint,
        }
    }

    #[test]
    fn logs_are_json_lines_with_span_fields() {
        let sink = Captured::default();
        let writer = sink.clone();
        let (subscriber, _guard) =
            build_subscriber(&settings(None), move || writer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("load_model", model_version = 7);
            span.in_scope(|| tracing::info!(sha256 = "abc", "Model loaded."));
            tracing::debug!("Filtered out at info.");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["message"], "Model loaded.");
        assert_eq!(lines[0]["sha256"], "abc");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["span"]["model_version"], 7);
    }

    /// Whether a request span (as the HTTP layer writes it) and another span are enabled under
    /// `settings`.
    fn request_and_other_span_enabled(settings: &TelemetrySettings) -> (bool, bool) {
        let (subscriber, _guard) = build_subscriber(settings, std::io::sink).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(target: REQUEST_SPAN, REQUEST_SPAN);
            let other = tracing::info_span!("load_model");
            (!request.is_disabled(), !other.is_disabled())
        })
    }

    #[test]
    fn without_trace_export_the_request_span_is_disabled_whatever_rust_log_says() {
        for log_filter in ["info", "trace", "info,http_request=trace"] {
            let settings = TelemetrySettings {
                log_filter: log_filter.into(),
                ..settings(None)
            };
            assert_eq!(
                request_and_other_span_enabled(&settings),
                (false, true),
                "RUST_LOG={log_filter}"
            );
        }
    }

    #[test]
    fn with_trace_export_the_request_span_is_built() {
        // Building the exporter connects to nothing; nothing is exported before the guard drops.
        let settings = settings(Some("http://127.0.0.1:9".into()));
        assert_eq!(request_and_other_span_enabled(&settings), (true, true));
    }

    /// A real OTLP/HTTP exchange: a one-shot collector on loopback receives the exported span.
    #[test]
    fn spans_are_exported_over_otlp_http() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            (head, body)
        });

        let (subscriber, mut guard) =
            build_subscriber(&settings(Some(endpoint)), std::io::sink).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("score_request_span").in_scope(|| tracing::info!("Scored."));
        });
        guard.shutdown();

        let (head, body) = collector.join().unwrap();
        assert!(head[0].starts_with("POST /v1/traces "), "{head:?}");
        assert!(
            head.iter().any(|h| h
                .to_ascii_lowercase()
                .starts_with("content-type: application/x-protobuf")),
            "{head:?}"
        );
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(b"score_request_span"),
            "span name missing from the OTLP body"
        );
        assert!(
            contains(b"telemetry-test"),
            "service.name missing from the OTLP body"
        );
    }

    #[test]
    fn bad_settings_are_reported_by_variable() {
        let mut env = Env::from_pairs([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                "collector:4318".to_owned(),
            ),
            ("RUST_LOG".to_owned(), "info,[".to_owned()),
        ]);
        let _ = TelemetrySettings::from_env(&mut env, "fraud");
        let err = env.finish().unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
        assert!(err.contains("RUST_LOG"), "{err}");
    }
}
