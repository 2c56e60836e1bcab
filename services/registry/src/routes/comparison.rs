//! `GET /console/models/{model}/compare?a=&b=`: two versions side by side, as a page:
//! metrics (with `b − a`), parameters, training data digest, artifact and gate decision; rows
//! that differ are marked. The JSON twin is `GET /v1/models/{model}/compare`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::manifest::{GateDecision, Manifest};

use super::AppState;
use super::console::html_response;
use super::page::{HEAD, escape, format_number};
use crate::auth::{ConsoleVisitor, Scope};
use crate::error::{Challenge, Error};

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
}

fn version(field: &str, value: &str) -> Result<ModelVersion, Error> {
    value.trim().parse().map_err(|_| {
        Error::BadRequest(format!(
            "{field}: must be a version number such as 3, not {value:?}"
        ))
    })
}

/// Readable anonymously unless reads are protected; then the session must hold `read`.
pub async fn compare_page(
    visitor: ConsoleVisitor,
    path: web::Path<ModelName>,
    query: web::Query<CompareQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    if state.auth.protects_reads() {
        let Some(session) = visitor.0 else {
            return Err(Error::Unauthorized {
                message: "sign in first: no console session (or it expired)",
                challenge: Challenge::Bearer,
            });
        };
        state.auth.require_scope(&session.identity, Scope::Read)?;
    }
    let (a, b) = (version("a", &query.a)?, version("b", &query.b)?);
    let a = state.index.manifest(&state.registry, &path, a).await?;
    let b = state.index.manifest(&state.registry, &path, b).await?;
    Ok(html_response(render(&a, &b)))
}

fn render(a: &Manifest, b: &Manifest) -> String {
    let mut html = String::from(HEAD);
    let _ = write!(
        html,
        "<p><a href=\"/console#model-{0}\">← {0}</a></p><h2>{0}: v{1} and v{2} side by side</h2>\
         <table class=\"compare\"><thead><tr><th></th><th>v{1}</th><th>v{2}</th><th>b − a</th></tr></thead><tbody>",
        escape(a.model.as_str()),
        a.version,
        b.version
    );
    let mut row = |name: &str, x: &str, y: &str, delta: &str| {
        let _ = write!(
            html,
            "<tr class=\"{}\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            if x == y { "same" } else { "differs" },
            escape(name),
            escape(x),
            escape(y),
            escape(delta)
        );
    };
    row("algorithm", &a.algorithm, &b.algorithm, "");
    row(
        "created",
        &format!(
            "{} by {}",
            a.created_at.format("%Y-%m-%d %H:%M"),
            a.created_by
        ),
        &format!(
            "{} by {}",
            b.created_at.format("%Y-%m-%d %H:%M"),
            b.created_by
        ),
        "",
    );
    let names: BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    for name in names {
        let (x, y) = (a.metrics.get(name), b.metrics.get(name));
        let delta = match (x, y) {
            (Some(x), Some(y)) => format_number(y - x),
            _ => String::new(),
        };
        let show = |v: Option<&f64>| v.map(|v| format_number(*v)).unwrap_or_default();
        row(&format!("metric {name}"), &show(x), &show(y), &delta);
    }
    let names: BTreeSet<&String> = a.parameters.keys().chain(b.parameters.keys()).collect();
    for name in names {
        let show = |m: &Manifest| {
            m.parameters
                .get(name)
                .map(serde_json::Value::to_string)
                .unwrap_or_default()
        };
        row(&format!("parameter {name}"), &show(a), &show(b), "");
    }
    let data = |m: &Manifest| {
        format!(
            "sha256 {} · {} rows · {}",
            short(&m.training_data.sha256),
            m.training_data.rows,
            m.training_data.source
        )
    };
    row("training data", &data(a), &data(b), "");
    row(
        "artifact sha256",
        &short(&a.artifact.sha256.to_string()),
        &short(&b.artifact.sha256.to_string()),
        "",
    );
    row("gate", &gate(a.gate.as_ref()), &gate(b.gate.as_ref()), "");
    html.push_str("</tbody></table></main></body></html>");
    html
}

/// The first 12 hex digits: enough to tell digests apart by eye.
fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

fn gate(decision: Option<&GateDecision>) -> String {
    let Some(g) = decision else {
        return "no gate decision".into();
    };
    let verdict = if g.promoted { "promoted" } else { "held back" };
    let champion = match (g.champion_version, g.champion_score) {
        (Some(v), Some(s)) => format!(" vs champion v{v} {}", format_number(s)),
        _ => " (no champion)".into(),
    };
    format!(
        "{verdict}: {} {}{champion}{}",
        g.metric,
        format_number(g.challenger_score),
        g.reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    )
}
