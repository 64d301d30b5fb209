//! Bad input gets a clear JSON 4xx naming the problem, never a 500 or an HTML page, and nothing
//! is stored by a refused request.

mod common;

use common::{form, json, TestApp, EMAIL, PASSWORD};
use rocket::http::{ContentType, Status};
use serde_json::json as j;

/// Sends `body` to `method uri` and checks the status and the exact message.
fn assert_refused(app: &TestApp, put: bool, uri: &str, body: &str, status: Status, message: &str) {
    let response = if put { app.put_form(uri, body) } else { app.post_form(uri, body) };
    assert_eq!(response.status(), status, "{uri} with {body:?}");
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(json(response), j!({ "message": message }), "{uri} with {body:?}");
}

#[test]
fn post_users_missing_fields_are_400_naming_the_field() {
    let app = TestApp::new();
    assert_refused(&app, false, "/users", "", Status::BadRequest, "email is required");
    assert_refused(&app, false, "/users", "password=x", Status::BadRequest, "email is required");
    assert_refused(&app, false, "/users", "email=a%40b.c", Status::BadRequest, "password is required");
}

#[test]
fn post_users_empty_fields_are_400_naming_the_field() {
    let app = TestApp::new();
    assert_refused(&app, false, "/users", "email=&password=x", Status::BadRequest, "email is required");
    assert_refused(
        &app,
        false,
        "/users",
        "email=a%40b.c&password=",
        Status::BadRequest,
        "password is required",
    );
}

#[test]
fn post_users_email_without_at_is_400() {
    let app = TestApp::new();
    let body = form(&[("email", "guillaume.holberton.io"), ("password", PASSWORD)]);
    assert_refused(&app, false, "/users", &body, Status::BadRequest, "email must look like name@example.com");
}

#[test]
fn post_users_email_with_spaces_or_control_characters_is_400() {
    let app = TestApp::new();
    for email in [" a@b.c", "a@b.c ", "a\u{0}b@c.d", "a\nb@c.d"] {
        let body = form(&[("email", email), ("password", PASSWORD)]);
        assert_refused(
            &app,
            false,
            "/users",
            &body,
            Status::BadRequest,
            "email must not contain spaces or control characters",
        );
    }
}

#[test]
fn post_users_overlong_email_is_400() {
    let app = TestApp::new();
    let email = format!("{}@example.com", "a".repeat(250));
    let body = form(&[("email", &email), ("password", PASSWORD)]);
    assert_refused(&app, false, "/users", &body, Status::BadRequest, "email is too long (at most 250 bytes)");
}

#[test]
fn post_users_password_over_1024_characters_is_400_and_stores_nothing() {
    let app = TestApp::new();
    let body = form(&[("email", EMAIL), ("password", &"p".repeat(1025))]);
    assert_refused(
        &app,
        false,
        "/users",
        &body,
        Status::BadRequest,
        "password is too long: at most 1024 characters",
    );
    // Nothing was stored: the email is still free.
    app.register(EMAIL, PASSWORD);
}

#[test]
fn post_users_password_limit_counts_characters_not_bytes() {
    let app = TestApp::new();
    // 1024 three-byte characters: far past bcrypt's 72 bytes, within the 1024-character limit.
    let password = "€".repeat(1024);
    app.register(EMAIL, &password);
    app.login(EMAIL, &password);
    let body = form(&[("email", "b@example.com"), ("password", &"€".repeat(1025))]);
    assert_eq!(app.post_form("/users", &body).status(), Status::BadRequest);
}

#[test]
fn post_users_password_of_72_bytes_is_used_whole() {
    let app = TestApp::new();
    let password = "q".repeat(71) + "Z";
    app.register(EMAIL, &password);
    // A password differing only in the last byte must not log in: nothing was cut off.
    let near_miss = form(&[("email", EMAIL), ("password", &("q".repeat(71) + "Y"))]);
    assert_eq!(app.post_form("/sessions", &near_miss).status(), Status::Unauthorized);
    app.login(EMAIL, &password);
}

#[test]
fn post_users_unicode_email_and_password_round_trip() {
    let app = TestApp::new();
    let (email, password) = ("zoë@exämple.de", "pässwörd 🔑 ñ");
    let response = app.post_form("/users", &form(&[("email", email), ("password", password)]));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": email, "message": "user created"}));
    let cookie = app.login(email, password);
    let response = app.client.get("/profile").cookie(cookie).dispatch();
    assert_eq!(json(response), j!({ "email": email }));
}

#[test]
fn post_users_json_body_is_read_as_an_empty_form() {
    let app = TestApp::new();
    let response = app
        .client
        .post("/users")
        .header(ContentType::JSON)
        .body(r#"{"email": "a@b.c", "password": "x"}"#)
        .dispatch();
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(json(response), j!({"message": "email is required"}));
}

#[test]
fn post_users_without_a_body_or_content_type_is_400() {
    let app = TestApp::new();
    let response = app.client.post("/users").dispatch();
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(json(response), j!({"message": "email is required"}));
}

#[test]
fn post_users_undecodable_body_is_400() {
    let app = TestApp::new();
    let response = app
        .client
        .post("/users")
        .header(ContentType::Form)
        .body(b"email=\xff\xfe&password=\xc3\x28".as_slice())
        .dispatch();
    assert_eq!(response.status(), Status::BadRequest);
    let message = json(response)["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("email") || message.starts_with("malformed form body"), "{message}");
}

#[test]
fn post_users_broken_percent_encoding_is_400() {
    let app = TestApp::new();
    let response = app.post_form("/users", "email=%ZZ%&password=%");
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(json(response), j!({"message": "email must look like name@example.com"}));
}

#[test]
fn post_users_broken_multipart_is_400() {
    let app = TestApp::new();
    let response = app
        .client
        .post("/users")
        .header(ContentType::new("multipart", "form-data").with_params(("boundary", "XyZ")))
        .body("--XyZ\r\nthis is not a part")
        .dispatch();
    assert_eq!(response.status(), Status::BadRequest);
    assert!(json(response)["message"].is_string());
}

#[test]
fn post_users_body_over_the_limit_is_413() {
    let app = TestApp::new();
    let body = form(&[("email", EMAIL), ("password", &"x".repeat(64 * 1024))]);
    assert_refused(&app, false, "/users", &body, Status::PayloadTooLarge, "request body too large");
}

#[test]
fn post_users_body_over_a_lowered_limit_is_413() {
    let app = TestApp::with_config(|figment| figment.merge(("limits.form", "64 B")));
    let body = form(&[("email", EMAIL), ("password", &"x".repeat(65))]);
    assert_refused(&app, false, "/users", &body, Status::PayloadTooLarge, "request body too large");
}

#[test]
fn post_users_duplicate_fields_take_the_first_value() {
    let app = TestApp::new();
    let response = app.post_form("/users", "email=a%40b.c&email=c%40d.e&password=x&password=y");
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": "a@b.c", "message": "user created"}));
}

#[test]
fn post_sessions_missing_and_empty_fields_are_400() {
    let app = TestApp::new();
    assert_refused(&app, false, "/sessions", "", Status::BadRequest, "email is required");
    assert_refused(&app, false, "/sessions", "email=a%40b.c", Status::BadRequest, "password is required");
    assert_refused(
        &app,
        false,
        "/sessions",
        "email=a%40b.c&password=",
        Status::BadRequest,
        "password is required",
    );
}

#[test]
fn post_sessions_password_over_1024_characters_is_400() {
    let app = TestApp::new();
    let body = form(&[("email", EMAIL), ("password", &"p".repeat(1025))]);
    let response = app.post_form("/sessions", &body);
    assert_eq!(response.status(), Status::BadRequest);
    assert!(response.headers().get_one("Set-Cookie").is_none());
}

#[test]
fn post_reset_password_missing_and_bad_email_are_400() {
    let app = TestApp::new();
    assert_refused(&app, false, "/reset_password", "", Status::BadRequest, "email is required");
    assert_refused(&app, false, "/reset_password", "email=", Status::BadRequest, "email is required");
    assert_refused(
        &app,
        false,
        "/reset_password",
        "email=nope",
        Status::BadRequest,
        "email must look like name@example.com",
    );
}

#[test]
fn put_reset_password_missing_fields_are_400_naming_the_field() {
    let app = TestApp::new();
    let all = [("email", EMAIL), ("reset_token", "t"), ("new_password", "n")];
    for missing in 0..all.len() {
        let fields: Vec<_> = all.iter().enumerate().filter(|(i, _)| *i != missing).map(|(_, f)| *f).collect();
        let message = format!("{} is required", all[missing].0);
        assert_refused(&app, true, "/reset_password", &form(&fields), Status::BadRequest, &message);
        let mut empty = all;
        empty[missing].1 = "";
        assert_refused(&app, true, "/reset_password", &form(&empty), Status::BadRequest, &message);
    }
}

#[test]
fn put_reset_password_new_password_over_1024_characters_is_400_and_keeps_the_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    let token = json(response)["reset_token"].as_str().unwrap().to_owned();
    let long = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", &"n".repeat(1025))]);
    let response = app.put_form("/reset_password", &long);
    assert_eq!(response.status(), Status::BadRequest);
    let fine = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "fine")]);
    assert_eq!(app.put_form("/reset_password", &fine).status(), Status::Ok);
}
