//! Typed settings. Each field has a default here and in `Rocket.toml`, and each can be overridden
//! with a `ROCKET_<NAME>` environment variable (for example `ROCKET_BCRYPT_COST=10`).

use std::path::PathBuf;

use rocket::fairing::AdHoc;
use serde::Deserialize;

use crate::password::PasswordPolicy;

/// The pepper of the default profile. It is public, so the release profile refuses it.
pub const DEVELOPMENT_PEPPER: &str = "auth-service development pepper (not secret)";

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The service's own settings, read from Rocket's figment at ignite.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// bcrypt work factor for new hashes (4..=31). 12 by default; the tests use 4.
    pub bcrypt_cost: u32,
    /// How many bcrypt computations may run at once. 0 means one per CPU core, which keeps logins
    /// from starving every other request of CPU.
    pub bcrypt_concurrency: usize,
    /// Whether the session cookie carries `Secure` (set it when served over HTTPS).
    pub cookie_secure: bool,
    /// The key of the HMAC pre-hash of passwords. Every node must share it; changing it makes
    /// every stored password unusable. The release profile refuses the public default.
    pub pepper: Secret,
    /// `seed` accepts any non-empty password; `strict` applies NIST SP 800-63B.
    pub password_policy: PasswordPolicy,
    /// Seconds a session lives without requests.
    pub session_idle_timeout: u64,
    /// Seconds a session lives at most, however active.
    pub session_absolute_timeout: u64,
    /// Seconds a password-reset token stays valid.
    pub reset_token_ttl: u64,
    /// Whether `POST /reset_password` returns the token, as the seed's contract says. The release
    /// profile sends it only by mail and answers alike for known and unknown emails.
    pub reveal_reset_token: bool,
    /// Failed logins of one account before further attempts are refused for a while.
    pub login_throttle_threshold: u32,
    /// The first wait, in seconds, once the threshold is passed; it doubles with each failure.
    pub login_throttle_base_delay: u64,
    /// The longest wait, in seconds, so an attacker cannot lock the real user out for long.
    pub login_throttle_max_delay: u64,
    /// Seconds after which earlier failures are forgotten.
    pub login_throttle_window: u64,
    /// Whether every response carries `Strict-Transport-Security` (set it when served over HTTPS
    /// only: browsers then refuse plain HTTP to this host for two years).
    pub hsts: bool,
    /// Requests per minute one client IP may make to the credential endpoints (log in, register,
    /// reset); 0 turns the per-IP limit off.
    pub ip_limit_per_minute: u32,
    /// How many of those requests one IP may make back to back before the per-minute pace applies.
    pub ip_limit_burst: u32,
    /// The key that signs the CSRF tokens of the pages' forms: the base64 of at least 32 random
    /// bytes. Unset, each start makes a random key, so a form rendered before a restart or by
    /// another instance is refused once; deployments with several instances must set it.
    pub csrf_secret: Option<Secret>,
    /// How password-reset mail leaves the service: `file` (the default) or `smtp`.
    pub mail_transport: MailTransport,
    /// The directory the `file` transport writes one `.eml` per message into; created if missing.
    pub mail_outbox: PathBuf,
    /// The server the `smtp` transport sends through. See [`SmtpUrl`] for the accepted forms.
    pub smtp_url: SmtpUrl,
    /// The `From` of every message, a mailbox such as `auth-service <no-reply@example.com>`.
    pub mail_from: String,
    /// The address users reach the service at, without a trailing slash. Links in mail are built
    /// from it, never from the request's `Host` header, which a client chooses.
    pub public_url: String,
    /// The bearer token `GET /metrics` requires. Unset (the default), metrics are off and
    /// `/metrics` answers 404; set, it must be at least [`MIN_METRICS_TOKEN_CHARS`] visible ASCII
    /// characters.
    pub metrics_token: Option<Secret>,
    /// How log lines are written: `human` (the default) or `json`, one object per line. Read by
    /// [`crate::logging::init`] before the service is built.
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bcrypt_cost: 12,
            bcrypt_concurrency: 0,
            cookie_secure: false,
            pepper: Secret(DEVELOPMENT_PEPPER.into()),
            password_policy: PasswordPolicy::Seed,
            session_idle_timeout: 30 * 60,
            session_absolute_timeout: 12 * 60 * 60,
            reset_token_ttl: 30 * 60,
            reveal_reset_token: true,
            login_throttle_threshold: 5,
            login_throttle_base_delay: 1,
            login_throttle_max_delay: 5 * 60,
            login_throttle_window: 15 * 60,
            hsts: false,
            ip_limit_per_minute: 60,
            ip_limit_burst: 10,
            csrf_secret: None,
            mail_transport: MailTransport::File,
            mail_outbox: PathBuf::from("data/mail_outbox"),
            smtp_url: SmtpUrl(String::from("smtp://127.0.0.1:25")),
            mail_from: String::from("auth-service <no-reply@localhost>"),
            public_url: String::from("http://127.0.0.1:8000"),
            metrics_token: None,
            log_format: LogFormat::Human,
        }
    }
}

/// The shortest metrics token accepted, in characters.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event: time, level, target, message and fields.
    #[default]
    Human,
    /// One JSON object per line, with the event's fields at the top level.
    Json,
}

/// Where mail goes: written to files, for development and tests, or sent to an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message in `mail_outbox`: `cargo run` needs no mail server.
    File,
    /// Delivery to the server at `smtp_url`.
    Smtp,
}

/// The SMTP server URL, in the forms lettre's `from_url` accepts:
///
/// - `smtp://host:port`: plain SMTP, for a relay on the same machine or network (port 25 by default);
/// - `smtp://host:port?tls=required`: STARTTLS, refusing a server that does not offer it (port 587
///   by default); `?tls=opportunistic` uses STARTTLS only when offered;
/// - `smtps://host:port`: TLS from the first byte (port 465 by default).
///
/// `user:password@` before the host adds SMTP authentication (percent-encode special characters),
/// which is why `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SmtpUrl(pub String);

impl SmtpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with its password, if any, replaced by `***`: safe for logs and error messages.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url.to_owned();
        };
        let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***@{host}{}", &url[..scheme_end], &url[authority_end..])
                }
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SmtpUrl").field(&self.redacted()).finish()
    }
}

impl Config {
    /// Checks the values that would otherwise fail later, on a request. `hardened` is true in the
    /// release profile, which must not run with public secrets.
    pub fn validate(&self, hardened: bool) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!("bcrypt_cost must be between 4 and 31, not {}", self.bcrypt_cost));
        }
        if self.session_idle_timeout == 0 || self.session_absolute_timeout == 0 || self.reset_token_ttl == 0 {
            return Err(
                "session_idle_timeout, session_absolute_timeout and reset_token_ttl must be > 0".into()
            );
        }
        if self.login_throttle_base_delay > self.login_throttle_max_delay {
            return Err("login_throttle_base_delay must not exceed login_throttle_max_delay".into());
        }
        if hardened && (self.pepper.0 == DEVELOPMENT_PEPPER || self.pepper.0.len() < 16) {
            return Err("the release profile needs its own secret pepper of at least 16 characters: \
                        set ROCKET_PEPPER (for example to the output of `openssl rand -base64 32`)"
                .into());
        }
        // A burst of 0 would refuse every request, which is never meant: turning the limit off is
        // `ip_limit_per_minute = 0`.
        if self.ip_limit_per_minute > 0 && self.ip_limit_burst == 0 {
            return Err(
                "ip_limit_burst must be at least 1 (set ip_limit_per_minute = 0 to turn the limit off)"
                    .into(),
            );
        }
        if let Some(token) = &self.metrics_token {
            let visible = token.0.bytes().all(|b| b.is_ascii_graphic());
            if token.0.len() < MIN_METRICS_TOKEN_CHARS || !visible {
                return Err(format!(
                    "metrics_token must be at least {MIN_METRICS_TOKEN_CHARS} visible ASCII characters \
                     without spaces (for example the output of `openssl rand -hex 32`)"
                ));
            }
        }
        Ok(())
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.session_idle_timeout as i64)
    }

    /// The absolute session lifetime as a duration.
    pub fn absolute_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.session_absolute_timeout as i64)
    }

    /// The number of bcrypt permits: the setting, or the core count when it is 0.
    pub fn bcrypt_permits(&self) -> usize {
        match self.bcrypt_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// Extracts and validates [`Config`]; a bad value stops the launch with a readable message.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Configuration", |rocket| async {
        let config = match rocket.figment().extract::<Config>() {
            Ok(config) => config,
            Err(error) => {
                rocket::error!("invalid configuration: {error}");
                return Err(rocket);
            }
        };
        let hardened = rocket.figment().profile() == "release";
        if let Err(message) = config.validate(hardened) {
            rocket::error!("invalid configuration: {message}");
            return Err(rocket);
        }
        Ok(rocket.manage(config))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};
    use rocket::figment::Figment;

    #[test]
    fn rocket_toml_defaults_match_the_code_defaults() {
        let from_file: Config =
            Figment::from(Toml::file("Rocket.toml").nested()).select("default").extract().unwrap();
        let defaults = Config::default();
        assert_eq!(from_file.bcrypt_cost, defaults.bcrypt_cost);
        assert_eq!(from_file.bcrypt_concurrency, defaults.bcrypt_concurrency);
        assert_eq!(from_file.cookie_secure, defaults.cookie_secure);
        assert_eq!(from_file.pepper, defaults.pepper);
        assert_eq!(from_file.password_policy, defaults.password_policy);
        assert_eq!(from_file.session_idle_timeout, defaults.session_idle_timeout);
        assert_eq!(from_file.session_absolute_timeout, defaults.session_absolute_timeout);
        assert_eq!(from_file.reset_token_ttl, defaults.reset_token_ttl);
        assert_eq!(from_file.reveal_reset_token, defaults.reveal_reset_token);
        assert_eq!(from_file.login_throttle_threshold, defaults.login_throttle_threshold);
        assert_eq!(from_file.login_throttle_base_delay, defaults.login_throttle_base_delay);
        assert_eq!(from_file.login_throttle_max_delay, defaults.login_throttle_max_delay);
        assert_eq!(from_file.login_throttle_window, defaults.login_throttle_window);
        assert_eq!(from_file.hsts, defaults.hsts);
        assert_eq!(from_file.ip_limit_per_minute, defaults.ip_limit_per_minute);
        assert_eq!(from_file.ip_limit_burst, defaults.ip_limit_burst);
        assert_eq!(from_file.metrics_token, defaults.metrics_token);
        assert_eq!(from_file.log_format, defaults.log_format);
    }

    #[test]
    fn a_metrics_token_must_be_long_and_visible_ascii() {
        let with = |token: &str| Config { metrics_token: Some(Secret(token.into())), ..Config::default() };
        assert!(with("0123456789abcdef").validate(false).is_ok());
        for bad in ["", "short", "0123456789 abcdef", "0123456789abcdéf"] {
            assert!(with(bad).validate(false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ip_limit_burst_of_0_is_refused_unless_the_limit_is_off() {
        let no_burst = Config { ip_limit_burst: 0, ..Config::default() };
        assert!(no_burst.validate(false).is_err());
        assert!(Config { ip_limit_per_minute: 0, ..no_burst }.validate(false).is_ok());
    }

    #[test]
    fn bcrypt_cost_outside_4_to_31_is_refused() {
        for cost in [0, 3, 32] {
            assert!(Config { bcrypt_cost: cost, ..Config::default() }.validate(false).is_err(), "{cost}");
        }
        assert!(Config { bcrypt_cost: 4, ..Config::default() }.validate(false).is_ok());
    }

    #[test]
    fn the_release_profile_refuses_the_public_pepper() {
        assert!(Config::default().validate(true).is_err());
        assert!(Config::default().validate(false).is_ok());
        let own = Config { pepper: Secret("a long and secret pepper".into()), ..Config::default() };
        assert!(own.validate(true).is_ok());
        assert_eq!(format!("{:?}", own.pepper), "Secret(***)");
    }

    #[test]
    fn bcrypt_permits_default_to_the_core_count() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(Config::default().bcrypt_permits(), cores);
        assert_eq!(Config { bcrypt_concurrency: 3, ..Config::default() }.bcrypt_permits(), 3);
    }
}
