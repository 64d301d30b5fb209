//! Typed settings. Each field has a default here and in `Rocket.toml`, and each can be overridden
//! with a `ROCKET_<NAME>` environment variable (for example `ROCKET_BCRYPT_COST=10`).

use std::path::PathBuf;

use rocket::fairing::AdHoc;
use serde::Deserialize;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bcrypt_cost: 12,
            bcrypt_concurrency: 0,
            cookie_secure: false,
            mail_transport: MailTransport::File,
            mail_outbox: PathBuf::from("data/mail_outbox"),
            smtp_url: SmtpUrl(String::from("smtp://127.0.0.1:25")),
            mail_from: String::from("auth-service <no-reply@localhost>"),
            public_url: String::from("http://127.0.0.1:8000"),
        }
    }
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
    /// Checks the values that would otherwise fail later, on a request.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!("bcrypt_cost must be between 4 and 31, not {}", self.bcrypt_cost));
        }
        Ok(())
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
        if let Err(message) = config.validate() {
            rocket::error!("invalid configuration: {message}");
            return Err(rocket);
        }
        Ok(rocket.manage(config))
    })
}
