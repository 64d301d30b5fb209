//! Property tests: every form endpoint of the JSON API and every page form, driven through
//! Rocket's local client with arbitrary input (unicode, NUL and control characters, values past
//! the 16 KiB form limit, duplicate and missing fields, wrong content types, broken
//! percent-encoding and multipart bodies, garbage cookies).
//!
//! What must hold whatever the input: no 5xx (a panicking handler would answer 500), every API
//! answer is JSON and every API error is exactly `{"message": "..."}`, a page POST without a
//! valid CSRF token changes nothing, and a wrong password never gets a session.
//!
//! Each property builds one app (one database) and runs all its cases against it. Case counts:
//! the plain `cargo test --test properties` runs 1,500 cases in all; `AUTH_PROPTEST_FULL=1`
//! runs seven times as many (10,500); `PROPTEST_CASES=N` gives every property N cases.

mod common;

use std::cell::Cell;
use std::fmt::Debug;
use std::time::Instant;

use auth_service::user::{sessions, users};
use common::{encode, TestApp, EMAIL, PASSWORD};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rocket::http::{ContentType, Cookie, Header, Method, Status, StatusClass};
use rocket::local::blocking::{Client, LocalResponse};

/// How many times the default case counts `AUTH_PROPTEST_FULL=1` runs.
const FULL_FACTOR: u32 = 7;

/// What Chromium sends for a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

/// The multipart boundary of the bodies built here.
const BOUNDARY: &str = "proptest-boundary-7f3a";

/// A second account whose password is longer than the 72 bytes bcrypt reads, with multi-byte
/// characters: a wrong password sharing its first 72 bytes must still be refused.
const LONG_EMAIL: &str = "zoë.long@exämple.de";
const LONG_PASSWORD: &str = "ünïcødé pässwörd 🔑 that goes on well past seventy-two bytes of input, ok?";

// Running properties.

/// The case count of a property whose default is `default`, after the switches above.
fn case_count(default: u32) -> u32 {
    if let Some(cases) = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()) {
        return cases;
    }
    match std::env::var("AUTH_PROPTEST_FULL").as_deref() {
        Ok("1") => default * FULL_FACTOR,
        _ => default,
    }
}

/// Runs `test` on `cases` (before the switches) values of `strategy` and fails with the
/// shrunk counterexample. No regression files are written: a failure found here becomes a
/// named test in the file of the module it concerns.
fn check<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = case_count(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        max_shrink_time: 20_000,
        ..Config::default()
    };
    let started = Instant::now();
    if let Err(error) = TestRunner::new(config).run(&strategy, test) {
        panic!("{name}: {error}");
    }
    eprintln!("{name}: {cases} cases in {:.1} s", started.elapsed().as_secs_f64());
}

// Strategies for field values, names, bodies and cookies.

/// Text for a form field: arbitrary unicode (NUL and control characters included), the
/// characters forms give a meaning to, plausible emails, the known credentials, nothing, and
/// values around and far beyond the length limits.
fn field_value() -> BoxedStrategy<String> {
    let special = prop_oneof![
        any::<char>(),
        (0u8..0x20).prop_map(char::from),
        prop::sample::select(vec!['%', '&', '=', '+', '@', ';', '"', '\r', '\n', '\u{7f}', '\u{feff}']),
    ];
    prop_oneof![
        4 => any::<String>(),
        3 => prop::collection::vec(special, 0..24).prop_map(String::from_iter),
        3 => "[a-zA-Z0-9._%+-]{1,12}@[a-z0-9.-]{1,12}",
        1 => Just(EMAIL.to_owned()),
        1 => Just(PASSWORD.to_owned()),
        1 => Just(String::new()),
        1 => (1015usize..1035).prop_map(|n| "p".repeat(n)),
        1 => huge_value(),
    ]
    .boxed()
}

/// One character repeated from 1,000 to 80,000 times: below and above the 16 KiB form limit
/// (and the 64 KiB multipart limit) once encoded.
fn huge_value() -> impl Strategy<Value = String> {
    let fill = prop_oneof![Just('a'), Just('€'), Just('\0'), Just('%'), Just('&'), any::<char>()];
    (1_000usize..80_000, fill).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect())
}

/// A field name: mostly one the endpoint knows, sometimes an unknown or nested one
/// (Rocket reads `a.b` and `a[b]` as nested fields), sometimes anything.
fn field_name(known: &'static [&'static str]) -> BoxedStrategy<String> {
    let nested =
        ["email.x", "email[]", "email[0]", "password.", ".password", "[", "]", "email[a][b]", "=", ""];
    prop_oneof![
        8 => prop::sample::select(known).prop_map(str::to_owned),
        1 => prop::sample::select(nested.to_vec()).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Fields in any order, any may be missing or repeated.
fn fields(known: &'static [&'static str]) -> BoxedStrategy<Vec<(String, String)>> {
    prop::collection::vec((field_name(known), field_value()), 0..7).boxed()
}

/// How the fields travel.
#[derive(Debug, Clone)]
enum Encoding {
    /// `application/x-www-form-urlencoded`, each name and value percent-encoded, with raw
    /// pieces (broken escapes, stray separators) spliced in between the fields.
    Urlencoded { junk: Vec<(Index, &'static str)> },
    /// `multipart/form-data`, well-formed or broken in one way.
    Multipart(MultipartShape),
    /// Bytes that are neither.
    Raw(Vec<u8>),
}

/// The ways a multipart body is broken.
#[derive(Debug, Clone, Copy)]
enum MultipartShape {
    Valid,
    /// Cut off after this many thousandths of its length.
    Truncated(u16),
    NoClosingBoundary,
    NoDisposition,
    /// Bare `\n` line ends instead of `\r\n`.
    BareLineFeeds,
    /// A part that says it is a file upload.
    FilePart,
}

/// Raw pieces of a broken urlencoded body.
const JUNK: &[&str] = &[
    "%",
    "%z",
    "%4",
    "%zz",
    "%%",
    "%C3",
    "%E2%82",
    "%FF%FE",
    "%00",
    "=%",
    "==",
    "&&",
    "&=&",
    "email=%C3",
    "a=%G1",
    "+",
    "%2",
    ";",
    "\0",
];

fn encoding() -> BoxedStrategy<Encoding> {
    let shape = prop_oneof![
        4 => Just(MultipartShape::Valid),
        1 => (0u16..1000).prop_map(MultipartShape::Truncated),
        1 => Just(MultipartShape::NoClosingBoundary),
        1 => Just(MultipartShape::NoDisposition),
        1 => Just(MultipartShape::BareLineFeeds),
        1 => Just(MultipartShape::FilePart),
    ];
    prop_oneof![
        6 => prop::collection::vec((any::<Index>(), prop::sample::select(JUNK)), 0..3)
            .prop_map(|junk| Encoding::Urlencoded { junk }),
        3 => shape.prop_map(Encoding::Multipart),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Encoding::Raw),
    ]
    .boxed()
}

/// The Content-Type header sent: mostly the one that matches the body.
#[derive(Debug, Clone)]
enum ContentTypeChoice {
    Matching,
    Missing,
    /// A fixed wrong one: JSON, plain text, multipart without (or with another) boundary...
    Wrong(&'static str),
    Garbage(String),
}

fn content_type_choice() -> BoxedStrategy<ContentTypeChoice> {
    let wrong = [
        "application/json",
        "text/plain",
        "multipart/form-data",
        "multipart/form-data; boundary=another-boundary",
        "application/x-www-form-urlencoded; charset=utf-16",
        "application/octet-stream",
        "text/html",
    ];
    prop_oneof![
        8 => Just(ContentTypeChoice::Matching),
        1 => Just(ContentTypeChoice::Missing),
        2 => prop::sample::select(wrong.to_vec()).prop_map(ContentTypeChoice::Wrong),
        1 => header_value().prop_map(ContentTypeChoice::Garbage),
    ]
    .boxed()
}

/// A request body: fields, how they are encoded and the Content-Type that comes with them.
#[derive(Debug, Clone)]
struct Body {
    fields: Vec<(String, String)>,
    encoding: Encoding,
    content_type: ContentTypeChoice,
}

impl Body {
    /// The Content-Type header (if any) and the bytes.
    fn render(&self) -> (Option<String>, Vec<u8>) {
        let (matching, bytes) = match &self.encoding {
            Encoding::Urlencoded { junk } => (ContentType::Form.to_string(), urlencoded(&self.fields, junk)),
            Encoding::Multipart(shape) => {
                (format!("multipart/form-data; boundary={BOUNDARY}"), multipart(&self.fields, *shape))
            }
            Encoding::Raw(bytes) => (ContentType::Form.to_string(), bytes.clone()),
        };
        let content_type = match &self.content_type {
            ContentTypeChoice::Matching => Some(matching),
            ContentTypeChoice::Missing => None,
            ContentTypeChoice::Wrong(value) => Some((*value).to_owned()),
            ContentTypeChoice::Garbage(value) => Some(value.clone()),
        };
        (content_type, bytes)
    }
}

fn body(known: &'static [&'static str]) -> BoxedStrategy<Body> {
    (fields(known), encoding(), content_type_choice())
        .prop_map(|(fields, encoding, content_type)| Body { fields, encoding, content_type })
        .boxed()
}

fn urlencoded(fields: &[(String, String)], junk: &[(Index, &str)]) -> Vec<u8> {
    let mut pieces: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect();
    for (at, raw) in junk {
        let at = at.index(pieces.len() + 1);
        pieces.insert(at, (*raw).to_owned());
    }
    pieces.join("&").into_bytes()
}

fn multipart(fields: &[(String, String)], shape: MultipartShape) -> Vec<u8> {
    let eol = match shape {
        MultipartShape::BareLineFeeds => "\n",
        _ => "\r\n",
    };
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{BOUNDARY}{eol}"));
        match shape {
            MultipartShape::NoDisposition => {}
            MultipartShape::FilePart => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"f.txt\"{eol}\
                 Content-Type: text/plain{eol}"
            )),
            _ => body.push_str(&format!("Content-Disposition: form-data; name=\"{name}\"{eol}")),
        }
        body.push_str(&format!("{eol}{value}{eol}"));
    }
    if !matches!(shape, MultipartShape::NoClosingBoundary) {
        body.push_str(&format!("--{BOUNDARY}--{eol}"));
    }
    let mut bytes = body.into_bytes();
    if let MultipartShape::Truncated(thousandths) = shape {
        bytes.truncate(bytes.len() * usize::from(thousandths) / 1000);
    }
    bytes
}

/// A header value as HTTP can carry it: no control characters but tab (hyper refuses the rest
/// before Rocket sees them), any other unicode (Rocket keeps UTF-8 values).
fn header_value() -> BoxedStrategy<String> {
    any::<String>()
        .prop_map(|value| value.chars().filter(|c| *c == '\t' || !c.is_control()).collect())
        .boxed()
}

/// A `Cookie` header: the cookies the service reads (`session_id`, `csrf`, Rocket's `_flash`)
/// and others, with garbage values, flash-shaped ones (`<length>:<text>`) included.
fn cookie_header() -> BoxedStrategy<String> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["session_id", "csrf", "_flash"]).prop_map(str::to_owned),
        1 => "[!-~]{0,10}",
        1 => header_value(),
    ];
    let value = prop_oneof![
        3 => header_value(),
        // Rocket's flash format: the length of the kind, a colon, the kind and the message.
        2 => (flash_text(), any::<Index>()).prop_map(|(text, n)| format!("{}:{text}", n.index(text.len() + 2))),
        1 => "[A-Za-z0-9_-]{43}",
        1 => "(%[0-9A-Fa-f]{0,2}){1,6}",
        1 => huge_value().prop_map(|value| value.chars().filter(|c| !c.is_control()).collect()),
    ];
    prop::collection::vec((name, value), 0..4)
        .prop_map(|pairs| pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; "))
        .boxed()
}

/// Short text of one- to four-byte characters, so that a length in bytes can fall inside one.
fn flash_text() -> BoxedStrategy<String> {
    let c = prop_oneof![
        "[a-z]".prop_map(|s| s.chars().next().unwrap_or('a')),
        prop::sample::select(vec!['é', '€', '🔑', 'ß', '\u{7ff}', '\u{10ffff}']),
        any::<char>().prop_filter("no control character", |c| !c.is_control() && *c != ';' && *c != '%'),
    ];
    prop::collection::vec(c, 0..8).prop_map(String::from_iter).boxed()
}

/// The cookies a server reads from `header`, the way Rocket parses a real request's `Cookie`
/// header (the local client takes cookies, not that header).
fn parse_cookie_header(header: &str) -> Vec<Cookie<'static>> {
    header.split(';').map(str::trim).filter_map(|raw| Cookie::parse_encoded(raw.to_owned()).ok()).collect()
}

// Sending requests and reading answers.

/// Sends `body` (or none) with the given cookies and Accept header.
fn send<'c>(
    client: &'c Client,
    method: Method,
    uri: &str,
    body: Option<&Body>,
    cookies: &str,
    accept: Option<&str>,
) -> LocalResponse<'c> {
    let mut request = client.req(method, uri.to_owned()).cookies(parse_cookie_header(cookies));
    if let Some(accept) = accept {
        request = request.header(Header::new("Accept", accept.to_owned()));
    }
    if let Some(body) = body {
        let (content_type, bytes) = body.render();
        if let Some(content_type) = content_type {
            request = request.header(Header::new("Content-Type", content_type));
        }
        request = request.body(bytes);
    }
    request.dispatch()
}

/// The status after the checks every response passes: not a server error, and a redirect
/// has somewhere to go.
fn checked_status(response: &LocalResponse<'_>, what: &str) -> Result<Status, TestCaseError> {
    let status = response.status();
    prop_assert!(status.class() != StatusClass::ServerError, "{what}: {status}");
    if status.class() == StatusClass::Redirection {
        prop_assert!(response.headers().get_one("Location").is_some(), "{what}: {status} without Location");
    }
    Ok(status)
}

/// Checks an API answer: one of the contract's statuses, a JSON body (redirects aside), and
/// for an error exactly `{"message": "<something>"}`. Returns the status.
fn check_api_answer(response: LocalResponse<'_>, what: &str) -> Result<Status, TestCaseError> {
    let status = checked_status(&response, what)?;
    prop_assert!([200, 303, 400, 401, 403, 413, 429].contains(&status.code), "{what}: unexpected {status}");
    if status.class() == StatusClass::Redirection {
        return Ok(status);
    }
    prop_assert_eq!(response.content_type(), Some(ContentType::JSON), "{}: {}", what, status);
    let text = response.into_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        TestCaseError::fail(format!("{what}: {status} with a body that is not JSON ({error}): {text}"))
    })?;
    let object =
        body.as_object().ok_or_else(|| TestCaseError::fail(format!("{what}: not an object: {text}")))?;
    if status != Status::Ok {
        let message = object.get("message").and_then(|m| m.as_str()).unwrap_or_default();
        prop_assert!(object.len() == 1 && !message.is_empty(), "{what}: {status} with {text}");
    }
    Ok(status)
}

/// Checks a page answer to a browser: no server error, and HTML unless it is a redirect.
fn check_page_answer(response: LocalResponse<'_>, what: &str) -> Result<Status, TestCaseError> {
    let status = checked_status(&response, what)?;
    if status.class() != StatusClass::Redirection {
        prop_assert_eq!(response.content_type(), Some(ContentType::HTML), "{}: {}", what, status);
    }
    Ok(status)
}

/// Whether the response sets a `session_id` cookie (with a value: a removal does not count).
fn sets_session(response: &LocalResponse<'_>) -> bool {
    response.headers().get("Set-Cookie").any(|header| {
        Cookie::parse(header.to_owned())
            .is_ok_and(|cookie| cookie.name() == "session_id" && !cookie.value().is_empty())
    })
}

/// The CSRF token of the (first) form in `html`.
fn csrf_token(html: &str) -> Option<String> {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_owned())
}

/// A token for the cookies the client holds now, from the login page.
fn fresh_token(client: &Client) -> Result<String, TestCaseError> {
    let page = client.get("/login").header(Header::new("Accept", BROWSER_ACCEPT)).dispatch();
    prop_assert_eq!(page.status(), Status::Ok);
    let html = page.into_string().unwrap_or_default();
    csrf_token(&html).ok_or_else(|| TestCaseError::fail("the login page has no csrf_token field"))
}

/// What a successful attack would change: accounts, sessions and the known password hash.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    users: i64,
    sessions: i64,
    known_hash: Option<String>,
}

fn snapshot(app: &TestApp) -> Snapshot {
    app.with_db(|conn| {
        let users = users::table.count().get_result::<i64>(conn).expect("a count of users");
        let sessions = sessions::table.count().get_result::<i64>(conn).expect("a count of sessions");
        let known_hash = users::table
            .filter(users::email.eq(EMAIL))
            .select(users::hashed_password)
            .first::<String>(conn)
            .optional()
            .expect("the known user's hash");
        Snapshot { users, sessions, known_hash }
    })
}

fn sessions_of(app: &TestApp, email: &'static str) -> i64 {
    app.with_db(move |conn| {
        sessions::table
            .inner_join(users::table)
            .filter(users::email.eq(email))
            .count()
            .get_result::<i64>(conn)
            .expect("a count of sessions")
    })
}

// The JSON API.

/// The API's form endpoints and the two that read only the cookie.
const API_ENDPOINTS: &[(Method, &str)] = &[
    (Method::Post, "/users"),
    (Method::Post, "/sessions"),
    (Method::Post, "/reset_password"),
    (Method::Put, "/reset_password"),
    (Method::Delete, "/sessions"),
    (Method::Get, "/profile"),
];

const API_FIELDS: &[&str] = &["email", "password", "reset_token", "new_password"];

#[test]
fn api_endpoints_never_fail_and_answer_json_messages() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let accept =
        prop::option::of(prop::sample::select(vec!["*/*", "application/json", "application/json, */*"]));
    let strategy = (prop::sample::select(API_ENDPOINTS), body(API_FIELDS), cookie_header(), accept);
    check("api endpoints", 450, strategy, |((method, uri), body, cookies, accept)| {
        let what = format!("{method} {uri}");
        let response = send(&app.client, method, uri, Some(&body), &cookies, accept);
        check_api_answer(response, &what)?;
        Ok(())
    });
}

#[test]
fn api_session_routes_refuse_garbage_cookies_with_403() {
    let app = TestApp::new();
    let session = app.with_user();
    let routes = prop::sample::select(vec![(Method::Get, "/profile"), (Method::Delete, "/sessions")]);
    check("api garbage cookies", 100, (routes, cookie_header()), |((method, uri), cookies)| {
        // A garbage cookie header replaces the tracked client's session cookie only when it
        // names `session_id`; without one, the real session must still answer.
        let replaces_session = parse_cookie_header(&cookies).iter().any(|c| c.name() == "session_id");
        let mut request = app.client.req(method, uri).cookies(parse_cookie_header(&cookies));
        if !replaces_session {
            request = request.cookie(Cookie::new("session_id", "not-a-session"));
        }
        let response = request.dispatch();
        let what = format!("{method} {uri} with {cookies:?}");
        prop_assert_eq!(response.status(), Status::Forbidden, "{}", what);
        let body = response.into_string().unwrap_or_default();
        prop_assert_eq!(body, r#"{"message":"forbidden: a valid session is required"}"#, "{}", what);
        Ok(())
    });
    // The garbage ended nothing: the real session still answers.
    let response = app.client.get("/profile").cookie(session).dispatch();
    assert_eq!(response.status(), Status::Ok);
}

// No session for a wrong password.

/// Where a login attempt goes.
#[derive(Debug, Clone, Copy)]
enum Channel {
    ApiUrlencoded,
    ApiMultipart,
    /// `POST /login` with a valid CSRF token.
    Page,
}

/// A password that differs from `known`: anything, or `known` changed slightly (one character
/// more, less or different, other case, padding, its first 72 bytes plus something else).
fn wrong_password(known: &'static str) -> BoxedStrategy<String> {
    let chars: Vec<char> = known.chars().collect();
    let n = chars.len();
    let first_72_bytes = {
        let mut end = 72.min(known.len());
        while !known.is_char_boundary(end) {
            end -= 1;
        }
        &known[..end]
    };
    prop_oneof![
        3 => any::<String>(),
        2 => any::<char>().prop_map(move |c| format!("{known}{c}")),
        1 => Just(chars[..n - 1].iter().collect::<String>()),
        2 => (0..n, any::<char>()).prop_map(move |(i, c)| {
            let mut changed = chars.clone();
            changed[i] = c;
            changed.into_iter().collect()
        }),
        1 => Just(known.to_uppercase()),
        1 => prop::sample::select(vec![" ", "\t", "\0", "\u{200b}"]).prop_map(move |pad| format!("{pad}{known}")),
        2 => any::<String>().prop_map(move |rest| format!("{first_72_bytes}{rest}")),
        1 => (1usize..1025).prop_map(|n| "x".repeat(n)),
    ]
    .prop_filter("differs from the known password and is a valid one", move |candidate| {
        candidate != known && !candidate.is_empty() && candidate.chars().count() <= 1024
    })
    .boxed()
}

/// The email as typed: emails are case-insensitive, so every spelling names the account.
fn email_spelling(email: &'static str) -> BoxedStrategy<String> {
    prop_oneof![Just(email.to_owned()), Just(email.to_uppercase()), Just(email.to_lowercase())].boxed()
}

/// One login attempt; the answer's status and whether it set a session cookie.
fn attempt_login(
    app: &TestApp,
    channel: Channel,
    email: &str,
    password: &str,
) -> Result<(Status, bool), TestCaseError> {
    let fields = vec![("email".to_owned(), email.to_owned()), ("password".to_owned(), password.to_owned())];
    let (encoding, accept, uri, fields) = match channel {
        Channel::ApiUrlencoded => (Encoding::Urlencoded { junk: vec![] }, None, "/sessions", fields),
        Channel::ApiMultipart => (Encoding::Multipart(MultipartShape::Valid), None, "/sessions", fields),
        Channel::Page => {
            let mut fields = fields;
            fields.insert(0, ("csrf_token".to_owned(), fresh_token(&app.client)?));
            (Encoding::Urlencoded { junk: vec![] }, Some(BROWSER_ACCEPT), "/login", fields)
        }
    };
    let body = Body { fields, encoding, content_type: ContentTypeChoice::Matching };
    let response = send(&app.client, Method::Post, uri, Some(&body), "", accept);
    let sets = sets_session(&response);
    let status = match channel {
        Channel::Page => check_page_answer(response, uri)?,
        _ => check_api_answer(response, uri)?,
    };
    Ok((status, sets))
}

fn channel() -> BoxedStrategy<Channel> {
    prop::sample::select(vec![Channel::ApiUrlencoded, Channel::ApiMultipart, Channel::Page]).boxed()
}

#[test]
fn post_sessions_wrong_password_never_issues_a_session() {
    // Throttling would answer 429 before the password is even checked; far above the case
    // count, every attempt reaches bcrypt and must be refused by the comparison itself.
    let app = TestApp::with_config(|f| f.merge(("login_throttle_threshold", 1_000_000)));
    app.register(EMAIL, PASSWORD);
    app.register(LONG_EMAIL, LONG_PASSWORD);
    let attempt = prop_oneof![
        (Just((EMAIL, PASSWORD)), email_spelling(EMAIL), wrong_password(PASSWORD)),
        (Just((LONG_EMAIL, LONG_PASSWORD)), email_spelling(LONG_EMAIL), wrong_password(LONG_PASSWORD)),
    ];
    check("wrong password", 300, (channel(), attempt), |(channel, ((email, _), typed, password))| {
        let before = sessions_of(&app, email);
        let (status, sets) = attempt_login(&app, channel, &typed, &password)?;
        let what = format!("{channel:?} as {typed:?}");
        prop_assert_eq!(status, Status::Unauthorized, "{}", what);
        prop_assert!(!sets, "{what}: a session cookie for a wrong password");
        prop_assert_eq!(sessions_of(&app, email), before, "{}: a session row", what);
        Ok(())
    });
    // The same paths do log the right password in: the refusals above were the password's.
    for channel in [Channel::ApiUrlencoded, Channel::ApiMultipart, Channel::Page] {
        for (email, password) in [(EMAIL, PASSWORD), (LONG_EMAIL, LONG_PASSWORD)] {
            let before = sessions_of(&app, email);
            let (status, sets) = attempt_login(&app, channel, email, password).expect("a login");
            let expected = match channel {
                Channel::Page => Status::SeeOther,
                _ => Status::Ok,
            };
            assert_eq!((status, sets), (expected, true), "{channel:?} {email}");
            assert_eq!(sessions_of(&app, email), before + 1, "{channel:?} {email}");
        }
    }
}

#[test]
fn post_sessions_wrong_password_under_the_default_throttle_is_401_then_429() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let attempts = Cell::new(0u32);
    let throttled = Cell::new(0u32);
    let strategy = (channel(), email_spelling(EMAIL), wrong_password(PASSWORD));
    check("wrong password, throttled", 100, strategy, |(channel, typed, password)| {
        let (status, sets) = attempt_login(&app, channel, &typed, &password)?;
        let attempt = attempts.replace(attempts.get() + 1);
        let what = format!("attempt {attempt}, {channel:?} as {typed:?}");
        prop_assert!(!sets, "{what}: a session cookie for a wrong password");
        prop_assert_eq!(sessions_of(&app, EMAIL), 0, "{}: a session row", what);
        match attempt {
            // The default threshold: five failures are plain 401s.
            0..5 => prop_assert_eq!(status, Status::Unauthorized, "{}", what),
            // Then 429, or 401 when the wait since the last failure has passed.
            _ => prop_assert!([401, 429].contains(&status.code), "{what}: {status}"),
        }
        throttled.set(throttled.get() + u32::from(status == Status::TooManyRequests));
        Ok(())
    });
    if attempts.get() > 6 {
        assert!(throttled.get() > 0, "{} wrong passwords and never a 429", attempts.get());
    }
}

// The pages.

/// Every page form: its action, its fields, and whether it acts on a session.
const PAGE_FORMS: &[(&str, &[&str], bool)] = &[
    ("/register", &["email", "password"], false),
    ("/login", &["email", "password", "next"], false),
    ("/logout", &[], true),
    ("/profile/sessions/end", &["session"], true),
    ("/profile/sessions/end-others", &[], true),
    ("/password/change", &["current_password", "new_password"], true),
    ("/password/forgot", &["email"], false),
    ("/password/reset", &["token", "new_password"], false),
];

const PAGE_FIELDS: &[&str] =
    &["email", "password", "next", "session", "current_password", "new_password", "token", "csrf_token"];

/// Page form fields: mostly the form's own, with values from [`field_value`] plus, for the
/// numeric and path fields, values of their kind.
fn page_fields() -> BoxedStrategy<Vec<(String, String)>> {
    let value = prop_oneof![
        6 => field_value(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["/", "/profile", "//evil.example", "/\\evil", "https://evil.example", "/a?b=c#d"])
            .prop_map(str::to_owned),
    ];
    prop::collection::vec((field_name(PAGE_FIELDS), value), 0..7).boxed()
}

/// Logs the client in as a new account, or out, so the case starts as it asks.
fn start_as(app: &TestApp, logged_in: bool, accounts: &Cell<u32>) -> Result<(), TestCaseError> {
    let has_session = app.client.get("/profile").dispatch().status() == Status::Ok;
    if logged_in && !has_session {
        // A new account each time: an earlier case may have changed the last one's password.
        let n = accounts.replace(accounts.get() + 1);
        let email = format!("page{n}@example.com");
        app.register(&email, PASSWORD);
        app.login(&email, PASSWORD);
    } else if !logged_in && has_session {
        prop_assert_eq!(app.client.delete("/sessions").dispatch().status(), Status::SeeOther);
    }
    Ok(())
}

#[test]
fn page_forms_with_a_valid_token_never_fail() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let accounts = Cell::new(0);
    let junk = prop::collection::vec((any::<Index>(), prop::sample::select(JUNK)), 0..3);
    let strategy = (prop::sample::select(PAGE_FORMS), any::<bool>(), page_fields(), any::<Index>(), junk);
    check(
        "page forms, valid token",
        250,
        strategy,
        |((action, _, needs_session), logged_in, fields, at, junk)| {
            start_as(&app, needs_session && logged_in, &accounts)?;
            let mut fields = fields;
            fields.insert(at.index(fields.len() + 1), ("csrf_token".to_owned(), fresh_token(&app.client)?));
            let body = Body {
                fields,
                encoding: Encoding::Urlencoded { junk },
                content_type: ContentTypeChoice::Matching,
            };
            let response = send(&app.client, Method::Post, action, Some(&body), "", Some(BROWSER_ACCEPT));
            let status = check_page_answer(response, action)?;
            prop_assert!(
                [200, 303, 400, 401, 403, 413, 422, 429].contains(&status.code),
                "POST {action}: unexpected {status}"
            );
            Ok(())
        },
    );
}

/// A CSRF token that must not be accepted.
#[derive(Debug, Clone)]
enum BadToken {
    Missing,
    Garbage(String),
    /// Signed for this browser before it logged in: bound to no session.
    Stale,
    /// A valid token, but in the query string instead of the body.
    InQuery,
    /// A valid token in a multipart body, which page forms do not take.
    InMultipart,
    /// A valid token with a `csrf` cookie that is not the one it was signed for.
    OtherNonce(String),
}

fn bad_token() -> BoxedStrategy<BadToken> {
    prop_oneof![
        Just(BadToken::Missing),
        field_value().prop_map(BadToken::Garbage),
        "[A-Za-z0-9_-]{43}".prop_map(BadToken::Garbage),
        Just(BadToken::Stale),
        Just(BadToken::InQuery),
        Just(BadToken::InMultipart),
        "[A-Za-z0-9_-]{43}".prop_map(BadToken::OtherNonce),
    ]
    .boxed()
}

#[test]
fn page_forms_without_a_valid_token_change_nothing() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let stale = fresh_token(&app.client).expect("a token");
    // Logged in, so that logging out, ending sessions and changing the password would show.
    app.login(EMAIL, PASSWORD);
    let other = app.login(EMAIL, PASSWORD);
    let before = snapshot(&app);
    // Fields that would do something with a valid token: a new account, the right password.
    let fields = prop_oneof![
        page_fields(),
        Just(vec![
            ("email".to_owned(), "new@example.com".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
            ("current_password".to_owned(), PASSWORD.to_owned()),
            ("new_password".to_owned(), "changed".to_owned()),
            ("session".to_owned(), "1".to_owned()),
        ]),
    ];
    let strategy = (prop::sample::select(PAGE_FORMS), fields, bad_token(), cookie_header());
    check("page forms, no valid token", 200, strategy, |((action, _, _), fields, token, cookies)| {
        let mut fields = fields;
        let mut uri = action.to_owned();
        let mut encoding = Encoding::Urlencoded { junk: vec![] };
        let mut extra_cookies = String::new();
        match &token {
            BadToken::Missing => {}
            BadToken::Garbage(value) => fields.insert(0, ("csrf_token".to_owned(), value.clone())),
            BadToken::Stale => fields.insert(0, ("csrf_token".to_owned(), stale.clone())),
            BadToken::InQuery => uri = format!("{action}?csrf_token={}", encode(&fresh_token(&app.client)?)),
            BadToken::InMultipart => {
                fields.insert(0, ("csrf_token".to_owned(), fresh_token(&app.client)?));
                encoding = Encoding::Multipart(MultipartShape::Valid);
            }
            BadToken::OtherNonce(nonce) => {
                fields.insert(0, ("csrf_token".to_owned(), fresh_token(&app.client)?));
                extra_cookies = format!("csrf={nonce}");
            }
        }
        // Garbage cookies on top, except a `session_id`, which would hide a logout.
        let garbage = parse_cookie_header(&cookies);
        let cookies: Vec<_> = garbage.into_iter().filter(|c| c.name() != "session_id").collect();
        let mut request = app
            .client
            .post(uri.clone())
            .header(Header::new("Accept", BROWSER_ACCEPT))
            .cookies(cookies)
            .cookies(parse_cookie_header(&extra_cookies));
        let body = Body { fields, encoding, content_type: ContentTypeChoice::Matching };
        let (content_type, bytes) = body.render();
        if let Some(content_type) = content_type {
            request = request.header(Header::new("Content-Type", content_type));
        }
        let response = request.body(bytes).dispatch();
        let what = format!("POST {uri} with {token:?}");
        prop_assert!(!sets_session(&response), "{what}: set a session cookie");
        let status = check_page_answer(response, &what)?;
        prop_assert!([400, 403, 413].contains(&status.code), "{what}: {status}");
        prop_assert_eq!(&snapshot(&app), &before, "{}", what);
        Ok(())
    });
    // Both sessions are still there.
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Ok);
    assert_eq!(app.client.get("/profile").cookie(other).dispatch().status(), Status::Ok);
}

#[test]
fn pages_with_garbage_cookies_never_fail() {
    let app = TestApp::new();
    app.register(EMAIL, PASSWORD);
    let pages = [
        "/",
        "/register",
        "/login",
        "/login?next=/profile",
        "/profile",
        "/password/forgot",
        "/password/reset?token=x",
    ];
    check(
        "pages, garbage cookies",
        100,
        (prop::sample::select(pages.to_vec()), cookie_header()),
        |(uri, cookies)| {
            let response = send(&app.client, Method::Get, uri, None, &cookies, Some(BROWSER_ACCEPT));
            check_page_answer(response, &format!("GET {uri} with {cookies:?}"))?;
            Ok(())
        },
    );
}
