//! Two real server processes over one PostgreSQL database, as a deployment behind a load
//! balancer runs them: whatever one node does, the other sees, because nodes keep no state of
//! their own beyond the per-IP limiter.
//!
//! Needs `TEST_PG_URL` (scripts/test starts a throwaway server and sets it); without it the test
//! fails and says so.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use futures::future::join_all;
use reqwest::{header, redirect, Client, Method, StatusCode};
use tempfile::TempDir;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "b4l0u-node";
const NEW_PASSWORD: &str = "n3w-from-node-b";
const THROTTLE_THRESHOLD: u32 = 3;

/// One `auth-service` process; killed on drop.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(database_url: &str, outbox: &std::path::Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
            .env("ROCKET_PROFILE", "debug")
            .env("ROCKET_DATABASES", format!("{{auth={{url=\"{database_url}\"}}}}"))
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_BCRYPT_COST", "4")
            .env("ROCKET_LOG_LEVEL", "off")
            .env("ROCKET_MAIL_OUTBOX", outbox)
            .env("ROCKET_LOGIN_THROTTLE_THRESHOLD", THROTTLE_THRESHOLD.to_string())
            .env("ROCKET_LOGIN_THROTTLE_BASE_DELAY", "60")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the auth-service binary starts");
        Self { child, base: format!("http://127.0.0.1:{port}") }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh schema on the test server, dropped at the end.
struct Schema {
    base: String,
    name: String,
}

impl Schema {
    fn create() -> Self {
        let base = std::env::var("TEST_PG_URL")
            .expect("TEST_PG_URL must name a PostgreSQL server: run scripts/test, which starts one");
        let name = format!("nodes_{}", std::process::id());
        let mut admin = PgConnection::establish(&base).expect("the test server");
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"))
            .expect("a fresh schema");
        Self { base, name }
    }

    fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.base) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

async fn wait_until_up(client: &Client, node: &Node) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(node.url("/")).send().await {
            if response.status() == StatusCode::OK {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{} did not come up", node.base);
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a form (and a cookie) and returns the status, the session cookie it set and the body.
async fn send(
    client: &Client,
    method: Method,
    url: String,
    fields: &[(&str, &str)],
    session: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let body = fields
        .iter()
        .map(|(name, value)| format!("{name}={}", common::encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = client
        .request(method, url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(session) = session {
        request = request.header(header::COOKIE, format!("session_id={session}"));
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            value.strip_prefix("session_id=").map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        });
    (status, cookie, response.text().await.unwrap_or_default())
}

#[rocket::async_test]
async fn two_nodes_on_one_postgres_share_users_sessions_resets_and_throttling() {
    let schema = Schema::create();
    let outbox = TempDir::new().expect("a mail outbox");
    // Started together: their migrations must not trip over each other.
    let a = Node::start(&schema.url(), outbox.path());
    let b = Node::start(&schema.url(), outbox.path());
    let client = Client::builder().redirect(redirect::Policy::none()).build().expect("an HTTP client");
    wait_until_up(&client, &a).await;
    wait_until_up(&client, &b).await;
    let credentials = |password: &'static str| [("email", EMAIL), ("password", password)];

    // Registered on A, logged in on A: B accepts the cookie.
    let (status, ..) = send(&client, Method::POST, a.url("/users"), &credentials(PASSWORD), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, cookie, _) =
        send(&client, Method::POST, a.url("/sessions"), &credentials(PASSWORD), None).await;
    assert_eq!(status, StatusCode::OK);
    let session = cookie.expect("a session cookie from A");
    let (status, _, body) = send(&client, Method::GET, b.url("/profile"), &[], Some(&session)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"email":"ada@example.com"}"#));

    // Logged out on B: A refuses the cookie.
    let (status, ..) = send(&client, Method::DELETE, b.url("/sessions"), &[], Some(&session)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, ..) = send(&client, Method::GET, a.url("/profile"), &[], Some(&session)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A reset requested on A is completed on B; A then takes the new password only.
    let (status, _, body) =
        send(&client, Method::POST, a.url("/reset_password"), &[("email", EMAIL)], None).await;
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let token = answer["reset_token"].as_str().expect("a token").to_owned();
    let reset = [("email", EMAIL), ("reset_token", token.as_str()), ("new_password", NEW_PASSWORD)];
    let (status, ..) = send(&client, Method::PUT, b.url("/reset_password"), &reset, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = send(&client, Method::POST, a.url("/sessions"), &credentials(PASSWORD), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ..) =
        send(&client, Method::POST, a.url("/sessions"), &credentials(NEW_PASSWORD), None).await;
    assert_eq!(status, StatusCode::OK);

    // Failures count across nodes: A, B, A reach the threshold, and the next try on B waits.
    for node in [&a, &b, &a] {
        let (status, ..) =
            send(&client, Method::POST, node.url("/sessions"), &credentials("wrong-one"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong password on {}", node.base);
    }
    let (status, ..) =
        send(&client, Method::POST, b.url("/sessions"), &credentials(NEW_PASSWORD), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "B counts the failures made on A");

    // 50 registrations of one new email at once, split across the nodes: exactly one account.
    let attempts = (0..50).map(|n| {
        let node = if n % 2 == 0 { &a } else { &b };
        let fields = [("email", "race@example.com"), ("password", PASSWORD)];
        let client = &client;
        async move { send(client, Method::POST, node.url("/users"), &fields, None).await.0 }
    });
    let statuses = join_all(attempts).await;
    let created = statuses.iter().filter(|status| **status == StatusCode::OK).count();
    let refused = statuses.iter().filter(|status| **status == StatusCode::BAD_REQUEST).count();
    assert_eq!((created, refused), (1, 49), "{statuses:?}");
}
