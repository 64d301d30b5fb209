//! The Auth layer: password hashing, tokens, sessions and password resets.
//!
//! `Auth` owns policy and is the only caller of [`crate::db`]. It never builds a query, never holds
//! a pooled connection while bcrypt runs, and runs bcrypt off the async workers, a bounded number
//! at a time.

use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::form::{self, FromFormField, ValueField};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket::tokio::sync::{OnceCell, Semaphore};
use rocket::tokio::task::spawn_blocking;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db::{self, AnyConnection, DbConn, DbError, DbPool};
use crate::error::{ApiResult, Error};
use crate::mail::Mailer;
use crate::user::{Email, NewUser, User, UserChanges, UserFilter};

/// bcrypt reads at most 72 bytes of a password. Longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A password as submitted: non-empty and within what bcrypt hashes in full.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks `raw` against the length limits, or says what is wrong in words that follow the
    /// field name ("password is required").
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("is required");
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err("is too long: at most 72 bytes (longer passwords are not truncated)");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never print a password, not even in a debug log.
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[rocket::async_trait]
impl<'v> FromFormField<'v> for Password {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        Password::parse(field.value).map_err(|message| form::Error::validation(message).into())
    }
}

/// Runs bcrypt on the blocking pool, at most one computation per permit, so a burst of logins
/// leaves CPU for every other request.
#[derive(Debug, Clone)]
pub struct Hasher {
    cost: u32,
    permits: Arc<Semaphore>,
    /// A hash to verify against when the email is unknown, so that answer takes as long as a
    /// wrong password. Made on first use, to keep start-up fast.
    dummy_hash: Arc<OnceCell<String>>,
}

impl Hasher {
    pub fn new(cost: u32, concurrency: usize) -> Self {
        Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// A salted bcrypt hash of `password` at the configured cost.
    pub async fn hash(&self, password: &Password) -> ApiResult<String> {
        let password = password.0.clone();
        let cost = self.cost;
        self.run(move || bcrypt::hash(password, cost)).await
    }

    /// Whether `password` matches `hash`.
    pub async fn verify(&self, password: &Password, hash: &str) -> ApiResult<bool> {
        let password = password.0.clone();
        let hash = hash.to_owned();
        self.run(move || bcrypt::verify(password, &hash)).await
    }

    /// Spends the time of one verify and returns false: the answer for an unknown email.
    pub async fn verify_dummy(&self, password: &Password) -> ApiResult<bool> {
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| async {
                let cost = self.cost;
                self.run(move || bcrypt::hash("not a password anyone has", cost)).await
            })
            .await?
            .clone();
        self.verify(password, &dummy).await.map(|_| false)
    }

    async fn run<T, F>(&self, work: F) -> ApiResult<T>
    where
        F: FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("the bcrypt semaphore is closed".into()))?;
        Ok(spawn_blocking(work).await??)
    }
}

/// Builds the [`Hasher`] from [`Config`] at ignite.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Password hasher", |rocket| async {
        let Some(config) = rocket.state::<Config>() else {
            rocket::error!("the password hasher needs the configuration stage first");
            return Err(rocket);
        };
        let hasher = Hasher::new(config.bcrypt_cost, config.bcrypt_permits());
        Ok(rocket.manage(hasher))
    })
}

/// A new random (version 4) UUID, as a string: 122 random bits.
pub fn generate_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The SHA-256 of a token, in hex: what the database stores instead of the token, so a copy of
/// the database opens no session and resets no password.
pub fn token_digest(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// The seed's `Auth` class: every operation on users, sessions and reset tokens.
pub struct Auth<'r> {
    pool: &'r DbPool,
    hasher: &'r Hasher,
    mailer: &'r Mailer,
}

impl<'r> Auth<'r> {
    pub fn new(pool: &'r DbPool, hasher: &'r Hasher, mailer: &'r Mailer) -> Self {
        Self { pool, hasher, mailer }
    }

    /// Runs `work` on a pooled connection that is returned as soon as `work` ends.
    async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let conn =
            self.pool.get().await.ok_or_else(|| {
                DbError::Unavailable("no database connection within the pool timeout".into())
            })?;
        conn.run(work).await
    }

    /// A salted bcrypt hash of `password` (the seed's `_hash_password`).
    pub async fn hash_password(&self, password: &Password) -> ApiResult<String> {
        self.hasher.hash(password).await
    }

    /// Creates a user, or fails with [`Error::EmailTaken`] ("User <email> already exists").
    pub async fn register_user(&self, email: &Email, password: &Password) -> ApiResult<User> {
        let hashed_password = self.hash_password(password).await?;
        let address = email.as_str().to_owned();
        let inserted = self
            .run(move |conn| {
                let new_user = NewUser { email: &address, hashed_password: &hashed_password };
                db::add_user(conn, &new_user)
            })
            .await;
        match inserted {
            Ok(user) => Ok(user),
            Err(DbError::Duplicate(_)) => Err(Error::EmailTaken(email.to_string())),
            Err(other) => Err(other.into()),
        }
    }

    /// Whether `email` and `password` belong together. An unknown email is `false`, after the
    /// same bcrypt work as a wrong password.
    pub async fn valid_login(&self, email: &Email, password: &Password) -> ApiResult<bool> {
        match self.find_user(UserFilter::Email(email.as_str())).await? {
            Some(user) => self.hasher.verify(password, &user.hashed_password).await,
            None => self.hasher.verify_dummy(password).await,
        }
    }

    /// Starts a session for `email` and returns its id, or `None` for an unknown email. Each call
    /// issues a fresh id, which replaces the user's previous one.
    pub async fn create_session(&self, email: &Email) -> ApiResult<Option<String>> {
        let session_id = generate_uuid();
        let digest = token_digest(&session_id);
        let address = email.as_str().to_owned();
        let stored = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let user = db::find_user_by(conn, UserFilter::Email(&address))?;
                    let changes = UserChanges { session_id: Some(Some(digest)), ..Default::default() };
                    db::update_user(conn, user.id, &changes)
                })
            })
            .await;
        match stored {
            Ok(()) => Ok(Some(session_id)),
            Err(DbError::NotFound) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// The user whose session id this is, if any.
    pub async fn get_user_from_session_id(&self, session_id: &str) -> ApiResult<Option<User>> {
        if session_id.is_empty() {
            return Ok(None);
        }
        self.find_user(UserFilter::SessionId(&token_digest(session_id))).await
    }

    /// Ends the user's session: its id becomes NULL.
    pub async fn destroy_session(&self, user_id: i32) -> ApiResult<()> {
        let changes = UserChanges { session_id: Some(None), ..Default::default() };
        Ok(self.run(move |conn| db::update_user(conn, user_id, &changes)).await?)
    }

    /// Issues a reset token for `email` and stores its digest; a newer token replaces the older.
    /// An unknown email is [`Error::Forbidden`].
    pub async fn get_reset_password_token(&self, email: &Email) -> ApiResult<String> {
        let token = generate_uuid();
        let digest = token_digest(&token);
        let address = email.as_str().to_owned();
        let stored = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let user = db::find_user_by(conn, UserFilter::Email(&address))?;
                    let changes = UserChanges { reset_token: Some(Some(digest)), ..Default::default() };
                    db::update_user(conn, user.id, &changes)
                })
            })
            .await;
        match stored {
            Ok(()) => Ok(token),
            Err(DbError::NotFound) => Err(Error::Forbidden("email not registered")),
            Err(other) => Err(other.into()),
        }
    }

    /// Issues a reset token for `email` (as [`Auth::get_reset_password_token`] does, so an unknown
    /// email is [`Error::Forbidden`]), mails the user a link carrying it, and returns the token.
    ///
    /// The mail goes to the address as registered, not as typed: the look-up ignores case, and a
    /// mailbox that differs only in case may belong to someone else. When sending fails the error
    /// is [`Error::MailUnavailable`] and the token stays stored and valid.
    pub async fn request_password_reset(&self, email: &Email) -> ApiResult<String> {
        let Some(user) = self.find_user(UserFilter::Email(email.as_str())).await? else {
            return Err(Error::Forbidden("email not registered"));
        };
        let registered = Email::parse(&user.email)
            .map_err(|why| Error::Internal(format!("stored email of user {} {why}", user.id)))?;
        let token = self.get_reset_password_token(&registered).await?;
        self.mailer.send_password_reset(&registered, &token).await?;
        Ok(token)
    }

    /// Sets a new password for the holder of `reset_token` and clears the token, so it works once.
    /// An unknown or used token is [`Error::Forbidden`].
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

    async fn reset_password(
        &self,
        email: Option<&Email>,
        reset_token: &str,
        password: &Password,
    ) -> ApiResult<User> {
        const INVALID: Error = Error::Forbidden("invalid reset token");
        if reset_token.is_empty() {
            return Err(INVALID);
        }
        // Hash before taking a connection: bcrypt must never hold one.
        let hashed_password = self.hash_password(password).await?;
        let digest = token_digest(reset_token);
        let expected_email = email.map(|e| e.as_str().to_lowercase());
        let updated = self
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let user = db::find_user_by(conn, UserFilter::ResetToken(&digest))?;
                    if expected_email.is_some_and(|expected| expected != user.email.to_lowercase()) {
                        return Err(DbError::NotFound);
                    }
                    let changes = UserChanges {
                        hashed_password: Some(hashed_password),
                        reset_token: Some(None),
                        ..Default::default()
                    };
                    db::update_user(conn, user.id, &changes)?;
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
        let rocket = request.rocket();
        match (DbConn::pool(rocket), rocket.state::<Hasher>(), rocket.state::<Mailer>()) {
            (Some(pool), Some(hasher), Some(mailer)) => Outcome::Success(Auth::new(pool, hasher, mailer)),
            _ => {
                rocket::error!("Auth needs the database, password hasher and mailer stages");
                Outcome::Error((Status::InternalServerError, ()))
            }
        }
    }
}
