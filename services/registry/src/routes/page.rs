//! `GET /`: a server-rendered page of models, versions with metrics, aliases, recent events,
//! and a chart of the main metric across versions (inline SVG; no scripts, no external assets).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::{HttpResponse, web};

use shared_lib::registry::records::{Event, EventKind};

use super::AppState;
use super::console::{MAX_REASON_CHARS, MAX_TOKEN_CHARS};
use crate::auth::{PageReader, Session};
use crate::catalog::{self, ModelSummary, VersionView};
use crate::error::Error;
use shared_lib::model_id::ModelName;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index_page));
}

/// The metric charted: the first of these a model's versions have.
const MAIN_METRICS: [&str; 5] = ["roc_auc", "ndcg_at_k", "rmse", "pr_auc", "precision_at_k"];

/// When reads are protected, the [`PageReader`] answers 401 with a Basic challenge, so the
/// browser asks for an identity and token (see `crate::auth`). `/console` is the same page with
/// a sign-in form and, signed in, the action forms (`super::console`).
async fn index_page(_: PageReader, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let html = render(&state, None, true).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// What the console adds to the page.
pub enum Console<'a> {
    /// Not signed in: the sign-in form, with its double-submit CSRF token.
    SignIn { csrf: &'a str },
    /// Signed in: who, a sign-out form, and per model the action forms.
    SignedIn(&'a Session),
}

/// The page: `console`, then (if `show_data`) every model with its versions, aliases, chart
/// and recent events.
///
/// # Errors
/// Store failures.
pub async fn render(
    state: &AppState,
    console: Option<Console<'_>>,
    show_data: bool,
) -> Result<String, Error> {
    let mut html = String::from(HEAD);
    match &console {
        None => html.push_str("<p><a href=\"/console\">Sign in to the console</a> to promote, roll back or archive.</p>"),
        Some(Console::SignIn { csrf }) => {
            let _ = write!(
                html,
                "<form id=\"sign-in\" method=\"post\" action=\"/console/sign-in\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <label>Registry token <input type=\"password\" name=\"token\" required maxlength=\"{MAX_TOKEN_CHARS}\" autocomplete=\"off\"></label> \
                 <button type=\"submit\">Sign in</button></form>",
                escape(csrf)
            );
        }
        Some(Console::SignedIn(session)) => {
            let _ = write!(
                html,
                "<form id=\"sign-out\" method=\"post\" action=\"/console/sign-out\"><p>Signed in as <b class=\"identity\">{}</b> (scopes: {:?}). \
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></p></form>",
                escape(session.identity.name()),
                session.identity.scopes(),
                escape(&session.csrf)
            );
        }
    }
    if !show_data {
        html.push_str("<p class=\"empty\">Reads need the read scope here: sign in with a credential that has it.</p></main></body></html>");
        return Ok(html);
    }
    let models = catalog::models(state).await?;
    if models.is_empty() {
        html.push_str("<p class=\"empty\">No models registered yet.</p>");
    }
    for summary in models {
        let (versions, _) = catalog::versions(state, &summary.name).await?;
        let events = catalog::history(state, &summary.name).await?;
        let _ = write!(
            html,
            "<section id=\"model-{0}\"><h2>{0}</h2>",
            escape(summary.name.as_str())
        );
        let aliases: Vec<String> = summary
            .aliases
            .iter()
            .map(|(a, v)| format!("<span class=\"alias\">{} → v{v}</span>", escape(a)))
            .collect();
        let _ = write!(
            html,
            "<p>{}. Aliases: {}</p>",
            count(summary.versions, "version", "versions"),
            if aliases.is_empty() {
                "none".into()
            } else {
                aliases.join(" ")
            }
        );
        if let Some(metric) = main_metric(&versions) {
            html.push_str(&chart(&versions, metric));
            html.push_str(&alias_charts(&events, &versions, metric));
        }
        html.push_str(&version_table(&versions));
        if console.is_some() && versions.len() >= 2 {
            html.push_str(&compare_form(&summary.name, &versions));
        }
        if let Some(Console::SignedIn(session)) = &console {
            html.push_str(&action_forms(&summary, &versions, &session.csrf));
        }
        html.push_str("<h3>Recent events</h3><ol class=\"events\">");
        for event in events.iter().rev().take(10) {
            let what = describe(&event.kind);
            let _ = write!(
                html,
                "<li><time>{}</time> <b>{}</b> {} {}</li>",
                event.provenance.at.format("%Y-%m-%d %H:%M:%S UTC"),
                escape(&event.provenance.actor),
                escape(&what),
                event
                    .provenance
                    .reason
                    .as_deref()
                    .map(|r| format!("— {}", escape(r)))
                    .unwrap_or_default()
            );
        }
        html.push_str("</ol></section>");
    }
    html.push_str("</main></body></html>");
    Ok(html)
}

/// Two versions to compare side by side. A GET that changes nothing, so it carries no CSRF
/// token (one in a URL would leak through history and logs).
fn compare_form(model: &ModelName, versions: &[VersionView]) -> String {
    let select = |name: &str, chosen: usize| {
        let options: String = versions
            .iter()
            .rev()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "<option value=\"{0}\"{1}>v{0}</option>",
                    v.version,
                    if i == chosen { " selected" } else { "" }
                )
            })
            .collect();
        format!("<select name=\"{name}\">{options}</select>")
    };
    format!(
        "<form class=\"compare\" method=\"get\" action=\"/console/models/{}/compare\">Compare {} with {} <button type=\"submit\">Compare</button></form>",
        escape(model.as_str()),
        select("a", 1),
        select("b", 0)
    )
}

/// Per alias: move it (compare-and-swap on the version shown) and roll it back; create an
/// alias; archive a version. Each form carries the session's CSRF token and a required reason.
fn action_forms(summary: &ModelSummary, versions: &[VersionView], csrf: &str) -> String {
    let model = escape(summary.name.as_str());
    let csrf = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    );
    let reason = format!(
        "<input name=\"reason\" required maxlength=\"{MAX_REASON_CHARS}\" placeholder=\"reason (required)\">"
    );
    let options = |filter: &dyn Fn(&VersionView) -> bool| {
        versions
            .iter()
            .rev()
            .filter(|v| filter(v))
            .map(|v| format!("<option value=\"{0}\">v{0}</option>", v.version))
            .collect::<String>()
    };
    let active = options(&|v| v.status == "active");
    let mut out = String::from("<div class=\"actions\"><h3>Actions</h3>");
    for (alias, at) in &summary.aliases {
        let alias = escape(alias);
        let _ = write!(
            out,
            "<form class=\"promote\" data-alias=\"{alias}\" method=\"post\" action=\"/console/models/{model}/promote\">{csrf}\
             <input type=\"hidden\" name=\"alias\" value=\"{alias}\"><input type=\"hidden\" name=\"expected_version\" value=\"{at}\">\
             Move <b>{alias}</b> (now v{at}) to <select name=\"version\">{active}</select> {reason} <button type=\"submit\">Promote</button></form>\
             <form class=\"rollback\" data-alias=\"{alias}\" method=\"post\" action=\"/console/models/{model}/rollback\">{csrf}\
             <input type=\"hidden\" name=\"alias\" value=\"{alias}\">Roll <b>{alias}</b> back {reason} <button type=\"submit\">Roll back</button></form>"
        );
    }
    let _ = write!(
        out,
        "<form class=\"create-alias\" method=\"post\" action=\"/console/models/{model}/promote\">{csrf}<input type=\"hidden\" name=\"expected_version\" value=\"\">\
         New alias <input name=\"alias\" required maxlength=\"64\" placeholder=\"alias\"> at <select name=\"version\">{active}</select> {reason} <button type=\"submit\">Create</button></form>\
         <form class=\"archive\" method=\"post\" action=\"/console/models/{model}/archive\">{csrf}\
         Archive <select name=\"version\">{active}</select> {reason} <button type=\"submit\">Archive</button></form></div>"
    );
    out
}

pub const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model registry</title>\
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0}\
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}.compare .differs{background:#fff7e0}.alias{background:#e7f0ff;border-radius:4px;padding:0 .4rem;margin-right:.3rem}\
.archived,.deleted{color:#999}.deleted td:first-child{text-decoration:line-through}svg{border:1px solid #ddd;background:#fafafa}\
.actions form{margin:.3rem 0}.actions input[name=reason]{width:16rem}</style></head><body><main><h1>Model registry</h1>";

fn main_metric(versions: &[VersionView]) -> Option<&'static str> {
    MAIN_METRICS
        .into_iter()
        .find(|m| versions.iter().any(|v| v.metrics.contains_key(*m)))
}

fn version_table(versions: &[VersionView]) -> String {
    let mut names: Vec<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
    names.sort();
    names.dedup();
    names.truncate(6);
    let mut t = String::from(
        "<table><thead><tr><th>version</th><th>status</th><th>aliases</th><th>algorithm</th><th>created</th><th>by</th>",
    );
    for n in &names {
        let _ = write!(t, "<th>{}</th>", escape(n));
    }
    t.push_str("</tr></thead><tbody>");
    for v in versions.iter().rev() {
        let _ = write!(
            t,
            "<tr class=\"{}\"><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            v.status,
            v.version,
            v.status,
            escape(&v.aliases.join(", ")),
            escape(&v.algorithm),
            v.created_at.format("%Y-%m-%d %H:%M"),
            escape(&v.created_by)
        );
        for n in &names {
            let cell = v
                .metrics
                .get(*n)
                .map(|x| format_number(*x))
                .unwrap_or_default();
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// A line chart of `metric` over versions, as inline SVG.
fn chart(versions: &[VersionView], metric: &str) -> String {
    let points: Vec<(String, f64)> = versions
        .iter()
        .filter_map(|v| Some((format!("v{}", v.version), *v.metrics.get(metric)?)))
        .collect();
    line_chart(
        &points,
        &format!("{metric} by version"),
        &format!("{metric} across versions"),
    )
}

/// Per alias moved at least twice: `metric` of the version it moved to, move after move (a
/// rollback is a move too), so a person sees what each promotion and rollback did to the
/// metric the alias served, not only how versions compare.
fn alias_charts(events: &[Event], versions: &[VersionView], metric: &str) -> String {
    let mut moves: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for event in events {
        if let EventKind::AliasMoved {
            alias,
            to,
            rollback,
            ..
        } = &event.kind
        {
            let Some(value) = versions
                .iter()
                .find(|v| v.version == *to)
                .and_then(|v| v.metrics.get(metric))
            else {
                continue;
            };
            let label = if *rollback {
                format!("↩v{to}")
            } else {
                format!("v{to}")
            };
            moves
                .entry(alias.to_string())
                .or_default()
                .push((label, *value));
        }
    }
    moves
        .iter()
        .filter(|(_, points)| points.len() >= 2)
        .map(|(alias, points)| {
            line_chart(
                points,
                &format!("{metric} of {alias} at each move"),
                &format!("{metric} of {alias} at each move (↩ marks a rollback)"),
            )
        })
        .collect()
}

/// A line chart of labelled points, as inline SVG.
fn line_chart(points: &[(String, f64)], label: &str, caption: &str) -> String {
    let (w, h, pad) = (480.0, 160.0, 30.0);
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = points.len().max(2) as f64 - 1.0;
    let xy = |i: usize, y: f64| {
        (
            pad + (w - 2.0 * pad) * i as f64 / n,
            h - pad - (h - 2.0 * pad) * (y - lo) / span,
        )
    };
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = xy(i, p.1);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let mut svg = format!(
        "<figure><svg role=\"img\" aria-label=\"{}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\" points=\"{}\"/>",
        escape(label),
        path.join(" "),
    );
    for (i, (name, value)) in points.iter().enumerate() {
        let (x, y) = xy(i, *value);
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#2563eb\"><title>{}: {}</title></circle><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            escape(name),
            format_number(*value),
            h - 8.0,
            escape(name)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"14\" font-size=\"11\">{}</text><text x=\"4\" y=\"{:.1}\" font-size=\"11\">{}</text></svg><figcaption>{}</figcaption></figure>",
        format_number(hi),
        h - pad + 4.0,
        format_number(lo),
        escape(caption)
    );
    svg
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::Registered { version, .. } => format!("registered v{version}"),
        EventKind::AliasMoved {
            alias,
            from,
            to,
            rollback,
            ..
        } => match (from, rollback) {
            (Some(from), true) => format!("rolled {alias} back from v{from} to v{to}"),
            (Some(from), false) => format!("moved {alias} from v{from} to v{to}"),
            (None, _) => format!("created {alias} at v{to}"),
        },
        EventKind::Archived { version } => format!("archived v{version}"),
        EventKind::Deleted { version } => format!("deleted v{version} (retention)"),
        EventKind::Kept { version } => format!("marked v{version} to keep"),
        EventKind::Unkept { version } => format!("lifted the keep mark of v{version}"),
    }
}

/// A metric as a person reads it: whole numbers (counts such as `n_rows`) without decimals,
/// others to four decimals with trailing zeros dropped (`0.9100` reads `0.91`).
pub fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    // Below 2^53 every whole f64 is exact, so `as i64` loses nothing.
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        return (x as i64).to_string();
    }
    let fixed = format!("{x:.4}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// `1 version`, `3 versions`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_counts_or_four_decimals() {
        let cases = [
            (21.0, "21"),
            (0.0, "0"),
            (-3.0, "-3"),
            (0.91, "0.91"),
            (0.912_345, "0.9123"),
            (1.5, "1.5"),
            (-0.000_01, "0"),
            (1e20, "100000000000000000000"),
            (f64::NAN, "NaN"),
        ];
        for (x, expected) in cases {
            assert_eq!(format_number(x), expected, "{x}");
        }
    }

    #[test]
    fn counts_are_plural_except_one() {
        assert_eq!(count(1, "version", "versions"), "1 version");
        assert_eq!(count(0, "version", "versions"), "0 versions");
        assert_eq!(count(2, "version", "versions"), "2 versions");
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
