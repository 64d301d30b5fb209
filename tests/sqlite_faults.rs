//! A SQLite file that stops taking writes while the service runs: another process holds its
//! write lock (a backup tool, a stuck script). Writes answer 503 within 2 s, reads and `GET /`
//! keep working, and writes succeed again by themselves once the lock is gone.
//!
//! (Permissions cannot stand in for this fault: Linux checks them when a file is opened, and the
//! pool's connections are already open.)

mod common;

use std::time::{Duration, Instant};

use common::{form, TestApp, TestDatabase, EMAIL, PASSWORD};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use rocket::http::Status;
use serde_json::json;

#[test]
fn sqlite_write_lock_held_elsewhere_gives_503_within_2_seconds_then_recovers() {
    let app = TestApp::with_database(TestDatabase::sqlite(), |figment| figment);
    let cookie = app.with_user();

    // Another process takes the write lock and keeps it.
    let mut holder = SqliteConnection::establish(&app.database.url).expect("a second connection");
    holder.batch_execute("BEGIN IMMEDIATE").expect("the write lock");

    let started = Instant::now();
    let response = app.post_form("/users", &form(&[("email", "new@example.com"), ("password", PASSWORD)]));
    let elapsed = started.elapsed();
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(
        response.into_json::<serde_json::Value>(),
        Some(json!({"message": "service temporarily unavailable"}))
    );
    assert!(elapsed < Duration::from_secs(2), "503 after {elapsed:?}");
    eprintln!("503 after {elapsed:?}");

    // What only reads still works: the welcome, and the profile of the logged-in user.
    assert_eq!(app.client.get("/").dispatch().status(), Status::Ok);
    let profile = app.client.get("/profile").cookie(cookie.clone()).dispatch();
    assert_eq!(profile.status(), Status::Ok);

    // The lock goes away: the same write now succeeds, with no restart.
    holder.batch_execute("COMMIT").expect("the lock released");
    let started = Instant::now();
    let response = app.post_form("/users", &form(&[("email", "new@example.com"), ("password", PASSWORD)]));
    assert_eq!(response.status(), Status::Ok, "recovered after {:?}", started.elapsed());
    assert_eq!(
        app.post_form("/sessions", &form(&[("email", EMAIL), ("password", PASSWORD)])).status(),
        Status::Ok
    );
}
