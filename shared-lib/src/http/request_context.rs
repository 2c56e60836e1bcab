//! The middleware every service wraps its app in: one request id, one root span, one metrics
//! observation and the serving headers, for every request.
//!
//! - `X-Request-Id`: taken from the request when it is a sane token, else a new UUID; echoed
//!   on the response, recorded on the span, and read by handlers ([`with_request_id`]) and
//!   error bodies ([`current_request_id`]) from the request's task-local scope, because
//!   `ResponseError::error_response` has no access to the request.
//! - The root span continues a W3C `traceparent` from the caller, so traces cross services.
//! - Handlers say which model served a request with [`ServedBy`], into the same scope; the
//!   middleware turns that into the `X-Model-Version` and `X-Variant` headers and into metric
//!   labels, so no handler can forget either.
//!
//! The scope is a task-local rather than request extensions: an extension is a boxed value in
//! a hash map, inserted, looked up and removed on every request (about 650 instructions for
//! the two).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::metrics::Metrics;

pub use crate::telemetry::REQUEST_SPAN;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");
pub const VARIANT: HeaderName = HeaderName::from_static("x-variant");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the middleware and the handler of one request share on the request's task.
struct RequestScope {
    /// Shared, not copied: the span, the scope and the response header hold the same id.
    id: Arc<str>,
    /// Set by the handler ([`ServedBy::record`]), taken by the middleware once it answered.
    served: RefCell<Option<ServedBy>>,
}

tokio::task_local! {
    static CURRENT_REQUEST: RequestScope;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST.try_with(|scope| scope.id.to_string()).ok()
}

/// Calls `f` with the id of the request being handled on this task; with `""` outside a
/// request (a handler called without the middleware).
pub fn with_request_id<R>(f: impl FnOnce(&str) -> R) -> R {
    // The id's own count, touched by this request alone: no string is copied.
    match CURRENT_REQUEST.try_with(|scope| Arc::clone(&scope.id)) {
        Ok(id) => f(&id),
        Err(_) => f(""),
    }
}

/// The A/B key of a request: the caller's `key` (a card or user id) if it gave one, else the
/// request id, so that requests with nobody to keep sticky are split one by one.
pub fn key_or_request_id(key: Option<&str>) -> String {
    key.map_or_else(|| with_request_id(str::to_owned), str::to_owned)
}

/// Which model answered a request; handlers record it with [`ServedBy::record`]. The labels
/// are shared strings the slots format once per loaded version ([`crate::serving::Loaded`]),
/// so recording them costs no formatting or allocation on the request path.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: Arc<str>,
    pub version: Arc<str>,
    /// `a`, `b`, … as the router named the variant (`a,b` for a batch served by both).
    pub variant: Cow<'static, str>,
}

impl ServedBy {
    /// Records it for the request being handled on this task (the last record wins); outside
    /// a request it goes nowhere.
    pub fn record(self) {
        let _ = CURRENT_REQUEST.try_with(|scope| *scope.served.borrow_mut() = Some(self));
    }
}

/// Accepts a caller's id only if it is a short printable token, so logs stay clean: the id,
/// and the header value to echo.
fn accept_request_id(value: &HeaderValue) -> Option<(Arc<str>, HeaderValue)> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| (Arc::from(s), value.clone()))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The middleware; mount with `App::new().wrap(actix_web::middleware::from_fn(request_context))`.
///
/// # Errors
/// Passes on errors of inner middleware unchanged.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // A caller's id is echoed as it came (the header value is shared, not copied); a new one is
    // formatted without the formatting machinery.
    let accepted = req.headers().get(&REQUEST_ID).and_then(accept_request_id);
    let (request_id, id_header) = match accepted {
        Some((id, header)) => (id, Some(header)),
        None => {
            let mut buf = uuid::Uuid::encode_buffer();
            let id: &str = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            (Arc::from(id), HeaderValue::from_str(id).ok())
        }
    };
    let method = req.method().clone();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let _in_flight = metrics.as_ref().map(|m| m.http.enter());

    // The route and the span's name are set once the request has been routed (below).
    // Disabled where it is written when traces are not exported (`telemetry`): it is then
    // `Span::none()`, and recording on it, entering it or reading its context costs nothing.
    let span = tracing::info_span!(
        target: REQUEST_SPAN,
        REQUEST_SPAN,
        otel.kind = "server",
        http.method = %method,
        http.route = tracing::field::Empty,
        http.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    // The W3C propagator (`telemetry::init` installs it) reads nothing from a request without
    // a `traceparent`: the span is then a root, as it is without a parent set.
    if !span.is_disabled() && req.headers().contains_key(&TRACEPARENT) {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
    }

    // The span and the scope are reached through the finished future afterwards, not cloned.
    let scope = RequestScope {
        id: request_id,
        served: RefCell::new(None),
    };
    let call = CURRENT_REQUEST
        .scope(scope, next.call(req))
        .instrument(span);
    let mut call = std::pin::pin!(call);
    let mut res = call.as_mut().await?;
    let (request_id, served) = match call.as_mut().inner_pin_mut().take_value() {
        Some(scope) => (scope.id, scope.served.into_inner()),
        None => (Arc::default(), None),
    };

    // Routed now, actix finds the matched pattern by the resource's index; asked before the call
    // it matched the path against every route a second time (about 700 instructions a request).
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status();
    let span = call.span();
    span.record("http.route", route.as_str());
    span.record("http.status_code", status.as_u16());
    // The OpenTelemetry span has started by now, and a recorded `otel.name` would no longer
    // rename it: rename the span itself (there is none when OTLP export is off).
    let trace = span.context();
    if trace.has_active_span() {
        trace.span().update_name(format!("{method} {route}"));
    }
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics
            .http
            .observe(&route, served.as_ref(), status, elapsed);
    }
    let headers = res.headers_mut();
    if let Some(v) = id_header {
        headers.insert(REQUEST_ID, v);
    }
    if let Some(served) = served {
        if let Ok(v) = HeaderValue::from_str(&served.version) {
            headers.insert(MODEL_VERSION, v);
        }
        let variant = match served.variant {
            // A static name is shared, not copied (checked first: `from_static` panics on
            // bytes a header value cannot hold).
            Cow::Borrowed(name) => name
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
                .then(|| HeaderValue::from_static(name)),
            Cow::Owned(names) => HeaderValue::try_from(names).ok(),
        };
        if let Some(v) = variant {
            headers.insert(VARIANT, v);
        }
    }
    // Successes are the bulk of traffic and are counted in metrics; log them only at debug.
    let latency_ms = elapsed.as_secs_f64() * 1e3;
    let status = status.as_u16();
    match status {
        500.. => {
            tracing::warn!(%request_id, %method, %route, status, latency_ms, "Request failed.")
        }
        400.. => {
            tracing::info!(%request_id, %method, %route, status, latency_ms, "Request refused.")
        }
        _ => tracing::debug!(%request_id, %method, %route, status, latency_ms, "Request handled."),
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_accepted() {
        let ok = |s: &str| {
            accept_request_id(&HeaderValue::from_str(s).unwrap()).map(|(id, _)| id.to_string())
        };
        assert_eq!(ok("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(ok(""), None);
        assert_eq!(ok("has space"), None);
        assert_eq!(ok("quote\"d"), None);
        assert_eq!(ok(&"a".repeat(129)), None);
    }

    /// A subscriber whose OpenTelemetry layer traces through `provider`, as telemetry::init
    /// builds it when OTLP export is on.
    fn traced(
        provider: &opentelemetry_sdk::trace::SdkTracerProvider,
    ) -> impl tracing::Subscriber + Send + Sync {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    }

    /// The trace id of the span a handler runs in.
    async fn trace_id_in_handler() -> String {
        tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string()
    }

    #[actix_web::test]
    async fn the_request_span_continues_the_callers_w3c_traceparent() {
        use actix_web::{App, test};

        // Arrange: trace context propagation and an OpenTelemetry layer, as telemetry::init
        // installs them with OTLP export on (the export itself is not needed here).
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let _default = tracing::subscriber::set_default(traced(&provider));
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(request_context))
                .route("/trace", web::get().to(trace_id_in_handler)),
        )
        .await;
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let traceparent = format!("00-{caller_trace}-00f067aa0ba902b7-01");

        // Act
        let continued = test::call_and_read_body(
            &app,
            test::TestRequest::get()
                .uri("/trace")
                .insert_header(("traceparent", traceparent))
                .to_request(),
        )
        .await;
        let fresh =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/trace").to_request())
                .await;

        // Assert: the caller's trace id inside the request, and a new one without a caller's.
        assert_eq!(std::str::from_utf8(&continued).unwrap(), caller_trace);
        let fresh = std::str::from_utf8(&fresh).unwrap();
        assert!(
            fresh != caller_trace && fresh != "00000000000000000000000000000000",
            "{fresh}"
        );
    }

    /// Keeps the spans the SDK exports, for the test to read.
    #[derive(Debug, Clone, Default)]
    struct Exported(Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Exported {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[actix_web::test]
    async fn the_exported_span_is_named_by_the_matched_route_not_the_path() {
        use actix_web::{App, test};

        // Arrange: an OpenTelemetry layer exporting each span as it ends.
        let exported = Exported::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exported.clone())
            .build();
        let _default = tracing::subscriber::set_default(traced(&provider));
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(request_context))
                .route("/health", web::get().to(|| async { "ok" }))
                .route("/users/{id}/items", web::get().to(|| async { "items" })),
        )
        .await;

        // Act: a parameterised route, then a path no route matches.
        for uri in ["/users/u-42/items", "/nowhere"] {
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        }

        // Assert: the pattern, not the user's id, names the span and is its http.route.
        let spans = exported.0.lock().unwrap().clone();
        let seen: Vec<(String, Option<String>)> = spans
            .iter()
            .map(|span| {
                let route = span
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "http.route")
                    .map(|kv| kv.value.to_string());
                (span.name.to_string(), route)
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "GET /users/{id}/items".to_owned(),
                    Some("/users/{id}/items".to_owned())
                ),
                ("GET unmatched".to_owned(), Some("unmatched".to_owned())),
            ]
        );
    }

    #[actix_web::test]
    async fn requests_count_as_in_flight_until_they_are_answered() {
        use actix_web::{App, test};

        // Arrange: a handler that reports the gauge while it runs.
        let metrics = Metrics::new("test").unwrap();
        fn gauge(m: &Metrics) -> f64 {
            crate::testing::metric_sum(&m.render(), "http_requests_in_flight", &[])
        }
        let inside = |m: web::Data<Metrics>| async move { gauge(&m).to_string() };
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(metrics.clone()))
                .wrap(actix_web::middleware::from_fn(request_context))
                .route("/inside", web::get().to(inside)),
        )
        .await;
        assert_eq!(gauge(&metrics), 0.0);

        // Act
        let body =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/inside").to_request())
                .await;

        // Assert: one in flight while answering, none after.
        assert_eq!(std::str::from_utf8(&body).unwrap(), "1");
        assert_eq!(gauge(&metrics), 0.0);
    }
}
