//! The audit trail of authentication: what happened ([`AuthEventKind`]), how it ended
//! ([`AuthOutcome`]), to whom and from where ([`RequestMeta`]).
//!
//! Layering: handlers take a [`RequestMeta`] guard and hand it to `Auth`; `Auth` builds an
//! [`AuthEvent`] and calls [`AuthEvent::record`] inside the `run` closure of the operation, so
//! the event shares its connection (and, where the operation has one, its transaction). Recording
//! writes one structured log line (target `audit`, with the request id) and one row of
//! `auth_events` through [`db::record_event`], and counts the event in the app's
//! `auth_events_total` metric when metrics are on. The row type lives in [`crate::event`], data
//! only, like `user.rs`.
//!
//! Nothing secret can reach either: an event has no field for a password, a token or a hash, and
//! its kind and outcome are closed enums rather than free text.
//!
//! ```no_run
//! # use auth_service::audit::{AuthEvent, AuthEventKind, AuthOutcome, RequestMeta};
//! # use auth_service::db::{AnyConnection, DbError};
//! // Inside `Auth::run(move |conn| ...)`, after a successful login of `user_id`:
//! fn after_login(conn: &mut AnyConnection, meta: &RequestMeta, user_id: i32, email: &str) -> Result<(), DbError> {
//!     let event = AuthEvent::new(AuthEventKind::LoginSuccess, AuthOutcome::Success, meta)
//!         .user(user_id)
//!         .email(email);
//!     event.record(conn)
//! }
//! ```

use std::convert::Infallible;
use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::db::{self, AnyConnection, DbError};
use crate::event::{truncate_chars, NewAuthEvent, MAX_USER_AGENT_CHARS};
use crate::metrics::{AuthEventCounter, Metrics};
use crate::ops::CurrentRequestId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEventKind {
    /// An account was created (or creation was refused).
    Register,
    /// Correct credentials; a session was issued.
    LoginSuccess,
    /// Wrong password or unknown email.
    LoginFailure,
    /// The user ended their session.
    Logout,
    /// A request was refused by a rate limit (per IP or per account).
    Throttled,
    /// A reset token was asked for.
    ResetRequested,
    /// A reset token was presented to set a new password.
    ResetUsed,
    /// The password changed (by reset or by the user).
    PasswordChanged,
    /// A session ended by something other than logout: expiry, a password change, an admin.
    SessionRevoked,
}

impl AuthEventKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [AuthEventKind; 9] = [
        AuthEventKind::Register,
        AuthEventKind::LoginSuccess,
        AuthEventKind::LoginFailure,
        AuthEventKind::Logout,
        AuthEventKind::Throttled,
        AuthEventKind::ResetRequested,
        AuthEventKind::ResetUsed,
        AuthEventKind::PasswordChanged,
        AuthEventKind::SessionRevoked,
    ];

    /// The name stored in `auth_events.kind` and logged as `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthEventKind::Register => "register",
            AuthEventKind::LoginSuccess => "login_success",
            AuthEventKind::LoginFailure => "login_failure",
            AuthEventKind::Logout => "logout",
            AuthEventKind::Throttled => "throttled",
            AuthEventKind::ResetRequested => "reset_requested",
            AuthEventKind::ResetUsed => "reset_used",
            AuthEventKind::PasswordChanged => "password_changed",
            AuthEventKind::SessionRevoked => "session_revoked",
        }
    }
}

/// How it ended. A closed list, so no error text (which could quote input) lands in the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    /// The email has an account but the password is wrong.
    WrongPassword,
    /// No account has this email.
    UnknownEmail,
    /// Registration with an email that has an account.
    EmailTaken,
    /// A reset token that is unknown, used, expired or issued for another email.
    InvalidToken,
    /// A session that ran past its idle or absolute lifetime.
    Expired,
    /// Refused by the per-client-IP limit.
    IpLimit,
    /// Refused by the per-account limit.
    AccountLimit,
}

impl AuthOutcome {
    /// The name stored in `auth_events.outcome` and logged as `outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Success => "success",
            AuthOutcome::WrongPassword => "wrong_password",
            AuthOutcome::UnknownEmail => "unknown_email",
            AuthOutcome::EmailTaken => "email_taken",
            AuthOutcome::InvalidToken => "invalid_token",
            AuthOutcome::Expired => "expired",
            AuthOutcome::IpLimit => "ip_limit",
            AuthOutcome::AccountLimit => "account_limit",
        }
    }
}

/// Caps the log at `debug` once Rocket has set its level up: at Rocket's own `debug` level
/// (`log_level = "debug"`, which means `trace`) its form parser logs every field it reads,
/// passwords and reset tokens included. The cap runs at liftoff, before the first request.
pub fn stage() -> AdHoc {
    AdHoc::on_liftoff("Log level cap", |_| {
        Box::pin(async {
            if log::max_level() > log::LevelFilter::Debug {
                log::set_max_level(log::LevelFilter::Debug);
            }
        })
    })
}

/// Where a request came from: the client IP (see the `ip_header` setting) and the user agent,
/// cut to [`MAX_USER_AGENT_CHARS`]; and which request it is: its id (`X-Request-Id`) for the log
/// line, and the app's event counter when metrics are on. An infallible request guard.
///
/// Outside a request (the admin command line) every field is `None`.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub counter: Option<AuthEventCounter>,
}

impl RequestMeta {
    /// Reads the metadata of `request`.
    pub fn of(request: &Request<'_>) -> Self {
        let user_agent = request
            .headers()
            .get_one("User-Agent")
            .map(|agent| truncate_chars(agent, MAX_USER_AGENT_CHARS).to_owned());
        Self {
            ip: request.client_ip(),
            user_agent,
            request_id: Some(CurrentRequestId::of(request).to_owned()),
            counter: request.rocket().state::<Metrics>().map(Metrics::auth_events),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestMeta {
    type Error = Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Infallible> {
        Outcome::Success(RequestMeta::of(request))
    }
}

/// One event, owning its data so that it can move into a database closure.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    pub kind: AuthEventKind,
    pub outcome: AuthOutcome,
    pub user_id: Option<i32>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The id of the request it happened in: logged, not stored.
    pub request_id: Option<String>,
    /// Where the event is counted, when metrics are on.
    pub counter: Option<AuthEventCounter>,
}

impl AuthEvent {
    /// An event of `kind` that ended with `outcome`, for the request described by `meta`.
    pub fn new(kind: AuthEventKind, outcome: AuthOutcome, meta: &RequestMeta) -> Self {
        Self {
            kind,
            outcome,
            user_id: None,
            email: None,
            ip: meta.ip.map(|ip| ip.to_string()),
            user_agent: meta.user_agent.clone(),
            request_id: meta.request_id.clone(),
            counter: meta.counter.clone(),
        }
    }

    /// The user the event is about.
    pub fn user(mut self, user_id: i32) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// The email given in the request (for an unknown email, the only way to see who was tried).
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }

    /// The row to insert.
    pub fn as_new(&self) -> NewAuthEvent<'_> {
        NewAuthEvent {
            kind: self.kind.as_str(),
            user_id: self.user_id,
            email: self.email.as_deref(),
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref().map(|agent| truncate_chars(agent, MAX_USER_AGENT_CHARS)),
            outcome: self.outcome.as_str(),
        }
    }
}

impl AuthEvent {
    /// Logs the event (see [`AuthEvent::trace`]) and stores it in `auth_events`. Call it inside
    /// the operation's `run` closure.
    pub fn record(&self, conn: &mut AnyConnection) -> Result<(), DbError> {
        let row = self.as_new();
        self.log_and_count(&row);
        db::record_event(conn, &row)
    }

    /// Writes the event's one log line and counts it, without storing it: for events that must
    /// not cost a database write, such as requests refused by the per-IP limit, which a flood
    /// would otherwise turn into a flood of inserts.
    pub fn trace(&self) {
        self.log_and_count(&self.as_new());
    }

    /// The one structured log line of an event (target `audit`, fields `kind`, `user_id`, `ip`,
    /// `outcome` and `request_id`; the email and user agent stay out of the log, they are in the
    /// table), and its count in `auth_events_total` when metrics are on.
    fn log_and_count(&self, row: &NewAuthEvent<'_>) {
        tracing::info!(
            target: "audit",
            kind = row.kind,
            user_id = row.user_id,
            ip = row.ip,
            outcome = row.outcome,
            request_id = self.request_id.as_deref(),
            "auth event"
        );
        if let Some(counter) = &self.counter {
            counter.inc(self.kind.as_str(), self.outcome.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_documented_ones() {
        let names: Vec<_> = AuthEventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(
            names,
            [
                "register",
                "login_success",
                "login_failure",
                "logout",
                "throttled",
                "reset_requested",
                "reset_used",
                "password_changed",
                "session_revoked"
            ]
        );
    }

    #[test]
    fn an_event_carries_the_request_metadata_and_a_short_user_agent() {
        let meta = RequestMeta {
            ip: Some("203.0.113.9".parse().unwrap()),
            user_agent: Some("x".repeat(MAX_USER_AGENT_CHARS + 1)),
            ..RequestMeta::default()
        };
        let event = AuthEvent::new(AuthEventKind::LoginFailure, AuthOutcome::WrongPassword, &meta)
            .user(7)
            .email("a@b.c");
        let row = event.as_new();
        assert_eq!(row.kind, "login_failure");
        assert_eq!(row.outcome, "wrong_password");
        assert_eq!((row.user_id, row.email, row.ip), (Some(7), Some("a@b.c"), Some("203.0.113.9")));
        assert_eq!(row.user_agent.map(str::len), Some(MAX_USER_AGENT_CHARS));
    }

    #[test]
    fn request_meta_reads_the_peer_address_and_the_user_agent() {
        let client = rocket::local::blocking::Client::debug_with(vec![]).expect("a client");
        let agent = format!("Mozilla/5.0 {}", "é".repeat(600));
        let request = client
            .get("/")
            .remote("198.51.100.4:4242".parse().unwrap())
            .header(rocket::http::Header::new("User-Agent", agent));
        let meta = RequestMeta::of(request.inner());
        assert_eq!(meta.ip, Some("198.51.100.4".parse().unwrap()));
        let kept = meta.user_agent.expect("a user agent");
        assert_eq!(kept.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(kept.starts_with("Mozilla/5.0 é"));

        let bare = RequestMeta::of(client.get("/").inner());
        assert_eq!((bare.ip, bare.user_agent), (None, None));
        // Every request has an id, made here since no client sent one; metrics are off.
        assert_eq!(bare.request_id.map(|id| id.len()), Some(36));
        assert!(bare.counter.is_none());
    }
}
