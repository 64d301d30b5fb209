//! What operators ask of a node: `GET /health`, `GET /ready` (503 when the database cannot
//! answer), and an `X-Request-Id` on every response.

mod common;

use std::time::{Duration, Instant};

use auth_service::db::DbConn;
use common::{async_app_with, TestApp};
use rocket::http::{Header, Status};
use serde_json::json;

#[test]
fn get_health_answers_ok() {
    let app = TestApp::new();
    let response = app.client.get("/health").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_json::<serde_json::Value>(), Some(json!({"status": "ok"})));
}

#[test]
fn get_ready_answers_ready_when_the_database_answers() {
    let app = TestApp::new();
    let response = app.client.get("/ready").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_json::<serde_json::Value>(), Some(json!({"status": "ready"})));
}

#[rocket::async_test]
async fn get_ready_is_503_within_2_seconds_when_no_connection_is_free_and_health_stays_ok() {
    let (client, _database) = async_app_with(|figment| {
        figment.merge(("databases.auth.pool_size", 1)).merge(("databases.auth.timeout", 1))
    })
    .await;
    let held = DbConn::get_one(client.rocket()).await.expect("the only connection");
    let started = Instant::now();
    let response = client.get("/ready").dispatch().await;
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert!(started.elapsed() < Duration::from_secs(2), "503 after {:?}", started.elapsed());
    assert_eq!(client.get("/health").dispatch().await.status(), Status::Ok);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.get("/ready").dispatch().await.status() != Status::Ok {
        assert!(Instant::now() < deadline, "/ready did not recover");
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn every_response_carries_a_fresh_request_id() {
    let app = TestApp::new();
    let ids: Vec<String> = ["/", "/profile", "/nowhere"]
        .iter()
        .map(|uri| {
            let response = app.client.get(*uri).dispatch();
            response.headers().get_one("X-Request-Id").expect("an X-Request-Id").to_owned()
        })
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 36, "a UUID: {id}");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
}

#[test]
fn a_sane_request_id_from_the_proxy_is_kept_and_a_strange_one_replaced() {
    let app = TestApp::new();
    let kept = app.client.get("/").header(Header::new("X-Request-Id", "edge-42_a")).dispatch();
    assert_eq!(kept.headers().get_one("X-Request-Id"), Some("edge-42_a"));
    let strange = app.client.get("/").header(Header::new("X-Request-Id", "a b;c")).dispatch();
    let replaced = strange.headers().get_one("X-Request-Id").expect("an id");
    assert_ne!(replaced, "a b;c");
    assert_eq!(replaced.len(), 36);
}
