//! The JSON contract, one test per row and per failure case. Every assertion checks the exact
//! status and body.

mod common;

use common::{form, json, TestApp, EMAIL, PASSWORD};
use rocket::http::{ContentType, Cookie, Header, Status};
use serde_json::json as j;

fn credentials(email: &str, password: &str) -> String {
    form(&[("email", email), ("password", password)])
}

fn request_reset_token(app: &TestApp, email: &str) -> String {
    let response = app.post_form("/reset_password", &form(&[("email", email)]));
    assert_eq!(response.status(), Status::Ok);
    let body = json(response);
    body["reset_token"].as_str().expect("a reset_token string").to_owned()
}

#[test]
fn get_index_says_bienvenue() {
    let app = TestApp::new();
    let response = app.client.get("/").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(response.into_string().unwrap(), r#"{"message":"Bienvenue"}"#);
}

#[test]
fn post_users_creates_the_user() {
    let app = TestApp::new();
    let response = app.post_form("/users", &credentials(EMAIL, PASSWORD));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.into_string().unwrap(),
        r#"{"email":"guillaume@holberton.io","message":"user created"}"#
    );
}

#[test]
fn post_users_accepts_multipart_forms() {
    let app = TestApp::new();
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nbob@example.com\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ--\r\n";
    let response = app
        .client
        .post("/users")
        .header(ContentType::new("multipart", "form-data").with_params(("boundary", "XyZ")))
        .body(body)
        .dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": "bob@example.com", "message": "user created"}));
}

#[test]
fn post_users_existing_email_is_400() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/users", &credentials(EMAIL, "another"));
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(response.into_string().unwrap(), r#"{"message":"email already registered"}"#);
}

#[test]
fn post_users_existing_email_in_another_case_is_400() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/users", &credentials("Guillaume@Holberton.IO", PASSWORD));
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(json(response), j!({"message": "email already registered"}));
}

#[test]
fn post_sessions_logs_in_and_sets_the_cookie() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/sessions", &credentials(EMAIL, PASSWORD));
    assert_eq!(response.status(), Status::Ok);
    let set_cookie = response.headers().get_one("Set-Cookie").expect("a Set-Cookie header").to_owned();
    assert_eq!(json(response), j!({"email": EMAIL, "message": "logged in"}));
    let cookie = Cookie::parse(set_cookie).expect("a valid cookie");
    assert_eq!(cookie.name(), "session_id");
    assert_eq!(cookie.value().len(), 43, "a 256-bit base64url session id: {}", cookie.value());
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(rocket::http::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.secure(), None, "not Secure unless cookie_secure is set");
}

#[test]
fn post_sessions_sets_secure_when_configured() {
    let app = TestApp::with_config(|figment| figment.merge(("cookie_secure", true)));
    app.register(EMAIL, PASSWORD);
    let cookie = app.login(EMAIL, PASSWORD);
    assert_eq!(cookie.secure(), Some(true));
}

#[test]
fn post_sessions_accepts_the_email_in_another_case() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/sessions", &credentials("GUILLAUME@holberton.io", PASSWORD));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": "GUILLAUME@holberton.io", "message": "logged in"}));
}

#[test]
fn post_sessions_wrong_password_is_401() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/sessions", &credentials(EMAIL, "wrong"));
    assert_eq!(response.status(), Status::Unauthorized);
    assert!(response.headers().get_one("Set-Cookie").is_none(), "no session for a wrong password");
    assert_eq!(json(response), j!({"message": "wrong email or password"}));
}

#[test]
fn post_sessions_unknown_email_is_401() {
    let app = TestApp::new();
    let response = app.post_form("/sessions", &credentials("nobody@example.com", PASSWORD));
    assert_eq!(response.status(), Status::Unauthorized);
    assert!(response.headers().get_one("Set-Cookie").is_none());
    assert_eq!(json(response), j!({"message": "wrong email or password"}));
}

#[test]
fn post_sessions_issues_a_fresh_session_id_each_time() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let first = app.login(EMAIL, PASSWORD);
    let second = app.login(EMAIL, PASSWORD);
    assert_ne!(first.value(), second.value());
    let response = app.client.get("/profile").cookie(second.clone()).dispatch();
    assert_eq!(response.status(), Status::Ok);
}

#[test]
fn delete_sessions_redirects_to_index_and_ends_the_session() {
    let app = TestApp::new();
    let cookie = app.with_user();
    let response = app.client.delete("/sessions").cookie(cookie.clone()).dispatch();
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(response.headers().get_one("Location"), Some("/"));
    let removal = response.cookies().get("session_id").expect("the cookie is removed").clone();
    assert_eq!(removal.value(), "");
    // Following the redirect ends on the welcome message.
    let index = app.client.get(response.headers().get_one("Location").unwrap().to_owned()).dispatch();
    assert_eq!(json(index), j!({"message": "Bienvenue"}));
    // The old id no longer opens the profile, even when a client keeps sending it.
    let response = app.client.get("/profile").cookie(cookie).dispatch();
    assert_eq!(response.status(), Status::Forbidden);
}

#[test]
fn delete_sessions_without_a_cookie_is_403() {
    let app = TestApp::new();
    let response = app.client.delete("/sessions").dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
}

#[test]
fn delete_sessions_unknown_session_is_403() {
    let app = TestApp::new();
    let response =
        app.client.delete("/sessions").cookie(Cookie::new("session_id", "not-a-session")).dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
}

#[test]
fn get_profile_returns_the_email() {
    let app = TestApp::new();
    let cookie = app.with_user();
    let response = app.client.get("/profile").cookie(cookie).dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().unwrap(), r#"{"email":"guillaume@holberton.io"}"#);
}

#[test]
fn get_profile_without_a_cookie_is_403() {
    let app = TestApp::new();
    let response = app.client.get("/profile").dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
}

#[test]
fn get_profile_unknown_session_is_403() {
    let app = TestApp::new();
    app.with_user();
    for value in ["", "00000000-0000-4000-8000-000000000000", "x' OR '1'='1"] {
        let response = app.client.get("/profile").cookie(Cookie::new("session_id", value)).dispatch();
        assert_eq!(response.status(), Status::Forbidden, "cookie {value:?}");
        assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
    }
}

#[test]
fn post_reset_password_returns_a_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(response.status(), Status::Ok);
    let body = json(response);
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["email"], EMAIL);
    let token = body["reset_token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "a 256-bit base64url token: {token}");
}

#[test]
fn post_reset_password_unknown_email_is_403() {
    let app = TestApp::new();
    let response = app.post_form("/reset_password", &form(&[("email", "nobody@example.com")]));
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "email not registered"}));
}

#[test]
fn put_reset_password_updates_the_password() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = request_reset_token(&app, EMAIL);
    let body = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "t4rt1fl3tt3")]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.into_string().unwrap(),
        r#"{"email":"guillaume@holberton.io","message":"Password updated"}"#
    );
    assert_eq!(app.post_form("/sessions", &credentials(EMAIL, PASSWORD)).status(), Status::Unauthorized);
    assert_eq!(app.post_form("/sessions", &credentials(EMAIL, "t4rt1fl3tt3")).status(), Status::Ok);
}

#[test]
fn put_reset_password_invalid_token_is_403() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    request_reset_token(&app, EMAIL);
    let body = form(&[("email", EMAIL), ("reset_token", "not-the-token"), ("new_password", "other")]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "invalid reset token"}));
    assert_eq!(app.post_form("/sessions", &credentials(EMAIL, PASSWORD)).status(), Status::Ok);
}

#[test]
fn put_reset_password_token_works_once() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = request_reset_token(&app, EMAIL);
    let first = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "first-new")]);
    assert_eq!(app.put_form("/reset_password", &first).status(), Status::Ok);
    let replay = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "second-new")]);
    let response = app.put_form("/reset_password", &replay);
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "invalid reset token"}));
    assert_eq!(app.post_form("/sessions", &credentials(EMAIL, "first-new")).status(), Status::Ok);
}

#[test]
fn put_reset_password_older_token_is_replaced_by_a_newer_one() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let older = request_reset_token(&app, EMAIL);
    let newer = request_reset_token(&app, EMAIL);
    let with_older = form(&[("email", EMAIL), ("reset_token", &older), ("new_password", "x-new")]);
    assert_eq!(app.put_form("/reset_password", &with_older).status(), Status::Forbidden);
    let with_newer = form(&[("email", EMAIL), ("reset_token", &newer), ("new_password", "x-new")]);
    assert_eq!(app.put_form("/reset_password", &with_newer).status(), Status::Ok);
}

#[test]
fn put_reset_password_token_of_another_account_is_403() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    app.register("mallory@example.com", "mallory");
    let token = request_reset_token(&app, EMAIL);
    let body = form(&[("email", "mallory@example.com"), ("reset_token", &token), ("new_password", "pwned")]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "invalid reset token"}));
    assert_eq!(app.post_form("/sessions", &credentials(EMAIL, PASSWORD)).status(), Status::Ok);
}

#[test]
fn unknown_route_is_a_json_404() {
    let app = TestApp::new();
    let response = app.client.get("/nowhere").header(Header::new("Accept", "application/json")).dispatch();
    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(json(response), j!({"message": "not found"}));
}
