//! The hardened release profile, read from Rocket.toml's `[release]` section: strict passwords,
//! a Secure cookie, no reset token in answers and no way to tell which emails exist. And the
//! password hashing that both profiles share: long passwords in full, rehash on login.

mod common;

use auth_service::db;
use auth_service::user::{users, NewUser};
use common::{form, json, test_figment, TestApp, TestDatabase, EMAIL, PASSWORD};
use diesel::prelude::*;
use rocket::http::Status;
use serde_json::json as j;

const STRONG: &str = "correct horse battery staple 42";

fn release_app() -> TestApp {
    TestApp::with_config(|figment| {
        figment.select("release").merge(("pepper", "a test pepper of some length"))
    })
}

fn stored_hash(app: &TestApp, email: &'static str) -> String {
    app.with_db(move |conn| {
        users::table
            .filter(users::email.eq(email))
            .select(users::hashed_password)
            .first::<String>(conn)
            .unwrap()
    })
}

#[test]
fn release_refuses_to_start_with_the_public_pepper() {
    let database = TestDatabase::new();
    let figment = test_figment(&database).select("release");
    match rocket::local::blocking::Client::untracked(auth_service::build(figment)) {
        Ok(_) => panic!("the release profile must refuse the development pepper"),
        Err(error) => assert!(matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_))),
    }
}

#[test]
fn release_post_users_refuses_weak_passwords_and_says_why() {
    let app = release_app();
    let cases = [
        (PASSWORD, "password is too weak: use at least 8 characters"),
        ("password123", "password is too weak: it is on the list of commonly used passwords"),
        ("guillaume-holberton", "password is too weak: it contains your email address or part of it"),
    ];
    for (password, message) in cases {
        let response = app.post_form("/users", &form(&[("email", EMAIL), ("password", password)]));
        assert_eq!(response.status(), Status::BadRequest, "{password}");
        assert_eq!(json(response), j!({ "message": message }), "{password}");
    }
    let response = app.post_form("/users", &form(&[("email", EMAIL), ("password", STRONG)]));
    assert_eq!(response.status(), Status::Ok);
}

#[test]
fn release_post_users_accepts_1024_characters_and_refuses_1025() {
    let app = release_app();
    let longest: String = rand::Rng::sample_iter(rand::thread_rng(), rand::distributions::Alphanumeric)
        .take(1024)
        .map(char::from)
        .collect();
    let response = app.post_form("/users", &form(&[("email", EMAIL), ("password", &longest)]));
    assert_eq!(response.status(), Status::Ok);
    app.login(EMAIL, &longest);
    let response =
        app.post_form("/users", &form(&[("email", "b@example.com"), ("password", &(longest + "x"))]));
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(json(response), j!({"message": "password is too long: at most 1024 characters"}));
}

#[test]
fn release_session_cookie_is_secure() {
    let app = release_app();
    app.register(EMAIL, STRONG);
    let cookie = app.login(EMAIL, STRONG);
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
}

#[test]
fn release_post_reset_password_answers_alike_for_known_and_unknown_emails() {
    let app = release_app();
    app.register(EMAIL, STRONG);
    let known = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(known.status(), Status::Ok);
    let known = json(known);
    let unknown = app.post_form("/reset_password", &form(&[("email", "ghost@example.com")]));
    assert_eq!(unknown.status(), Status::Ok);
    let unknown = json(unknown);
    assert!(known.get("reset_token").is_none(), "{known}");
    assert_eq!(known["message"], unknown["message"]);
    assert_eq!(known.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["email", "message"]);
}

#[test]
fn default_profile_keeps_the_seeds_short_passwords() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    app.login(EMAIL, PASSWORD);
}

#[test]
fn passwords_longer_than_72_bytes_count_in_full() {
    let app = TestApp::new();
    let base = "p".repeat(90);
    app.register(EMAIL, &format!("{base}-one"));
    let near_miss = form(&[("email", EMAIL), ("password", &format!("{base}-two"))]);
    assert_eq!(app.post_form("/sessions", &near_miss).status(), Status::Unauthorized);
    app.login(EMAIL, &format!("{base}-one"));
    assert!(stored_hash(&app, EMAIL).starts_with("v2$$2b$04$"));
}

#[test]
fn a_login_upgrades_a_v1_hash_to_v2() {
    let app = TestApp::new();
    app.with_db(|conn| {
        let legacy = bcrypt::hash(PASSWORD, 4).unwrap();
        db::add_user(conn, &NewUser::new(EMAIL, &legacy)).unwrap();
    });
    assert!(stored_hash(&app, EMAIL).starts_with("$2b$04$"));
    app.login(EMAIL, PASSWORD);
    let upgraded = stored_hash(&app, EMAIL);
    assert!(upgraded.starts_with("v2$$2b$04$"), "{upgraded}");
    // The upgraded hash still logs in.
    app.login(EMAIL, PASSWORD);
}

#[test]
fn a_login_upgrades_a_hash_made_at_a_lower_cost() {
    let database = TestDatabase::new();
    let low = rocket::local::blocking::Client::tracked(auth_service::build(test_figment(&database)))
        .expect("the service launches");
    let response = low
        .post("/users")
        .header(rocket::http::ContentType::Form)
        .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
        .dispatch();
    assert_eq!(response.status(), Status::Ok);
    drop(response);
    drop(low);
    let app = TestApp::with_database(database, |f| f.merge(("bcrypt_cost", 5)));
    assert!(stored_hash(&app, EMAIL).starts_with("v2$$2b$04$"));
    app.login(EMAIL, PASSWORD);
    assert!(stored_hash(&app, EMAIL).starts_with("v2$$2b$05$"));
}

/// The reset token of the one mail in `outbox`, waiting for it: in the release profile the mail
/// leaves in the background, after the answer, and the file may still be being written.
fn mailed_token(outbox: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let marker = "/password/reset?token=";
    let text = loop {
        let mails: Vec<_> = std::fs::read_dir(outbox)
            .map(|dir| dir.filter_map(Result::ok).map(|entry| entry.path()).collect())
            .unwrap_or_default();
        let complete =
            mails.iter().filter(|path| path.extension().is_some_and(|ext| ext == "eml")).find_map(|mail| {
                let raw = std::fs::read_to_string(mail).ok()?;
                let decoded = quoted_printable::decode(&raw, quoted_printable::ParseMode::Robust).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                (text.contains(marker) && text.contains("</html>")).then_some(text)
            });
        if let Some(text) = complete {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no complete reset mail in {}", outbox.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let start = text.find(marker).expect("a reset link") + marker.len();
    let end = text[start..].find(|c: char| c.is_whitespace() || c == '"').map_or(text.len(), |n| start + n);
    text[start..end].to_owned()
}

#[test]
fn release_end_to_end_register_log_in_and_reset_by_mail() {
    let app = release_app();
    let new_password = "violet staircase under 9 moons";
    let credentials = |password: &str| form(&[("email", EMAIL), ("password", password)]);
    assert_eq!(app.post_form("/users", &credentials(STRONG)).status(), Status::Ok);
    let session = app.login(EMAIL, STRONG);
    assert_eq!(session.secure(), Some(true));
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok);

    // The answer carries no token; the mail does.
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(response.status(), Status::Ok);
    let body = json(response);
    assert!(body.get("reset_token").is_none(), "{body}");
    let token = mailed_token(&app.database.mail_outbox());

    let reset = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", new_password)]);
    assert_eq!(app.put_form("/reset_password", &reset).status(), Status::Ok);
    // The reset ended the session, the old password is dead, the link works once.
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);
    assert_eq!(app.post_form("/sessions", &credentials(STRONG)).status(), Status::Unauthorized);
    assert_eq!(app.put_form("/reset_password", &reset).status(), Status::Forbidden);
    app.login(EMAIL, new_password);
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok);
}

#[test]
fn release_reset_to_a_weak_password_is_400_and_keeps_the_token() {
    let app = release_app();
    assert_eq!(
        app.post_form("/users", &form(&[("email", EMAIL), ("password", STRONG)])).status(),
        Status::Ok
    );
    assert_eq!(app.post_form("/reset_password", &form(&[("email", EMAIL)])).status(), Status::Ok);
    let token = mailed_token(&app.database.mail_outbox());
    let weak = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "password123")]);
    let response = app.put_form("/reset_password", &weak);
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(
        json(response),
        j!({"message": "password is too weak: it is on the list of commonly used passwords"})
    );
    let strong = form(&[
        ("email", EMAIL),
        ("reset_token", &token),
        ("new_password", "violet staircase under 9 moons"),
    ]);
    assert_eq!(app.put_form("/reset_password", &strong).status(), Status::Ok);
}
