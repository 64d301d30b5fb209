//! The real binary's log output: with `ROCKET_LOG_FORMAT=json` every line is one JSON object,
//! and the access, audit and error lines of a request carry the id its response names in
//! `X-Request-Id`; the access line has the path without its query. The default is text.

mod common;

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A secret that travels in a query string and must reach no log line.
const QUERY_TOKEN: &str = "query-token-that-must-stay-out-of-logs";

/// The binary over a SQLite file in `dir`, its stdout and stderr in files there.
struct Server {
    child: Child,
    port: u16,
    stdout: PathBuf,
}

impl Server {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let stdout = dir.join("stdout.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_auth-service"));
        command
            .env_remove("RUST_LOG")
            .env_remove("ROCKET_LOG_FORMAT")
            .env("ROCKET_PROFILE", "debug")
            .env("ROCKET_DATABASES", format!("{{auth={{url=\"{}\"}}}}", dir.join("auth.sqlite3").display()))
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_BCRYPT_COST", "4")
            .env("ROCKET_MAIL_OUTBOX", dir.join("outbox"))
            .stdout(Stdio::from(File::create(&stdout).expect("a stdout file")))
            .stderr(Stdio::from(File::create(dir.join("stderr.log")).expect("a stderr file")));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the auth-service binary starts");
        let server = Self { child, port, stdout };
        let started = Instant::now();
        while server.request("GET", "/health", "").map(|r| r.status) != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(20), "the server did not come up");
            thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// One request, or `None` if the connection failed or the answer had no request id.
    fn request(&self, method: &str, path: &str, form: &str) -> Option<Answer> {
        let answer = common::http::request(self.port, method, path, form)?;
        let request_id = answer.header("x-request-id")?.to_owned();
        Some(Answer { status: answer.status, request_id })
    }

    /// Stops the server (SIGTERM, so it flushes and exits) and returns everything it printed.
    fn stop(mut self) -> String {
        let killed =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(killed.success());
        let stopped = Instant::now();
        while self.child.try_wait().expect("the child's status").is_none() {
            assert!(stopped.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.stdout).expect("the server's stdout")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed assertion must not leave the server running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Answer {
    status: u16,
    request_id: String,
}

/// The JSON lines whose fields include all of `fields`.
fn lines_with<'a>(lines: &'a [Value], fields: &[(&str, Value)]) -> Vec<&'a Value> {
    lines.iter().filter(|line| fields.iter().all(|(name, value)| &line[*name] == value)).collect()
}

#[test]
fn json_logs_carry_the_response_request_id_on_the_access_audit_and_error_lines() {
    let dir = TempDir::new().expect("a data directory");
    // Error lines of 4xx answers are at debug level; the rest as `normal` shows it.
    let server = Server::start(
        dir.path(),
        &[("ROCKET_LOG_FORMAT", "json"), ("RUST_LOG", "info,auth_service::error=debug,rocket::server=warn")],
    );
    let login = server
        .request("POST", "/sessions", "email=nobody%40example.com&password=wrong")
        .expect("an answer to the login");
    assert_eq!(login.status, 401);
    let reset_page = server
        .request("GET", &format!("/password/reset?token={QUERY_TOKEN}"), "")
        .expect("an answer to the reset page");
    let output = server.stop();

    let lines: Vec<Value> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() > 5, "the server logged its start and the requests:\n{output}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
    }
    // Rocket's own lines come out as JSON too, its launch line as info.
    assert!(
        lines.iter().any(|line| line["target"] == "rocket::launch"
            && line["level"] == "INFO"
            && line["message"].as_str().is_some_and(|m| m.contains("Rocket has launched"))),
        "Rocket's launch line:\n{output}"
    );

    let id = Value::from(login.request_id.as_str());
    let access = lines_with(&lines, &[("target", "access".into()), ("request_id", id.clone())]);
    assert_eq!(access.len(), 1, "one access line for the login:\n{output}");
    let access = access[0];
    assert_eq!(
        (&access["method"], &access["route"], &access["path"]),
        (&"POST".into(), &"/sessions".into(), &"/sessions".into())
    );
    assert_eq!(access["status"], 401);
    assert!(access["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{access}");
    let audit = lines_with(&lines, &[("target", "audit".into()), ("request_id", id.clone())]);
    assert_eq!(audit.len(), 1, "one audit line for the login:\n{output}");
    assert_eq!((&audit[0]["kind"], &audit[0]["outcome"]), (&"login_failure".into(), &"unknown_email".into()));
    let error = lines_with(&lines, &[("target", "auth_service::error".into()), ("request_id", id)]);
    assert_eq!(error.len(), 1, "one error line for the 401:\n{output}");
    assert_eq!((&error[0]["message"], &error[0]["status"]), (&"invalid credentials".into(), &401.into()));

    // The reset page's access line names the path and the route, never the query.
    let reset_id = Value::from(reset_page.request_id.as_str());
    let reset = lines_with(&lines, &[("target", "access".into()), ("request_id", reset_id)]);
    assert_eq!(reset.len(), 1, "one access line for the reset page:\n{output}");
    assert_eq!(
        (&reset[0]["path"], &reset[0]["route"]),
        (&"/password/reset".into(), &"/password/reset".into())
    );
    assert!(!output.contains(QUERY_TOKEN), "the query's token reached the log:\n{output}");
}

#[test]
fn the_default_log_format_is_text_with_the_request_id_on_the_access_line() {
    let dir = TempDir::new().expect("a data directory");
    let server = Server::start(dir.path(), &[("ROCKET_LOG_LEVEL", "normal")]);
    let answer =
        server.request("GET", &format!("/password/reset?token={QUERY_TOKEN}"), "").expect("an answer");
    // A path no route matches: Rocket warns "No matching routes for GET /..." with the query.
    let unmatched =
        server.request("GET", &format!("/pasword/reset?token={QUERY_TOKEN}"), "").expect("an answer");
    assert_eq!(unmatched.status, 404);
    let output = server.stop();
    assert!(
        output.lines().all(|line| serde_json::from_str::<Value>(line).is_err()),
        "text, not JSON:\n{output}"
    );
    let access: Vec<_> = output
        .lines()
        .filter(|line| line.contains(&format!("request_id=\"{}\"", answer.request_id)))
        .collect();
    assert_eq!(access.len(), 1, "one line with the id:\n{output}");
    for part in [
        " access: ",
        "method=\"GET\"",
        "route=\"/password/reset\"",
        "path=\"/password/reset\"",
        "latency_ms=",
    ] {
        assert!(access[0].contains(part), "{part} in {}", access[0]);
    }
    // Rocket's own request lines and its unmatched-route warning, which show the query, are left
    // out at `normal`.
    assert!(!output.contains(QUERY_TOKEN), "the query's token reached the log:\n{output}");
}

#[test]
fn an_unknown_log_format_stops_the_binary_with_a_message() {
    let dir = TempDir::new().expect("a data directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env("ROCKET_LOG_FORMAT", "xml")
        .env("ROCKET_DATABASES", format!("{{auth={{url=\"{}\"}}}}", dir.path().join("a.sqlite3").display()))
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary started serving with log_format = \"xml\"");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    child.stderr.take().expect("a stderr pipe").read_to_string(&mut stderr).expect("stderr");
    assert!(stderr.contains("log_format"), "{stderr}");
}
