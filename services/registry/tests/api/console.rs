//! The console: sign-in, its cookie, CSRF, scopes, reasons, and the audit actor.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_message, registration, spawn_app, token_of};

/// A browser's view of the console: the session cookie and the page's CSRF token.
struct Browser {
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// `application/x-www-form-urlencoded`, by hand (reqwest's `form` feature is off).
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first hidden `csrf` input of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `Set-Cookie` header that sets `name`.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn name_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn no_redirects() -> reqwest::Client {
    shared_lib::telemetry::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Loads the sign-in form and posts `token` with its CSRF token and cookie.
async fn post_sign_in(app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
    let page = client.get(app.url("/console")).send().await.unwrap();
    let sign_in_cookie = name_value(&set_cookie(&page, "registry_sign_in").unwrap());
    let csrf = csrf_of(&page.text().await.unwrap());
    client
        .post(app.url("/console/sign-in"))
        .header("cookie", sign_in_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token), ("csrf", &csrf)]))
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp, identity: &str) -> Browser {
    let client = no_redirects();
    let res = post_sign_in(app, &client, &token_of(identity)).await;
    assert_eq!(res.status(), 303, "{identity} signs in");
    let cookie = name_value(&set_cookie(&res, "registry_session").unwrap());
    let page = client
        .get(app.url("/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    Browser {
        client,
        cookie,
        csrf,
    }
}

impl Browser {
    async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, app: &TestApp) -> String {
        let res = self
            .client
            .get(app.url("/console"))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }
}

/// Two versions of `fraud`, `production` at v1 then moved to v2.
async fn app_with_production_moved(extra: &[(&str, &str)]) -> TestApp {
    let app = spawn_app(extra).await;
    for seed in [1.0, 2.0] {
        assert_eq!(
            app.register("fraud", &registration(seed)).await.status(),
            201
        );
    }
    for (version, expected) in [(1, Value::Null), (2, json!(1))] {
        let res = app
            .move_alias(
                "fraud",
                "production",
                &json!({"version": version, "expected_version": expected}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    app
}

async fn production(app: &TestApp) -> u64 {
    app.get_json("/v1/models/fraud/aliases/production").await["version"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_http_only_same_site_strict_cookie_scoped_to_the_console() {
    // Arrange
    let app = spawn_app(&[]).await;
    let client = no_redirects();

    // Act
    let res = post_sign_in(&app, &client, &token_of("promoter")).await;

    // Assert
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console");
    let cookie = set_cookie(&res, "registry_session").unwrap();
    let id = name_value(&cookie);
    assert_eq!(id.len(), "registry_session=".len() + 64, "{cookie}");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure: {cookie}"
    );
    assert!(
        !cookie.contains(&token_of("promoter")),
        "the token is never in the cookie"
    );
    let cleared = set_cookie(&res, "registry_sign_in").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_ingress_the_cookies_are_secure() {
    // Arrange
    let app = spawn_app(&[]).await;

    // Act
    let page = app
        .client
        .get(app.url("/console"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();

    // Assert
    let cookie = set_cookie(&page, "registry_sign_in").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_wrong_token_an_empty_one_and_a_missing_csrf_token() {
    // Arrange
    let app = spawn_app(&[]).await;
    let client = no_redirects();

    // Act / Assert: a wrong token is 401 and sets no session.
    let res = post_sign_in(&app, &client, "not-a-valid-token-at-all").await;
    assert!(set_cookie(&res, "registry_session").is_none());
    let message = error_message(res, 401).await;
    assert!(message.contains("token"), "{message}");

    let res = post_sign_in(&app, &client, "  ").await;
    let message = error_message(res, 400).await;
    assert!(message.starts_with("token:"), "{message}");

    // Without the sign-in form's cookie (a cross-site form post), a valid token is refused.
    let res = client
        .post(app.url("/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", &token_of("admin")), ("csrf", "0123")]))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&res, "registry_session").is_none());
    let message = error_message(res, 403).await;
    assert!(message.starts_with("csrf:"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_form_without_or_with_a_wrong_csrf_token_is_refused_with_403() {
    // Arrange
    let app = app_with_production_moved(&[]).await;
    let alice = sign_in(&app, "promoter").await;
    let other = sign_in(&app, "trainer").await;
    let cases = [
        ("no CSRF token", None),
        ("an empty CSRF token", Some(String::new())),
        ("a wrong CSRF token", Some("0".repeat(64))),
        ("another session's CSRF token", Some(other.csrf.clone())),
    ];

    for (what, csrf) in cases {
        // Act
        let mut fields = vec![("alias", "production"), ("reason", "regression")];
        if let Some(csrf) = &csrf {
            fields.push(("csrf", csrf));
        }
        let res = alice
            .post(&app, "/console/models/fraud/rollback", &fields)
            .await;

        // Assert
        let message = error_message(res, 403).await;
        assert!(message.starts_with("csrf:"), "{what}: {message}");
        assert_eq!(production(&app).await, 2, "{what}: nothing moved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_a_session_is_401_and_sign_out_ends_the_session() {
    // Arrange
    let app = app_with_production_moved(&[]).await;
    let alice = sign_in(&app, "promoter").await;
    let rollback = [
        ("alias", "production"),
        ("reason", "r"),
        ("csrf", &alice.csrf),
    ];
    let anonymous = no_redirects()
        .post(app.url("/console/models/fraud/rollback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&rollback))
        .send()
        .await
        .unwrap();
    error_message(anonymous, 401).await;

    // Act
    let out = alice
        .post(&app, "/console/sign-out", &[("csrf", &alice.csrf)])
        .await;

    // Assert
    assert_eq!(out.status(), 303);
    assert!(
        set_cookie(&out, "registry_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = alice
        .post(&app, "/console/models/fraud/rollback", &rollback)
        .await;
    error_message(after, 401).await;
    assert_eq!(production(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_without_the_scope_gets_403_naming_it() {
    // Arrange
    let app = app_with_production_moved(&[]).await;
    let reader = sign_in(&app, "reader").await;
    let promoter = sign_in(&app, "promoter").await;
    let cases = [
        (&reader, "/console/models/fraud/rollback", "promote"),
        (&reader, "/console/models/fraud/promote", "promote"),
        (&reader, "/console/models/fraud/archive", "archive"),
        (&promoter, "/console/models/fraud/archive", "archive"),
    ];

    for (who, path, scope) in cases {
        // Act
        let res = who
            .post(
                &app,
                path,
                &[
                    ("csrf", &who.csrf),
                    ("alias", "production"),
                    ("version", "1"),
                    ("expected_version", "2"),
                    ("reason", "why not"),
                ],
            )
            .await;

        // Assert
        let message = error_message(res, 403).await;
        assert!(
            message.contains(&format!("the {scope} scope")),
            "{path}: {message}"
        );
    }
    assert_eq!(production(&app).await, 2);
    let versions = app
        .get_json("/v1/models/fraud/versions?status=archived")
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_needs_a_reason_and_bounded_well_formed_inputs() {
    // Arrange
    let app = app_with_production_moved(&[]).await;
    let admin = sign_in(&app, "trainer").await;
    let long = "x".repeat(1001);
    let csrf = admin.csrf.as_str();
    let cases = [
        (
            "no reason",
            "rollback",
            vec![("alias", "production")],
            "reason:",
        ),
        (
            "a blank reason",
            "rollback",
            vec![("alias", "production"), ("reason", "   ")],
            "reason:",
        ),
        (
            "a reason over 1000 characters",
            "rollback",
            vec![("alias", "production"), ("reason", long.as_str())],
            "reason:",
        ),
        ("no alias", "rollback", vec![("reason", "r")], "alias:"),
        (
            "a bad alias",
            "rollback",
            vec![("alias", "Prod uction"), ("reason", "r")],
            "alias:",
        ),
        (
            "a version that is not a number",
            "promote",
            vec![
                ("alias", "production"),
                ("version", "two"),
                ("expected_version", "2"),
                ("reason", "r"),
            ],
            "version:",
        ),
        (
            "a bad expected version",
            "promote",
            vec![
                ("alias", "production"),
                ("version", "1"),
                ("expected_version", "x"),
                ("reason", "r"),
            ],
            "expected_version:",
        ),
    ];

    for (what, action, mut fields, field) in cases {
        fields.push(("csrf", csrf));
        // Act
        let res = admin
            .post(&app, &format!("/console/models/fraud/{action}"), &fields)
            .await;

        // Assert
        let message = error_message(res, 400).await;
        assert!(message.starts_with(field), "{what}: {message}");
    }
    assert_eq!(production(&app).await, 2, "nothing moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_actions_land_in_the_event_log_under_the_credentials_identity() {
    // Arrange: `trainer` may promote; `archivist` may archive.
    let app = app_with_production_moved(&[]).await;
    let trainer = sign_in(&app, "trainer").await;
    let archivist = sign_in(&app, "archivist").await;

    // Act: roll back (v2 → v1); a promote from a stale page (it showed v2: 409); promote v2
    // again; archive v1, which production no longer holds.
    let rolled = trainer
        .post(
            &app,
            "/console/models/fraud/rollback",
            &[
                ("csrf", &trainer.csrf),
                ("alias", "production"),
                ("reason", "v2 drops recall"),
            ],
        )
        .await;
    assert_eq!(rolled.status(), 303);
    assert_eq!(rolled.headers()["location"], "/console#model-fraud");
    assert_eq!(production(&app).await, 1);
    let stale = trainer
        .post(
            &app,
            "/console/models/fraud/promote",
            &[
                ("csrf", &trainer.csrf),
                ("alias", "production"),
                ("version", "2"),
                ("expected_version", "2"),
                ("reason", "stale page"),
            ],
        )
        .await;
    error_message(stale, 409).await;
    let promoted = trainer
        .post(
            &app,
            "/console/models/fraud/promote",
            &[
                ("csrf", &trainer.csrf),
                ("alias", "production"),
                ("version", "2"),
                ("expected_version", "1"),
                ("reason", "fixed upstream"),
            ],
        )
        .await;
    assert_eq!(promoted.status(), 303);
    let archived = archivist
        .post(
            &app,
            "/console/models/fraud/archive",
            &[
                ("csrf", &archivist.csrf),
                ("version", "1"),
                ("reason", "superseded"),
            ],
        )
        .await;
    assert_eq!(archived.status(), 303);

    // Assert
    let events = app.get_json("/v1/models/fraud/events").await;
    let tail: Vec<(&str, &str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .skip(4)
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("alias_moved", "trainer", "v2 drops recall"),
            ("alias_moved", "trainer", "fixed upstream"),
            ("archived", "archivist", "superseded"),
        ]
    );
    assert_eq!(events["events"][4]["rollback"], true);
    let page = trainer.page(&app).await;
    assert!(
        page.contains("rolled production back from v2 to v1"),
        "{page}"
    );
    assert!(page.contains("<b class=\"identity\">trainer</b>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_anonymous_reads_off_the_session_cookie_authorises_the_console_page() {
    // Arrange
    let app = app_with_production_moved(&[("REGISTRY_READ_AUTH", "true")]).await;

    // Act
    let anonymous = app.get("/console").await;
    let anonymous_status = anonymous.status();
    let anonymous = anonymous.text().await.unwrap();
    let reader = sign_in(&app, "reader").await;
    let signed_in = reader.page(&app).await;
    let promoter = sign_in(&app, "promoter").await;
    let without_read = promoter.page(&app).await;

    // Assert
    assert_eq!(anonymous_status, 200);
    assert!(anonymous.contains("id=\"sign-in\""));
    assert!(!anonymous.contains("<h2>fraud</h2>"), "{anonymous}");
    assert!(signed_in.contains("<h2>fraud</h2>"));
    assert!(signed_in.contains("production → v2"));
    assert!(signed_in.contains("2 versions"));
    assert!(
        !without_read.contains("<h2>fraud</h2>"),
        "read needs the read scope"
    );
    assert_eq!(
        app.get("/").await.status(),
        401,
        "the Basic page is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_page_sets_two_versions_side_by_side_and_marks_what_differs() {
    // Arrange: v2 differs from v1 in a parameter, its metric and its data.
    let app = spawn_app(&[]).await;
    for (seed, trees) in [(1.0, 100), (2.0, 200)] {
        let mut reg = registration(seed);
        reg["manifest"]["parameters"] = json!({"n_trees": trees, "max_depth": 12});
        reg["manifest"]["training_data"] = json!({"sha256": format!("{trees}{}", "a".repeat(61)), "rows": trees * 10, "source": "s3://data"});
        assert_eq!(app.register("fraud", &reg).await.status(), 201);
    }

    // Act
    let res = app.get("/console/models/fraud/compare?a=1&b=2").await;

    // Assert
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    for needle in [
        "fraud: v1 and v2 side by side",
        "<tr class=\"differs\"><th>metric roc_auc</th><td>0.91</td><td>0.92</td><td>0.01</td></tr>",
        "<tr class=\"differs\"><th>parameter n_trees</th><td>100</td><td>200</td>",
        "<tr class=\"same\"><th>parameter max_depth</th><td>12</td><td>12</td>",
        "sha256 100aaaaaaaaa · 1000 rows · s3://data",
        "<th>gate</th><td>no gate decision</td>",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_page_names_a_bad_version_and_needs_a_reader_when_reads_are_protected() {
    // Arrange
    let app = app_with_production_moved(&[("REGISTRY_READ_AUTH", "true")]).await;
    let reader = sign_in(&app, "reader").await;
    let promoter = sign_in(&app, "promoter").await;
    let get = |who: Option<&Browser>, query: &str| {
        let mut req =
            no_redirects().get(app.url(&format!("/console/models/fraud/compare?{query}")));
        if let Some(who) = who {
            req = req.header("cookie", &who.cookie);
        }
        req.send()
    };

    // Act / Assert
    error_message(get(None, "a=1&b=2").await.unwrap(), 401).await;
    let message = error_message(get(Some(&promoter), "a=1&b=2").await.unwrap(), 403).await;
    assert!(message.contains("the read scope"), "{message}");
    assert_eq!(get(Some(&reader), "a=1&b=2").await.unwrap().status(), 200);
    let message = error_message(get(Some(&reader), "a=x&b=2").await.unwrap(), 400).await;
    assert!(message.starts_with("a:"), "{message}");
    let message = error_message(get(Some(&reader), "a=1").await.unwrap(), 400).await;
    assert!(message.starts_with("b:"), "{message}");
    error_message(get(Some(&reader), "a=1&b=9").await.unwrap(), 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_charts_the_metric_at_each_alias_move_and_offers_a_comparison() {
    // Arrange: production created at v1, then moved to v2.
    let app = app_with_production_moved(&[]).await;
    let trainer = sign_in(&app, "trainer").await;

    // Act
    let page = trainer.page(&app).await;

    // Assert
    assert!(
        page.contains("roc_auc of production at each move"),
        "{page}"
    );
    assert!(page.contains("<title>v1: 0.91</title>") && page.contains("<title>v2: 0.92</title>"));
    assert!(page.contains("action=\"/console/models/fraud/compare\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_ends_the_browsers_earlier_session() {
    // Arrange
    let app = app_with_production_moved(&[]).await;
    let first = sign_in(&app, "promoter").await;

    // Act: the same browser (its cookie) signs in again.
    let page = first
        .client
        .get(app.url("/console"))
        .header("cookie", &first.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let sign_in_form = no_redirects()
        .get(app.url("/console"))
        .send()
        .await
        .unwrap();
    let sign_in_cookie = name_value(&set_cookie(&sign_in_form, "registry_sign_in").unwrap());
    let csrf = csrf_of(&sign_in_form.text().await.unwrap());
    let again = first
        .client
        .post(app.url("/console/sign-in"))
        .header("cookie", format!("{}; {sign_in_cookie}", first.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", &token_of("promoter")), ("csrf", &csrf)]))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(again.status(), 303);
    let old = first
        .post(
            &app,
            "/console/models/fraud/rollback",
            &[
                ("csrf", &first.csrf),
                ("alias", "production"),
                ("reason", "r"),
            ],
        )
        .await;
    error_message(old, 401).await;
}
