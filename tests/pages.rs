//! The server-rendered pages through Rocket's local client: statuses, redirects, flash messages,
//! CSRF refusals, the HTML error pages, and the HTML/JSON negotiation of `GET /` and
//! `GET /profile`. Every request a browser would send carries a browser's `Accept` header.

mod common;

use auth_service::auth::token_digest;
use auth_service::error::{ApiResult, Error};
use auth_service::pages::{self, SafeNext};
use auth_service::user::sessions;
use common::{encode, form, json, test_figment, TestApp, TestDatabase, EMAIL, PASSWORD};
use diesel::prelude::*;
use rocket::http::{Accept, ContentType, Header, Status};
use rocket::local::blocking::{Client, LocalResponse};
use rocket::uri;
use serde_json::json as j;

/// What Chromium sends for a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

const RESET_LINK_SENT: &str =
    "If an account uses that email, a link to choose a new password is on its way. Check your inbox.";

fn browser() -> Header<'static> {
    Header::new("Accept", BROWSER_ACCEPT)
}

/// `GET uri` as a browser asks for it.
fn page<'c>(app: &'c TestApp, uri: &str) -> LocalResponse<'c> {
    app.client.get(uri.to_owned()).header(browser()).dispatch()
}

/// The body of a 200 page.
fn page_body(app: &TestApp, uri: &str) -> String {
    let response = page(app, uri);
    assert_eq!(response.status(), Status::Ok, "GET {uri}");
    assert_eq!(response.content_type(), Some(ContentType::HTML), "GET {uri}");
    response.into_string().expect("a body")
}

/// The CSRF token of the (first) form in `html`.
fn csrf_token(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    let end = start + html[start..].find('"').expect("the end of the token");
    html[start..end].to_owned()
}

/// A browser form post: `fields` plus the given CSRF token, if any.
fn post_page<'c>(
    app: &'c TestApp,
    uri: &str,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> LocalResponse<'c> {
    let mut all: Vec<(&str, &str)> = token.map(|t| ("csrf_token", t)).into_iter().collect();
    all.extend_from_slice(fields);
    app.client.post(uri.to_owned()).header(browser()).header(ContentType::Form).body(form(&all)).dispatch()
}

/// Loads the page at `page_uri` for its token, then posts `fields` to `action` with it.
fn submit<'c>(app: &'c TestApp, page_uri: &str, action: &str, fields: &[(&str, &str)]) -> LocalResponse<'c> {
    let token = csrf_token(&page_body(app, page_uri));
    post_page(app, action, Some(&token), fields)
}

fn location<'a>(response: &'a LocalResponse<'_>) -> &'a str {
    response.headers().get_one("Location").expect("a Location header")
}

/// Asserts a 303 to `to` with a flash cookie.
fn assert_flash_redirect(response: &LocalResponse<'_>, to: &str) {
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(response), to);
    assert!(response.cookies().get("_flash").is_some(), "a flash message is set");
}

/// Asserts the HTML 403 page of a refused CSRF token.
fn assert_csrf_refused(response: LocalResponse<'_>) {
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(response.content_type(), Some(ContentType::HTML));
    let body = response.into_string().expect("a body");
    assert!(body.contains("<h1>Access denied</h1>"), "{body}");
    assert!(body.contains("Invalid CSRF token: reload the page and submit the form again."), "{body}");
}

/// Registers and logs in through the JSON API; the tracked client keeps the cookie.
fn logged_in() -> TestApp {
    let app = TestApp::new();
    app.with_user();
    app
}

fn api_login_status(app: &TestApp, email: &str, password: &str) -> Status {
    let response = app
        .client
        .post("/sessions")
        .header(ContentType::Form)
        .body(form(&[("email", email), ("password", password)]))
        .dispatch();
    response.status()
}

fn reset_token(app: &TestApp) -> String {
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(response.status(), Status::Ok);
    json(response)["reset_token"].as_str().expect("a token").to_owned()
}

fn profile_path() -> String {
    uri!(pages::profile_page).to_string()
}

fn login_path_back_to_profile() -> String {
    uri!(pages::login_page(next = Some(SafeNext::from(uri!(pages::profile_page))))).to_string()
}

// Content negotiation of `GET /` and `GET /profile`.

#[test]
fn get_index_answers_json_without_accept_any_and_json() {
    let app = TestApp::new();
    for accept in [None, Some("*/*"), Some("application/json"), Some("application/json, text/html;q=0.9")] {
        let mut request = app.client.get("/");
        if let Some(accept) = accept {
            request = request.header(Header::new("Accept", accept));
        }
        let response = request.dispatch();
        assert_eq!(response.status(), Status::Ok, "{accept:?}");
        assert_eq!(response.content_type(), Some(ContentType::JSON), "{accept:?}");
        assert_eq!(response.into_string().unwrap(), r#"{"message":"Bienvenue"}"#, "{accept:?}");
    }
}

#[test]
fn get_index_answers_html_to_browsers() {
    let app = TestApp::new();
    for accept in [BROWSER_ACCEPT, "text/html"] {
        let response = app.client.get("/").header(Header::new("Accept", accept)).dispatch();
        assert_eq!(response.status(), Status::Ok);
        assert_eq!(response.content_type(), Some(ContentType::HTML));
        let body = response.into_string().unwrap();
        assert!(body.contains(r#"<a class="button" href="/register">Create an account</a>"#), "{body}");
        assert!(body.contains(r#"href="/login">Log in</a>"#), "{body}");
        assert!(!body.contains(r#"href="/profile""#), "{body}");
    }
}

#[test]
fn get_index_html_links_to_the_profile_when_logged_in() {
    let app = logged_in();
    let body = page_body(&app, "/");
    assert!(
        body.contains(&format!("You are logged in as <strong class=\"break\">{EMAIL}</strong>")),
        "{body}"
    );
    assert!(body.contains(r#"<a class="button" href="/profile">Go to your profile</a>"#), "{body}");
    assert!(!body.contains(r#"href="/register""#), "{body}");
}

#[test]
fn get_profile_answers_json_to_api_clients() {
    let app = logged_in();
    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut request = app.client.get("/profile");
        if let Some(accept) = accept {
            request = request.header(Header::new("Accept", accept));
        }
        let response = request.dispatch();
        assert_eq!(response.status(), Status::Ok, "{accept:?}");
        assert_eq!(json(response), j!({ "email": EMAIL }), "{accept:?}");
    }
}

#[test]
fn get_profile_without_session_is_a_json_403_for_api_clients() {
    let app = TestApp::new();
    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut request = app.client.get("/profile");
        if let Some(accept) = accept {
            request = request.header(Header::new("Accept", accept));
        }
        let response = request.dispatch();
        assert_eq!(response.status(), Status::Forbidden, "{accept:?}");
        assert_eq!(response.content_type(), Some(ContentType::JSON));
        assert_eq!(json(response), j!({"message": "forbidden: a valid session is required"}));
    }
}

#[test]
fn get_profile_html_shows_email_creation_date_logout_and_password_form() {
    let app = logged_in();
    let body = page_body(&app, "/profile");
    assert!(body.contains(&format!(r#"<dd class="break">{EMAIL}</dd>"#)), "{body}");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(body.contains("<dt>Member since</dt>") && body.contains(&year), "{body}");
    assert!(body.contains(r#"<form method="post" action="/logout">"#), "{body}");
    assert!(body.contains(r#"action="/password/change""#), "{body}");
    assert!(body.contains(r#"autocomplete="current-password""#), "{body}");
    assert!(body.contains(r#"autocomplete="new-password""#), "{body}");
}

#[test]
fn get_profile_html_without_session_redirects_to_login() {
    let app = TestApp::new();
    let response = page(&app, "/profile");
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response), login_path_back_to_profile());
    assert_eq!(location(&response), "/login?next=/profile");
}

#[test]
fn get_profile_html_with_unknown_session_redirects_to_login() {
    let app = TestApp::new();
    let response = app
        .client
        .get("/profile")
        .header(browser())
        .cookie(rocket::http::Cookie::new("session_id", "not-a-session"))
        .dispatch();
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(location(&response), "/login?next=/profile");
}

#[test]
fn get_profile_logged_out_comes_back_after_login() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let redirect = page(&app, "/profile");
    let login = location(&redirect).to_owned();
    let body = page_body(&app, &login);
    assert!(body.contains(r#"<input type="hidden" name="next" value="&#x2F;profile">"#), "{body}");
    let token = csrf_token(&body);
    let response = post_page(
        &app,
        "/login",
        Some(&token),
        &[("email", EMAIL), ("password", PASSWORD), ("next", "/profile")],
    );
    assert_flash_redirect(&response, "/profile");
    drop(response);
    let body = page_body(&app, "/profile");
    assert!(body.contains("You are logged in."), "{body}");
}

// Registering.

#[test]
fn get_register_renders_a_labelled_form_with_a_csrf_token() {
    let app = TestApp::new();
    let response = page(&app, "/register");
    assert_eq!(response.status(), Status::Ok);
    let cookie = response.cookies().get("csrf").expect("a csrf cookie").clone();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(rocket::http::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    let body = response.into_string().unwrap();
    assert_eq!(csrf_token(&body).len(), 43);
    assert!(body.contains(r#"<label class="field__label" for="email">Email</label>"#), "{body}");
    assert!(body.contains(r#"<label class="field__label" for="password">Password</label>"#), "{body}");
    assert!(body.contains(r#"autocomplete="email""#), "{body}");
    assert!(body.contains(r#"autocomplete="new-password""#), "{body}");
    assert!(body.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
}

#[test]
fn post_register_creates_the_account_logs_in_and_flashes_once() {
    let app = TestApp::new();
    let response = submit(&app, "/register", "/register", &[("email", EMAIL), ("password", PASSWORD)]);
    assert_flash_redirect(&response, &profile_path());
    assert!(response.cookies().get("session_id").is_some(), "logged in");
    drop(response);
    let body = page_body(&app, "/profile");
    assert!(body.contains(r#"<div class="flash flash--success" role="status">"#), "{body}");
    assert!(body.contains("Welcome! Your account is ready."), "{body}");
    let again = page_body(&app, "/profile");
    assert!(!again.contains("Welcome! Your account is ready."), "the flash shows once");
    assert!(!again.contains("class=\"flash"), "{again}");
}

#[test]
fn get_pages_with_a_flash_cookie_cut_inside_a_character_render_without_it() {
    // Rocket's flash guard cuts the value at its byte-length prefix; inside `é` it would panic.
    let app = TestApp::new();
    for uri in ["/", "/login", "/register", "/password/forgot"] {
        for value in ["1:é", "2:aé", "1:%C3%A9"] {
            let cookie = rocket::http::Cookie::parse_encoded(format!("_flash={value}")).expect("a cookie");
            let response = app.client.get(uri).header(browser()).cookie(cookie).dispatch();
            assert_eq!(response.status(), Status::Ok, "GET {uri} with _flash={value}");
            let removal = response.cookies().get("_flash").map(|cookie| cookie.value().to_owned());
            assert_eq!(removal.as_deref(), Some(""), "the cookie is removed");
            let body = response.into_string().expect("a body");
            assert!(!body.contains("class=\"flash"), "{body}");
        }
    }
    // A well-formed flash cookie still shows.
    let cookie = rocket::http::Cookie::new("_flash", "7:successHello é");
    let body = app.client.get("/login").header(browser()).cookie(cookie).dispatch().into_string().unwrap();
    assert!(body.contains("Hello é"), "{body}");
}

#[test]
fn post_page_forms_with_a_field_named_equals_answer_instead_of_hanging() {
    // A decoded field name that starts with `=` made Rocket's form context loop forever. The
    // app lives in its own thread, so a hang fails this test instead of stalling the suite.
    let (sender, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let app = TestApp::new();
        app.with_user();
        for (page_uri, action) in
            [("/login", "/login"), ("/register", "/register"), ("/profile", "/password/change")]
        {
            for name in ["=", "email.=", "a[=]"] {
                let token = csrf_token(&page_body(&app, page_uri));
                // `form` leaves names as they are; this one is sent percent-encoded (`%3D`).
                let body = format!("{}=x&csrf_token={}", encode(name), encode(&token));
                let request = app.client.post(action).header(browser()).header(ContentType::Form);
                let response = request.body(body).dispatch();
                let _ = sender.send((action, name, response.status()));
            }
        }
    });
    for _ in 0..9 {
        let answer = answers.recv_timeout(std::time::Duration::from_secs(30));
        let (action, name, status) = answer.expect("an answer within 30 s");
        assert_eq!(status, Status::UnprocessableEntity, "POST {action} with a field named {name:?}");
    }
}

#[test]
fn post_register_taken_email_keeps_the_email_and_shows_the_error_by_the_field() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = submit(&app, "/register", "/register", &[("email", EMAIL), ("password", "other")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    assert_eq!(response.content_type(), Some(ContentType::HTML));
    let body = response.into_string().unwrap();
    assert!(body.contains(&format!(r#"value="{EMAIL}""#)), "{body}");
    assert!(
        body.contains(r#"<p class="field__error" id="email-error"><span class="visually-hidden">Error: </span>An account with this email already exists. Log in instead?</p>"#),
        "{body}"
    );
    assert!(body.contains(r#"aria-describedby="email-error" aria-invalid="true" autofocus"#), "{body}");
}

#[test]
fn post_register_invalid_fields_rerender_with_messages() {
    let app = TestApp::new();
    let response = submit(&app, "/register", "/register", &[("email", "bob"), ("password", "")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(body.contains(r#"value="bob""#), "{body}");
    assert!(body.contains("Email must look like name@example.com."), "{body}");
    assert!(body.contains("Password is required."), "{body}");
    assert!(body.contains(r#"aria-describedby="password-error password-hint""#), "{body}");
    assert_eq!(api_login_status(&app, "bob", ""), Status::BadRequest);
}

#[test]
fn post_register_escapes_what_the_user_typed() {
    let app = TestApp::new();
    let response = submit(&app, "/register", "/register", &[("email", r#"<b>"@x.io"#), ("password", "")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(!body.contains("<b>"), "{body}");
    assert!(body.contains(r#"value="&lt;b&gt;&quot;@x.io""#), "{body}");
}

#[test]
fn post_register_without_csrf_token_is_403_and_creates_nothing() {
    let app = TestApp::new();
    page_body(&app, "/register");
    let response = post_page(&app, "/register", None, &[("email", EMAIL), ("password", PASSWORD)]);
    assert_csrf_refused(response);
    assert!(app.client.cookies().get("session_id").is_none());
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Unauthorized);
}

#[test]
fn post_register_with_a_wrong_or_foreign_csrf_token_is_403() {
    let app = TestApp::new();
    let other = TestApp::new();
    let foreign = csrf_token(&page_body(&other, "/register"));
    page_body(&app, "/register");
    for token in [foreign.as_str(), "", "AAAA", "not a token"] {
        let response = post_page(&app, "/register", Some(token), &[("email", EMAIL), ("password", PASSWORD)]);
        assert_csrf_refused(response);
    }
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Unauthorized);
}

#[test]
fn post_register_csrf_refusal_is_json_for_api_clients() {
    let app = TestApp::new();
    let response = app
        .client
        .post("/register")
        .header(ContentType::Form)
        .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
        .dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(
        json(response),
        j!({"message": "invalid CSRF token: reload the page and submit the form again"})
    );
}

#[test]
fn post_register_csrf_token_counts_only_with_its_cookie() {
    let database = TestDatabase::new();
    // Untracked: the client sends only the cookies each request names.
    let client =
        Client::untracked(auth_service::build(test_figment(&database))).expect("the service launches");
    let response = client.get("/register").header(browser()).dispatch();
    let cookie = response.cookies().get("csrf").expect("a csrf cookie").clone().into_owned();
    let token = csrf_token(&response.into_string().unwrap());
    let body = form(&[("csrf_token", &token), ("email", EMAIL), ("password", PASSWORD)]);
    let post = || client.post("/register").header(browser()).header(ContentType::Form).body(&body);

    assert_csrf_refused(post().dispatch());
    assert_csrf_refused(post().cookie(rocket::http::Cookie::new("csrf", "another-nonce")).dispatch());
    let response = post().cookie(cookie).dispatch();
    assert_eq!(response.status(), Status::SeeOther, "the token and its cookie together pass");
}

// Logging in.

#[test]
fn get_login_keeps_a_safe_next_and_drops_an_unsafe_one() {
    let app = TestApp::new();
    let body = page_body(&app, "/login?next=/profile");
    assert!(body.contains(r#"<input type="hidden" name="next" value="&#x2F;profile">"#), "{body}");
    for unsafe_next in ["//evil.example", "https://evil.example", "/%5Cevil.example", "javascript:alert(1)"] {
        let body = page_body(&app, &format!("/login?next={unsafe_next}"));
        assert!(!body.contains(r#"name="next""#), "{unsafe_next}: {body}");
    }
}

#[test]
fn post_login_logs_in_and_redirects_to_the_profile_with_a_flash() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let response = submit(&app, "/login", "/login", &[("email", EMAIL), ("password", PASSWORD)]);
    assert_flash_redirect(&response, &profile_path());
    assert!(response.cookies().get("session_id").is_some());
    drop(response);
    let body = page_body(&app, "/profile");
    assert!(body.contains("You are logged in."), "{body}");
}

#[test]
fn post_login_goes_to_a_safe_next_path() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let fields = [("email", EMAIL), ("password", PASSWORD), ("next", "/password/forgot?x=1")];
    let response = submit(&app, "/login", "/login", &fields);
    assert_flash_redirect(&response, "/password/forgot?x=1");
}

#[test]
fn post_login_refuses_an_open_redirect() {
    for next in
        ["https://evil.example/", "//evil.example", "/\\evil.example", "http:/evil", "/\t/evil.example"]
    {
        let app = TestApp::new();
        app.register(EMAIL, PASSWORD);
        let response =
            submit(&app, "/login", "/login", &[("email", EMAIL), ("password", PASSWORD), ("next", next)]);
        assert_flash_redirect(&response, &profile_path());
    }
}

#[test]
fn post_login_wrong_password_or_unknown_email_gets_one_neutral_message() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    for (email, password) in [(EMAIL, "wrong"), ("nobody@example.com", PASSWORD)] {
        let response = submit(
            &app,
            "/login?next=/profile",
            "/login",
            &[("email", email), ("password", password), ("next", "/profile")],
        );
        assert_eq!(response.status(), Status::Unauthorized);
        assert!(response.cookies().get("session_id").is_none());
        let body = response.into_string().unwrap();
        assert!(
            body.contains(r#"<div class="alert alert--error" id="login-error" role="alert"><p>Wrong email or password.</p></div>"#),
            "{body}"
        );
        assert!(body.contains(&format!(r#"value="{email}""#)), "{body}");
        assert!(body.contains(r#"aria-describedby="login-error""#), "{body}");
        assert!(body.contains(r#"<input type="hidden" name="next" value="&#x2F;profile">"#), "{body}");
        assert!(!body.contains(password), "the password is not echoed");
    }
}

#[test]
fn post_login_missing_fields_rerender_with_messages() {
    let app = TestApp::new();
    let response = submit(&app, "/login", "/login", &[("email", ""), ("password", "")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(body.contains("Email is required."), "{body}");
    assert!(body.contains("Password is required."), "{body}");
}

#[test]
fn post_login_without_csrf_token_is_403_and_logs_nobody_in() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    page_body(&app, "/login");
    let response = post_page(&app, "/login", None, &[("email", EMAIL), ("password", PASSWORD)]);
    assert!(response.cookies().get("session_id").is_none());
    assert_csrf_refused(response);
}

// Logging out.

#[test]
fn post_logout_ends_the_session_and_flashes_on_the_home_page() {
    let app = logged_in();
    let response = submit(&app, "/profile", "/logout", &[]);
    assert_flash_redirect(&response, "/");
    drop(response);
    let body = page_body(&app, "/");
    assert!(body.contains("You have been logged out."), "{body}");
    assert!(body.contains(r#"href="/login">Log in</a>"#), "{body}");
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);
}

#[test]
fn post_logout_without_csrf_token_is_403_and_keeps_the_session() {
    let app = logged_in();
    page_body(&app, "/profile");
    assert_csrf_refused(post_page(&app, "/logout", None, &[]));
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok);
}

#[test]
fn post_logout_after_the_session_ended_still_goes_home() {
    let app = TestApp::new();
    let session = app.with_user();
    let token = csrf_token(&page_body(&app, "/profile"));
    // The session ends on the server (here through the API), while the page still has its form.
    assert_eq!(app.client.delete("/sessions").dispatch().status(), Status::SeeOther);
    let response = app
        .client
        .post("/logout")
        .header(browser())
        .header(ContentType::Form)
        .cookie(session)
        .body(form(&[("csrf_token", &token)]))
        .dispatch();
    assert_flash_redirect(&response, "/");
}

// Changing the password.

#[test]
fn post_password_change_sets_the_new_password() {
    let app = logged_in();
    let fields = [("current_password", PASSWORD), ("new_password", "n3w-passphrase")];
    let response = submit(&app, "/profile", "/password/change", &fields);
    assert_flash_redirect(&response, &profile_path());
    drop(response);
    assert!(page_body(&app, "/profile")
        .contains("Your password has been changed. Every other session has ended."));
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Unauthorized);
    assert_eq!(api_login_status(&app, EMAIL, "n3w-passphrase"), Status::Ok);
}

#[test]
fn post_password_change_ends_every_other_session_and_keeps_this_one() {
    let app = TestApp::new();
    let other_device = app.with_user();
    let this_device = app.login(EMAIL, PASSWORD);
    let fields = [("current_password", PASSWORD), ("new_password", "n3w-passphrase")];
    let response = submit(&app, "/profile", "/password/change", &fields);
    assert_flash_redirect(&response, &profile_path());
    drop(response);
    let left = app.with_db(|conn| sessions::table.select(sessions::token_hash).load::<String>(conn).unwrap());
    assert_eq!(left, vec![token_digest(this_device.value())]);
    assert_ne!(token_digest(other_device.value()), left[0]);
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok, "this session goes on");
}

#[test]
fn post_password_change_wrong_current_password_is_a_form_error() {
    let app = logged_in();
    let fields = [("current_password", "wrong"), ("new_password", "n3w-passphrase")];
    let response = submit(&app, "/profile", "/password/change", &fields);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(
        body.contains(r#"<p class="field__error" id="current_password-error"><span class="visually-hidden">Error: </span>Current password is not correct.</p>"#),
        "{body}"
    );
    assert!(body.contains(r#"aria-describedby="current_password-error" aria-invalid="true""#), "{body}");
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Ok);
}

#[test]
fn post_password_change_empty_new_password_is_a_form_error() {
    let app = logged_in();
    let response = submit(&app, "/profile", "/password/change", &[("current_password", PASSWORD)]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    assert!(response.into_string().unwrap().contains("New password is required."));
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Ok);
}

#[test]
fn post_password_change_without_csrf_token_is_403_and_changes_nothing() {
    let app = logged_in();
    page_body(&app, "/profile");
    let fields = [("current_password", PASSWORD), ("new_password", "n3w-passphrase")];
    assert_csrf_refused(post_page(&app, "/password/change", None, &fields));
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Ok);
    assert_eq!(api_login_status(&app, EMAIL, "n3w-passphrase"), Status::Unauthorized);
}

#[test]
fn post_password_change_without_session_goes_back_through_login() {
    let app = TestApp::new();
    let token = csrf_token(&page_body(&app, "/login"));
    let fields = [("current_password", PASSWORD), ("new_password", "n3w-passphrase")];
    let response = post_page(&app, "/password/change", Some(&token), &fields);
    assert_flash_redirect(&response, "/login?next=/profile");
}

// Forgotten passwords.

#[test]
fn get_password_forgot_renders_the_form() {
    let app = TestApp::new();
    let body = page_body(&app, "/password/forgot");
    assert!(body.contains(r#"<form class="form" method="post" action="/password/forgot" novalidate>"#));
    assert!(body.contains(r#"<label class="field__label" for="email">Email</label>"#));
}

#[test]
fn post_password_forgot_says_the_same_whether_or_not_the_account_exists() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let mut pages = Vec::new();
    for email in [EMAIL, "nobody@example.com"] {
        let response = submit(&app, "/password/forgot", "/password/forgot", &[("email", email)]);
        assert_flash_redirect(&response, "/password/forgot");
        drop(response);
        let body = page_body(&app, "/password/forgot");
        let token = csrf_token(&body);
        pages.push(body.replace(&token, "TOKEN"));
    }
    assert!(pages[0].contains(RESET_LINK_SENT), "{}", pages[0]);
    assert_eq!(pages[0], pages[1]);
}

#[test]
fn post_password_forgot_invalid_email_is_a_form_error() {
    let app = TestApp::new();
    let response = submit(&app, "/password/forgot", "/password/forgot", &[("email", "not-an-email")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(body.contains("Email must look like name@example.com."), "{body}");
    assert!(body.contains(r#"value="not-an-email""#), "{body}");
}

#[test]
fn post_password_forgot_without_csrf_token_is_403() {
    let app = TestApp::new();
    page_body(&app, "/password/forgot");
    assert_csrf_refused(post_page(&app, "/password/forgot", None, &[("email", EMAIL)]));
}

// Resetting the password with a token.

#[test]
fn get_password_reset_valid_token_shows_the_form_without_using_the_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = reset_token(&app);
    for _ in 0..2 {
        let body = page_body(&app, &format!("/password/reset?token={token}"));
        assert!(body.contains("<h1>Choose a new password</h1>"), "{body}");
        assert!(body.contains(&format!(r#"<input type="hidden" name="token" value="{token}">"#)), "{body}");
        assert!(body.contains(r#"autocomplete="new-password""#), "{body}");
    }
    let body = form(&[("email", EMAIL), ("reset_token", &token), ("new_password", "t4rt1fl3tt3")]);
    assert_eq!(app.put_form("/reset_password", &body).status(), Status::Ok);
}

#[test]
fn get_password_reset_invalid_or_missing_token_says_so() {
    let app = TestApp::new();
    for uri in ["/password/reset?token=nope", "/password/reset", "/password/reset?token="] {
        let response = page(&app, uri);
        assert_eq!(response.status(), Status::Forbidden, "{uri}");
        let body = response.into_string().unwrap();
        assert!(body.contains("<h1>This reset link does not work</h1>"), "{body}");
        assert!(body.contains("The link is invalid, has expired, or has already been used."), "{body}");
        assert!(!body.contains("name=\"new_password\""), "{body}");
    }
}

#[test]
fn post_password_reset_sets_the_password_once_and_sends_to_login() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = reset_token(&app);
    let uri = format!("/password/reset?token={token}");
    let fields = [("token", token.as_str()), ("new_password", "t4rt1fl3tt3")];
    let response = submit(&app, &uri, "/password/reset", &fields);
    assert_flash_redirect(&response, "/login");
    drop(response);
    assert!(
        page_body(&app, "/login").contains("Your password has been reset. Log in with your new password.")
    );
    assert_eq!(api_login_status(&app, EMAIL, "t4rt1fl3tt3"), Status::Ok);
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Unauthorized);

    // The token is used up: the page says so, and posting it again changes nothing.
    let response = page(&app, &uri);
    assert_eq!(response.status(), Status::Forbidden);
    drop(response);
    let csrf = csrf_token(&page_body(&app, "/login"));
    let again = post_page(&app, "/password/reset", Some(&csrf), &[("token", &token), ("new_password", "x")]);
    assert_eq!(again.status(), Status::Forbidden);
    assert!(again
        .into_string()
        .unwrap()
        .contains("The link is invalid, has expired, or has already been used."));
    assert_eq!(api_login_status(&app, EMAIL, "t4rt1fl3tt3"), Status::Ok);
}

#[test]
fn post_password_reset_empty_password_rerenders_the_form() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = reset_token(&app);
    let uri = format!("/password/reset?token={token}");
    let response = submit(&app, &uri, "/password/reset", &[("token", &token), ("new_password", "")]);
    assert_eq!(response.status(), Status::UnprocessableEntity);
    let body = response.into_string().unwrap();
    assert!(body.contains("New password is required."), "{body}");
    assert!(body.contains(&format!(r#"name="token" value="{token}""#)), "{body}");
    assert_eq!(page(&app, &uri).status(), Status::Ok, "the token still works");
}

#[test]
fn post_password_reset_without_csrf_token_is_403_and_keeps_the_token() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let token = reset_token(&app);
    let uri = format!("/password/reset?token={token}");
    page_body(&app, &uri);
    let response = post_page(&app, "/password/reset", None, &[("token", &token), ("new_password", "x")]);
    assert_csrf_refused(response);
    assert_eq!(page(&app, &uri).status(), Status::Ok);
    assert_eq!(api_login_status(&app, EMAIL, PASSWORD), Status::Ok);
}

// Error pages and static files.

#[test]
fn get_unknown_page_is_an_html_404_for_browsers_and_json_for_others() {
    let app = TestApp::new();
    let response = page(&app, "/nowhere");
    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(response.content_type(), Some(ContentType::HTML));
    let body = response.into_string().unwrap();
    assert!(body.contains("<h1>Page not found</h1>"), "{body}");
    assert!(body.contains(r#"<a class="button" href="/">Go to the home page</a>"#), "{body}");

    let response = app.client.get("/nowhere").header(Accept::Any).dispatch();
    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(json(response), j!({"message": "not found"}));
}

#[rocket::get("/boom")]
fn boom() -> ApiResult<()> {
    Err(Error::Internal("secret detail".into()))
}

#[rocket::get("/busy")]
fn busy() -> ApiResult<()> {
    Err(Error::Unavailable("pool timed out".into()))
}

fn client_with_failing_routes() -> (Client, TestDatabase) {
    let database = TestDatabase::new();
    let rocket = auth_service::build(test_figment(&database)).mount("/test", rocket::routes![boom, busy]);
    (Client::tracked(rocket).expect("the service launches"), database)
}

#[test]
fn get_failing_page_is_an_html_500_for_browsers_and_json_for_others() {
    let (client, _database) = client_with_failing_routes();
    let response = client.get("/test/boom").header(browser()).dispatch();
    assert_eq!(response.status(), Status::InternalServerError);
    assert_eq!(response.content_type(), Some(ContentType::HTML));
    let body = response.into_string().unwrap();
    assert!(body.contains("<h1>Something went wrong</h1>"), "{body}");
    assert!(!body.contains("secret detail"), "{body}");

    let response = client.get("/test/boom").dispatch();
    assert_eq!(response.status(), Status::InternalServerError);
    assert_eq!(json(response), j!({"message": "internal server error"}));
}

#[test]
fn get_unavailable_page_is_an_html_503_for_browsers() {
    let (client, _database) = client_with_failing_routes();
    let response = client.get("/test/busy").header(browser()).dispatch();
    assert_eq!(response.status(), Status::ServiceUnavailable);
    let body = response.into_string().unwrap();
    assert!(body.contains("<h1>Service unavailable</h1>"), "{body}");
    assert!(!body.contains("pool timed out"), "{body}");
}

#[test]
fn get_static_stylesheet_and_logo_are_served() {
    let app = TestApp::new();
    let response = app.client.get("/static/style.css").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::CSS));
    let response = app.client.get("/static/logo.svg").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::SVG));
}

// The sessions on the profile page.

#[test]
fn get_profile_lists_every_session_and_marks_this_one() {
    let app = TestApp::new();
    app.with_user();
    app.client
        .post("/sessions")
        .header(ContentType::Form)
        .header(Header::new("User-Agent", "Other-Phone/2.0"))
        .body(form(&[("email", EMAIL), ("password", PASSWORD)]))
        .dispatch();
    let body = page_body(&app, "/profile");
    assert_eq!(body.matches(r#"class="sessions__item""#).count(), 2, "{body}");
    assert_eq!(body.matches("This device").count(), 1, "{body}");
    assert!(body.contains("Log out everywhere else"), "{body}");
    // The browser's own session has no End button: only the other one has.
    assert_eq!(body.matches(r#"action="/profile/sessions/end""#).count(), 1, "{body}");
}

#[test]
fn post_profile_sessions_end_cannot_end_another_users_session() {
    let app = TestApp::new();
    app.register("other@example.com", PASSWORD);
    app.login("other@example.com", PASSWORD);
    let others = app.with_db(|conn| sessions::table.select(sessions::id).load::<i32>(conn).unwrap());
    app.with_user();
    let token = csrf_token(&page_body(&app, "/profile"));
    let response =
        post_page(&app, "/profile/sessions/end", Some(&token), &[("session", &others[0].to_string())]);
    assert_flash_redirect(&response, &profile_path());
    drop(response);
    assert!(page_body(&app, "/profile").contains("That session had already ended."));
    let left = app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap());
    assert_eq!(left, 2, "the other user's session is still there");
}

#[test]
fn post_profile_sessions_end_others_without_csrf_token_is_403_and_ends_nothing() {
    let app = TestApp::new();
    app.with_user();
    app.login(EMAIL, PASSWORD);
    page_body(&app, "/profile");
    assert_csrf_refused(post_page(&app, "/profile/sessions/end-others", None, &[]));
    let left = app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap());
    assert_eq!(left, 2);
}

#[test]
fn post_profile_sessions_end_without_csrf_token_is_403_and_ends_nothing() {
    let app = TestApp::new();
    let other = app.with_user();
    app.login(EMAIL, PASSWORD);
    page_body(&app, "/profile");
    let id = app.with_db(move |conn| {
        sessions::table
            .filter(sessions::token_hash.eq(token_digest(other.value())))
            .select(sessions::id)
            .first::<i32>(conn)
            .unwrap()
    });
    assert_csrf_refused(post_page(&app, "/profile/sessions/end", None, &[("session", &id.to_string())]));
    let left = app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap());
    assert_eq!(left, 2);
}
