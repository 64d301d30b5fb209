//! Password-reset mail: the file transport, a real SMTP server process, a mail server that is
//! down, and the mail settings checked at launch.
//!
//! The SMTP tests run `tests/support/smtp_sink.py`, which needs python3 and aiosmtpd; scripts/test
//! installs them. Without them those tests fail, saying so.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use auth_service::auth::token_digest;
use auth_service::db::{self, AnyConnectionManager};
use auth_service::user::UserFilter;
use common::{form, json, test_figment, TestApp, TestDatabase, EMAIL, PASSWORD};
use diesel::r2d2::ManageConnection;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::json as j;

/// A `public_url` no request names, so a link that carries it came from the setting.
const PUBLIC_URL: &str = "https://auth.example.test";
/// The Host header the requests send, which must appear in no mail.
const FORGED_HOST: &str = "evil.example.org";
const NEW_PASSWORD: &str = "t4rt1fl3tt3";

/// Log lines of the service, captured in this test binary.
mod logs {
    use std::sync::{Mutex, Once};

    use log::{Level, LevelFilter, Log, Metadata, Record};

    #[derive(Debug, Clone)]
    pub struct Line {
        pub level: Level,
        pub target: String,
        pub message: String,
    }

    static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());

    struct Capture;

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target().starts_with("auth_service")
        }

        fn log(&self, record: &Record<'_>) {
            if self.enabled(record.metadata()) {
                let line = Line {
                    level: record.level(),
                    target: record.target().to_owned(),
                    message: record.args().to_string(),
                };
                LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        }

        fn flush(&self) {}
    }

    /// Installs the capturing logger. Every test here calls it before building an app: the first
    /// logger set wins, and Rocket then leaves the log level alone.
    pub fn capture() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            log::set_logger(&Capture).expect("no other logger is set before the first app is built");
            log::set_max_level(LevelFilter::Info);
        });
    }

    /// Every line captured so far, from all tests in this binary.
    pub fn lines() -> Vec<Line> {
        LINES.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A test app whose log lines are captured.
fn app(configure: impl FnOnce(Figment) -> Figment) -> TestApp {
    logs::capture();
    TestApp::with_config(configure)
}

/// An app with the default file transport and [`PUBLIC_URL`].
fn file_app() -> TestApp {
    app(|figment| figment.merge(("public_url", PUBLIC_URL)))
}

/// An app that sends mail to the SMTP server on `port` of this machine.
fn smtp_app(port: u16) -> TestApp {
    app(|figment| {
        figment
            .merge(("public_url", PUBLIC_URL))
            .merge(("mail_transport", "smtp"))
            .merge(("smtp_url", format!("smtp://127.0.0.1:{port}")))
    })
}

/// `POST /reset_password` for `email`, with a forged Host header.
fn request_reset<'c>(app: &'c TestApp, email: &str) -> LocalResponse<'c> {
    app.client
        .post("/reset_password")
        .header(ContentType::Form)
        .header(Header::new("Host", FORGED_HOST))
        .body(form(&[("email", email)]))
        .dispatch()
}

/// The token of a successful reset request, after checking the contract's body.
fn reset_token_of(response: LocalResponse<'_>, email: &str) -> String {
    assert_eq!(response.status(), Status::Ok);
    let body = json(response);
    let token = body["reset_token"].as_str().expect("a reset_token string").to_owned();
    assert_eq!(body, j!({"email": email, "reset_token": token}));
    token
}

/// Sets a new password with `token` and logs in with it.
fn reset_with(app: &TestApp, email: &str, token: &str) {
    let body = form(&[("email", email), ("reset_token", token), ("new_password", NEW_PASSWORD)]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": email, "message": "Password updated"}));
    app.login(email, NEW_PASSWORD);
}

/// The link the mail for `token` must carry.
fn expected_link(token: &str) -> String {
    format!("{PUBLIC_URL}/password/reset?token={token}")
}

/// The digest of the user's stored reset token, read from the database.
fn stored_reset_digest(database: &TestDatabase, email: &str) -> Option<String> {
    let manager = AnyConnectionManager::new(&database.url).expect("a valid test URL");
    let mut conn = manager.connect().expect("a connection to the test database");
    db::find_user_by(&mut conn, UserFilter::Email(email)).expect("the user").reset_token
}

/// The `.eml` files in `dir`, oldest name first.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the mail outbox exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    files
}

/// A received message, split into headers and decoded `multipart/alternative` parts.
#[derive(Debug)]
struct Mail {
    headers: Vec<(String, String)>,
    parts: Vec<(String, String)>,
}

impl Mail {
    fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (headers, body) = split_head(&raw);
        let mut mail = Mail { headers, parts: Vec::new() };
        let content_type = mail.header("Content-Type").to_owned();
        assert!(content_type.starts_with("multipart/alternative;"), "{content_type}");
        let boundary = parameter(&content_type, "boundary");
        let delimiter = format!("--{boundary}");
        let mut sections = body.split(delimiter.as_str());
        sections.next(); // the preamble
        for section in sections {
            if section.starts_with("--") {
                break; // the closing delimiter
            }
            let section = section.strip_prefix('\n').unwrap_or(section);
            let section = section.strip_suffix('\n').unwrap_or(section);
            let (part_headers, part_body) = split_head(section);
            let find = |name: &str| {
                part_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
            };
            let part_type = find("Content-Type").expect("a part Content-Type").to_owned();
            let text = decode_body(part_body, find("Content-Transfer-Encoding").unwrap_or("7bit"));
            mail.parts.push((part_type, text));
        }
        mail
    }

    fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, value)| value.as_str()).unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    /// The decoded body of the one part whose type starts with `mime`.
    fn part(&self, mime: &str) -> &str {
        let found: Vec<_> = self.parts.iter().filter(|(kind, _)| kind.starts_with(mime)).collect();
        assert_eq!(found.len(), 1, "one {mime} part in {self:?}");
        &found[0].1
    }

    fn read(path: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(path).expect("a readable message"))
    }
}

/// Headers (unfolded) and the body of a message or part whose line ends are `\n`.
fn split_head(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("a folded line follows a header");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

/// The value of `name=` in a header such as `multipart/alternative; boundary="x"`.
fn parameter(header: &str, name: &str) -> String {
    let start = header.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {header}"));
    let value = &header[start + name.len() + 1..];
    match value.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
        None => value.split([';', ' ']).next().unwrap_or_default().to_owned(),
    }
}

fn decode_body(body: &str, encoding: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "7bit" | "8bit" => body.to_owned(),
        "quoted-printable" => {
            let decoded =
                quoted_printable::decode(body.replace('\n', "\r\n"), quoted_printable::ParseMode::Strict)
                    .expect("valid quoted-printable");
            String::from_utf8(decoded).expect("UTF-8 text").replace("\r\n", "\n")
        }
        other => panic!("unexpected Content-Transfer-Encoding {other}"),
    }
}

/// Checks everything the reset mail for `token` to `to` must say.
fn assert_reset_mail(mail: &Mail, to: &str, token: &str) {
    let link = expected_link(token);
    assert_eq!(mail.header("From"), "auth-service <no-reply@localhost>");
    assert_eq!(mail.header("To"), to);
    assert_eq!(mail.header("Subject"), "Reset your password");
    let text = mail.part("text/plain");
    assert!(text.contains(&format!("\n{link}\n")), "the text part has the link on its own line:\n{text}");
    let html = mail.part("text/html");
    assert!(html.contains(&format!("<a href=\"{link}\">")), "the HTML part links to it:\n{html}");
    for body in [text, html] {
        assert!(!body.contains(FORGED_HOST), "the Host header leaked into the mail:\n{body}");
    }
}

/// Whether `text` holds something shaped like one of our tokens: a run of exactly 43 base64url
/// characters (256 bits, as `auth::generate_token` makes them). Request ids (UUIDs, 36
/// characters with dashes) are not.
fn contains_token_like(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).any(|run| run.len() == 43)
}

#[test]
fn the_token_detector_finds_real_tokens_and_not_request_ids() {
    let token = auth_service::auth::generate_token();
    assert!(contains_token_like(&format!("reset for bob: token={token}.")));
    assert!(!contains_token_like(&format!("request_id=\"{}\"", auth_service::auth::generate_uuid())));
    assert!(!contains_token_like("mail delivery failed: Connection refused (os error 111)"));
}

/// A free TCP port on 127.0.0.1 that nothing listens on (the listener that found it is closed).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a local address").port()
}

/// `tests/support/smtp_sink.py` running as a child process: a real SMTP server that saves each
/// message. It is killed on drop, and exits by itself when this process goes away.
struct SmtpSink {
    child: Child,
    /// Kept open: the sink exits when its standard input closes.
    _stdin: ChildStdin,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> Self {
        Self::start_on(0)
    }

    fn start_on(port: u16) -> Self {
        const HINT: &str = "the SMTP tests need python3 and its aiosmtpd package: run scripts/test, \
                            which installs them (python3 -m pip install aiosmtpd)";
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let spawned = Command::new("python3")
            .arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.to_string())
            .arg("--lifetime")
            .arg("120")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HINT}"));
        let stdin = child.stdin.take().expect("a piped stdin");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("a piped stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        let bound = line.trim().strip_prefix("listening on 127.0.0.1:").and_then(|p| p.parse().ok());
        match (read, bound) {
            (Ok(_), Some(port)) => Self { child, _stdin: stdin, port, dir },
            _ => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let _ = child.kill();
                let status = child.wait();
                panic!("the SMTP sink did not start ({status:?}): {stderr}\n{HINT}");
            }
        }
    }

    /// Waits (up to 10 s) until `count` messages arrived, and returns each one's envelope and
    /// parsed content.
    fn messages(&self, count: usize) -> Vec<(serde_json::Value, Mail)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let envelope = |n: usize| self.dir.path().join(format!("{n}.json"));
        while !envelope(count).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!envelope(count + 1).exists(), "more than {count} messages arrived");
        (1..=count)
            .map(|n| {
                let meta = std::fs::read_to_string(envelope(n))
                    .unwrap_or_else(|e| panic!("message {n} did not arrive: {e}"));
                let meta = serde_json::from_str(&meta).expect("a JSON envelope");
                (meta, Mail::read(&self.dir.path().join(format!("{n}.eml"))))
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn post_reset_password_writes_an_eml_with_both_parts_and_the_public_url_link() {
    let app = file_app();
    app.register(EMAIL, PASSWORD);

    let token = reset_token_of(request_reset(&app, EMAIL), EMAIL);

    let files = eml_files(&app.database.mail_outbox());
    assert_eq!(files.len(), 1, "{files:?}");
    let mail = Mail::read(&files[0]);
    assert_reset_mail(&mail, EMAIL, &token);
    reset_with(&app, EMAIL, &token);
}

#[test]
fn post_reset_password_writes_one_eml_per_request_and_the_newest_token_works() {
    let app = file_app();
    app.register(EMAIL, PASSWORD);

    let first = reset_token_of(request_reset(&app, EMAIL), EMAIL);
    let second = reset_token_of(request_reset(&app, EMAIL), EMAIL);

    let mails: Vec<Mail> = eml_files(&app.database.mail_outbox()).iter().map(|p| Mail::read(p)).collect();
    assert_eq!(mails.len(), 2);
    let mut links: Vec<String> = mails
        .iter()
        .map(|mail| {
            let text = mail.part("text/plain");
            let start = text.find(PUBLIC_URL).expect("a link");
            text[start..].lines().next().unwrap_or_default().to_owned()
        })
        .collect();
    links.sort();
    let mut expected = vec![expected_link(&first), expected_link(&second)];
    expected.sort();
    assert_eq!(links, expected);
    reset_with(&app, EMAIL, &second);
}

#[test]
fn post_reset_password_mails_the_address_as_registered() {
    let app = file_app();
    app.register("Bob.Smith@Example.com", PASSWORD);

    let token = reset_token_of(request_reset(&app, "bob.smith@example.com"), "bob.smith@example.com");

    let files = eml_files(&app.database.mail_outbox());
    assert_eq!(files.len(), 1);
    assert_reset_mail(&Mail::read(&files[0]), "Bob.Smith@Example.com", &token);
}

#[test]
fn post_reset_password_unknown_email_is_403_and_mails_nothing() {
    let app = file_app();
    let response = request_reset(&app, "nobody@example.com");
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(json(response), j!({"message": "email not registered"}));
    assert_eq!(eml_files(&app.database.mail_outbox()), Vec::<PathBuf>::new());
}

#[test]
fn post_reset_password_sends_through_a_real_smtp_server() {
    let sink = SmtpSink::start();
    let app = smtp_app(sink.port);
    app.register(EMAIL, PASSWORD);

    let token = reset_token_of(request_reset(&app, EMAIL), EMAIL);

    let messages = sink.messages(1);
    let (envelope, mail) = &messages[0];
    assert_eq!(envelope, &j!({"mail_from": "no-reply@localhost", "rcpt_tos": [EMAIL]}));
    assert_reset_mail(mail, EMAIL, &token);
    assert!(!app.database.mail_outbox().exists(), "the smtp transport writes no file");
    reset_with(&app, EMAIL, &token);
}

#[test]
fn post_reset_password_smtp_down_is_503_logged_and_keeps_the_token() {
    let port = free_port();
    let app = smtp_app(port);
    app.register(EMAIL, PASSWORD);

    let response = request_reset(&app, EMAIL);
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(json(response), j!({"message": "could not send the reset email; try again later"}));

    let mail_errors: Vec<_> = logs::lines()
        .into_iter()
        .filter(|line| line.target == "auth_service::mail" && line.level == log::Level::Error)
        .filter(|line| line.message.contains("password-reset mail not sent"))
        .collect();
    assert!(!mail_errors.is_empty(), "an error line about the mail: {:?}", logs::lines());
    let stored = stored_reset_digest(&app.database, EMAIL);
    assert!(stored.is_some(), "the token issued before the failure stays stored");

    // The mail server comes back: the next request mails a working token.
    let sink = SmtpSink::start_on(port);
    let token = reset_token_of(request_reset(&app, EMAIL), EMAIL);
    let messages = sink.messages(1);
    assert_reset_mail(&messages[0].1, EMAIL, &token);
    assert_eq!(stored_reset_digest(&app.database, EMAIL), Some(token_digest(&token)));
    assert_ne!(stored, Some(token_digest(&token)), "each request issues a new token");
    for line in logs::lines() {
        assert!(!line.message.contains(&token), "the token in a log line: {line:?}");
        assert!(!contains_token_like(&line.message), "a token-like value in a log line: {line:?}");
    }
    reset_with(&app, EMAIL, &token);
}

/// Checks that the service refuses to launch over `figment`.
fn assert_launch_fails(figment: Figment, what: &str) {
    match Client::tracked(auth_service::build(figment)) {
        Ok(_) => panic!("{what} must stop the launch"),
        // Looking at the error marks it handled; Rocket panics on dropping an unhandled one.
        Err(error) => assert!(matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)), "{error}"),
    }
}

/// Building the app with `key = value` fails, and a log line explains why.
fn assert_launch_refused(key: &str, value: &str, explanation: &str) {
    logs::capture();
    let database = TestDatabase::new();
    let figment = test_figment(&database).merge((key, value));
    assert_launch_fails(figment, &format!("{key} = {value:?}"));
    let lines = logs::lines();
    assert!(
        lines.iter().any(|line| line.level == log::Level::Error && line.message.contains(explanation)),
        "no error line containing {explanation:?} in {lines:?}"
    );
}

#[test]
fn launch_bad_mail_settings_stop_with_a_readable_message() {
    assert_launch_refused("mail_transport", "pigeon", "mail_transport");
    assert_launch_refused(
        "public_url",
        "auth.example.test",
        "public_url `auth.example.test` is not an absolute URL",
    );
    assert_launch_refused("mail_from", "nobody", "mail_from `nobody` is not a mail address");
}

#[test]
fn launch_bad_smtp_url_stops_with_a_readable_message_without_its_password() {
    logs::capture();
    let database = TestDatabase::new();
    let figment = test_figment(&database)
        .merge(("mail_transport", "smtp"))
        .merge(("smtp_url", "smtp://mailer:hunter2@mail.example.test?tls=sometimes"));
    assert_launch_fails(figment, "a bad smtp_url");
    let lines = logs::lines();
    let line = lines
        .iter()
        .find(|line| line.message.contains("smtp_url `smtp://mailer:***@mail.example.test?tls=sometimes`"))
        .unwrap_or_else(|| panic!("no line about smtp_url in {lines:?}"));
    assert_eq!(line.level, log::Level::Error);
    assert!(lines.iter().all(|line| !line.message.contains("hunter2")), "the password was logged");
}
