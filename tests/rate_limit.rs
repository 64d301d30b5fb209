//! The per-client-IP rate limit on POST /sessions, POST /users and POST and PUT /reset_password:
//! over the allowance a client gets 429, `Retry-After` and a JSON message; other clients and
//! other routes are unaffected, and the allowance comes back with time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{form, json, TestApp, EMAIL, PASSWORD};
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::blocking::LocalResponse;
use serde_json::json as j;

/// An app whose per-IP limit allows `burst` requests back to back, then `per_minute`.
fn limited_app(per_minute: u32, burst: u32) -> TestApp {
    TestApp::with_config(|f| f.merge(("ip_limit_per_minute", per_minute)).merge(("ip_limit_burst", burst)))
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

/// A form request from the client at `ip`.
fn send<'a>(app: &'a TestApp, method: Method, uri: &str, ip: &str, body: &str) -> LocalResponse<'a> {
    app.client.req(method, uri.to_owned()).remote(addr(ip)).header(ContentType::Form).body(body).dispatch()
}

fn login_from<'a>(app: &'a TestApp, ip: &str) -> LocalResponse<'a> {
    send(app, Method::Post, "/sessions", ip, &form(&[("email", EMAIL), ("password", PASSWORD)]))
}

/// Checks the whole 429 answer.
fn assert_too_many(response: LocalResponse<'_>, retry_after: &str) {
    assert_eq!(response.status(), Status::TooManyRequests);
    assert_eq!(response.headers().get_one("Retry-After"), Some(retry_after));
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(json(response), j!({"message": "too many requests; slow down"}));
}

#[test]
fn post_sessions_over_the_ip_limit_is_429_with_retry_after() {
    // 6 a minute: one every 10 s after a burst of 2.
    let app = limited_app(6, 2);
    app.register(EMAIL, PASSWORD);
    for _ in 0..2 {
        let response = login_from(&app, "1.2.3.4");
        assert_eq!(response.status(), Status::Ok);
        assert_eq!(json(response), j!({"email": EMAIL, "message": "logged in"}));
    }
    assert_too_many(login_from(&app, "1.2.3.4"), "10");
    // Still refused, and no cookie is set on a refused login.
    let again = login_from(&app, "1.2.3.4");
    assert!(again.headers().get_one("Set-Cookie").is_none());
    assert_too_many(again, "10");
}

#[test]
fn post_sessions_other_ips_are_unaffected_by_one_ip_over_the_limit() {
    let app = limited_app(6, 1);
    app.register(EMAIL, PASSWORD);
    assert_eq!(login_from(&app, "1.2.3.4").status(), Status::Ok);
    assert_too_many(login_from(&app, "1.2.3.4"), "10");
    assert_eq!(login_from(&app, "5.6.7.8").status(), Status::Ok);
    assert_eq!(login_from(&app, "2001:db8::1").status(), Status::Ok);
    // The same IPv6 /64 is one client.
    assert_too_many(login_from(&app, "2001:db8::2"), "10");
}

#[test]
fn post_sessions_the_limit_recovers_after_retry_after() {
    // 120 a minute with a burst of 1: the next request is due half a second after the last.
    let app = limited_app(120, 1);
    app.register(EMAIL, PASSWORD);
    assert_eq!(login_from(&app, "1.2.3.4").status(), Status::Ok);
    assert_too_many(login_from(&app, "1.2.3.4"), "1");
    std::thread::sleep(Duration::from_millis(600));
    let response = login_from(&app, "1.2.3.4");
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": EMAIL, "message": "logged in"}));
}

#[test]
fn post_users_and_reset_password_share_one_allowance_per_ip() {
    let app = limited_app(6, 3);
    let ip = "9.9.9.9";
    let credentials = form(&[("email", EMAIL), ("password", PASSWORD)]);
    assert_eq!(send(&app, Method::Post, "/users", ip, &credentials).status(), Status::Ok);
    let token_response = send(&app, Method::Post, "/reset_password", ip, &form(&[("email", EMAIL)]));
    assert_eq!(token_response.status(), Status::Ok);
    let token = json(token_response)["reset_token"].as_str().expect("a token").to_owned();
    let update = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "n3w-pass")]);
    assert_eq!(send(&app, Method::Put, "/reset_password", ip, &update).status(), Status::Ok);

    // The allowance of 3 is spent: every limited endpoint now answers 429.
    assert_too_many(send(&app, Method::Post, "/users", ip, &credentials), "10");
    assert_too_many(send(&app, Method::Post, "/reset_password", ip, &form(&[("email", EMAIL)])), "10");
    assert_too_many(send(&app, Method::Put, "/reset_password", ip, &update), "10");
    assert_too_many(login_from(&app, ip), "10");
}

#[test]
fn post_users_over_the_limit_is_429_before_the_form_is_read() {
    let app = limited_app(6, 1);
    let empty = send(&app, Method::Post, "/users", "1.2.3.4", "");
    assert_eq!(empty.status(), Status::BadRequest);
    assert_eq!(json(empty), j!({"message": "email is required"}));
    assert_too_many(send(&app, Method::Post, "/users", "1.2.3.4", ""), "10");
}

#[test]
fn get_index_and_get_profile_are_not_limited() {
    let app = limited_app(6, 1);
    let cookie = app.with_user();
    // Spend the allowance without logging in again (which would replace the session).
    let stranger = form(&[("email", "stranger@example.com"), ("password", PASSWORD)]);
    assert_eq!(send(&app, Method::Post, "/sessions", "127.0.0.1", &stranger).status(), Status::Unauthorized);
    assert_too_many(send(&app, Method::Post, "/sessions", "127.0.0.1", &stranger), "10");
    let index = app.client.get("/").remote(addr("127.0.0.1")).dispatch();
    assert_eq!(index.status(), Status::Ok);
    let profile = app.client.get("/profile").remote(addr("127.0.0.1")).cookie(cookie).dispatch();
    assert_eq!(profile.status(), Status::Ok);
    assert_eq!(json(profile), j!({"email": EMAIL}));
}

#[test]
fn post_sessions_x_real_ip_is_ignored_unless_ip_header_is_set() {
    let app = limited_app(6, 1);
    app.register(EMAIL, PASSWORD);
    let spoofed = |ip: &str| {
        app.client
            .post("/sessions")
            .remote(addr("1.2.3.4"))
            .header(ContentType::Form)
            .header(Header::new("X-Real-IP", ip.to_owned()))
            .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
            .dispatch()
    };
    assert_eq!(spoofed("10.0.0.1").status(), Status::Ok);
    // A new X-Real-IP does not make a new client.
    assert_too_many(spoofed("10.0.0.2"), "10");
}

#[test]
fn post_sessions_behind_a_proxy_ip_header_names_the_client() {
    let app = TestApp::with_config(|f| {
        f.merge(("ip_limit_per_minute", 6)).merge(("ip_limit_burst", 1)).merge(("ip_header", "X-Real-IP"))
    });
    app.register(EMAIL, PASSWORD);
    let via_proxy = |ip: &str| {
        app.client
            .post("/sessions")
            .remote(addr("10.0.0.254"))
            .header(ContentType::Form)
            .header(Header::new("X-Real-IP", ip.to_owned()))
            .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
            .dispatch()
    };
    assert_eq!(via_proxy("198.51.100.1").status(), Status::Ok);
    assert_too_many(via_proxy("198.51.100.1"), "10");
    assert_eq!(via_proxy("198.51.100.2").status(), Status::Ok);
}

#[test]
fn post_sessions_debug_profile_has_no_ip_limit() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    for _ in 0..30 {
        assert_eq!(login_from(&app, "1.2.3.4").status(), Status::Ok);
    }
}

#[test]
fn post_sessions_release_profile_allows_a_burst_of_10() {
    let app = TestApp::with_config(|f| f.select("release").merge(("pepper", "a test pepper of some length")));
    // An empty form: the limit counts it before the form is read, and it costs no bcrypt, so the
    // eleven requests fit well within the first second.
    let attempt = || send(&app, Method::Post, "/sessions", "1.2.3.4", "");
    for _ in 0..10 {
        let response = attempt();
        assert_eq!(response.status(), Status::BadRequest);
        assert_eq!(json(response), j!({"message": "email is required"}));
    }
    // 20 a minute: one every 3 s.
    assert_too_many(attempt(), "3");
}

#[test]
fn page_forms_share_the_ip_allowance_with_the_api() {
    let app = limited_app(1, 2);
    let credentials = form(&[("email", EMAIL), ("password", PASSWORD)]);
    // The limit is checked before the form: a page POST spends the allowance like an API call.
    assert_ne!(
        send(&app, Method::Post, "/login", "192.0.2.60", &credentials).status(),
        Status::TooManyRequests
    );
    assert_ne!(
        send(&app, Method::Post, "/register", "192.0.2.60", &credentials).status(),
        Status::TooManyRequests
    );
    for uri in ["/login", "/register", "/password/forgot", "/password/reset", "/password/change"] {
        assert_eq!(
            send(&app, Method::Post, uri, "192.0.2.60", &credentials).status(),
            Status::TooManyRequests,
            "{uri}"
        );
    }
    assert_eq!(
        send(&app, Method::Post, "/sessions", "192.0.2.60", &credentials).status(),
        Status::TooManyRequests
    );
}
