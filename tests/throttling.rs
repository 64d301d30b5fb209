//! Per-account login throttling: counted in the database, 429 with Retry-After past the
//! threshold, a growing but capped back-off that expires by itself, and no difference between
//! known and unknown emails.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{form, json, TestApp, EMAIL, PASSWORD};
use rocket::http::Status;
use rocket::local::blocking::LocalResponse;
use serde_json::json as j;

/// Threshold 3, first wait 1 s doubling to at most 2 s, failures forgotten after 60 s.
fn throttled_app() -> TestApp {
    TestApp::with_config(|f| {
        f.merge(("login_throttle_threshold", 3))
            .merge(("login_throttle_base_delay", 1))
            .merge(("login_throttle_max_delay", 2))
            .merge(("login_throttle_window", 60))
    })
}

fn attempt<'a>(app: &'a TestApp, email: &str, password: &str) -> LocalResponse<'a> {
    app.post_form("/sessions", &form(&[("email", email), ("password", password)]))
}

fn retry_after(response: &LocalResponse<'_>) -> u64 {
    response.headers().get_one("Retry-After").expect("a Retry-After header").parse().expect("seconds")
}

#[test]
fn post_sessions_past_the_threshold_is_429_with_retry_after() {
    let app = throttled_app();
    app.register(EMAIL, PASSWORD);
    for _ in 0..3 {
        assert_eq!(attempt(&app, EMAIL, "wrong").status(), Status::Unauthorized);
    }
    // Even the right password waits: the point is to slow guessing down.
    let response = attempt(&app, EMAIL, PASSWORD);
    assert_eq!(response.status(), Status::TooManyRequests);
    assert_eq!(retry_after(&response), 1);
    assert!(response.headers().get_one("Set-Cookie").is_none());
    assert_eq!(json(response), j!({"message": "too many requests; slow down"}));
}

#[test]
fn post_sessions_throttle_expires_by_itself() {
    let app = throttled_app();
    app.register(EMAIL, PASSWORD);
    for _ in 0..3 {
        attempt(&app, EMAIL, "wrong");
    }
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::TooManyRequests);
    sleep(Duration::from_millis(1100));
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::Ok);
    // A success forgets the failures: the next wrong password is a plain 401 again.
    assert_eq!(attempt(&app, EMAIL, "wrong").status(), Status::Unauthorized);
    assert_eq!(attempt(&app, EMAIL, "wrong").status(), Status::Unauthorized);
}

#[test]
fn post_sessions_back_off_grows_and_is_capped() {
    let app = throttled_app();
    app.register(EMAIL, PASSWORD);
    for _ in 0..3 {
        attempt(&app, EMAIL, "wrong");
    }
    sleep(Duration::from_millis(1100));
    // The 4th failure doubles the wait to 2 s, the cap.
    assert_eq!(attempt(&app, EMAIL, "wrong").status(), Status::Unauthorized);
    let response = attempt(&app, EMAIL, PASSWORD);
    assert_eq!(response.status(), Status::TooManyRequests);
    assert_eq!(retry_after(&response), 2);
    sleep(Duration::from_millis(2100));
    // The 5th failure would make it 4 s, but the cap holds it at 2 s.
    assert_eq!(attempt(&app, EMAIL, "wrong").status(), Status::Unauthorized);
    let response = attempt(&app, EMAIL, PASSWORD);
    assert_eq!(retry_after(&response), 2);
}

#[test]
fn post_sessions_unknown_emails_are_throttled_alike() {
    let app = throttled_app();
    for _ in 0..3 {
        assert_eq!(attempt(&app, "ghost@example.com", "wrong").status(), Status::Unauthorized);
    }
    let response = attempt(&app, "ghost@example.com", "wrong");
    assert_eq!(response.status(), Status::TooManyRequests);
    assert_eq!(retry_after(&response), 1);
}

#[test]
fn post_sessions_throttle_is_per_account() {
    let app = throttled_app();
    app.register(EMAIL, PASSWORD);
    app.register("other@example.com", PASSWORD);
    for _ in 0..3 {
        attempt(&app, EMAIL, "wrong");
    }
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::TooManyRequests);
    assert_eq!(attempt(&app, "other@example.com", PASSWORD).status(), Status::Ok);
    // The email's case does not open a second counter.
    assert_eq!(attempt(&app, "GUILLAUME@holberton.io", PASSWORD).status(), Status::TooManyRequests);
}

#[test]
fn post_sessions_old_failures_are_forgotten_after_the_window() {
    let app = TestApp::with_config(|f| {
        f.merge(("login_throttle_threshold", 2))
            .merge(("login_throttle_base_delay", 30))
            .merge(("login_throttle_max_delay", 30))
            .merge(("login_throttle_window", 1))
    });
    app.register(EMAIL, PASSWORD);
    attempt(&app, EMAIL, "wrong");
    sleep(Duration::from_millis(1100));
    // The first failure is outside the window, so this is the first again, not the second.
    attempt(&app, EMAIL, "wrong");
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::Ok);
}

#[test]
fn post_sessions_outcomes_go_to_the_audit_trail() {
    use auth_service::event::auth_events;
    use diesel::prelude::*;

    let app = throttled_app();
    app.register(EMAIL, PASSWORD);
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::Ok);
    assert_eq!(attempt(&app, "ghost@example.com", "x").status(), Status::Unauthorized);
    for _ in 0..3 {
        attempt(&app, EMAIL, "wrong");
    }
    assert_eq!(attempt(&app, EMAIL, PASSWORD).status(), Status::TooManyRequests);
    let rows: Vec<(String, String, Option<String>)> = app.with_db(|conn| {
        auth_events::table
            .order(auth_events::id)
            .select((auth_events::kind, auth_events::outcome, auth_events::email))
            .load(conn)
            .unwrap()
    });
    let login_rows: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .filter(|(kind, _, _)| kind.starts_with("login") || kind == "throttled")
        .map(|(kind, outcome, email)| (kind.as_str(), outcome.as_str(), email.as_deref()))
        .collect();
    assert_eq!(
        login_rows,
        vec![
            ("login_success", "success", Some(EMAIL)),
            ("login_failure", "unknown_email", Some("ghost@example.com")),
            ("login_failure", "wrong_password", Some(EMAIL)),
            ("login_failure", "wrong_password", Some(EMAIL)),
            ("login_failure", "wrong_password", Some(EMAIL)),
            ("throttled", "account_limit", Some(EMAIL)),
        ]
    );
}
