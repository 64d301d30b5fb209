//! One audit event per action, stored with its outcome, user, IP and user agent: each endpoint
//! that registers, logs out, requests or uses a reset, changes a password or ends sessions.
//! (Logins and throttling: tests/audit.rs.)

mod common;

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::Duration;

use auth_service::event::auth_events;
use common::{form, TestApp, EMAIL, PASSWORD};
use diesel::prelude::*;
use rocket::http::{ContentType, Cookie, Header, Method, Status};
use rocket::local::blocking::LocalResponse;

const CLIENT_IP: &str = "198.51.100.40";
const USER_AGENT: &str = "audit-events-test/1.0";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// One stored event: kind, outcome, user id, email, ip, user agent.
type Event = (String, String, Option<i32>, Option<String>, Option<String>, Option<String>);

fn events(app: &TestApp) -> Vec<Event> {
    app.with_db(|conn| {
        auth_events::table
            .order(auth_events::id)
            .select((
                auth_events::kind,
                auth_events::outcome,
                auth_events::user_id,
                auth_events::email,
                auth_events::ip,
                auth_events::user_agent,
            ))
            .load(conn)
            .expect("the auth_events rows")
    })
}

/// The (kind, outcome) pairs recorded after the first `skip` events.
fn kinds_after(app: &TestApp, skip: usize) -> Vec<(String, String)> {
    events(app).into_iter().skip(skip).map(|(kind, outcome, ..)| (kind, outcome)).collect()
}

fn pair(kind: &str, outcome: &str) -> (String, String) {
    (kind.to_owned(), outcome.to_owned())
}

/// A request from [`CLIENT_IP`] with [`USER_AGENT`].
fn send<'c>(app: &'c TestApp, method: Method, uri: &str, body: &str) -> LocalResponse<'c> {
    let remote: SocketAddr = format!("{CLIENT_IP}:7000").parse().unwrap();
    app.client
        .req(method, uri.to_owned())
        .remote(remote)
        .header(ContentType::Form)
        .header(Header::new("User-Agent", USER_AGENT))
        .body(body)
        .dispatch()
}

/// The CSRF token of the page at `uri`, loaded as a browser.
fn csrf_token(app: &TestApp, uri: &str) -> String {
    let html = app.client.get(uri.to_owned()).header(Header::new("Accept", BROWSER_ACCEPT)).dispatch();
    let html = html.into_string().expect("a page");
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..start + html[start..].find('"').expect("the token's end")].to_owned()
}

/// A page form post from [`CLIENT_IP`], with the CSRF token of the profile page.
fn post_page<'c>(app: &'c TestApp, uri: &str, fields: &[(&str, &str)]) -> LocalResponse<'c> {
    let token = csrf_token(app, "/profile");
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    let response = send(app, Method::Post, uri, &form(&all));
    assert_eq!(response.status(), Status::SeeOther, "POST {uri}");
    response
}

fn user_id(app: &TestApp) -> i32 {
    use auth_service::user::users;
    app.with_db(|conn| users::table.select(users::id).first(conn).expect("the user"))
}

#[test]
fn post_users_records_register_with_its_client_and_a_taken_email() {
    let app = TestApp::new();
    let body = form(&[("email", EMAIL), ("password", PASSWORD)]);
    assert_eq!(send(&app, Method::Post, "/users", &body).status(), Status::Ok);
    assert_eq!(send(&app, Method::Post, "/users", &body).status(), Status::BadRequest);
    let rows = events(&app);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let id = user_id(&app);
    assert_eq!(
        rows[0],
        (
            "register".into(),
            "success".into(),
            Some(id),
            Some(EMAIL.into()),
            Some(CLIENT_IP.into()),
            Some(USER_AGENT.into())
        )
    );
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2), ("register", "email_taken", None));
}

#[test]
fn delete_sessions_records_logout_of_the_user() {
    let app = TestApp::new();
    app.with_user();
    let before = events(&app).len();
    assert_eq!(send(&app, Method::Delete, "/sessions", "").status(), Status::SeeOther);
    let rows = events(&app);
    assert_eq!(rows.len(), before + 1);
    let (kind, outcome, user, _, ip, _) = rows[before].clone();
    assert_eq!((kind.as_str(), outcome.as_str(), user), ("logout", "success", Some(user_id(&app))));
    assert_eq!(ip.as_deref(), Some(CLIENT_IP));
}

#[test]
fn page_logout_records_logout() {
    let app = TestApp::new();
    app.with_user();
    let before = events(&app).len();
    post_page(&app, "/logout", &[]);
    assert_eq!(kinds_after(&app, before), [pair("logout", "success")]);
}

#[test]
fn post_reset_password_records_reset_requested_for_known_and_unknown_emails() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let before = events(&app).len();
    assert_eq!(send(&app, Method::Post, "/reset_password", &form(&[("email", EMAIL)])).status(), Status::Ok);
    let unknown = form(&[("email", "nobody@example.com")]);
    assert_eq!(send(&app, Method::Post, "/reset_password", &unknown).status(), Status::Forbidden);
    let rows: Vec<_> = events(&app).into_iter().skip(before).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("reset_requested", "success"));
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_str()), ("reset_requested", "unknown_email"));
    assert_eq!(rows[1].3.as_deref(), Some("nobody@example.com"));
}

#[test]
fn put_reset_password_records_reset_used_and_a_replayed_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    let token = common::json(response)["reset_token"].as_str().expect("a token").to_owned();
    let before = events(&app).len();
    let body = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "n3w-passphrase")]);
    assert_eq!(send(&app, Method::Put, "/reset_password", &body).status(), Status::Ok);
    assert_eq!(send(&app, Method::Put, "/reset_password", &body).status(), Status::Forbidden);
    assert_eq!(
        kinds_after(&app, before),
        [pair("reset_used", "success"), pair("reset_used", "invalid_token")]
    );
}

#[test]
fn page_password_change_records_password_changed_and_a_wrong_current_password() {
    let app = TestApp::new();
    app.with_user();
    let before = events(&app).len();
    let token = csrf_token(&app, "/profile");
    let wrong =
        form(&[("csrf_token", &token), ("current_password", "nope"), ("new_password", "n3w-passphrase")]);
    assert_eq!(send(&app, Method::Post, "/password/change", &wrong).status(), Status::UnprocessableEntity);
    post_page(
        &app,
        "/password/change",
        &[("current_password", PASSWORD), ("new_password", "n3w-passphrase")],
    );
    assert_eq!(
        kinds_after(&app, before),
        [pair("password_changed", "wrong_password"), pair("password_changed", "success")]
    );
}

#[test]
fn expired_session_records_session_revoked_expired() {
    let app = TestApp::with_config(|figment| figment.merge(("session_idle_timeout", 1)));
    app.with_user();
    let before = events(&app).len();
    sleep(Duration::from_millis(2100));
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);
    assert_eq!(kinds_after(&app, before), [pair("session_revoked", "expired")]);
}

#[test]
fn profile_ending_one_and_all_other_sessions_records_session_revoked() {
    let app = TestApp::new();
    let first: Cookie<'static> = app.with_user();
    let second = app.login(EMAIL, PASSWORD);
    let _third = app.login(EMAIL, PASSWORD);
    let first_id = session_id_of(&app, &first);
    let before = events(&app).len();
    post_page(&app, "/profile/sessions/end", &[("session", &first_id.to_string())]);
    post_page(&app, "/profile/sessions/end-others", &[]);
    assert_eq!(
        kinds_after(&app, before),
        [pair("session_revoked", "success"), pair("session_revoked", "success")]
    );
    // Only the session that asked is left.
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok);
    let left = app.with_db(|conn| {
        use auth_service::user::sessions;
        sessions::table.count().get_result::<i64>(conn).expect("a count")
    });
    assert_eq!(left, 1);
    assert_eq!(session_id_of_opt(&app, &second), None, "the second session ended too");
}

fn session_id_of_opt(app: &TestApp, cookie: &Cookie<'_>) -> Option<i32> {
    use auth_service::auth::token_digest;
    use auth_service::user::sessions;
    let digest = token_digest(cookie.value());
    app.with_db(move |conn| {
        sessions::table.filter(sessions::token_hash.eq(digest)).select(sessions::id).first(conn).optional()
    })
    .expect("a query")
}

fn session_id_of(app: &TestApp, cookie: &Cookie<'_>) -> i32 {
    session_id_of_opt(app, cookie).expect("a live session")
}
