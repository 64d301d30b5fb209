//! Sessions: several devices, logout of one, idle and absolute expiry, and tokens that are
//! useless when copied from the database.

mod common;

use std::thread::sleep;
use std::time::Duration;

use auth_service::user::{sessions, users};
use common::{form, json, TestApp, EMAIL, PASSWORD};
use diesel::prelude::*;
use rocket::http::{Cookie, Status};
use serde_json::json as j;

fn profile_status(app: &TestApp, cookie: &Cookie<'static>) -> Status {
    app.client.get("/profile").cookie(cookie.clone()).dispatch().status()
}

/// Reads one column of every row, straight from the database, as an attacker with a dump would.
fn dump<T: Send + 'static>(
    app: &TestApp,
    read: impl FnOnce(&mut auth_service::db::AnyConnection) -> Vec<T> + Send + 'static,
) -> Vec<T> {
    app.with_db(read)
}

#[test]
fn post_sessions_logins_on_two_devices_both_stay_valid() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let laptop = app.login(EMAIL, PASSWORD);
    let phone = app.login(EMAIL, PASSWORD);
    assert_ne!(laptop.value(), phone.value());
    assert_eq!(profile_status(&app, &laptop), Status::Ok);
    assert_eq!(profile_status(&app, &phone), Status::Ok);
}

#[test]
fn delete_sessions_ends_only_this_device() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let laptop = app.login(EMAIL, PASSWORD);
    let phone = app.login(EMAIL, PASSWORD);
    let response = app.client.delete("/sessions").cookie(laptop.clone()).dispatch();
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(profile_status(&app, &laptop), Status::Forbidden);
    assert_eq!(profile_status(&app, &phone), Status::Ok);
}

#[test]
fn session_tokens_have_256_random_bits() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let cookie = app.login(EMAIL, PASSWORD);
    // 43 base64url characters carry 256 bits.
    assert_eq!(cookie.value().len(), 43, "{}", cookie.value());
    assert!(cookie.value().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
}

#[test]
fn get_profile_idle_session_expires() {
    let app = TestApp::with_config(|f| f.merge(("session_idle_timeout", 1)));
    app.register(EMAIL, PASSWORD);
    let cookie = app.login(EMAIL, PASSWORD);
    assert_eq!(profile_status(&app, &cookie), Status::Ok);
    sleep(Duration::from_millis(1300));
    let response = app.client.get("/profile").cookie(cookie.clone()).dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
    // The expired session is gone from the database, not just refused.
    assert!(dump(&app, |conn| sessions::table.select(sessions::id).load::<i32>(conn).unwrap()).is_empty());
}

#[test]
fn get_profile_session_expires_at_the_absolute_timeout_even_when_active() {
    let app = TestApp::with_config(|f| f.merge(("session_absolute_timeout", 2)));
    app.register(EMAIL, PASSWORD);
    let cookie = app.login(EMAIL, PASSWORD);
    for _ in 0..3 {
        assert_eq!(profile_status(&app, &cookie), Status::Ok);
        sleep(Duration::from_millis(500));
    }
    sleep(Duration::from_millis(700));
    assert_eq!(profile_status(&app, &cookie), Status::Forbidden);
}

#[test]
fn sessions_store_only_the_sha256_of_the_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let cookie = app.login(EMAIL, PASSWORD);
    let stored =
        dump(&app, |conn| sessions::table.select(sessions::token_hash).load::<String>(conn).unwrap());
    assert_eq!(stored, vec![auth_service::auth::token_digest(cookie.value())]);
    // The seed's column is no longer written.
    let seed_column =
        dump(&app, |conn| users::table.select(users::session_id).load::<Option<String>>(conn).unwrap());
    assert_eq!(seed_column, vec![None]);
}

#[test]
fn a_session_digest_copied_from_the_database_opens_nothing() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    app.login(EMAIL, PASSWORD);
    let stolen =
        dump(&app, |conn| sessions::table.select(sessions::token_hash).load::<String>(conn).unwrap());
    let response = app.client.get("/profile").cookie(Cookie::new("session_id", stolen[0].clone())).dispatch();
    assert_eq!(response.status(), Status::Forbidden);
}

#[test]
fn sessions_record_ip_and_user_agent() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app
        .client
        .post("/sessions")
        .header(rocket::http::ContentType::Form)
        .header(rocket::http::Header::new("User-Agent", "integration-test/1.0"))
        .remote("203.0.113.7:4000".parse().unwrap())
        .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
        .dispatch();
    assert_eq!(response.status(), Status::Ok);
    let rows = dump(&app, |conn| {
        sessions::table
            .select((sessions::ip, sessions::user_agent))
            .load::<(Option<String>, Option<String>)>(conn)
            .unwrap()
    });
    assert_eq!(rows, vec![(Some("203.0.113.7".into()), Some("integration-test/1.0".into()))]);
}

#[test]
fn put_reset_password_ends_every_session_of_the_user() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let laptop = app.login(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    let token = json(response)["reset_token"].as_str().unwrap().to_owned();
    let body = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "n3w-password")]);
    assert_eq!(app.put_form("/reset_password", &body).status(), Status::Ok);
    assert_eq!(profile_status(&app, &laptop), Status::Forbidden);
}

#[test]
fn expired_sessions_are_swept_from_the_table_at_start() {
    let short_idle = |figment: rocket::figment::Figment| figment.merge(("session_idle_timeout", 1));
    let app = TestApp::with_config(short_idle);
    app.with_user();
    let TestApp { client, database } = app;
    drop(client);
    sleep(Duration::from_millis(1100));
    // A restarted node: its sweeper runs at liftoff, without anyone presenting the old cookie.
    let app = TestApp::with_database(database, short_idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap());
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left} expired session(s) still stored");
        sleep(Duration::from_millis(20));
    }
}

/// The sweep (and `purge-expired`) deletes the sessions past their absolute expiry or idle too
/// long, and nothing else; the live-session count agrees.
#[test]
fn the_sweep_deletes_expired_and_idle_sessions_and_keeps_the_live_one() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let _expired = app.login(EMAIL, PASSWORD);
    let _idle = app.login(EMAIL, PASSWORD);
    let live = app.login(EMAIL, PASSWORD);
    let (swept, live_left, ids) = app.with_db(|conn| {
        let now = chrono::Utc::now().naive_utc();
        let ids: Vec<i32> = sessions::table.select(sessions::id).order(sessions::id).load(conn).unwrap();
        let past = now - chrono::Duration::minutes(1);
        diesel::update(sessions::table.find(ids[0]))
            .set(sessions::expires_at.eq(past))
            .execute(conn)
            .unwrap();
        let long_ago = now - chrono::Duration::hours(2);
        diesel::update(sessions::table.find(ids[1]))
            .set(sessions::last_seen_at.eq(long_ago))
            .execute(conn)
            .unwrap();
        let idle_cutoff = now - chrono::Duration::minutes(30);
        let swept = auth_service::db::delete_expired_sessions(conn, now, idle_cutoff).unwrap();
        let live_left = auth_service::db::count_live_sessions(conn, now, idle_cutoff).unwrap();
        let left: Vec<i32> = sessions::table.select(sessions::id).load(conn).unwrap();
        (swept, live_left, (ids, left))
    });
    let (all, left) = ids;
    assert_eq!(swept, 2);
    assert_eq!(left, vec![all[2]]);
    assert_eq!(live_left, 1);
    assert_eq!(profile_status(&app, &live), Status::Ok);
}

#[test]
fn put_reset_password_token_past_its_ttl_is_403() {
    let app = TestApp::with_config(|figment| figment.merge(("reset_token_ttl", 1)));
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    let token = json(response)["reset_token"].as_str().expect("a token").to_owned();
    sleep(Duration::from_millis(1100));
    let body = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "n3w-passphrase")]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "reset token expired"}));
    assert_eq!(
        app.post_form("/sessions", &form(&[("email", EMAIL), ("password", PASSWORD)])).status(),
        Status::Ok
    );
}
