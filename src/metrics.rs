//! `GET /metrics`: counters, gauges and histograms in the Prometheus text format (0.0.4), for a
//! scraper that presents `Authorization: Bearer <metrics_token>`.
//!
//! Off unless `metrics_token` is set: then nothing is counted, no fairing runs, and `/metrics`
//! answers the same 404 as a path that does not exist. With the token, the service keeps
//! per-app [`Metrics`] in Rocket's state (never a global, so two apps in one process, as in the
//! tests, count apart) and feeds it from the places where each fact is known:
//!
//! | metric | labels | fed by |
//! |---|---|---|
//! | `http_requests_total`, `http_request_duration_seconds` | `method`, `route`, `status` | the [`HttpMetrics`] fairing |
//! | `auth_events_total` | `kind`, `outcome` | [`crate::audit`], for every event it logs |
//! | `auth_sessions_active` | | a count of live sessions at scrape time |
//! | `db_pool_connections`, `db_pool_max_connections` | `state` (`in_use`, `idle`) | the pool, at scrape time |
//! | `bcrypt_duration_seconds`, `bcrypt_wait_duration_seconds` | `operation` (`hash`, `verify`) | the [`crate::password::Hasher`] |
//!
//! `route` is the matched route's path template (`/profile`, `/static/<path..>`), never the
//! requested path, so the label set stays bounded whatever clients send; a request that no route
//! matched is `unmatched` (see [`crate::ops::route_template`]). Login successes, failures and throttles are
//! `auth_events_total{kind="login_success"}`, `{kind="login_failure"}` and `{kind="throttled"}`
//! (outcome `account_limit` or `ip_limit`).

use std::time::{Duration, Instant};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::http::ContentType;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket::{get, routes, Response, Route, State};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::{DbPool, PoolUsage};
use crate::error::{remember, ApiResult, Error};
use crate::ops::{route_template, RequestStart};

/// The labels of the HTTP metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// The labels of `auth_events_total`: an audit event's kind and outcome names.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthEventLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// The labels of the pool gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// What the [`crate::password::Hasher`] spent time on.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BcryptOperation {
    Hash,
    Verify,
}

impl BcryptOperation {
    fn as_str(self) -> &'static str {
        match self {
            BcryptOperation::Hash => "hash",
            BcryptOperation::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BcryptLabels {
    operation: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies: 1 ms to about 16 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// bcrypt times: 0.5 ms (cost 4) to about 4 s (cost 14 or a saturated machine).
fn bcrypt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The counter of audit events, as [`crate::audit`] holds it: cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct AuthEventCounter(Family<AuthEventLabels, Counter>);

impl AuthEventCounter {
    /// Counts one event of `kind` that ended with `outcome` (the names of the audit enums).
    pub fn inc(&self, kind: &'static str, outcome: &'static str) {
        self.0.get_or_create(&AuthEventLabels { kind, outcome }).inc();
    }
}

/// The bcrypt histograms, as the [`crate::password::Hasher`] holds them: cheap to clone.
#[derive(Clone, Debug)]
pub struct BcryptMetrics {
    duration: HistogramFamily<BcryptLabels>,
    wait: HistogramFamily<BcryptLabels>,
}

impl BcryptMetrics {
    /// Records how long one computation ran.
    pub fn observe(&self, operation: BcryptOperation, took: Duration) {
        let labels = BcryptLabels { operation: operation.as_str() };
        self.duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Records how long a computation waited for a permit of the hasher's semaphore.
    pub fn observe_wait(&self, operation: BcryptOperation, waited: Duration) {
        let labels = BcryptLabels { operation: operation.as_str() };
        self.wait.get_or_create(&labels).observe(waited.as_secs_f64());
    }
}

/// Measures `work` and reports its time to `metrics`, if any.
pub fn timed<T>(metrics: Option<&BcryptMetrics>, operation: BcryptOperation, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let outcome = work();
    if let Some(metrics) = metrics {
        metrics.observe(operation, start.elapsed());
    }
    outcome
}

/// The metrics of one app, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    auth_events: AuthEventCounter,
    sessions_active: Gauge,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
    bcrypt: BcryptMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its exposition name.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        // Registered without `_total`: the encoder appends it to counters.
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template",
            http_requests.clone(),
        );
        let http_duration = HistogramFamily::<HttpLabels>::new_with_constructor(request_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's arrival to its response, by route template",
            http_duration.clone(),
        );
        let auth_events = Family::<AuthEventLabels, Counter>::default();
        registry.register(
            "auth_events",
            "Authentication events of the audit trail (logins, throttles, registrations, resets)",
            auth_events.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "auth_sessions_active",
            "Live sessions, counted at scrape time",
            sessions_active.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Open database connections, in use or idle",
            pool_connections.clone(),
        );
        let pool_max = Gauge::default();
        registry.register("db_pool_max_connections", "The size of the database pool", pool_max.clone());
        let bcrypt = BcryptMetrics {
            duration: HistogramFamily::new_with_constructor(bcrypt_histogram),
            wait: HistogramFamily::new_with_constructor(bcrypt_histogram),
        };
        registry.register(
            "bcrypt_duration_seconds",
            "Time spent computing bcrypt hashes and verifications",
            bcrypt.duration.clone(),
        );
        registry.register(
            "bcrypt_wait_duration_seconds",
            "Time bcrypt work waited for a free slot of the hasher",
            bcrypt.wait.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            auth_events: AuthEventCounter(auth_events),
            sessions_active,
            pool_connections,
            pool_max,
            bcrypt,
        }
    }

    /// Counts one answered request and its latency.
    pub fn observe_request(&self, labels: HttpLabels, took: Duration) {
        self.http_duration.get_or_create(&labels).observe(took.as_secs_f64());
        self.http_requests.get_or_create(&labels).inc();
    }

    /// The audit events' counter, for [`crate::audit`].
    pub fn auth_events(&self) -> AuthEventCounter {
        self.auth_events.clone()
    }

    /// The bcrypt histograms, for the [`crate::password::Hasher`].
    pub fn bcrypt(&self) -> BcryptMetrics {
        self.bcrypt.clone()
    }

    /// Sets the gauges read at scrape time and renders everything in the Prometheus text format.
    pub fn render(&self, live_sessions: i64, pool: PoolUsage) -> ApiResult<String> {
        self.sessions_active.set(live_sessions);
        self.pool_connections.get_or_create(&PoolLabels { state: "in_use" }).set(i64::from(pool.in_use));
        self.pool_connections.get_or_create(&PoolLabels { state: "idle" }).set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)
            .map_err(|_| Error::Internal("the metrics could not be encoded".into()))?;
        Ok(text)
    }
}

/// Manages [`Metrics`] and attaches [`HttpMetrics`] when `metrics_token` is set; otherwise does
/// nothing, so metrics cost nothing when off. Runs after the configuration stage and before the
/// password hasher is built, which takes its histograms from here.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Metrics", |rocket| async {
        let Some(config) = rocket.state::<Config>() else {
            rocket::error!("the metrics need the configuration stage first");
            return Err(rocket);
        };
        if config.metrics_token.is_none() {
            return Ok(rocket);
        }
        Ok(rocket.manage(Metrics::new()).attach(HttpMetrics))
    })
}

/// Counts every response by method, route template and status, with its latency.
pub struct HttpMetrics;

#[rocket::async_trait]
impl Fairing for HttpMetrics {
    fn info(&self) -> Info {
        // The arrival time is stamped by `ops::RequestId`, which runs before this.
        Info { name: "HTTP metrics", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let Some(metrics) = request.rocket().state::<Metrics>() else {
            return;
        };
        let labels = HttpLabels {
            method: request.method().as_str(),
            route: route_template(request).to_owned(),
            status: response.status().code,
        };
        metrics.observe_request(labels, RequestStart::of(request).elapsed());
    }
}

/// Proof that the scraper presented the metrics token; yields the app's [`Metrics`].
///
/// Metrics off: 404, as for a path that does not exist. A missing or wrong token: 401
/// ([`Error::BearerTokenRequired`]). The token is compared by SHA-256 digest in constant time,
/// so neither its content nor its length leaks through timing.
pub struct MetricsAccess<'r>(pub &'r Metrics);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsAccess<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let rocket = request.rocket();
        let (Some(metrics), Some(token)) =
            (rocket.state::<Metrics>(), rocket.state::<Config>().and_then(|c| c.metrics_token.as_ref()))
        else {
            return Outcome::Error((remember(request, &Error::NotFound), ()));
        };
        let presented = request.headers().get_one("Authorization").and_then(bearer_token);
        match presented {
            Some(presented) if tokens_match(presented, &token.0) => Outcome::Success(MetricsAccess(metrics)),
            _ => Outcome::Error((remember(request, &Error::BearerTokenRequired), ())),
        }
    }
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two tokens in time that depends on neither.
fn tokens_match(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
    presented.ct_eq(&expected).into()
}

/// `GET /metrics`: the live-session count and pool use read now, everything else as counted.
#[get("/metrics")]
pub async fn scrape(
    access: MetricsAccess<'_>,
    auth: Auth<'_>,
    pool: &State<DbPool>,
) -> ApiResult<(ContentType, String)> {
    let live_sessions = auth.live_session_count().await?;
    let text = access.0.render(live_sessions, pool.usage())?;
    let content_type =
        ContentType::parse_flexible(prometheus_text::CONTENT_TYPE).unwrap_or(ContentType::Plain);
    Ok((content_type, text))
}

pub fn routes() -> Vec<Route> {
    routes![scrape]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header_and_compared_exactly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert!(tokens_match("a-long-metrics-token", "a-long-metrics-token"));
        assert!(!tokens_match("a-long-metrics-token", "a-long-metrics-tokeN"));
        assert!(!tokens_match("a-long-metrics-token", "a-long-metrics-token-and-more"));
        assert!(!tokens_match("", "a-long-metrics-token"));
    }

    #[test]
    fn the_exposition_names_every_metric_once_with_its_type() {
        let metrics = Metrics::new();
        metrics.auth_events().inc("login_success", "success");
        metrics.observe_request(
            HttpLabels { method: "GET", route: "/profile".into(), status: 200 },
            Duration::ZERO,
        );
        metrics.bcrypt().observe(BcryptOperation::Verify, Duration::from_millis(3));
        let text = metrics.render(2, PoolUsage { in_use: 1, idle: 3, max: 8 }).unwrap();
        for line in [
            "# TYPE http_requests_total counter",
            "http_requests_total{method=\"GET\",route=\"/profile\",status=\"200\"} 1",
            "# TYPE http_request_duration_seconds histogram",
            "auth_events_total{kind=\"login_success\",outcome=\"success\"} 1",
            "auth_sessions_active 2",
            "db_pool_connections{state=\"in_use\"} 1",
            "db_pool_connections{state=\"idle\"} 3",
            "db_pool_max_connections 8",
            "bcrypt_duration_seconds_count{operation=\"verify\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
    }
}
