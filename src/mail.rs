//! Outgoing mail: the password-reset message and the transport that carries it.
//!
//! [`Mailer`] is built at ignite from [`Config`]. The `file` transport writes each message as an
//! `.eml` file into `mail_outbox`, so `cargo run` needs no mail server; the `smtp` transport sends
//! it to `smtp_url`. Both are lettre's tokio transports, so a slow mail server holds up no async
//! worker. Links start with `public_url`, never with the request's `Host` header, which the client
//! chooses: a forged Host must not turn a reset mail into a link to someone else's site.

use std::path::Path;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rocket::fairing::AdHoc;
use rocket::http::uri::Absolute;
use rocket::http::RawStr;

use crate::config::{Config, MailTransport, SmtpUrl};
use crate::error::{ApiResult, Error};
use crate::user::Email;

/// The subject of the password-reset mail.
pub const RESET_SUBJECT: &str = "Reset your password";

/// The path of the page that takes a reset token, below `public_url`.
pub const RESET_PATH: &str = "/password/reset";

/// How long connecting and each SMTP command may take. lettre's default is a minute; a request
/// that waits on a dead server should fail sooner.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where messages go. Both transports are cheap to clone (an `Arc` or a path inside).
#[derive(Clone)]
enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Builds and sends the service's mail. Managed Rocket state, made by [`stage`]; cloned into
/// the task that sends a mail in the background.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    /// `public_url` without a trailing slash.
    public_url: String,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("public_url", &self.public_url)
            .field("transport", &self.transport_name())
            .finish()
    }
}

impl Mailer {
    /// Checks the mail settings and builds the transport they name. The message says which
    /// setting is wrong and why. The file transport's directory is created here; the SMTP server
    /// is not contacted, so a mail server that is down at start delays no launch.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let from = config
            .mail_from
            .parse::<Mailbox>()
            .map_err(|e| format!("mail_from `{}` is not a mail address ({e})", config.mail_from))?;
        let public_url = parse_public_url(&config.public_url)?;
        let transport = match config.mail_transport {
            MailTransport::File => Transport::File(file_transport(&config.mail_outbox)?),
            MailTransport::Smtp => Transport::Smtp(smtp_transport(&config.smtp_url)?),
        };
        Ok(Self { from, public_url, transport })
    }

    /// `file` or `smtp`, for log lines.
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            Transport::File(_) => "file",
            Transport::Smtp(_) => "smtp",
        }
    }

    /// The link a reset mail carries: `{public_url}/password/reset?token=<token>`.
    pub fn reset_link(&self, token: &str) -> String {
        format!("{}{RESET_PATH}?token={}", self.public_url, RawStr::new(token).percent_encode())
    }

    /// Mails `to` a link that sets a new password with `token`.
    ///
    /// An address that mail cannot be sent to is a 400. A transport failure is logged (without
    /// the token) and is [`Error::MailUnavailable`]; whatever the caller stored stays as it was.
    pub async fn send_password_reset(&self, to: &Email, token: &str) -> ApiResult<()> {
        let message = self.password_reset_message(to, token)?;
        let sent = match &self.transport {
            Transport::File(file) => file.send(message).await.map(drop).map_err(|e| e.to_string()),
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| e.to_string()),
        };
        sent.map_err(|cause| {
            tracing::error!(
                transport = self.transport_name(),
                "password-reset mail not sent (the reset token stays valid): {cause}"
            );
            Error::MailUnavailable(cause)
        })
    }

    /// The reset message: a `multipart/alternative` with a text and an HTML part, both carrying
    /// the link.
    fn password_reset_message(&self, to: &Email, token: &str) -> ApiResult<Message> {
        let address = to
            .as_str()
            .parse::<Address>()
            .map_err(|_| Error::BadRequest("email is not an address mail can be sent to".into()))?;
        let link = self.reset_link(token);
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(RESET_SUBJECT)
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(reset_text(to, &link), reset_html(to, &link)))
            .map_err(|e| Error::Internal(format!("building the reset mail: {e}")))
    }
}

/// The plain-text part of the reset mail.
fn reset_text(to: &Email, link: &str) -> String {
    format!(
        "Hello,\n\n\
         Someone asked to reset the password of the account {to}.\n\
         To choose a new password, open this link:\n\n\
         {link}\n\n\
         The link works once. If you did not ask for it, ignore this message:\n\
         your password stays as it is.\n"
    )
}

/// The HTML part of the reset mail.
fn reset_html(to: &Email, link: &str) -> String {
    let to = escape_html(to.as_str());
    let link = escape_html(link);
    format!(
        "<!DOCTYPE html>\n<html><body>\n\
         <p>Hello,</p>\n\
         <p>Someone asked to reset the password of the account {to}.</p>\n\
         <p><a href=\"{link}\">Choose a new password</a></p>\n\
         <p>Or paste this address into your browser: {link}</p>\n\
         <p>The link works once. If you did not ask for it, ignore this message: your password \
         stays as it is.</p>\n\
         </body></html>\n"
    )
}

/// Escapes text for an HTML element or a double-quoted attribute.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Checks `public_url`: an absolute `http` or `https` URL with a host, and no user name, query or
/// fragment. Returns it without a trailing slash, ready for a path to be appended.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("public_url `{raw}` {why}, for example https://auth.example.com");
    let uri = Absolute::parse(raw).map_err(|_| invalid("is not an absolute URL"))?;
    if !uri.scheme().eq_ignore_ascii_case("http") && !uri.scheme().eq_ignore_ascii_case("https") {
        return Err(invalid("must start with http:// or https://"));
    }
    match uri.authority() {
        None => return Err(invalid("has no host")),
        Some(authority) if authority.host().is_empty() => return Err(invalid("has no host")),
        Some(authority) if authority.user_info().is_some() => {
            return Err(invalid("must not carry a user name or password"))
        }
        Some(_) => {}
    }
    if uri.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// The file transport over `outbox`, which is created if missing.
fn file_transport(outbox: &Path) -> Result<AsyncFileTransport<Tokio1Executor>, String> {
    std::fs::create_dir_all(outbox)
        .map_err(|e| format!("cannot create the mail_outbox directory {}: {e}", outbox.display()))?;
    Ok(AsyncFileTransport::new(outbox))
}

/// The SMTP transport for `url`; see [`SmtpUrl`] for the accepted forms.
fn smtp_transport(url: &SmtpUrl) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str()).map_err(|e| {
        format!(
            "smtp_url `{}` is not usable ({e}); use smtp://host:port, smtp://host:port?tls=required \
             or smtps://host:port",
            url.redacted()
        )
    })?;
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

/// Builds the [`Mailer`] from [`Config`] at ignite; a bad mail setting stops the launch.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Mailer", |rocket| async {
        let Some(config) = rocket.state::<Config>() else {
            rocket::error!("the mailer needs the configuration stage first");
            return Err(rocket);
        };
        match Mailer::from_config(config) {
            Ok(mailer) => {
                match mailer.transport {
                    Transport::File(_) => rocket::info!(
                        "mail is written to files in {} (mail_transport = \"file\")",
                        config.mail_outbox.display()
                    ),
                    Transport::Smtp(_) => rocket::info!("mail is sent to {}", config.smtp_url.redacted()),
                }
                Ok(rocket.manage(mailer))
            }
            Err(message) => {
                rocket::error!("invalid mail settings: {message}");
                Err(rocket)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(change: impl FnOnce(&mut Config)) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config {
            mail_outbox: dir.path().join("outbox"),
            public_url: "https://auth.example.test/".into(),
            ..Config::default()
        };
        change(&mut config);
        (config, dir)
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).expect("a valid email")
    }

    #[test]
    fn the_defaults_build_a_file_mailer_and_create_the_outbox() {
        let (config, _dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("the defaults are valid");
        assert_eq!(mailer.transport_name(), "file");
        assert!(config.mail_outbox.is_dir());
        assert_eq!(mailer.from.to_string(), "auth-service <no-reply@localhost>");
    }

    #[test]
    fn the_reset_link_starts_with_public_url_without_its_trailing_slash() {
        let (config, _dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("valid settings");
        assert_eq!(mailer.reset_link("abc-123"), "https://auth.example.test/password/reset?token=abc-123");
        let (config, _dir) = config_with_url("http://127.0.0.1:8000/auth");
        let mailer = Mailer::from_config(&config).expect("valid settings");
        assert_eq!(mailer.reset_link("a b&c"), "http://127.0.0.1:8000/auth/password/reset?token=a%20b%26c");
    }

    fn config_with_url(url: &str) -> (Config, tempfile::TempDir) {
        config(|c| c.public_url = url.into())
    }

    #[test]
    fn a_bad_public_url_is_refused_with_its_reason() {
        let cases = [
            ("auth.example.test", "is not an absolute URL"),
            ("ftp://auth.example.test", "must start with http:// or https://"),
            ("https:", "has no host"),
            ("https://user:pw@auth.example.test", "must not carry a user name or password"),
            ("https://auth.example.test/?next=1", "must not have a query"),
            ("https://auth.example.test/#top", "is not an absolute URL"),
        ];
        for (url, reason) in cases {
            let (config, _dir) = config_with_url(url);
            let error = Mailer::from_config(&config).expect_err(url);
            assert!(error.starts_with(&format!("public_url `{url}` {reason}")), "{url}: {error}");
        }
    }

    #[test]
    fn a_bad_mail_from_is_refused() {
        let (config, _dir) = config(|c| c.mail_from = "no address here".into());
        let error = Mailer::from_config(&config).expect_err("an invalid mailbox");
        assert!(error.starts_with("mail_from `no address here` is not a mail address"), "{error}");
    }

    #[test]
    fn smtp_url_accepts_the_documented_forms() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://relay.example.test?tls=required",
            "smtp://relay.example.test:587?tls=opportunistic",
            "smtps://user:secret@mail.example.test",
        ] {
            let (config, _dir) = config(|c| {
                c.mail_transport = MailTransport::Smtp;
                c.smtp_url = SmtpUrl(url.into());
            });
            let mailer = Mailer::from_config(&config).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(mailer.transport_name(), "smtp");
        }
    }

    #[test]
    fn a_bad_smtp_url_is_refused_without_its_password() {
        for url in ["http://user:secret@mail.example.test", "smtp://mail.example.test?tls=always", "smtp://"]
        {
            let (config, _dir) = config(|c| {
                c.mail_transport = MailTransport::Smtp;
                c.smtp_url = SmtpUrl(url.into());
            });
            let error = Mailer::from_config(&config).expect_err(url);
            assert!(error.starts_with("smtp_url `"), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn smtp_url_debug_and_redacted_hide_the_password() {
        let url = SmtpUrl("smtps://mailer:p%40ss@mail.example.test:465/helo?tls=required".into());
        assert_eq!(url.redacted(), "smtps://mailer:***@mail.example.test:465/helo?tls=required");
        assert!(!format!("{url:?}").contains("p%40ss"));
        let plain = SmtpUrl("smtp://127.0.0.1:25".into());
        assert_eq!(plain.redacted(), "smtp://127.0.0.1:25");
    }

    #[test]
    fn the_reset_message_has_both_parts_and_its_headers() {
        let (config, _dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("valid settings");
        let message = mailer.password_reset_message(&email("bob@example.com"), "tok-1").expect("a message");
        let raw = String::from_utf8(message.formatted()).expect("ASCII mail");
        assert!(raw.contains("From: auth-service <no-reply@localhost>\r\n"), "{raw}");
        assert!(raw.contains("To: bob@example.com\r\n"), "{raw}");
        assert!(raw.contains("Subject: Reset your password\r\n"), "{raw}");
        assert!(raw.contains("Content-Type: multipart/alternative;"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8"), "{raw}");
        assert!(raw.contains("Content-Type: text/html; charset=utf-8"), "{raw}");
        assert!(raw.contains("Message-ID: <"), "{raw}");
    }

    #[test]
    fn both_bodies_carry_the_link_and_the_html_is_escaped() {
        let link = "https://auth.example.test/password/reset?token=tok-1";
        let to = email("o'neil&co@example.com");
        let text = reset_text(&to, link);
        assert!(text.contains(&format!("\n{link}\n")), "{text}");
        assert!(text.contains("o'neil&co@example.com"), "{text}");
        let html = reset_html(&to, link);
        assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");
        assert!(html.contains("o&#39;neil&amp;co@example.com"), "{html}");
        assert_eq!(escape_html(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn an_address_mail_cannot_reach_is_a_400() {
        let (config, _dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("valid settings");
        let error = mailer.password_reset_message(&email("a<b@example.com"), "tok").expect_err("refused");
        assert_eq!(error.status().code, 400);
        assert_eq!(error.public_message(), "email is not an address mail can be sent to");
    }

    #[rocket::async_test]
    async fn the_file_transport_writes_one_eml_per_message() {
        let (config, _dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("valid settings");
        mailer.send_password_reset(&email("bob@example.com"), "tok-1").await.expect("sent");
        mailer.send_password_reset(&email("bob@example.com"), "tok-2").await.expect("sent");
        let names: Vec<_> = std::fs::read_dir(&config.mail_outbox)
            .expect("the outbox")
            .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|name| name.ends_with(".eml")), "{names:?}");
    }

    #[rocket::async_test]
    async fn a_missing_outbox_is_mail_unavailable() {
        let (config, dir) = config(|_| {});
        let mailer = Mailer::from_config(&config).expect("valid settings");
        std::fs::remove_dir_all(dir.path().join("outbox")).expect("remove the outbox");
        let error = mailer.send_password_reset(&email("bob@example.com"), "tok-1").await.expect_err("fails");
        assert!(matches!(error, Error::MailUnavailable(_)), "{error:?}");
        assert_eq!(error.status().code, 503);
    }
}
