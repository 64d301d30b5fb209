//! `GET /metrics`: absent without `metrics_token`, refused without the right bearer token, and
//! with it a Prometheus text exposition whose counters move by exactly what the requests did.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use auth_service::db;
use auth_service::user::{NewSession, User, UserFilter};
use chrono::{Duration, Utc};
use common::{form, TestApp, EMAIL, PASSWORD};
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};

const TOKEN: &str = "metrics-token-for-the-tests-0123";

fn with_metrics(figment: Figment) -> Figment {
    figment.merge(("metrics_token", TOKEN))
}

/// One sample line: its metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: the declared type of each family and every sample.
#[derive(Debug)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the Prometheus text format (0.0.4) strictly: every line is a `# HELP`, a `# TYPE`
    /// or a sample of a family declared before it, and no sample repeats.
    fn parse(text: &str) -> Self {
        assert!(text.ends_with('\n'), "the exposition ends with a newline");
        let mut types = HashMap::new();
        let mut samples: Vec<Sample> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                let (keyword, rest) = rest.split_once(' ').expect("a keyword and a name");
                let (name, value) = rest.split_once(' ').expect("a name and a value");
                assert!(is_metric_name(name), "bad metric name in {line:?}");
                match keyword {
                    "HELP" => assert!(!value.is_empty(), "empty help in {line:?}"),
                    "TYPE" => {
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                            "bad type in {line:?}"
                        );
                        assert!(
                            types.insert(name.to_owned(), value.to_owned()).is_none(),
                            "{name} typed twice"
                        );
                    }
                    other => panic!("unknown comment keyword {other:?} in {line:?}"),
                }
                continue;
            }
            let sample = parse_sample(line);
            let family = family_of(&sample.name, &types)
                .unwrap_or_else(|| panic!("sample {line:?} has no declared family"));
            assert!(types.contains_key(family));
            assert!(
                !samples.iter().any(|s| s.name == sample.name && s.labels == sample.labels),
                "repeated sample {line:?}"
            );
            samples.push(sample);
        }
        let exposition = Self { types, samples };
        exposition.check_histograms();
        exposition
    }

    /// Every histogram's buckets are cumulative and end in `+Inf`, which equals its `_count`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            for count in self.samples.iter().filter(|s| s.name == format!("{family}_count")) {
                let mut buckets: Vec<(f64, f64)> = self
                    .samples
                    .iter()
                    .filter(|s| s.name == format!("{family}_bucket"))
                    .filter(|s| {
                        let mut labels = s.labels.clone();
                        labels.remove("le");
                        labels == count.labels
                    })
                    .map(|s| (s.labels["le"].parse::<f64>().expect("a numeric le"), s.value))
                    .collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family} buckets are not cumulative");
                assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family} has no +Inf bucket");
                assert_eq!(
                    buckets.last().map(|b| b.1),
                    Some(count.value),
                    "{family} +Inf differs from _count"
                );
            }
        }
    }

    /// The value of the sample `name` with exactly these labels, if any.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == wanted).map(|s| s.value)
    }

    /// [`Exposition::get`], counting a series that does not exist yet as 0 (a counter before
    /// its first event).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every value the label `label` takes among the samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        self.samples.iter().filter(|s| s.name == name).filter_map(|s| s.labels.get(label).cloned()).collect()
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The family a sample belongs to: its name, or its name less a suffix its type allows.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"]),
        ("_count", &["histogram", "summary"]),
    ] {
        if let Some(family) = name.strip_suffix(suffix) {
            if types.get(family).is_some_and(|kind| kinds.contains(&kind.as_str())) {
                return Some(family);
            }
        }
    }
    None
}

/// `name{label="value",...} value`, with the format's escapes in label values.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(is_metric_name(name), "bad metric name in {line:?}");
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let start = chars.peek().map(|(i, _)| *i).expect("a label or }");
            if inner[start..].starts_with('}') {
                rest = &inner[start + 1..];
                break;
            }
            let eq = inner[start..]
                .find("=\"")
                .map(|i| start + i)
                .unwrap_or_else(|| panic!("bad label in {line:?}"));
            let label = &inner[start..eq];
            assert!(is_metric_name(label) && !label.contains(':'), "bad label name in {line:?}");
            while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().unwrap_or_else(|| panic!("unterminated label value in {line:?}")) {
                    (_, '\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    (_, '"') => break,
                    (_, '\n') => panic!("raw newline in {line:?}"),
                    (_, c) => value.push(c),
                }
            }
            assert!(labels.insert(label.to_owned(), value).is_none(), "repeated label in {line:?}");
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    rest = &inner[i + 1..];
                    break;
                }
                other => panic!("expected , or }} after a label, found {other:?} in {line:?}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        number => number.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample { name: name.to_owned(), labels, value }
}

/// `GET /metrics` with the token, checked and parsed.
fn scrape(app: &TestApp) -> Exposition {
    let response =
        app.client.get("/metrics").header(Header::new("Authorization", format!("Bearer {TOKEN}"))).dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.headers().get_one("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    Exposition::parse(&response.into_string().expect("a body"))
}

fn credentials(password: &str) -> String {
    form(&[("email", EMAIL), ("password", password)])
}

fn user(app: &TestApp) -> User {
    app.with_db(|conn| db::find_user_by(conn, UserFilter::Email(EMAIL)).expect("the user"))
}

#[test]
fn get_metrics_without_a_token_setting_is_404_like_an_absent_path() {
    let app = TestApp::new();
    let absent = app.client.get("/no-such-endpoint").dispatch();
    let (absent_status, absent_body) = (absent.status(), absent.into_string());
    for authorization in [None, Some(format!("Bearer {TOKEN}"))] {
        let mut request = app.client.get("/metrics");
        if let Some(value) = authorization {
            request = request.header(Header::new("Authorization", value));
        }
        let response = request.dispatch();
        assert_eq!(response.status(), Status::NotFound);
        assert_eq!(absent_status, Status::NotFound);
        assert_eq!(response.into_string(), absent_body);
    }
}

#[test]
fn get_metrics_with_a_missing_or_wrong_token_is_401() {
    let app = TestApp::with_config(with_metrics);
    let refusals = [
        None,
        Some(String::from("Bearer wrong-token-of-some-length")),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
        Some(String::from("Bearer ")),
    ];
    for authorization in refusals {
        let mut request = app.client.get("/metrics");
        if let Some(value) = &authorization {
            request = request.header(Header::new("Authorization", value.clone()));
        }
        let response = request.dispatch();
        assert_eq!(response.status(), Status::Unauthorized, "{authorization:?}");
        assert_eq!(
            common::json(response),
            serde_json::json!({"message": "a valid bearer token is required"}),
            "{authorization:?}"
        );
    }
    // The scheme is case-insensitive, as HTTP says.
    let lower =
        app.client.get("/metrics").header(Header::new("Authorization", format!("bearer {TOKEN}"))).dispatch();
    assert_eq!(lower.status(), Status::Ok);
}

#[test]
fn a_short_metrics_token_stops_the_launch() {
    let database = common::TestDatabase::new();
    let figment = common::test_figment(&database).merge(("metrics_token", "short"));
    match rocket::local::blocking::Client::untracked(auth_service::build(figment)) {
        Ok(_) => panic!("a 5-character metrics token was accepted"),
        Err(error) => match error.kind() {
            rocket::error::ErrorKind::FailedFairings(failed) => {
                assert!(failed.iter().any(|f| f.name == "Configuration"), "{failed:?}")
            }
            other => panic!("unexpected launch error {other:?}"),
        },
    }
}

#[test]
fn get_metrics_counts_register_login_failure_and_throttle_exactly() {
    // Two failures throttle the account for a minute.
    let app = TestApp::with_config(|f| {
        with_metrics(f).merge(("login_throttle_threshold", 2)).merge(("login_throttle_base_delay", 60))
    });
    let before = scrape(&app);
    let event_count = |scrape: &Exposition, kind: &str, outcome: &str| {
        scrape.count("auth_events_total", &[("kind", kind), ("outcome", outcome)])
    };
    let requests = |scrape: &Exposition, method: &str, route: &str, status: &str| {
        scrape.count("http_requests_total", &[("method", method), ("route", route), ("status", status)])
    };
    let verifies =
        |scrape: &Exposition| scrape.count("bcrypt_duration_seconds_count", &[("operation", "verify")]);

    app.register(EMAIL, PASSWORD);
    app.login(EMAIL, PASSWORD);
    assert_eq!(app.post_form("/sessions", &credentials("wrong")).status(), Status::Unauthorized);
    assert_eq!(app.post_form("/sessions", &credentials("wrong again")).status(), Status::Unauthorized);
    assert_eq!(app.post_form("/sessions", &credentials(PASSWORD)).status(), Status::TooManyRequests);

    let after = scrape(&app);
    for (kind, outcome, delta) in [
        ("register", "success", 1.0),
        ("login_success", "success", 1.0),
        ("login_failure", "wrong_password", 2.0),
        ("login_failure", "unknown_email", 0.0),
        ("throttled", "account_limit", 1.0),
        ("throttled", "ip_limit", 0.0),
    ] {
        assert_eq!(
            event_count(&after, kind, outcome) - event_count(&before, kind, outcome),
            delta,
            "auth_events_total{{kind={kind},outcome={outcome}}}"
        );
    }
    for (method, route, status, delta) in [
        ("POST", "/users", "200", 1.0),
        ("POST", "/sessions", "200", 1.0),
        ("POST", "/sessions", "401", 2.0),
        ("POST", "/sessions", "429", 1.0),
        ("GET", "/metrics", "200", 1.0),
    ] {
        assert_eq!(
            requests(&after, method, route, status) - requests(&before, method, route, status),
            delta,
            "http_requests_total{{method={method},route={route},status={status}}}"
        );
        let latency_count = |s: &Exposition| {
            s.count(
                "http_request_duration_seconds_count",
                &[("method", method), ("route", route), ("status", status)],
            )
        };
        assert_eq!(
            latency_count(&after) - latency_count(&before),
            delta,
            "latency of {method} {route} {status}"
        );
    }
    // One verify per password check: the good login and the two failures, not the throttled try.
    assert_eq!(verifies(&after) - verifies(&before), 3.0);
    assert!(
        after.count("bcrypt_duration_seconds_count", &[("operation", "hash")]) >= 1.0,
        "the registration hashed"
    );
    assert!(after.count("bcrypt_duration_seconds_sum", &[("operation", "verify")]) > 0.0);
    assert_eq!(after.types.get("bcrypt_wait_duration_seconds").map(String::as_str), Some("histogram"));
}

#[test]
fn get_metrics_counts_requests_refused_by_the_ip_limit_as_throttled() {
    let app = TestApp::with_config(|f| {
        with_metrics(f).merge(("ip_limit_per_minute", 1)).merge(("ip_limit_burst", 1))
    });
    let remote: SocketAddr = "198.51.100.40:5000".parse().expect("an address");
    let login = || {
        app.client
            .post("/sessions")
            .remote(remote)
            .header(ContentType::Form)
            .body(credentials(PASSWORD))
            .dispatch()
            .status()
    };
    let before = scrape(&app);
    assert_eq!(login(), Status::Unauthorized);
    assert_eq!(login(), Status::TooManyRequests);
    let after = scrape(&app);
    let throttled =
        |s: &Exposition| s.count("auth_events_total", &[("kind", "throttled"), ("outcome", "ip_limit")]);
    let unknown = |s: &Exposition| {
        s.count("auth_events_total", &[("kind", "login_failure"), ("outcome", "unknown_email")])
    };
    assert_eq!(throttled(&after) - throttled(&before), 1.0);
    assert_eq!(unknown(&after) - unknown(&before), 1.0);
}

#[test]
fn auth_sessions_active_equals_the_live_sessions() {
    let app = TestApp::with_config(with_metrics);
    assert_eq!(scrape(&app).get("auth_sessions_active", &[]), Some(0.0));

    app.register(EMAIL, PASSWORD);
    for _ in 0..3 {
        app.login(EMAIL, PASSWORD);
    }
    assert_eq!(scrape(&app).get("auth_sessions_active", &[]), Some(3.0));

    // Logging out ends the tracked client's (latest) session.
    assert_eq!(app.client.delete("/sessions").dispatch().status(), Status::SeeOther);
    // An expired and an idle session are in the table but not live.
    let user_id = user(&app).id;
    app.with_db(move |conn| {
        let now = Utc::now().naive_utc();
        for (token_hash, last_seen_at, expires_at) in [
            ("expired-session-digest", now, now - Duration::minutes(1)),
            ("idle-session-digest", now - Duration::days(1), now + Duration::hours(1)),
        ] {
            let session = NewSession {
                user_id,
                token_hash,
                created_at: now - Duration::days(2),
                last_seen_at,
                expires_at,
                ip: None,
                user_agent: None,
            };
            db::add_session(conn, &session).expect("a stored session");
        }
    });
    assert_eq!(scrape(&app).get("auth_sessions_active", &[]), Some(2.0));

    app.register("second@example.com", PASSWORD);
    app.login("second@example.com", PASSWORD);
    assert_eq!(scrape(&app).get("auth_sessions_active", &[]), Some(3.0));
}

#[test]
fn http_metrics_label_routes_by_template_and_unmatched_requests_as_one() {
    let app = TestApp::with_config(with_metrics);
    assert_eq!(app.client.get("/static/style.css").dispatch().status(), Status::Ok);
    assert_eq!(app.client.get("/static/logo.svg").dispatch().status(), Status::Ok);
    app.client.get("/password/reset?token=secret-token-in-a-query").dispatch();
    for path in ["/no/such/path/1", "/no/such/path/2", "/another-unknown"] {
        assert_eq!(app.client.get(path).dispatch().status(), Status::NotFound);
    }
    let after = scrape(&app);

    let get = |route: &str, status: &str| {
        after.count("http_requests_total", &[("method", "GET"), ("route", route), ("status", status)])
    };
    assert_eq!(get("/static/<path..>", "200"), 2.0);
    assert_eq!(get("unmatched", "404"), 3.0);
    // Latency runs from the arrival stamp to the response: never zero for a served file.
    let static_labels = [("method", "GET"), ("route", "/static/<path..>"), ("status", "200")];
    assert!(after.count("http_request_duration_seconds_sum", &static_labels) > 0.0);
    assert!(after.label_values("http_requests_total", "route").contains(&"/password/reset".to_owned()));
    for name in ["http_requests_total", "http_request_duration_seconds_count"] {
        for route in after.label_values(name, "route") {
            assert!(route == "unmatched" || route.starts_with('/'), "{route}");
            for raw in ["style.css", "logo.svg", "secret-token", "/no/such", "another-unknown", "?"] {
                assert!(!route.contains(raw), "the label {route:?} carries the raw path or query");
            }
        }
    }

    // The pool gauges describe the test pool (4 connections).
    assert_eq!(after.get("db_pool_max_connections", &[]), Some(4.0));
    let in_use = after.get("db_pool_connections", &[("state", "in_use")]).expect("in use");
    let idle = after.get("db_pool_connections", &[("state", "idle")]).expect("idle");
    assert!(in_use >= 0.0 && idle >= 1.0 && in_use + idle <= 4.0, "in use {in_use}, idle {idle}");
    assert_eq!(after.types.get("auth_sessions_active").map(String::as_str), Some("gauge"));
    assert_eq!(after.types.get("http_request_duration_seconds").map(String::as_str), Some("histogram"));
}

#[test]
fn the_strict_parser_refuses_malformed_expositions() {
    // The parser above is what the other tests trust: it must fail on what Prometheus refuses.
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert_eq!(Exposition::parse(good).get("a_total", &[("x", "1")]), Some(2.0));
    for bad in [
        "a_total 1\n",                                                                    // no TYPE
        "# TYPE a_total counter\na_total{x=1} 2\n", // unquoted label value
        "# TYPE a_total counter\na_total{x=\"1\"}\n", // no value
        "# TYPE a_total counter\na_total{x=\"1\"} two\n", // not a number
        "# TYPE a_total counter\na_total 1\na_total 1\n", // repeated sample
        "# TYPE a_total counter\na_total 1",        // no final newline
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
    ] {
        assert!(std::panic::catch_unwind(|| Exposition::parse(bad)).is_err(), "accepted {bad:?}");
    }
}
