//! The registry's web page in a real browser: headless Chromium renders it, we read the DOM
//! it built and take a screenshot.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::process::Command;

const TOKEN: &str = "page-token-0123456789";
/// The page's reader: a named credential with only the read scope.
const VIEWER_TOKEN: &str = "viewer-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (apt-get install chromium): run scripts/test.sh"]
async fn headless_chromium_renders_models_versions_aliases_and_the_chart() {
    // Arrange: a registry on a local store with three versions and a production alias, its
    // reads protected; the browser signs in with HTTP Basic as `viewer` (a read credential
    // from the credentials file), by the credentials in the URL.
    let store = std::env::temp_dir().join(format!("registry-page-{}", uuid::Uuid::new_v4()));
    let credentials = tempfile::NamedTempFile::new().unwrap();
    let viewer_hash: String = shared_lib::http::token::TokenDigest::of(VIEWER_TOKEN).to_hex();
    std::fs::write(credentials.path(), format!("viewer read {viewer_hash}\n")).unwrap();
    let env = [
        ("MODEL_STORE", store.to_str().unwrap()),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("REGISTRY_TOKEN", TOKEN),
        (
            "REGISTRY_CREDENTIALS_FILE",
            credentials.path().to_str().unwrap(),
        ),
        ("REGISTRY_READ_AUTH", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = e2e::start_registry(env).await;
    let client = reqwest::Client::new();
    for (i, auc) in [0.91, 0.94, 0.93].into_iter().enumerate() {
        let res = e2e::publish(
            &client,
            &url,
            TOKEN,
            "fraud",
            &e2e::registration(i as f64, auc),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let moved = client
        .put(format!("{url}/v1/models/fraud/aliases/production"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"version": 2, "reason": "best AUC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);

    // Act: the browser loads the page.
    let shot = std::env::temp_dir().join("registry-page.png");
    let signed_in = url.replacen("http://", &format!("http://viewer:{VIEWER_TOKEN}@"), 1);
    let chromium = |extra: &[&str], url: &str| {
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            std::env::temp_dir()
                .join(format!("chromium-{}", uuid::Uuid::new_v4()))
                .display()
        ))
        .args(extra)
        .arg(url);
        cmd.output().unwrap()
    };
    let dom = chromium(&["--dump-dom"], &signed_in);
    let anonymous = chromium(&["--dump-dom"], &url);
    let screenshot = chromium(
        &[
            "--window-size=1000,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &signed_in,
    );

    // Assert
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    for needle in [
        "<h2>fraud</h2>",
        "production → v2",
        "<polyline",
        "roc_auc across versions",
        "best AUC",
        "<td>v3</td>",
        "created production at v2",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} missing from the rendered DOM"
        );
    }
    let anonymous = String::from_utf8_lossy(&anonymous.stdout);
    assert!(
        !anonymous.contains("<h2>fraud</h2>"),
        "without credentials the page must not render: {anonymous}"
    );
    assert_eq!(
        dom.matches("<circle").count(),
        3,
        "one chart point per version"
    );
    assert!(screenshot.status.success());
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is not a real rendering"
    );
    println!("registry page screenshot: {}", shot.display());
    std::fs::remove_dir_all(store).ok();
}
