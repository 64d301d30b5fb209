//! The `User` model: the `users` table, its row types and the typed filters that replace the
//! seed's keyword arguments. Data only; no I/O happens here.
//!
//! The seed's `find_user_by(**kwargs)` and `update_user(user_id, **kwargs)` fail at run time when
//! a keyword names no column (`InvalidRequestError`, `ValueError`). Here a filter is a
//! [`UserFilter`] variant and a change is a [`UserChanges`] field, so a misspelt column, a value of
//! the wrong type, or an attempt to change `id` does not compile. What is left for run time is an
//! empty change set, which [`crate::db::update_user`] reports as `InvalidRequest`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::form::{self, FromFormField, ValueField};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

diesel::table! {
    /// The seed's columns (`id`, `email`, `hashed_password`, `session_id`, `reset_token`) plus
    /// timestamps. `reset_token` holds the SHA-256 digest of the token. `session_id` is kept for
    /// the seed's schema but no longer written: sessions live in [`sessions`].
    users (id) {
        id -> Integer,
        email -> Text,
        hashed_password -> Text,
        session_id -> Nullable<Text>,
        reset_token -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        reset_token_expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One logged-in device. Only the SHA-256 digest of the session token is stored.
    sessions (id) {
        id -> Integer,
        user_id -> Integer,
        token_hash -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    /// Recent failed logins per account key (SHA-256 of the lower-cased email).
    login_throttles (email_key) {
        email_key -> Text,
        failures -> Integer,
        last_failure_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, login_throttles);

/// The longest email the `email` column holds, in bytes.
pub const MAX_EMAIL_BYTES: usize = 250;

/// One row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i32,
    pub email: String,
    #[serde(skip)]
    pub hashed_password: String,
    #[serde(skip)]
    pub session_id: Option<String>,
    #[serde(skip)]
    pub reset_token: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub reset_token_expires_at: Option<NaiveDateTime>,
}

/// The columns a new row needs; the database fills in the id.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub hashed_password: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl<'a> NewUser<'a> {
    /// A user created now.
    pub fn new(email: &'a str, hashed_password: &'a str) -> Self {
        let now = chrono::Utc::now().naive_utc();
        Self { email, hashed_password, created_at: now, updated_at: now }
    }
}

/// A partial update. `None` leaves a column alone; for the nullable columns `Some(None)` sets
/// it to NULL.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub hashed_password: Option<String>,
    pub session_id: Option<Option<String>>,
    pub reset_token: Option<Option<String>>,
    pub reset_token_expires_at: Option<Option<NaiveDateTime>>,
}

impl UserChanges {
    /// True when the change set names no column at all.
    pub fn is_empty(&self) -> bool {
        self.hashed_password.is_none()
            && self.session_id.is_none()
            && self.reset_token.is_none()
            && self.reset_token_expires_at.is_none()
    }
}

/// One row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Associations, Serialize)]
#[diesel(table_name = sessions, belongs_to(User))]
pub struct Session {
    pub id: i32,
    pub user_id: i32,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session to store.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub user_id: i32,
    pub token_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// One row of `login_throttles`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = login_throttles)]
pub struct LoginThrottle {
    pub email_key: String,
    pub failures: i32,
    pub last_failure_at: NaiveDateTime,
}

/// The ways to find one user: the seed's `find_user_by` keyword arguments as a type.
#[derive(Debug, Clone, Copy)]
pub enum UserFilter<'a> {
    Id(i32),
    /// Matched case-insensitively, like the unique index.
    Email(&'a str),
    /// The SHA-256 digest of a session token (looked up in `sessions`).
    SessionId(&'a str),
    /// The SHA-256 digest of a reset token.
    ResetToken(&'a str),
}

/// An email address as the service accepts it: non-empty local part and domain around one `@`,
/// no whitespace or control characters, at most [`MAX_EMAIL_BYTES`]. It keeps the spelling the
/// client sent, because the contract echoes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks `raw` and wraps it, or says what is wrong with it, in words that follow the field
    /// name ("email is required").
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("is required");
        }
        if raw.len() > MAX_EMAIL_BYTES {
            return Err("is too long (at most 250 bytes)");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters");
        }
        match raw.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
                Ok(Self(raw.to_owned()))
            }
            _ => Err("must look like name@example.com"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[rocket::async_trait]
impl<'v> FromFormField<'v> for Email {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        Email::parse(field.value).map_err(|message| form::Error::validation(message).into())
    }
}

/// The characters [`Email::parse`] refuses besides `@`: Unicode white space and control
/// characters, spelled out so that every regex dialect reads the class alike.
const EMAIL_REFUSED_CHARS: &str =
    r"@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The OpenAPI schema of the rules [`Email::parse`] applies, so the document cannot drift from them.
impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        let part = format!("[^{EMAIL_REFUSED_CHARS}]+");
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(3))
            .max_length(Some(MAX_EMAIL_BYTES))
            .pattern(Some(format!("^{part}@{part}$")))
            .description(Some(
                "One `@` between a non-empty name and domain, no white space or control characters, \
                 at most 250 bytes of UTF-8. Matched case-insensitively; answers echo it as sent.",
            ))
            .examples(["bob@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_plain_and_unicode_addresses() {
        assert_eq!(Email::parse("bob@example.com").unwrap().as_str(), "bob@example.com");
        assert_eq!(Email::parse("zoë@exämple.de").unwrap().as_str(), "zoë@exämple.de");
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in ["", "bob", "@example.com", "bob@", "a@b@c", "bob @x.io", "bob@x.io\n", "a\0@x"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(250))).is_err());
    }

    #[test]
    fn empty_changes_are_detected() {
        assert!(UserChanges::default().is_empty());
        let changes = UserChanges { session_id: Some(None), ..Default::default() };
        assert!(!changes.is_empty());
    }
}
