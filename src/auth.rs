//! The Auth layer: users, sessions, logins and password resets.
//!
//! `Auth` owns policy (token generation and hashing, expiry, throttling, password strength, equal
//! timing) and is the only caller of [`crate::db`]. It never builds a query, and it never holds a
//! pooled connection while bcrypt runs.

use base64::Engine;
use chrono::{NaiveDateTime, Utc};
use rand::RngCore;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket::{Build, Phase, Rocket};
use sha2::{Digest, Sha256};

use crate::audit::{AuthEvent, AuthEventKind, AuthOutcome, RequestMeta};
use crate::config::Config;
use crate::db::{self, AnyConnection, DbError, DbPool, SessionScope};
use crate::error::{ApiResult, Error};
use crate::mail::Mailer;
use crate::metrics::Metrics;
pub use crate::password::{Hasher, Password};
use crate::user::{Email, NewSession, NewUser, Session, User, UserChanges, UserFilter};

/// How often, at most, a session's `last_seen_at` is written: reads stay reads.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// Builds the [`Hasher`] from [`Config`] at ignite.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Password hasher", |rocket| async {
        rocket.attach(AdHoc::try_on_ignite("Password hasher", manage_hasher)).attach(AdHoc::on_liftoff(
            "Unknown-email hash",
            |rocket| {
                Box::pin(async move {
                    // Made now rather than at the first login for an unknown email, which would
                    // otherwise take twice as long as a wrong password and so name itself.
                    if let Some(hasher) = rocket.state::<Hasher>().cloned() {
                        rocket::tokio::spawn(async move { hasher.prepare_dummy().await });
                    }
                })
            },
        ))
    })
}

async fn manage_hasher(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let Some(config) = rocket.state::<Config>() else {
        rocket::error!("the password hasher needs the configuration stage first");
        return Err(rocket);
    };
    let mut hasher = Hasher::new(config.bcrypt_cost, config.pepper.0.as_bytes(), config.bcrypt_permits());
    if let Some(metrics) = rocket.state::<Metrics>() {
        hasher = hasher.with_metrics(metrics.bcrypt());
    }
    Ok(rocket.manage(hasher))
}

/// How often expired sessions are swept out of the table.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Deletes expired sessions at liftoff and every [`SWEEP_INTERVAL`] until shutdown. Expiry is enforced when a
/// session is presented; the sweep keeps sessions that are never presented again from piling up.
/// Every node sweeps; the deletes are idempotent.
pub fn session_sweeper() -> AdHoc {
    AdHoc::on_liftoff("Expired-session sweeper", |rocket| {
        Box::pin(async move {
            let (Some(pool), Some(config)) = (rocket.state::<DbPool>().cloned(), rocket.state::<Config>())
            else {
                return;
            };
            let idle = config.idle_timeout();
            let mut shutdown = rocket.shutdown();
            rocket::tokio::spawn(async move {
                let mut ticks = rocket::tokio::time::interval(SWEEP_INTERVAL);
                loop {
                    rocket::tokio::select! {
                        _ = ticks.tick() => {}
                        _ = &mut shutdown => return,
                    }
                    let now = Utc::now().naive_utc();
                    let swept =
                        pool.run(move |conn| db::delete_expired_sessions(conn, now, now - idle)).await;
                    match swept {
                        Ok(0) => {}
                        Ok(count) => tracing::info!("swept {count} expired session(s)"),
                        Err(error) => tracing::warn!("the expired-session sweep failed: {error}"),
                    }
                }
            });
        })
    })
}

/// A new random (version 4) UUID, as a string (the seed's `_generate_uuid`).
pub fn generate_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new session or reset token: 256 random bits from the OS generator, base64url (43 chars).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a token, in hex: what the database stores instead of the token, so a copy of
/// the database opens no session and resets no password.
pub fn token_digest(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// The key failed logins are counted under: the SHA-256 of the lower-cased email, so unknown
/// emails are counted like known ones.
pub fn throttle_key(email: &Email) -> String {
    token_digest(&email.as_str().to_lowercase())
}

/// A live session and its user, as the session guard resolves them.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session: Session,
    pub user: User,
}

/// The seed's `Auth` class: every operation on users, sessions and reset tokens.
pub struct Auth<'r> {
    pool: &'r DbPool,
    hasher: &'r Hasher,
    config: &'r Config,
    mailer: &'r Mailer,
    /// Who is asking: recorded with every audit event and every new session.
    client: RequestMeta,
}

impl<'r> Auth<'r> {
    pub fn new(pool: &'r DbPool, hasher: &'r Hasher, config: &'r Config, mailer: &'r Mailer) -> Self {
        Self { pool, hasher, config, mailer, client: RequestMeta::default() }
    }

    /// The same layer, acting for the client `client` (the request guard sets it).
    pub fn for_client(self, client: RequestMeta) -> Self {
        Self { client, ..self }
    }

    /// The layer over the state an ignited `rocket` manages; `None` if a stage is missing.
    pub fn from_rocket<P: Phase>(rocket: &'r Rocket<P>) -> Option<Self> {
        Some(Self::new(
            rocket.state::<DbPool>()?,
            rocket.state::<Hasher>()?,
            rocket.state::<Config>()?,
            rocket.state::<Mailer>()?,
        ))
    }

    /// Runs `work` on a pooled connection that is returned as soon as `work` ends.
    async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.run(work).await
    }

    /// A salted bcrypt hash of `password` (the seed's `_hash_password`), in the current format.
    pub async fn hash_password(&self, password: &Password) -> ApiResult<String> {
        self.hasher.hash(password).await
    }

    /// Creates a user, or fails with [`Error::EmailTaken`] ("User <email> already exists"). The
    /// password must pass the configured policy.
    pub async fn register_user(&self, email: &Email, password: &Password) -> ApiResult<User> {
        let hashed_password = self.hasher.hash_new(self.config.password_policy, password, email).await?;
        let event =
            AuthEvent::new(AuthEventKind::Register, AuthOutcome::Success, &self.client).email(email.as_str());
        let (address, created) = (email.as_str().to_owned(), event.clone());
        // The account and its audit row are written together: one trip, one transaction.
        let inserted = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let user = db::add_user(conn, &NewUser::new(&address, &hashed_password))?;
                    created.user(user.id).record(conn)?;
                    Ok(user)
                })
            })
            .await;
        match inserted {
            Ok(user) => Ok(user),
            Err(DbError::Duplicate(_)) => {
                self.audit(AuthEvent { outcome: AuthOutcome::EmailTaken, ..event }).await?;
                Err(Error::EmailTaken(email.to_string()))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Whether `email` and `password` belong together. An unknown email is `false`, after the
    /// same bcrypt work as a wrong password.
    pub async fn valid_login(&self, email: &Email, password: &Password) -> ApiResult<bool> {
        Ok(self.check_credentials(email, password).await?.is_ok())
    }

    /// Starts a session for `email` and returns its id, or `None` for an unknown email.
    pub async fn create_session(&self, email: &Email) -> ApiResult<Option<String>> {
        match self.find_user(UserFilter::Email(email.as_str())).await? {
            Some(user) => self.start_session(&user, |_| Ok(())).await.map(Some),
            None => Ok(None),
        }
    }

    /// Logs in: refuses a throttled account with 429 before any bcrypt work, checks the password,
    /// counts a failure, and on success forgets earlier failures, upgrades an old hash and starts
    /// a session. Returns the session id for the cookie. Every outcome goes to the audit trail.
    pub async fn login(&self, email: &Email, password: &Password) -> ApiResult<String> {
        let client = &self.client;
        let key = throttle_key(email);
        if let Some(retry_after) = self.throttle_wait(&key).await? {
            let event = AuthEvent::new(AuthEventKind::Throttled, AuthOutcome::AccountLimit, client);
            self.audit(event.email(email.as_str())).await?;
            return Err(Error::TooManyRequests { retry_after });
        }
        let user = match self.check_credentials(email, password).await? {
            Ok(user) => user,
            Err(outcome) => {
                let (now, window_start) = self.throttle_window();
                self.run(move |conn| db::record_failed_login(conn, &key, now, window_start)).await?;
                let event = AuthEvent::new(AuthEventKind::LoginFailure, outcome, client);
                self.audit(event.email(email.as_str())).await?;
                return Err(Error::InvalidCredentials);
            }
        };
        let event = AuthEvent::new(AuthEventKind::LoginSuccess, AuthOutcome::Success, client)
            .user(user.id)
            .email(email.as_str());
        self.start_session(&user, move |conn| {
            db::clear_login_throttle(conn, &key)?;
            event.record(conn)
        })
        .await
    }

    /// Stores an event in the audit trail and logs it.
    async fn audit(&self, event: AuthEvent) -> ApiResult<()> {
        Ok(self.run(move |conn| event.record(conn)).await?)
    }

    /// The user if the password is right; otherwise why not (wrong password or unknown email),
    /// after the same bcrypt work either way. A right password on an outdated hash replaces the
    /// hash.
    async fn check_credentials(
        &self,
        email: &Email,
        password: &Password,
    ) -> ApiResult<Result<User, AuthOutcome>> {
        let Some(user) = self.find_user(UserFilter::Email(email.as_str())).await? else {
            self.hasher.verify_dummy(password).await?;
            return Ok(Err(AuthOutcome::UnknownEmail));
        };
        let verified = self.hasher.verify(password, &user.hashed_password).await?;
        if !verified.matches {
            return Ok(Err(AuthOutcome::WrongPassword));
        }
        if verified.needs_rehash {
            let rehashed = self.hash_password(password).await?;
            let user_id = user.id;
            let changes = UserChanges { hashed_password: Some(rehashed), ..Default::default() };
            self.run(move |conn| db::update_user(conn, user_id, &changes)).await?;
        }
        Ok(Ok(user))
    }

    /// Seconds until the account key may try again, if it is throttled now.
    async fn throttle_wait(&self, key: &str) -> ApiResult<Option<u64>> {
        let owned = key.to_owned();
        let Some(record) = self.run(move |conn| db::find_login_throttle(conn, &owned)).await? else {
            return Ok(None);
        };
        let (now, window_start) = self.throttle_window();
        if record.last_failure_at < window_start {
            return Ok(None);
        }
        let threshold = self.config.login_throttle_threshold as i32;
        if record.failures < threshold {
            return Ok(None);
        }
        let over = (record.failures - threshold) as u32;
        // base, 2×base, 4×base, ... up to the cap, counted from the last failure.
        let delay = self
            .config
            .login_throttle_base_delay
            .saturating_mul(1u64 << over.min(32))
            .min(self.config.login_throttle_max_delay);
        let free_at = record.last_failure_at + chrono::Duration::seconds(delay as i64);
        let remaining = (free_at - now).num_milliseconds();
        Ok((remaining > 0).then(|| (remaining as u64).div_ceil(1000)))
    }

    /// Now, and the last-use time before which a session counts as idle (expired).
    fn session_window(&self) -> (NaiveDateTime, NaiveDateTime) {
        let now = Utc::now().naive_utc();
        (now, now - self.config.idle_timeout())
    }

    fn throttle_window(&self) -> (NaiveDateTime, NaiveDateTime) {
        let now = Utc::now().naive_utc();
        (now, now - chrono::Duration::seconds(self.config.login_throttle_window as i64))
    }

    /// Stores a new session for `user` and returns its token; `also` runs on the same connection
    /// right after, so a login's other writes cost no extra trip.
    async fn start_session(
        &self,
        user: &User,
        also: impl FnOnce(&mut AnyConnection) -> Result<(), DbError> + Send + 'static,
    ) -> ApiResult<String> {
        let token = generate_token();
        let digest = token_digest(&token);
        let now = Utc::now().naive_utc();
        let expires_at = now + self.config.absolute_timeout();
        let user_id = user.id;
        let ip = self.client.ip.map(|ip| ip.to_string());
        let user_agent = self.client.user_agent.clone();
        self.run(move |conn| {
            let new_session = NewSession {
                user_id,
                token_hash: &digest,
                created_at: now,
                last_seen_at: now,
                expires_at,
                ip: ip.as_deref(),
                user_agent: user_agent.as_deref(),
            };
            db::add_session(conn, &new_session)?;
            also(conn)
        })
        .await?;
        Ok(token)
    }

    /// The user whose live session this is, if any.
    pub async fn get_user_from_session_id(&self, session_id: &str) -> ApiResult<Option<User>> {
        Ok(self.resolve_session(session_id).await?.map(|current| current.user))
    }

    /// The live session behind a token, with its user. An expired or idle session is deleted
    /// and reads as none.
    pub async fn resolve_session(&self, session_id: &str) -> ApiResult<Option<CurrentSession>> {
        if session_id.is_empty() {
            return Ok(None);
        }
        let digest = token_digest(session_id);
        let (now, idle_cutoff) = self.session_window();
        let found = self.pool.find_session(digest).await;
        let (session, user) = match found {
            Ok(row) => row,
            Err(DbError::NotFound) => return Ok(None),
            Err(other) => return Err(other.into()),
        };
        let (session_id, user_id) = (session.id, user.id);
        if session.expires_at <= now || session.last_seen_at < idle_cutoff {
            let event = AuthEvent::new(AuthEventKind::SessionRevoked, AuthOutcome::Expired, &self.client)
                .user(user_id);
            self.run(move |conn| {
                db::delete_sessions(conn, user_id, SessionScope::One(session_id))?;
                event.record(conn)
            })
            .await?;
            return Ok(None);
        }
        if (now - session.last_seen_at).num_seconds() >= TOUCH_INTERVAL_SECONDS {
            self.run(move |conn| db::touch_session(conn, session_id, now)).await?;
        }
        Ok(Some(CurrentSession { session, user }))
    }

    /// Ends every session of the user (the seed's `destroy_session`).
    pub async fn destroy_session(&self, user_id: i32) -> ApiResult<()> {
        self.end_sessions(user_id, SessionScope::All).await.map(drop)
    }

    /// Ends some of a user's sessions; returns how many ended.
    pub async fn end_sessions(&self, user_id: i32, scope: SessionScope) -> ApiResult<usize> {
        Ok(self.run(move |conn| db::delete_sessions(conn, user_id, scope)).await?)
    }

    /// Logs out: ends this session only (the user's other devices stay logged in).
    pub async fn logout(&self, current: &CurrentSession) -> ApiResult<()> {
        let (user_id, session_id) = (current.user.id, current.session.id);
        let event = AuthEvent::new(AuthEventKind::Logout, AuthOutcome::Success, &self.client).user(user_id);
        self.run(move |conn| {
            db::delete_sessions(conn, user_id, SessionScope::One(session_id))?;
            event.record(conn)
        })
        .await?;
        Ok(())
    }

    /// Ends other sessions of the current user (one by its id, or all but the current one) from
    /// the profile page; returns how many ended. Another user's session id ends nothing.
    pub async fn revoke_sessions(&self, current: &CurrentSession, scope: SessionScope) -> ApiResult<usize> {
        let user_id = current.user.id;
        let event =
            AuthEvent::new(AuthEventKind::SessionRevoked, AuthOutcome::Success, &self.client).user(user_id);
        Ok(self
            .run(move |conn| {
                let ended = db::delete_sessions(conn, user_id, scope)?;
                if ended > 0 {
                    event.record(conn)?;
                }
                Ok(ended)
            })
            .await?)
    }

    /// The account with this email (compared without case), if any.
    pub async fn user_by_email(&self, email: &Email) -> ApiResult<Option<User>> {
        self.find_user(UserFilter::Email(email.as_str())).await
    }

    /// Deletes an account and, with it, its sessions.
    pub async fn delete_user(&self, user_id: i32) -> ApiResult<()> {
        match self.run(move |conn| db::delete_user(conn, user_id)).await? {
            true => Ok(()),
            false => Err(Error::NotFound),
        }
    }

    /// Sets a new password for `user` (an operator's reset), as the policy allows, and ends every
    /// session of the account; returns how many ended.
    pub async fn set_password(&self, user: &User, password: &Password) -> ApiResult<usize> {
        let email =
            Email::parse(&user.email).map_err(|_| Error::Internal("a stored email is malformed".into()))?;
        let hashed_password = self.hasher.hash_new(self.config.password_policy, password, &email).await?;
        let changes = UserChanges { hashed_password: Some(hashed_password), ..Default::default() };
        let user_id = user.id;
        let event =
            AuthEvent::new(AuthEventKind::PasswordChanged, AuthOutcome::Success, &self.client).user(user_id);
        Ok(self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    db::update_user(conn, user_id, &changes)?;
                    let ended = db::delete_sessions(conn, user_id, SessionScope::All)?;
                    event.record(conn)?;
                    Ok(ended)
                })
            })
            .await?)
    }

    /// Deletes expired sessions and clears expired reset tokens; returns how many of each.
    pub async fn purge_expired(&self) -> ApiResult<(usize, usize)> {
        let (now, idle_cutoff) = self.session_window();
        Ok(self
            .run(move |conn| {
                let sessions = db::delete_expired_sessions(conn, now, idle_cutoff)?;
                Ok((sessions, db::clear_expired_reset_tokens(conn, now)?))
            })
            .await?)
    }

    /// How many sessions are live across all users (for the metrics).
    pub async fn live_session_count(&self) -> ApiResult<i64> {
        let (now, idle_cutoff) = self.session_window();
        Ok(self.run(move |conn| db::count_live_sessions(conn, now, idle_cutoff)).await?)
    }

    /// The user's live sessions, most recently used first.
    pub async fn list_sessions(&self, user_id: i32) -> ApiResult<Vec<Session>> {
        let (now, idle_cutoff) = self.session_window();
        Ok(self.run(move |conn| db::list_sessions(conn, user_id, now, idle_cutoff)).await?)
    }

    /// Issues a reset token for `email`, valid for `reset_token_ttl`, and stores its digest; a
    /// newer token replaces the older. An unknown email is [`Error::Forbidden`].
    pub async fn get_reset_password_token(&self, email: &Email) -> ApiResult<String> {
        self.issue_reset_token(email).await.map(|(token, _)| token)
    }

    /// Stores the digest of a new reset token for `email`; returns the token and the email as
    /// registered.
    async fn issue_reset_token(&self, email: &Email) -> ApiResult<(String, Email)> {
        let token = generate_token();
        let digest = token_digest(&token);
        let expires_at =
            Utc::now().naive_utc() + chrono::Duration::seconds(self.config.reset_token_ttl as i64);
        let address = email.as_str().to_owned();
        let stored = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let user = db::find_user_by(conn, UserFilter::Email(&address))?;
                    let changes = UserChanges {
                        reset_token: Some(Some(digest)),
                        reset_token_expires_at: Some(Some(expires_at)),
                        ..Default::default()
                    };
                    db::update_user(conn, user.id, &changes)?;
                    Ok(user)
                })
            })
            .await;
        let user = match stored {
            Ok(user) => user,
            Err(DbError::NotFound) => return Err(Error::Forbidden("email not registered")),
            Err(other) => return Err(other.into()),
        };
        let registered = Email::parse(&user.email)
            .map_err(|why| Error::Internal(format!("stored email of user {} {why}", user.id)))?;
        Ok((token, registered))
    }

    /// Starts a password reset for `email`: issues a token and mails the user a link carrying
    /// it. Returns the token only where the settings reveal it (the seed's contract).
    ///
    /// Where the token is revealed, an unknown email is [`Error::Forbidden`] and a mail that
    /// cannot be sent is [`Error::MailUnavailable`] (the token stays valid). Where it is not, a
    /// known and an unknown email get the same answer, `None`, in about the same time: the mail
    /// leaves in the background and a failure to send it is only logged.
    ///
    /// The mail goes to the address as registered, not as typed: the look-up ignores case, and a
    /// mailbox that differs only in case may belong to someone else.
    pub async fn request_password_reset(&self, email: &Email) -> ApiResult<Option<String>> {
        let reveal = self.config.reveal_reset_token;
        let event = AuthEvent::new(AuthEventKind::ResetRequested, AuthOutcome::Success, &self.client)
            .email(email.as_str());
        let (token, registered) = match self.issue_reset_token(email).await {
            Ok(issued) => issued,
            Err(Error::Forbidden(reason)) => {
                self.audit(AuthEvent { outcome: AuthOutcome::UnknownEmail, ..event }).await?;
                return if reveal { Err(Error::Forbidden(reason)) } else { Ok(None) };
            }
            Err(other) => return Err(other),
        };
        self.audit(event).await?;
        if reveal {
            self.mailer.send_password_reset(&registered, &token).await?;
            return Ok(Some(token));
        }
        let mailer = self.mailer.clone();
        rocket::tokio::spawn(async move {
            // The mailer logs a failure; nobody is waiting for the outcome.
            let _ = mailer.send_password_reset(&registered, &token).await;
        });
        Ok(None)
    }

    /// Sets a new password for the holder of `reset_token`, clears the token so it works once,
    /// and ends every session of the user. An unknown, used or expired token is
    /// [`Error::Forbidden`].
    pub async fn update_password(&self, reset_token: &str, password: &Password) -> ApiResult<User> {
        self.reset_password(None, reset_token, password).await
    }

    /// [`Auth::update_password`], refusing a token that was issued for another email.
    pub async fn update_password_for(
        &self,
        email: &Email,
        reset_token: &str,
        password: &Password,
    ) -> ApiResult<User> {
        self.reset_password(Some(email), reset_token, password).await
    }

    /// Changes the password of the session's user, who proves it with `current`, and ends every
    /// other session of the user in the same transaction: whoever else knew the old password is
    /// logged out. A wrong `current` is [`Error::InvalidCredentials`]; a `new` password the policy
    /// refuses is a [`Error::BadRequest`].
    pub async fn change_password(
        &self,
        session: &CurrentSession,
        current: &Password,
        new: &Password,
    ) -> ApiResult<()> {
        let user = &session.user;
        let event =
            AuthEvent::new(AuthEventKind::PasswordChanged, AuthOutcome::Success, &self.client).user(user.id);
        if !self.hasher.verify(current, &user.hashed_password).await?.matches {
            self.audit(AuthEvent { outcome: AuthOutcome::WrongPassword, ..event }).await?;
            return Err(Error::InvalidCredentials);
        }
        let email =
            Email::parse(&user.email).map_err(|_| Error::Internal("a stored email is malformed".into()))?;
        // Hash before taking a connection: bcrypt must never hold one.
        let hashed_password = self.hasher.hash_new(self.config.password_policy, new, &email).await?;
        let changes = UserChanges { hashed_password: Some(hashed_password), ..Default::default() };
        let (user_id, kept) = (user.id, session.session.id);
        self.run(move |conn| {
            db::write_transaction(conn, |conn| {
                db::update_user(conn, user_id, &changes)?;
                db::delete_sessions(conn, user_id, SessionScope::AllBut(kept))?;
                event.record(conn)
            })
        })
        .await?;
        Ok(())
    }

    /// Whether [`Auth::update_password`] would accept `reset_token` now: known, unused and not
    /// expired. It does not use the token up, so a page can check a link before showing its form.
    pub async fn reset_token_is_valid(&self, reset_token: &str) -> ApiResult<bool> {
        if reset_token.is_empty() {
            return Ok(false);
        }
        let digest = token_digest(reset_token);
        let now = Utc::now().naive_utc();
        let holder = self.find_user(UserFilter::ResetToken(&digest)).await?;
        Ok(holder.is_some_and(|user| user.reset_token_expires_at.is_some_and(|expires_at| expires_at > now)))
    }

    /// [`Auth::apply_reset`], with its outcome in the audit trail.
    async fn reset_password(
        &self,
        email: Option<&Email>,
        reset_token: &str,
        password: &Password,
    ) -> ApiResult<User> {
        let applied = self.apply_reset(email, reset_token, password).await;
        let event = |outcome| AuthEvent::new(AuthEventKind::ResetUsed, outcome, &self.client);
        match &applied {
            Ok(user) => self.audit(event(AuthOutcome::Success).user(user.id).email(&user.email)).await?,
            Err(Error::Forbidden(_)) => {
                let event = event(AuthOutcome::InvalidToken);
                self.audit(match email {
                    Some(email) => event.email(email.as_str()),
                    None => event,
                })
                .await?
            }
            Err(_) => {}
        }
        applied
    }

    async fn apply_reset(
        &self,
        email: Option<&Email>,
        reset_token: &str,
        password: &Password,
    ) -> ApiResult<User> {
        const INVALID: Error = Error::Forbidden("invalid reset token");
        if reset_token.is_empty() {
            return Err(INVALID);
        }
        let digest = token_digest(reset_token);
        let owned = digest.clone();
        let holder = match self.run(move |conn| db::find_user_by(conn, UserFilter::ResetToken(&owned))).await
        {
            Ok(user) => user,
            Err(DbError::NotFound) => return Err(INVALID),
            Err(other) => return Err(other.into()),
        };
        let now = Utc::now().naive_utc();
        if holder.reset_token_expires_at.is_none_or(|expires_at| expires_at <= now) {
            return Err(Error::Forbidden("reset token expired"));
        }
        if email.is_some_and(|email| email.as_str().to_lowercase() != holder.email.to_lowercase()) {
            return Err(INVALID);
        }
        let holder_email = Email::parse(&holder.email).map_err(|_| INVALID)?;
        // Hash before taking a connection: bcrypt must never hold one.
        let hashed_password =
            self.hasher.hash_new(self.config.password_policy, password, &holder_email).await?;
        let updated = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    // Re-read under the write lock: the token may have been used meanwhile.
                    let user = db::find_user_by(conn, UserFilter::ResetToken(&digest))?;
                    let changes = UserChanges {
                        hashed_password: Some(hashed_password),
                        reset_token: Some(None),
                        reset_token_expires_at: Some(None),
                        ..Default::default()
                    };
                    db::update_user(conn, user.id, &changes)?;
                    db::delete_sessions(conn, user.id, SessionScope::All)?;
                    Ok(user)
                })
            })
            .await;
        match updated {
            Ok(user) => Ok(user),
            Err(DbError::NotFound) => Err(INVALID),
            Err(other) => Err(other.into()),
        }
    }

    /// One user by filter; "not found" is `None`, while a database failure stays an error.
    async fn find_user(&self, filter: UserFilter<'_>) -> ApiResult<Option<User>> {
        let owned = OwnedFilter::from(filter);
        match self.run(move |conn| db::find_user_by(conn, owned.as_filter())).await {
            Ok(user) => Ok(Some(user)),
            Err(DbError::NotFound) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }
}

/// A [`UserFilter`] that owns its text, to cross into the blocking database thread.
enum OwnedFilter {
    Id(i32),
    Email(String),
    SessionId(String),
    ResetToken(String),
}

impl From<UserFilter<'_>> for OwnedFilter {
    fn from(filter: UserFilter<'_>) -> Self {
        match filter {
            UserFilter::Id(id) => OwnedFilter::Id(id),
            UserFilter::Email(email) => OwnedFilter::Email(email.to_owned()),
            UserFilter::SessionId(digest) => OwnedFilter::SessionId(digest.to_owned()),
            UserFilter::ResetToken(digest) => OwnedFilter::ResetToken(digest.to_owned()),
        }
    }
}

impl OwnedFilter {
    fn as_filter(&self) -> UserFilter<'_> {
        match self {
            OwnedFilter::Id(id) => UserFilter::Id(*id),
            OwnedFilter::Email(email) => UserFilter::Email(email),
            OwnedFilter::SessionId(digest) => UserFilter::SessionId(digest),
            OwnedFilter::ResetToken(digest) => UserFilter::ResetToken(digest),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Auth<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match Auth::from_rocket(request.rocket()) {
            Some(auth) => Outcome::Success(auth.for_client(RequestMeta::of(request))),
            None => {
                rocket::error!("Auth needs the configuration, database, password hasher and mailer stages");
                Outcome::Error((Status::InternalServerError, ()))
            }
        }
    }
}
