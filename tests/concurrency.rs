//! Concurrent writers: the unique index decides races, SQLite never surfaces "database is
//! locked", and a database that cannot serve answers 503 rather than hanging or panicking.

mod common;

use auth_service::db::DbConn;
use std::time::{Duration, Instant};

use common::{async_app, async_app_with, form, EMAIL, PASSWORD};
use futures::future::join_all;
use rocket::http::{ContentType, Status};
use serde_json::{json, Value};

#[rocket::async_test]
async fn post_users_fifty_concurrent_registrations_of_one_email_give_one_200() {
    let (client, _database) = async_app().await;
    let body = form(&[("email", EMAIL), ("password", PASSWORD)]);
    let requests = (0..50).map(|_| async {
        let response = client.post("/users").header(ContentType::Form).body(body.clone()).dispatch().await;
        (response.status(), response.into_json::<Value>().await)
    });
    let outcomes = join_all(requests).await;
    let created = outcomes.iter().filter(|(status, _)| *status == Status::Ok).count();
    assert_eq!(created, 1, "{outcomes:?}");
    for (status, body) in &outcomes {
        match *status {
            Status::Ok => assert_eq!(body, &Some(json!({"email": EMAIL, "message": "user created"}))),
            Status::BadRequest => assert_eq!(body, &Some(json!({"message": "email already registered"}))),
            other => panic!("unexpected status {other}: {body:?}"),
        }
    }
}

#[rocket::async_test]
async fn concurrent_registrations_logins_and_resets_never_fail() {
    let (client, _database) = async_app().await;
    let registrations = (0..40).map(|i| {
        let body = form(&[("email", &format!("user{i}@example.com")), ("password", PASSWORD)]);
        let client = &client;
        async move { client.post("/users").header(ContentType::Form).body(body).dispatch().await.status() }
    });
    assert!(join_all(registrations).await.iter().all(|status| *status == Status::Ok));

    let mixed = (0..40).map(|i| {
        let client = &client;
        async move {
            let email = format!("user{i}@example.com");
            let (uri, body) = match i % 2 {
                0 => ("/sessions", form(&[("email", &email), ("password", PASSWORD)])),
                _ => ("/reset_password", form(&[("email", &email)])),
            };
            client.post(uri).header(ContentType::Form).body(body).dispatch().await.status()
        }
    });
    let statuses = join_all(mixed).await;
    assert!(statuses.iter().all(|status| *status == Status::Ok), "{statuses:?}");
}

/// Session look-ups that arrive together share one query: each request still gets its own user,
/// and a cookie that matches nothing gets the 403, whatever else rode in the same query.
#[rocket::async_test]
async fn concurrent_profile_requests_each_get_their_own_user() {
    let (client, _database) = async_app().await;
    let mut sessions = Vec::new();
    for i in 0..24 {
        let email = format!("reader{i}@example.com");
        let body = form(&[("email", &email), ("password", PASSWORD)]);
        let registered = client.post("/users").header(ContentType::Form).body(body.clone()).dispatch().await;
        assert_eq!(registered.status(), Status::Ok);
        let login = client.post("/sessions").header(ContentType::Form).body(body).dispatch().await;
        let session = login.cookies().get("session_id").expect("a session cookie").value().to_owned();
        sessions.push((Some(email), session));
    }
    for i in 0..8 {
        sessions.push((None, format!("no-such-session-{i}")));
    }
    // Every session asked for three times, the requests interleaved.
    let requests = (0..3).flat_map(|_| sessions.iter()).map(|(email, session)| {
        let client = &client;
        async move {
            let cookie = rocket::http::Cookie::new("session_id", session.clone());
            let response = client.get("/profile").cookie(cookie).dispatch().await;
            (email, response.status(), response.into_json::<Value>().await)
        }
    });
    for (email, status, body) in join_all(requests).await {
        match email {
            Some(email) => {
                assert_eq!(status, Status::Ok, "{email}: {body:?}");
                assert_eq!(body, Some(json!({"email": email})));
            }
            None => assert_eq!(status, Status::Forbidden, "{body:?}"),
        }
    }
}

#[rocket::async_test]
async fn a_pool_with_no_free_connection_answers_503_json() {
    let (client, _database) = async_app_with(|figment| {
        figment.merge(("databases.auth.pool_size", 1)).merge(("databases.auth.timeout", 1))
    })
    .await;
    let credentials = form(&[("email", EMAIL), ("password", PASSWORD)]);
    let post = |uri: &'static str| client.post(uri).header(ContentType::Form).body(credentials.clone());
    assert_eq!(post("/users").dispatch().await.status(), Status::Ok);
    let login = post("/sessions").dispatch().await;
    let cookie = login.cookies().get("session_id").expect("a session").clone().into_owned();

    // Hold the only connection, as a stuck query or a dead database would.
    let held = DbConn::get_one(client.rocket()).await.expect("one connection");
    let started = Instant::now();
    let response = client.get("/profile").cookie(cookie.clone()).dispatch().await;
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(
        response.into_json::<Value>().await,
        Some(json!({"message": "service temporarily unavailable"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "503 within the pool timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(post("/sessions").dispatch().await.status(), Status::ServiceUnavailable);
    // What needs no database still answers.
    assert_eq!(client.get("/").dispatch().await.status(), Status::Ok);

    drop(held);
    // The pool recovers by itself once a connection is free again.
    let mut status = Status::ServiceUnavailable;
    for _ in 0..50 {
        status = client.get("/profile").cookie(cookie.clone()).dispatch().await.status();
        if status == Status::Ok {
            break;
        }
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, Status::Ok);
}
