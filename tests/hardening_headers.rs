//! Security headers: every response, success or failure, carries the CSP, frame, sniffing,
//! referrer and opener headers and `Cache-Control: no-store`; HSTS only when the `hsts` setting
//! is on.

mod common;

use common::{form, TestApp, EMAIL, PASSWORD};
use rocket::http::{Cookie, Header, Status};
use rocket::local::blocking::LocalResponse;

const CSP: &str =
    "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// The headers every response must carry, with their exact values.
fn assert_security_headers(response: &LocalResponse<'_>, what: &str) {
    let headers = response.headers();
    assert_eq!(headers.get_one("Content-Security-Policy"), Some(CSP), "{what}");
    assert_eq!(headers.get_one("X-Content-Type-Options"), Some("nosniff"), "{what}");
    assert_eq!(headers.get("X-Frame-Options").collect::<Vec<_>>(), ["DENY"], "{what}");
    assert_eq!(headers.get_one("Referrer-Policy"), Some("no-referrer"), "{what}");
    assert_eq!(headers.get_one("Cross-Origin-Opener-Policy"), Some("same-origin"), "{what}");
    assert_eq!(headers.get_one("Cache-Control"), Some("no-store"), "{what}");
    // Rocket's Shield adds it; it stays.
    assert_eq!(headers.get_one("Permissions-Policy"), Some("interest-cohort=()"), "{what}");
}

#[test]
fn get_index_carries_the_security_headers_and_no_hsts_by_default() {
    let app = TestApp::new();
    let response = app.client.get("/").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_security_headers(&response, "GET /");
    assert_eq!(response.headers().get_one("Strict-Transport-Security"), None);
}

#[test]
fn post_sessions_success_and_failure_are_never_cached() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let login = app.post_form("/sessions", &form(&[("email", EMAIL), ("password", PASSWORD)]));
    assert_eq!(login.status(), Status::Ok);
    assert!(login.headers().get_one("Set-Cookie").is_some_and(|c| c.starts_with("session_id=")));
    assert_security_headers(&login, "a login that sets the cookie");
    drop(login);

    let wrong = app.post_form("/sessions", &form(&[("email", EMAIL), ("password", "nope")]));
    assert_eq!(wrong.status(), Status::Unauthorized);
    assert_security_headers(&wrong, "a 401");
}

#[test]
fn get_profile_authenticated_and_refused_are_never_cached() {
    let app = TestApp::new();
    let cookie = app.with_user();
    let profile = app.client.get("/profile").cookie(cookie).dispatch();
    assert_eq!(profile.status(), Status::Ok);
    assert_security_headers(&profile, "the profile");
    drop(profile);

    let other = TestApp::new();
    let refused = other.client.get("/profile").cookie(Cookie::new("session_id", "not-a-session")).dispatch();
    assert_eq!(refused.status(), Status::Forbidden);
    assert_security_headers(&refused, "a 403 from the catcher");
}

#[test]
fn post_reset_password_token_answer_is_never_cached() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(response.status(), Status::Ok);
    assert_security_headers(&response, "a reset token");
}

#[test]
fn delete_sessions_redirect_and_unknown_paths_carry_the_headers() {
    let app = TestApp::new();
    let cookie = app.with_user();
    let logout = app.client.delete("/sessions").cookie(cookie).dispatch();
    assert_eq!(logout.status(), Status::SeeOther);
    assert_security_headers(&logout, "the logout redirect");
    drop(logout);

    let missing = app.client.get("/no/such/page").dispatch();
    assert_eq!(missing.status(), Status::NotFound);
    assert_security_headers(&missing, "a 404");
}

#[test]
fn get_index_sends_hsts_when_the_setting_is_on() {
    let app = TestApp::with_config(|f| f.merge(("hsts", true)));
    let response = app.client.get("/").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.headers().get_one("Strict-Transport-Security"), Some(HSTS));
    assert_security_headers(&response, "GET / with hsts");

    let missing = app.client.get("/nowhere").header(Header::new("Accept", "application/json")).dispatch();
    assert_eq!(missing.status(), Status::NotFound);
    assert_eq!(missing.headers().get_one("Strict-Transport-Security"), Some(HSTS));
}

/// The `[release]` profile of `Rocket.toml` as it is (the test settings stay on top).
#[test]
fn get_index_in_the_release_profile_sends_hsts() {
    let app = TestApp::with_config(|f| f.select("release").merge(("pepper", "a test pepper of some length")));
    let response = app.client.get("/").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.headers().get_one("Strict-Transport-Security"), Some(HSTS));
    assert_security_headers(&response, "GET / in release");
}
