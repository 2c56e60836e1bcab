//! The Grafana dashboards (`manifests/components/dashboards`) query only what the services
//! export (issue #17, part 3).
//!
//! The real `registry`, `fraud`, `recommender` and `trainer` binaries run on a local store,
//! each model server with a B variant, a shadow and a failed reload, so that every labelled
//! family has samples; their `/metrics` pages are the list of what exists, not a hand-written
//! one. Every query of every dashboard (panels, annotations, variable queries), with the
//! dashboard variables substituted, must parse (`promtool check rules` on a file with each
//! query as a recording rule), and every metric name it contains must be one its service
//! exports: a histogram's `_bucket`, `_sum` and `_count` are its family's samples. Panels are
//! checked against their dashboard's service, annotations (the registry's publishes and alias
//! moves) against the registry.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.
#![allow(clippy::print_stdout)] // The observed numbers go to the test's output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::process::{Proc, Service};
use e2e::promql::{Exported, metric_names};
use e2e::{REGISTRY_TOKEN, Registration, RegistryApi};
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::testing::eventually;

/// The dashboards and the service each one shows.
const DASHBOARDS: [(&str, &str); 3] = [
    ("fraud.json", "fraud"),
    ("recommender.json", "recommender"),
    ("registry.json", "registry"),
];

/// Values for Grafana's built-in interval variables (the dashboard's own come from its
/// `templating`).
const BUILT_INS: [(&str, &str); 3] = [
    ("__rate_interval", "2m"),
    ("__interval", "30s"),
    ("__range", "1h"),
];

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/components/dashboards")
}

/// One query of a dashboard, variables substituted.
#[derive(Debug)]
struct Query {
    /// `fraud.json: panel 2 "Latency p50 and p99 by variant and version" B`.
    origin: String,
    expr: String,
    /// The service whose metrics it reads.
    service: String,
}

/// Grafana's `$name` and `${name}` replaced by `values`, longest name first.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut values = values.to_vec();
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in &values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Each variable's value for the check: its "All" value where it has one, else its current.
fn variable_values(board: &serde_json::Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = BUILT_INS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for var in board["templating"]["list"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        let value = match (var["includeAll"].as_bool(), var["allValue"].as_str()) {
            (Some(true), Some(all)) => all.to_owned(),
            _ => var["current"]["value"]
                .as_str()
                .unwrap_or("prometheus")
                .to_owned(),
        };
        values.push((name, value));
    }
    values
}

/// The selector of a `label_values(selector, label)` variable query, which is not PromQL.
fn variable_selector(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_owned())
}

/// Every query of dashboard `file` (of `service`).
fn dashboard_queries(file: &str, service: &str) -> Vec<Query> {
    let text = std::fs::read_to_string(dashboards_dir().join(file)).unwrap();
    let board: serde_json::Value = serde_json::from_str(&text).unwrap();
    let values = variable_values(&board);
    let mut queries = Vec::new();
    let mut push = |origin: String, expr: &str, service: &str| {
        let expr = substitute(expr, &values);
        assert!(
            !expr.contains('$'),
            "{origin}: a variable is left after substitution: {expr}"
        );
        queries.push(Query {
            origin,
            expr,
            service: service.to_owned(),
        });
    };
    for panel in board["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let origin = format!(
                "{file}: panel {} {} {}",
                panel["id"], panel["title"], t["refId"]
            );
            push(origin, t["expr"].as_str().unwrap(), service);
        }
    }
    for a in board["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a["expr"].as_str() {
            push(
                format!("{file}: annotation {}", a["name"]),
                expr,
                "registry",
            );
        }
    }
    for var in board["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = var["query"]["query"].as_str().and_then(variable_selector) {
            push(format!("{file}: variable {}", var["name"]), &query, service);
        }
    }
    queries
}

/// Runs `promtool check rules` on every query as a recording rule, one group per dashboard;
/// returns its output.
fn check_with_promtool(queries: &[Query], dir: &Path) -> String {
    let mut groups: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (i, q) in queries.iter().enumerate() {
        let group = q.origin.split(':').next().unwrap_or_default().to_owned();
        groups.entry(group).or_default().push(serde_json::json!({
            "record": format!("dashboard_query_{i}"),
            "expr": q.expr,
        }));
    }
    let groups: Vec<_> = groups
        .into_iter()
        .map(|(name, rules)| serde_json::json!({"name": name, "rules": rules}))
        .collect();
    // JSON is YAML: promtool reads it as a rules file.
    let path = dir.join("dashboard-queries.yaml");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("promtool (apt-get install prometheus): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let numbered: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("  dashboard_query_{i}: {}: {}", q.origin, q.expr))
        .collect();
    assert!(
        out.status.success(),
        "promtool check rules refused a dashboard query:\n{text}\nthe queries:\n{}",
        numbered.join("\n")
    );
    text
}

/// Runs the trainer to completion; returns its result (stdout JSON).
async fn train(args: &[&str], env: &[(String, String)]) -> serde_json::Value {
    let mut trainer = Proc::spawn("trainer", args, env);
    let status = trainer.wait(Duration::from_secs(300)).await;
    assert!(
        status.success(),
        "trainer {args:?}: {status}\n{}",
        trainer.tail(20)
    );
    serde_json::from_str(&trainer.stdout().join("\n")).unwrap()
}

/// A version whose artifact is a well-formed envelope of `kind` holding no model: the registry
/// cannot tell, a server fails to load it.
fn unloadable(kind: ModelKind, algorithm: &str) -> Registration {
    let artifact = encode_artifact(kind, &vec![0.5_f64; 4]).unwrap();
    Registration {
        body: serde_json::json!({
            "manifest": {
                "run_id": uuid::Uuid::new_v4(),
                "algorithm": algorithm,
                "metrics": {},
                "trainer_version": "e2e",
                "created_by": "e2e",
            },
            "artifact_sha256": artifact.digest.to_string(),
        }),
        sha256: artifact.digest.to_string(),
        artifact: artifact.bytes,
    }
}

fn with(env: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

/// Moves `production` of `model` to an unloadable version and waits for `server` to count
/// the failed reload (it keeps serving the version before).
async fn fail_a_reload(registry: &RegistryApi, server: &Service, model: &str, bad: Registration) {
    let version = registry.register(model, &bad).await;
    registry.promote(model, version).await;
    eventually(
        &format!("{model}: the failed reload of v{version} is counted"),
        Duration::from_secs(30),
        || async {
            server
                .metric("model_reloads_total", &[("result", "failed")])
                .await
                >= 1.0
        },
    )
    .await;
}

async fn scrape(service: &Service) -> String {
    service.get("/metrics").await.text().await.unwrap()
}

/// The query strings of `/classify` for the first `n` rows of the generated data, features in
/// the manifest's order.
fn classify_queries(csv: &Path, features: &[String], n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let columns: Vec<usize> = features
        .iter()
        .map(|f| header.iter().position(|h| h == f).unwrap())
        .collect();
    lines
        .take(n)
        .map(|line| {
            let row: Vec<&str> = line.split(',').collect();
            let pairs: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, &c)| format!("f{}={}", i + 1, row[c]))
                .collect();
            format!("/classify?{}", pairs.join("&"))
        })
        .collect()
}

/// The suite with every labelled family present; the `/metrics` page of each service.
async fn scrape_a_configured_suite() -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let store = vec![(
        "MODEL_STORE".to_owned(),
        dir.path().join("store").to_str().unwrap().to_owned(),
    )];
    let registry = RegistryApi::start(&store).await;
    let publish = vec![
        ("REGISTRY_URL".to_owned(), registry.url().to_owned()),
        ("REGISTRY_TOKEN".to_owned(), REGISTRY_TOKEN.to_owned()),
    ];
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // Fraud: two trained versions (drift profiles included), production on the first.
    let csv = path("fraud.csv");
    train(
        &[
            "generate", "fraud", "--rows", "4000", "--seed", "7", "--out", &csv,
        ],
        &[],
    )
    .await;
    for trees in ["4", "6"] {
        train(
            &["train", "fraud", "--data", &csv, "--trees", trees],
            &publish,
        )
        .await;
    }
    if registry.alias("fraud", "production").await != Some(1) {
        registry.promote("fraud", 1).await;
    }
    let fraud = Service::start_ready(
        "fraud",
        &with(
            &store,
            &[
                ("MODEL_VERSION_B", "2".into()),
                ("AB_PERCENT_B", "50".into()),
                ("MODEL_VERSION_SHADOW", "2".into()),
                ("MODEL_POLL_SECONDS", "0.2".into()),
            ],
        ),
    )
    .await;
    let manifest = registry
        .service
        .get_json("/v1/models/fraud/versions/1")
        .await["manifest"]
        .clone();
    let features: Vec<String> = manifest["feature_schema"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    // Enough requests for a PSI reading per variant (every 256 once 1000 are in the window).
    let queries = classify_queries(Path::new(&csv), &features, 3000);
    let statuses = get_all(&fraud, &queries).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    fail_a_reload(
        &registry,
        &fraud,
        "fraud",
        unloadable(ModelKind::FraudRandomForest, "random_forest"),
    )
    .await;

    // Recommender: two trained versions, production on the first.
    let ratings = path("ratings.tsv");
    train(
        &[
            "generate",
            "ratings",
            "--users",
            "300",
            "--items",
            "400",
            "--density",
            "0.05",
            "--out",
            &ratings,
        ],
        &[],
    )
    .await;
    for rank in ["4", "8"] {
        train(
            &[
                "train",
                "recommender",
                "--ratings",
                &ratings,
                "--rank",
                rank,
                "--iterations",
                "2",
                "--max-rmse",
                "100",
            ],
            &publish,
        )
        .await;
    }
    if registry.alias("recommender", "production").await != Some(1) {
        registry.promote("recommender", 1).await;
    }
    let recommender = Service::start_ready(
        "recommender",
        &with(
            &store,
            &[
                ("MODEL_VERSION_B", "2".into()),
                ("AB_PERCENT_B", "50".into()),
                ("MODEL_VERSION_SHADOW", "2".into()),
                ("MODEL_POLL_SECONDS", "0.2".into()),
                // Wait for a scoring slot rather than shed load on a busy test machine.
                ("SCORING_WAIT_MS", "10000".into()),
            ],
        ),
    )
    .await;
    let users: BTreeSet<String> = std::fs::read_to_string(&ratings)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .take(2000)
        .collect();
    let requests: Vec<String> = users
        .iter()
        .take(100)
        .map(|u| format!("/v1/users/{u}/recommendations?n=5"))
        .collect();
    let statuses = get_all(&recommender, &requests).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Enough answers for a top-item score PSI reading per variant (every 256 once 1,000 are in
    // the window): 30 batches of those 100 users, about 1,500 answers a variant.
    let batch: Vec<&String> = users.iter().take(100).collect();
    for _ in 0..30 {
        let status = recommender
            .client
            .post(format!("{}/v1/recommendations", recommender.url))
            .json(&serde_json::json!({"users": batch, "n": 5}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "POST /v1/recommendations");
    }
    fail_a_reload(
        &registry,
        &recommender,
        "recommender",
        unloadable(ModelKind::RecommenderAls, "als"),
    )
    .await;

    // Registry: a change without a credential is refused (and counted).
    let refused = registry
        .service
        .client
        .put(format!(
            "{}/v1/models/fraud/aliases/production",
            registry.url()
        ))
        .json(&serde_json::json!({"version": 1, "expected_version": 1}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(refused.status().as_u16(), 401 | 403),
        "{}",
        refused.status()
    );

    BTreeMap::from([
        ("fraud".to_owned(), scrape(&fraud).await),
        ("recommender".to_owned(), scrape(&recommender).await),
        ("registry".to_owned(), scrape(&registry.service).await),
    ])
}

/// `GET` each of `paths` on `service`, 8 at a time; their statuses.
async fn get_all(service: &Service, paths: &[String]) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(8) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|path| {
                let request = service.client.get(format!("{}{path}", service.url));
                tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
            })
            .collect();
        for h in handles {
            statuses.push(h.await.unwrap().unwrap());
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs promtool and the built binaries: run scripts/test.sh"]
async fn every_dashboard_query_parses_and_names_only_metrics_the_running_services_export() {
    // Arrange: the suite running with B variants, shadows and failed reloads; its metrics.
    let pages = scrape_a_configured_suite().await;
    let exported: BTreeMap<String, Exported> = pages
        .iter()
        .map(|(service, text)| (service.clone(), Exported::parse(text)))
        .collect();
    let queries: Vec<Query> = DASHBOARDS
        .iter()
        .flat_map(|(file, service)| dashboard_queries(file, service))
        .collect();

    // Act: promtool parses every query; every name in it is looked up in its service's page.
    let dir = tempfile::tempdir().unwrap();
    let promtool = check_with_promtool(&queries, dir.path());
    let mut unknown = Vec::new();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in &queries {
        let page = &exported[&q.service];
        let names = metric_names(&q.expr);
        assert!(
            !names.is_empty(),
            "{}: no metric name in {}",
            q.origin,
            q.expr
        );
        for name in names {
            match page.family_of(&name) {
                Some(family) => {
                    used.entry(q.service.clone()).or_default().insert(family);
                }
                None => unknown.push(format!(
                    "{}: `{name}` is not exported by the running {} service",
                    q.origin, q.service
                )),
            }
        }
    }

    // Assert
    let families: BTreeMap<_, _> = exported
        .iter()
        .map(|(s, e)| (s.clone(), e.families()))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard queries name metrics no service exports:\n  {}\nexported families: {families:#?}",
        unknown.join("\n  ")
    );
    println!("promtool check rules: {}", promtool.trim());
    for (service, names) in &used {
        println!(
            "{service}: {} of its {} exported families used by the dashboards: {}",
            names.len(),
            families[service].len(),
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "{} queries in {} dashboards parsed and checked",
        queries.len(),
        DASHBOARDS.len()
    );
}
