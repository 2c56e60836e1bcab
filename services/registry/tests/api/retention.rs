//! Retention after registration and by `gc`, keep markers, deleted versions over HTTP, and
//! rollbacks in a row.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_message, registration, spawn_app};

/// Distinct artifact bytes for every registration of this module.
static SEED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Registers `n` more versions with distinct artifacts, moving production (now at
/// `production`) to each in `promote` right after registering it.
async fn register_promoting(app: &TestApp, n: u32, promote: &[u64], production: Option<u64>) {
    let mut production = production;
    for _ in 0..n {
        let seed = SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let res = app.register("fraud", &registration(f64::from(seed))).await;
        assert_eq!(res.status(), 201);
        let version = res.json::<Value>().await.unwrap()["version"]
            .as_u64()
            .unwrap();
        if promote.contains(&version) {
            let moved = app
                .move_alias(
                    "fraud",
                    "production",
                    &json!({"version": version, "expected_version": production}),
                )
                .await;
            assert_eq!(moved.status(), 200);
            production = Some(version);
        }
    }
}

async fn statuses(app: &TestApp) -> Vec<(u64, String)> {
    app.get_json("/v1/models/fraud/versions?order=asc&page_size=500")
        .await["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn live(statuses: &[(u64, String)]) -> Vec<u64> {
    statuses
        .iter()
        .filter(|(_, s)| s != "deleted")
        .map(|(v, _)| *v)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_versions_bounds_the_store_after_each_registration_and_keeps_production() {
    // Arrange + Act: RETAIN_VERSIONS=3; production at v2, then at v5 from its registration.
    let app = spawn_app(&[("RETAIN_VERSIONS", "3")]).await;
    register_promoting(&app, 4, &[2], None).await;
    let before_v5 = chrono::Utc::now();
    register_promoting(&app, 5, &[5], Some(2)).await; // v5..=v9
    let after_v9 = chrono::Utc::now();

    // Assert: the newest 3 (v7..=v9) and production's v5 stay; v2, production until v5's
    // promotion (before the window, which starts at v7's creation), goes.
    let listed = statuses(&app).await;
    assert_eq!(live(&listed), [5, 7, 8, 9], "{listed:?}");
    assert_eq!(app.artifact_objects("fraud").await, 4);
    // A deleted version still reads, with its manifest; its artifact is 410 version_deleted.
    let v1 = app.get_json("/v1/models/fraud/versions/1").await;
    assert_eq!(
        (v1["status"].as_str(), v1["manifest"]["version"].as_u64()),
        (Some("deleted"), Some(1))
    );
    let gone = app
        .get_authorized("/v1/models/fraud/versions/1/artifact")
        .await;
    assert_eq!(gone.status(), 410);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "version_deleted");
    let promote = app
        .move_alias(
            "fraud",
            "production",
            &json!({"version": 3, "expected_version": 5}),
        )
        .await;
    assert!(
        error_message(promote, 410)
            .await
            .contains("deleted by retention")
    );
    // The listing filters by the new status, and time travel still answers in the window.
    let deleted = app
        .get_json("/v1/models/fraud/versions?status=deleted&order=asc")
        .await;
    assert_eq!(deleted["versions"].as_array().unwrap().len(), 5);
    let production_at = |t: chrono::DateTime<chrono::Utc>| {
        let t = t
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B");
        format!("/v1/models/fraud/aliases/production?at={t}")
    };
    assert_eq!(app.get_json(&production_at(after_v9)).await["version"], 5);
    assert_eq!(
        app.get_json(&production_at(before_v5)).await["version"],
        2,
        "before the window the answer is still known, though v2 is deleted"
    );
    // The history keeps every registration and names each deletion and who made it.
    let events = app.get_json("/v1/models/fraud/events").await;
    let events = events["events"].as_array().unwrap();
    let of = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!((of("registered"), of("deleted")), (9, 5));
    let deletion = events.iter().find(|e| e["type"] == "deleted").unwrap();
    assert_eq!(deletion["actor"], "registry-retention");
    assert!(
        deletion["reason"]
            .as_str()
            .unwrap()
            .contains("keep the newest 3 versions"),
        "{deletion}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        shared_lib::testing::metric_sum(
            &metrics,
            "registry_versions_retired_total",
            &[("model", "fraud")]
        ),
        5.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_applies_the_given_policy_reports_what_it_did_and_respects_keep_markers() {
    // Arrange: no retention configured; six versions, production at v1, v3 kept.
    let app = spawn_app(&[]).await;
    register_promoting(&app, 6, &[1], None).await;
    assert_eq!(live(&statuses(&app).await).len(), 6, "nothing automatic");
    let keep = app
        .post(
            "/v1/models/fraud/versions/3/keep",
            &json!({"reason": "pinned by MODEL_VERSION=3", "actor": "oncall"}),
        )
        .await;
    assert_eq!(keep.status(), 200);
    assert_eq!(keep.json::<Value>().await.unwrap()["changed"], true);
    assert_eq!(
        app.get_json("/v1/models/fraud/versions/3").await["kept"],
        true
    );

    // Act + Assert: without a policy gc is a 400 naming the variables.
    let none = app.post("/v1/models/fraud/gc", &json!({})).await;
    assert!(error_message(none, 400).await.contains("RETAIN_VERSIONS"));
    let unauthorised = app
        .client
        .post(app.url("/v1/models/fraud/gc"))
        .json(&json!({"retain_versions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    // A dry run reports and deletes nothing.
    let dry: Value = app
        .post(
            "/v1/models/fraud/gc",
            &json!({"retain_versions": 2, "dry_run": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry["retired"], json!([2, 4]));
    assert_eq!(live(&statuses(&app).await).len(), 6);
    // The real run does what the dry run said and says why the rest stay.
    let res = app
        .post(
            "/v1/models/fraud/gc",
            &json!({"retain_versions": 2, "reason": "disk budget", "actor": "ops"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["retired"], json!([2, 4]));
    assert_eq!(report["artifacts_deleted"].as_array().unwrap().len(), 2);
    assert_eq!(
        report["retained"][1],
        json!({"version": 3, "reasons": ["marked to keep"]})
    );
    assert_eq!(live(&statuses(&app).await), [1, 3, 5, 6]);
    assert_eq!(app.artifact_objects("fraud").await, 4);

    // Unkeeping releases v3 to the next run; keeping a deleted version is 410.
    app.post("/v1/models/fraud/versions/3/unkeep", &json!({}))
        .await;
    let report: Value = app
        .post("/v1/models/fraud/gc", &json!({"retain_versions": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["retired"], json!([3]));
    let late = app
        .post("/v1/models/fraud/versions/3/keep", &json!({}))
        .await;
    assert_eq!(late.status(), 410);
    let kinds: Vec<String> = app.get_json("/v1/models/fraud/events").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .filter(|k| !k.starts_with("registered") && !k.starts_with("alias_moved"))
        .collect();
    assert_eq!(
        kinds,
        [
            "kept admin",
            "deleted admin",
            "deleted admin",
            "unkept admin",
            "deleted admin"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_rollbacks_in_a_row_go_further_back_and_say_why() {
    // Arrange: production went v1 -> v2 -> v3 -> v4.
    let app = spawn_app(&[]).await;
    register_promoting(&app, 4, &[1, 2, 3, 4], None).await;
    let empty = json!({});
    let rollback = || app.post("/v1/models/fraud/aliases/production/rollback", &empty);
    // Act + Assert
    for (to, from) in [(3, 4), (2, 3), (1, 2)] {
        let res = rollback().await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (body["version"].as_u64(), body["rolled_back_from"].as_u64()),
            (Some(to), Some(from)),
            "{body}"
        );
        assert!(
            body["explanation"]
                .as_str()
                .unwrap()
                .starts_with(&format!("v{to} is the most recent version production held")),
            "{body}"
        );
        assert_eq!(
            body["reason"],
            format!("rollback from v{from} to v{to}"),
            "the default reason names both versions"
        );
        let skipped = body["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 4 - from as usize, "{body}");
        assert!(skipped.iter().all(|s| s["reason"] == "rolled_back_from"));
    }
    let none = rollback().await;
    assert!(
        error_message(none, 409)
            .await
            .contains("no earlier version to roll back to")
    );
    let events = app.get_json("/v1/models/fraud/events").await;
    let rollbacks = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["rollback"] == true)
        .count();
    assert_eq!(rollbacks, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_event_reads_the_gate_verdict_as_text() {
    let app = spawn_app(&[]).await;
    let mut body = registration(1.0);
    body["manifest"]["gate"] = json!({
        "metric": "roc_auc", "higher_is_better": true, "champion_version": null,
        "champion_score": null, "challenger_score": 0.996_057_928_540_995_6,
        "min_improvement": 0.001, "promoted": true
    });
    assert_eq!(app.register("fraud", &body).await.status(), 201);
    let events = app.get_json("/v1/models/fraud/events").await;
    assert_eq!(
        events["events"][0]["reason"],
        "roc_auc 0.996058 vs no champion: promoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gc_body_that_does_not_parse_is_refused_rather_than_ignored() {
    // A misspelt dry_run must not turn into a real run with the configured policy.
    let app = spawn_app(&[("RETAIN_VERSIONS", "5")]).await;
    register_promoting(&app, 2, &[], None).await;
    for body in [
        json!({"dryrun": true}),
        json!({"retain_versions": 0}),
        json!({"retain_days": "a week"}),
    ] {
        let res = app.post("/v1/models/fraud/gc", &body).await;
        assert!(
            error_message(res, 400).await.contains("invalid gc request"),
            "{body}"
        );
    }
    // Found by schemathesis: days beyond the calendar once panicked the worker.
    let res = app
        .post(
            "/v1/models/fraud/gc",
            &json!({"retain_days": 4_294_967_294u32}),
        )
        .await;
    assert!(error_message(res, 400).await.contains("at most 36500"));
    let configured: Value = app
        .client
        .post(app.url("/v1/models/fraud/gc"))
        .bearer_auth(crate::helpers::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(configured["policy"]["retain_versions"], 5);
    assert_eq!(configured["retired"], json!([]));
}
