//! Fuzzes the request-to-response path: each input is one HTTP request, sent through Rocket's
//! local client to one app per process (a fresh temporary SQLite database, bcrypt cost 4). A
//! 5xx answer fails, and so does a panic anywhere (Rocket answers a panicking handler with 500).
//!
//! The input is a request as text, split on bytes:
//!
//! ```text
//! POST /login            <- method, a space, the path and query
//! Content-Type: ...      <- headers, one a line, `Name: value`
//!                        <- an empty line
//! email=...&password=... <- the body, raw bytes
//! ```
//!
//! `{session}` anywhere stands for the token of a live session, and `{csrf}` for a CSRF token
//! valid for the request's cookies (the `csrf` nonce cookie is added with it), so the fuzzer
//! reaches past the session guard and the page forms' CSRF check, which it could not forge.

#![no_main]

use std::cell::RefCell;

use auth_service::csrf::{CsrfKey, CSRF_COOKIE};
use libfuzzer_sys::fuzz_target;
use rocket::figment::providers::{Format, Toml};
use rocket::http::{ContentType, Cookie, Header, Method, Status};
use rocket::local::blocking::Client;

const PASSWORD: &str = "fuzz-password";

/// The app, and what the placeholders stand for.
struct App {
    client: Client,
    /// The `csrf` cookie's nonce that `{csrf}` tokens are signed for.
    nonce: String,
    /// The token of a live session, once one is needed.
    session: RefCell<Option<String>>,
    /// Accounts made for sessions so far (an input may change an account's password).
    accounts: RefCell<u32>,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let manifest = env!("CARGO_MANIFEST_DIR");
        // The debug profile, whatever the build: the release one wants a real pepper and turns
        // the per-IP limit on, which would answer most inputs with 429.
        let figment = rocket::Config::figment()
            .merge(Toml::file(format!("{manifest}/../Rocket.toml")).nested())
            .select("debug")
            .merge(("databases.auth.url", dir.path().join("auth.sqlite3").to_string_lossy().into_owned()))
            .merge(("mail_outbox", dir.path().join("mail_outbox")))
            .merge(("template_dir", format!("{manifest}/../templates")))
            .merge(("bcrypt_cost", 4))
            .merge(("log_level", "off"));
        let client = Client::untracked(auth_service::build(figment)).expect("the service launches");
        let login = client.get("/login").header(Header::new("Accept", "text/html")).dispatch();
        let nonce = login.cookies().get(CSRF_COOKIE).expect("a csrf cookie").value().to_owned();
        drop(login);
        App { client, nonce, session: RefCell::new(None), accounts: RefCell::new(0), _dir: dir }
    }

    /// A live session's token: the last one if it still answers, else a new account's.
    fn session(&self) -> String {
        if let Some(token) = self.session.borrow().clone() {
            let probe = self.client.get("/profile").cookie(Cookie::new("session_id", token.clone())).dispatch();
            if probe.status() == Status::Ok {
                return token;
            }
        }
        let n = self.accounts.replace_with(|n| *n + 1);
        let form = format!("email=fuzz{n}%40example.com&password={PASSWORD}");
        let created = self.client.post("/users").header(ContentType::Form).body(&form).dispatch();
        assert_eq!(created.status(), Status::Ok, "a fuzzing account");
        let login = self.client.post("/sessions").header(ContentType::Form).body(&form).dispatch();
        let token = login.cookies().get("session_id").expect("a session").value().to_owned();
        *self.session.borrow_mut() = Some(token.clone());
        token
    }
}

thread_local! {
    // libFuzzer calls the target on one thread; the blocking client is not `Sync`.
    static APP: App = App::new();
}

/// A request as the input describes it.
struct Request {
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse(data: &[u8]) -> Request {
    let (head, body) = match find(data, b"\n\n") {
        Some(at) => (&data[..at], data[at + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines().map(|line| line.strip_suffix('\r').unwrap_or(line));
    let (method, target) = lines.next().unwrap_or_default().split_once(' ').unwrap_or(("GET", "/"));
    let method = method.parse().unwrap_or(Method::Get);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Request { method, target: target.to_owned(), headers, body }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A header name HTTP can carry (a token); hyper refuses a request with any other.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value HTTP can carry: no control characters but tab.
fn is_header_value(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

fn run(app: &App, data: &[u8]) {
    let data = match find(data, b"{session}") {
        Some(_) => replace(data, b"{session}", app.session().as_bytes()),
        None => data.to_vec(),
    };
    let mut request = parse(&data);
    // Cookies, read from the `Cookie` headers the way Rocket reads a real request's.
    let mut cookies: Vec<Cookie<'static>> = request
        .headers
        .iter()
        .filter(|(name, value)| name.eq_ignore_ascii_case("cookie") && is_header_value(value))
        .flat_map(|(_, value)| value.split(';').map(|raw| raw.trim().to_owned()).collect::<Vec<_>>())
        .filter_map(|raw| Cookie::parse_encoded(raw).ok())
        .collect();
    let wants_csrf = find(&data, b"{csrf}").is_some();
    if wants_csrf {
        if !cookies.iter().any(|cookie| cookie.name() == CSRF_COOKIE) {
            cookies.push(Cookie::new(CSRF_COOKIE, app.nonce.clone()));
        }
        let nonce = cookies.iter().rev().find(|c| c.name() == CSRF_COOKIE).map(|c| c.value().to_owned());
        let session = cookies.iter().rev().find(|c| c.name() == "session_id").map(|c| c.value().to_owned());
        let key = app.client.rocket().state::<CsrfKey>().expect("the CSRF key");
        let token = key.sign(&nonce.unwrap_or_default(), &session.unwrap_or_default());
        request.body = replace(&request.body, b"{csrf}", token.as_bytes());
        request.target = request.target.replace("{csrf}", &token);
    }
    let what = format!("{} {}", request.method, request.target);
    let mut local = app.client.req(request.method, request.target.clone()).cookies(cookies);
    for (name, value) in request.headers {
        if !name.eq_ignore_ascii_case("cookie") && is_header_name(&name) && is_header_value(&value) {
            local = local.header(Header::new(name, value));
        }
    }
    let response = local.body(request.body).dispatch();
    let status = response.status();
    // Reading the body runs the responder to its end.
    let body = response.into_bytes().unwrap_or_default();
    assert!(status.code < 500, "{what}: {status}: {}", String::from_utf8_lossy(&body));
}

fuzz_target!(|data: &[u8]| {
    APP.with(|app| run(app, data));
});
