//! The optional ingestion credential (`EVENTS_TOKEN`): without it, no event is recorded, and the
//! body of a refused request is never read.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Clicks, TestApp, spawn_app, spawn_app_with_clicks, two_cluster_model};

const TOKEN: &str = "test-events-token-0123456789";

async fn post_events(app: &TestApp, auth: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/v1/users/newbie/events", app.address))
        .json(&json!({"events": [{"item_id": "a3"}]}));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.unwrap()
}

async fn strategy(app: &TestApp) -> String {
    app.get_json("/v1/users/newbie/recommendations?n=3").await["strategy"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn with_events_token_set_only_its_bearer_records_clicks(clicks: Clicks) {
    // Arrange
    let app =
        spawn_app_with_clicks(&[two_cluster_model()], &[("EVENTS_TOKEN", TOKEN)], clicks).await;
    let refused = [
        (None, "no header"),
        (Some("Bearer not-the-token-at-all-000"), "a wrong token"),
        (Some(TOKEN), "no Bearer scheme"),
    ];
    for (auth, message) in refused {
        // Act
        let res = post_events(&app, auth).await;
        // Assert
        assert_eq!(res.status(), 401, "{message}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{message}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{message}");
        assert_eq!(
            strategy(&app).await,
            "popular",
            "{message}: nothing recorded"
        );
    }
    let res = post_events(&app, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(strategy(&app).await, "fold_in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_token_ingestion_is_open() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    assert_eq!(post_events(&app, None).await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_the_token_is_refused_before_its_body_is_parsed() {
    // Arrange: bodies the JSON extractor would refuse (400, 413) if it ran first.
    let app = spawn_app(&[two_cluster_model()], &[("EVENTS_TOKEN", TOKEN)]).await;
    let bodies = [
        ("{not json".to_owned(), "malformed"),
        (" ".repeat(300 * 1024), "over the 256 KiB body limit"),
    ];
    for (body, message) in bodies {
        // Act
        let res = app
            .client
            .post(format!("{}/v1/users/newbie/events", app.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        // Assert
        assert_eq!(res.status(), 401, "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_the_token_is_answered_without_waiting_for_its_body() {
    // Arrange: a request that announces a body and sends only part of it. A server that needed
    // the body first would wait for the rest; one that checks the token first answers at once.
    let app = spawn_app(&[two_cluster_model()], &[("EVENTS_TOKEN", TOKEN)]).await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/users/newbie/events HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"events\": ["
    );
    // Act
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("the server answers without waiting for the rest of the body")
        .unwrap();
    // Assert
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

crate::in_both_click_stores!(with_events_token_set_only_its_bearer_records_clicks,);
