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
    shared_lib::telemetry::install_tls_provider();
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

/// The console's user: may read, promote and archive.
const ALICE_TOKEN: &str = "alice-token-0123456789";

/// A person signs in to the console in Chromium, rolls `production` back by clicking, and sees
/// the alias move and the event listed under their name; a form posted without its CSRF token
/// is refused. Leaves a screenshot of the page after the rollback in the temporary directory
/// (`registry-console.png`; `services/registry/console.png` is one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (apt-get install chromium): run scripts/test.sh"]
async fn in_chromium_a_signed_in_user_rolls_production_back_and_sees_the_event() {
    // Arrange: a registry with reads protected, three versions, production created at v2 and
    // moved to v3 (by the admin token, through the API).
    let store = std::env::temp_dir().join(format!("registry-console-{}", uuid::Uuid::new_v4()));
    let credentials = tempfile::NamedTempFile::new().unwrap();
    let alice_hash = shared_lib::http::token::TokenDigest::of(ALICE_TOKEN).to_hex();
    std::fs::write(
        credentials.path(),
        format!("alice read,promote,archive {alice_hash}\n"),
    )
    .unwrap();
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
    shared_lib::telemetry::install_tls_provider();
    let client = reqwest::Client::new();
    for (i, auc) in [0.91, 0.94, 0.93].into_iter().enumerate() {
        let reg = e2e::registration(i as f64, auc);
        assert_eq!(
            e2e::publish(&client, &url, TOKEN, "fraud", &reg)
                .await
                .status(),
            201
        );
    }
    for (version, expected, reason) in [
        (2, serde_json::Value::Null, "best AUC"),
        (3, serde_json::json!(2), "fresher data"),
    ] {
        let moved = client
            .put(format!("{url}/v1/models/fraud/aliases/production"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"version": version, "expected_version": expected, "reason": reason}))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 200);
    }
    let production = || async {
        let alias: serde_json::Value = client
            .get(format!("{url}/v1/models/fraud/aliases/production"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        alias["version"].as_u64().unwrap()
    };
    let mut browser = e2e::cdp::Browser::launch(1100, 1400).await;

    // Act: sign in by typing the token and clicking "Sign in".
    browser.navigate(&format!("{url}/console")).await;
    browser
        .wait_until("document.querySelector('#sign-in button') !== null")
        .await;
    assert_eq!(
        browser
            .eval("document.body.innerText.includes('fraud')")
            .await,
        Ok(serde_json::json!(false)),
        "reads are protected: nothing before signing in"
    );
    browser
        .eval(&format!(
            "document.querySelector('#sign-in input[name=token]').value = '{ALICE_TOKEN}'; \
             document.querySelector('#sign-in button').click(); true"
        ))
        .await
        .unwrap();
    browser
        .wait_until("document.querySelector('.identity')?.innerText === 'alice'")
        .await;
    // Then give a reason and click "Roll back" on production.
    browser
        .eval(
            "const f = document.querySelector('form.rollback[data-alias=production]'); \
             f.querySelector('input[name=reason]').value = 'v3 misses fraud rings'; \
             f.querySelector('button').click(); true",
        )
        .await
        .unwrap();
    browser
        .wait_until("document.body.innerText.includes('rolled production back from v3 to v2')")
        .await;

    // Assert: the page shows production at v2 and the event, under alice with the reason.
    let text = browser
        .eval("document.body.innerText")
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("production → v2"), "{text}");
    let event = text
        .lines()
        .find(|l| l.contains("rolled production back from v3 to v2"))
        .unwrap();
    assert!(
        event.contains("alice") && event.contains("v3 misses fraud rings"),
        "{event}"
    );
    assert_eq!(production().await, 2);
    let png = browser.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a rendering"
    );
    let shot = std::env::temp_dir().join("registry-console.png");
    std::fs::write(&shot, &png).unwrap();
    println!("registry console screenshot: {}", shot.display());

    // And a form posted by the signed-in browser without its CSRF token is refused.
    browser
        .eval(
            "const a = document.querySelector('form.archive'); \
             a.querySelector('input[name=csrf]').remove(); \
             a.querySelector('select[name=version]').value = '1'; \
             a.querySelector('input[name=reason]').value = 'no token'; \
             a.querySelector('button').click(); true",
        )
        .await
        .unwrap();
    browser
        .wait_until("document.body.innerText.includes('csrf:')")
        .await;
    let versions: serde_json::Value = client
        .get(format!("{url}/v1/models/fraud/versions?status=archived"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions["versions"],
        serde_json::json!([]),
        "nothing archived"
    );
    assert_eq!(production().await, 2);
    std::fs::remove_dir_all(store).ok();
}
