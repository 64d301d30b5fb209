//! The audit trail: events stored in `auth_events` and logged on target `audit`, and no
//! password, token or hash in any log line or row while the whole API flow runs.
//!
//! Every test here installs one process-wide log capture (tracing, with Rocket's `log` records
//! forwarded into it) before it builds an app.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use auth_service::audit::{AuthEvent, AuthEventKind, AuthOutcome, RequestMeta};
use auth_service::auth::token_digest;
use auth_service::db::{self, AnyConnection, Backend, DbConn};
use auth_service::event::{auth_events, MAX_USER_AGENT_CHARS};
use auth_service::user::{User, UserFilter};
use chrono::{NaiveDateTime, Utc};
use common::{form, json, TestApp, TestDatabase, EMAIL};
use diesel::prelude::*;
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::blocking::{Client, LocalResponse};
use rocket::{post, routes};

/// Everything logged by this test process.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capture once, at TRACE level, and returns everything logged so far.
fn captured_logs() -> String {
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other logger in this test process");
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().expect("the log buffer")).into_owned()
}

/// A direct connection to a test database, for reading what the app stored.
fn connect(database: &TestDatabase) -> AnyConnection {
    match database.backend() {
        Backend::Sqlite => AnyConnection::Sqlite(SqliteConnection::establish(&database.url).unwrap()),
        Backend::Postgres => AnyConnection::Postgres(PgConnection::establish(&database.url).unwrap()),
    }
}

/// One stored event, every column but the id.
type EventRow = (String, Option<i32>, Option<String>, Option<String>, Option<String>, String, NaiveDateTime);

fn stored_events(database: &TestDatabase) -> Vec<EventRow> {
    let mut conn = connect(database);
    auth_events::table
        .order(auth_events::id)
        .select((
            auth_events::kind,
            auth_events::user_id,
            auth_events::email,
            auth_events::ip,
            auth_events::user_agent,
            auth_events::outcome,
            auth_events::created_at,
        ))
        .load(&mut conn)
        .expect("the auth_events rows")
}

fn user(database: &TestDatabase, email: &str) -> User {
    db::find_user_by(&mut connect(database), UserFilter::Email(email)).expect("the user")
}

/// A route that records an event for its request the way `Auth` does: the guard gives the
/// metadata, the event is written inside the connection's `run`.
#[post("/probe/login_failure")]
async fn record_probe(meta: RequestMeta, conn: DbConn) -> Result<&'static str, Status> {
    let event = AuthEvent::new(AuthEventKind::LoginFailure, AuthOutcome::UnknownEmail, &meta)
        .email("who@example.com");
    conn.run(move |conn| event.record(conn)).await.map_err(|_| Status::InternalServerError)?;
    Ok("recorded")
}

#[test]
fn post_probe_records_the_request_ip_and_user_agent() {
    captured_logs();
    let database = TestDatabase::new();
    let rocket = auth_service::build(common::test_figment(&database)).mount("/", routes![record_probe]);
    let client = Client::tracked(rocket).expect("the service launches");
    let response = client
        .post("/probe/login_failure")
        .remote("203.0.113.77:5000".parse().unwrap())
        .header(Header::new("User-Agent", "probe-agent/1.0"))
        .dispatch();
    assert_eq!(response.status(), Status::Ok);

    let rows = stored_events(&database);
    assert_eq!(rows.len(), 1);
    let (kind, user_id, email, ip, agent, outcome, created_at) = rows[0].clone();
    assert_eq!((kind.as_str(), outcome.as_str()), ("login_failure", "unknown_email"));
    assert_eq!((user_id, email.as_deref()), (None, Some("who@example.com")));
    assert_eq!((ip.as_deref(), agent.as_deref()), (Some("203.0.113.77"), Some("probe-agent/1.0")));
    // Stamped in UTC, just now.
    let age = Utc::now().naive_utc() - created_at;
    assert!(age.num_seconds().abs() < 60, "created_at {created_at} is not the current UTC time");

    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|line| line.contains(" audit:") && line.contains("203.0.113.77"))
        .expect("one audit line for the probe");
    for field in ["kind=\"login_failure\"", "outcome=\"unknown_email\"", "ip=\"203.0.113.77\""] {
        assert!(line.contains(field), "{field} in {line}");
    }
    // The email and the user agent are stored, not logged.
    assert!(!line.contains("who@example.com") && !line.contains("probe-agent"), "{line}");
}

#[rocket::async_test]
async fn audit_record_stores_every_kind_and_cuts_the_user_agent() {
    captured_logs();
    let (client, database) = common::async_app().await;
    let conn = DbConn::get_one(client.rocket()).await.expect("a connection");
    let meta = RequestMeta {
        ip: Some("192.0.2.1".parse().expect("an IP")),
        user_agent: Some("a".repeat(MAX_USER_AGENT_CHARS * 2)),
        ..RequestMeta::default()
    };
    conn.run(move |conn| {
        for (n, kind) in AuthEventKind::ALL.into_iter().enumerate() {
            let event = AuthEvent::new(kind, AuthOutcome::Success, &meta).user(n as i32);
            event.record(conn).expect("recorded");
        }
    })
    .await;
    let rows = stored_events(&database);
    let kinds: Vec<_> = rows.iter().map(|row| row.0.as_str()).collect();
    let expected: Vec<_> = AuthEventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(kinds, expected);
    for (n, (_, user_id, _, ip, agent, outcome, _)) in rows.iter().enumerate() {
        assert_eq!(*user_id, Some(n as i32));
        assert_eq!((ip.as_deref(), outcome.as_str()), (Some("192.0.2.1"), "success"));
        assert_eq!(agent.as_ref().map(String::len), Some(MAX_USER_AGENT_CHARS));
    }
}

const GOOD_PASSWORD: &str = "Correct-Horse-Battery-9q";
const WRONG_PASSWORD: &str = "Wrong-Guess-Password-7k";
const NEW_PASSWORD: &str = "New-Secret-Passphrase-3x";

fn send<'a>(app: &'a TestApp, method: Method, uri: &str, body: &str) -> LocalResponse<'a> {
    let remote: SocketAddr = "198.51.100.23:6000".parse().unwrap();
    app.client
        .req(method, uri.to_owned())
        .remote(remote)
        .header(ContentType::Form)
        .header(Header::new("User-Agent", "audit-test"))
        .body(body)
        .dispatch()
}

/// Runs register, a bad and a good login, the profile, logout, a reset request and its use, a
/// login with the new password and finally enough logins to be throttled, while every log line
/// is captured; then looks for each password, token and hash in the logs and in `auth_events`.
///
/// The capture accepts every level, so this also proves the log level cap: without it, Rocket's
/// form parser traces each field it reads, passwords included.
#[test]
fn api_flow_puts_no_password_token_or_hash_in_logs_or_audit_rows() {
    captured_logs();
    let app = TestApp::with_config(|f| f.merge(("ip_limit_per_minute", 1)).merge(("ip_limit_burst", 7)));
    let mut secrets: Vec<(&str, String)> =
        vec![("password", GOOD_PASSWORD.into()), ("wrong password", WRONG_PASSWORD.into())];

    let credentials = |password: &str| form(&[("email", EMAIL), ("password", password)]);
    assert_eq!(send(&app, Method::Post, "/users", &credentials(GOOD_PASSWORD)).status(), Status::Ok);
    secrets.push(("bcrypt hash", user(&app.database, EMAIL).hashed_password));

    assert_eq!(
        send(&app, Method::Post, "/sessions", &credentials(WRONG_PASSWORD)).status(),
        Status::Unauthorized
    );
    let login = send(&app, Method::Post, "/sessions", &credentials(GOOD_PASSWORD));
    assert_eq!(login.status(), Status::Ok);
    let session_id = login.cookies().get("session_id").expect("a session cookie").value().to_owned();
    drop(login);
    secrets.push(("session digest", token_digest(&session_id)));
    secrets.push(("session id", session_id));

    let profile = app.client.get("/profile").dispatch();
    assert_eq!(profile.status(), Status::Ok);
    assert_eq!(json(profile)["email"], EMAIL);
    let logout = app.client.delete("/sessions").dispatch();
    assert_eq!(logout.status(), Status::SeeOther);
    drop(logout);

    let reset = send(&app, Method::Post, "/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(reset.status(), Status::Ok);
    let token = json(reset)["reset_token"].as_str().expect("a reset token").to_owned();
    secrets.push(("reset digest", token_digest(&token)));
    let update = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", NEW_PASSWORD)]);
    secrets.push(("reset token", token));
    secrets.push(("new password", NEW_PASSWORD.into()));
    assert_eq!(send(&app, Method::Put, "/reset_password", &update).status(), Status::Ok);
    secrets.push(("new bcrypt hash", user(&app.database, EMAIL).hashed_password));

    assert_eq!(send(&app, Method::Post, "/sessions", &credentials(NEW_PASSWORD)).status(), Status::Ok);
    // That was the 6th limited request; the 8th is over the burst of 7.
    assert_eq!(
        send(&app, Method::Post, "/sessions", &credentials(WRONG_PASSWORD)).status(),
        Status::Unauthorized
    );
    assert_eq!(
        send(&app, Method::Post, "/sessions", &credentials(NEW_PASSWORD)).status(),
        Status::TooManyRequests
    );

    let logs = captured_logs();
    // The capture saw this flow: Rocket's request lines, our error lines and the audit line.
    assert!(logs.contains("/reset_password"), "Rocket's request log is captured");
    assert!(logs.contains("invalid credentials"), "the 401's log line is captured");
    assert!(
        logs.lines().any(|line| line.contains(" audit:")
            && line.contains("kind=\"throttled\"")
            && line.contains("ip=\"198.51.100.23\"")
            && line.contains("outcome=\"ip_limit\"")),
        "the throttled audit line is captured"
    );
    let rows = stored_events(&app.database);
    for (name, secret) in &secrets {
        let leaks: Vec<_> = logs.lines().filter(|line| line.contains(secret.as_str())).collect();
        assert!(leaks.is_empty(), "the {name} appears in the logs: {leaks:#?}");
        for row in &rows {
            let (kind, _, email, ip, agent, outcome, _) = row;
            for text in
                [Some(kind), email.as_ref(), ip.as_ref(), agent.as_ref(), Some(outcome)].into_iter().flatten()
            {
                assert!(!text.contains(secret.as_str()), "the {name} appears in an auth_events row");
            }
        }
    }
}
