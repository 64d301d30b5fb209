//! Passwords: what the form accepts, the strength policy for new passwords, and hashing.
//!
//! Hash formats, told apart by prefix so old hashes keep working:
//! - **v1** (`$2b$...`): plain bcrypt of the password, as the first version of the service stored
//!   it. bcrypt reads at most 72 bytes, so a longer password never matches a v1 hash.
//! - **v2** (`v2$` + bcrypt): bcrypt of `base64(HMAC-SHA-384(pepper, password))`. The pre-hash is
//!   64 bytes, inside bcrypt's limit, so a password of any accepted length counts in full, and a
//!   stolen database is useless without the pepper, which lives in the settings.
//!
//! Every new hash is v2 at the configured cost; a login that matches an older format or a lower
//! cost gets its hash replaced.

use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use rocket::form::{self, FromFormField, ValueField};
use rocket::tokio::sync::{OnceCell, Semaphore};
use rocket::tokio::task::spawn_blocking;
use serde::Deserialize;
use sha2::Sha384;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use crate::error::{ApiResult, Error};
use crate::metrics::{timed, BcryptMetrics, BcryptOperation};
use crate::user::Email;

/// The longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The shortest password the strict policy accepts, in characters.
pub const MIN_STRICT_PASSWORD_CHARS: usize = 8;
/// The prefix of the current hash format.
const V2_PREFIX: &str = "v2$";
/// zxcvbn looks at this many characters at most: its cost grows with length, and a password
/// that is strong in its first 128 characters is strong.
const STRENGTH_PREFIX_CHARS: usize = 128;

/// A password as submitted: non-empty and at most [`MAX_PASSWORD_CHARS`] characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks `raw` against the length limits, or says what is wrong in words that follow the
    /// field name ("password is required").
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("is required");
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err("is too long: at most 1024 characters");
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

/// The OpenAPI schema of what [`Password::parse`] accepts; the policy adds its own rules to new
/// passwords.
impl utoipa::PartialSchema for Password {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_PASSWORD_CHARS))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .description(Some(
                "1 to 1024 characters. A new password must also pass `password_policy`: any under \
                 `seed` (the default), at least 8 characters and hard to guess under `strict`.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Password {}

/// Which new passwords are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordPolicy {
    /// Any non-empty password, as the seed's clients expect (the default profile).
    Seed,
    /// NIST SP 800-63B: at least 8 characters, no composition rules, and nothing common, weak
    /// or built from the email (the release profile).
    Strict,
}

impl PasswordPolicy {
    /// Checks a new password for `email`, or says why it is refused.
    pub fn check(self, password: &Password, email: &Email) -> ApiResult<()> {
        match self {
            PasswordPolicy::Seed => Ok(()),
            PasswordPolicy::Strict => strict_check(password.as_str(), email.as_str())
                .map_err(|reason| Error::BadRequest(format!("password is too weak: {reason}").into())),
        }
    }
}

fn strict_check(password: &str, email: &str) -> Result<(), String> {
    if password.chars().count() < MIN_STRICT_PASSWORD_CHARS {
        return Err(format!("use at least {MIN_STRICT_PASSWORD_CHARS} characters"));
    }
    let prefix: String = password.chars().take(STRENGTH_PREFIX_CHARS).collect();
    let lowered = prefix.to_lowercase();
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let mut user_inputs = vec![email, local, domain];
    user_inputs.extend(domain.split('.'));
    user_inputs.extend(local.split(['.', '_', '-', '+']));
    if user_inputs.iter().any(|input| input.len() >= 3 && lowered.contains(&input.to_lowercase())) {
        return Err("it contains your email address or part of it".into());
    }
    let entropy = zxcvbn::zxcvbn(&prefix, &user_inputs);
    let warning = entropy.feedback().and_then(|feedback| feedback.warning());
    if is_common_password(warning) {
        return Err("it is on the list of commonly used passwords".into());
    }
    if entropy.score() < zxcvbn::Score::Three {
        let hint = warning.map_or_else(
            || "it is too easy to guess".into(),
            |warning| warning.to_string().trim_end_matches('.').to_owned(),
        );
        return Err(format!("{hint}; add more words or characters").to_lowercase());
    }
    Ok(())
}

/// True when zxcvbn found the password, or a variant of it, in its list of about 30,000
/// commonly used passwords.
fn is_common_password(warning: Option<zxcvbn::feedback::Warning>) -> bool {
    use zxcvbn::feedback::Warning;
    matches!(
        warning,
        Some(
            Warning::ThisIsATop10Password
                | Warning::ThisIsATop100Password
                | Warning::ThisIsACommonPassword
                | Warning::ThisIsSimilarToACommonlyUsedPassword
        )
    )
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The hash uses an older format or a lower cost than configured.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on the blocking pool, at most one computation per permit, so a
/// burst of logins leaves CPU for every other request.
#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    pepper: Arc<Vec<u8>>,
    permits: Arc<Semaphore>,
    /// A hash to verify against when the email is unknown, so that answer takes as long as a
    /// wrong password. Made on first use, to keep start-up fast.
    dummy_hash: Arc<OnceCell<String>>,
    /// Where the time of each computation, and of its wait for a permit, is reported.
    metrics: Option<BcryptMetrics>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("cost", &self.cost).field("pepper", &"***").finish()
    }
}

impl Hasher {
    pub fn new(cost: u32, pepper: &[u8], concurrency: usize) -> Self {
        Self {
            cost,
            pepper: Arc::new(pepper.to_vec()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
            metrics: None,
        }
    }

    /// The same hasher, reporting its times to `metrics`.
    pub fn with_metrics(self, metrics: BcryptMetrics) -> Self {
        Self { metrics: Some(metrics), ..self }
    }

    /// A v2 hash of `password` at the configured cost.
    pub async fn hash(&self, password: &Password) -> ApiResult<String> {
        let prehashed = prehash(&self.pepper, password.as_str());
        let (cost, metrics) = (self.cost, self.metrics.clone());
        self.run(BcryptOperation::Hash, move || v2_hash(prehashed, cost, metrics.as_ref())).await
    }

    /// A v2 hash of a new `password` for `email`, once `policy` accepts it. The check (zxcvbn
    /// takes about as long as a cost-4 bcrypt) runs with the hash, off the async workers and
    /// within the same bound.
    pub async fn hash_new(
        &self,
        policy: PasswordPolicy,
        password: &Password,
        email: &Email,
    ) -> ApiResult<String> {
        let (password, email) = (password.clone(), email.clone());
        let (pepper, cost, metrics) = (Arc::clone(&self.pepper), self.cost, self.metrics.clone());
        self.run(BcryptOperation::Hash, move || {
            policy.check(&password, &email)?;
            v2_hash(prehash(&pepper, password.as_str()), cost, metrics.as_ref())
        })
        .await
    }

    /// Checks `password` against a stored hash of any supported format.
    pub async fn verify(&self, password: &Password, stored: &str) -> ApiResult<Verified> {
        let (input, bcrypt_hash, current_format) = match stored.strip_prefix(V2_PREFIX) {
            Some(hash) => (prehash(&self.pepper, password.as_str()), hash.to_owned(), true),
            None => (password.as_str().to_owned(), stored.to_owned(), false),
        };
        let (cost, metrics) = (self.cost, self.metrics.clone());
        self.run(BcryptOperation::Verify, move || {
            // A v1 hash saw at most 72 bytes; a longer password is not the one it was made from.
            let matches = if current_format || input.len() <= 72 {
                timed(metrics.as_ref(), BcryptOperation::Verify, || bcrypt::verify(&input, &bcrypt_hash))?
            } else {
                false
            };
            let hash_cost = bcrypt_hash.parse::<bcrypt::HashParts>().map(|p| p.get_cost()).unwrap_or(0);
            Ok(Verified { matches, needs_rehash: !current_format || hash_cost < cost })
        })
        .await
    }

    /// Spends the time of one verify and never matches: the answer for an unknown email.
    pub async fn verify_dummy(&self, password: &Password) -> ApiResult<Verified> {
        let dummy = self.dummy_hash().await?;
        self.verify(password, &dummy).await.map(|_| Verified { matches: false, needs_rehash: false })
    }

    /// Makes the hash [`Hasher::verify_dummy`] checks against, if it is not made yet; a failure
    /// is logged, and the first unknown-email login tries again.
    pub async fn prepare_dummy(&self) {
        if let Err(error) = self.dummy_hash().await {
            tracing::warn!("the unknown-email hash could not be made yet: {error:?}");
        }
    }

    async fn dummy_hash(&self) -> ApiResult<String> {
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| async {
                let placeholder = Password("placeholder for unknown accounts".into());
                self.hash(&placeholder).await
            })
            .await?;
        Ok(dummy.clone())
    }

    /// Runs `work` on the blocking pool once a permit is free; the wait for the permit is
    /// reported as `operation`'s wait (the work reports its own bcrypt time).
    async fn run<T, F>(&self, operation: BcryptOperation, work: F) -> ApiResult<T>
    where
        F: FnOnce() -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let queued = std::time::Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("the bcrypt semaphore is closed".into()))?;
        if let Some(metrics) = &self.metrics {
            metrics.observe_wait(operation, queued.elapsed());
        }
        spawn_blocking(work).await?
    }
}

/// The v2 hash of a prehashed password: bcrypt at `cost` behind [`V2_PREFIX`]. Only bcrypt is
/// timed for `metrics`; a strength check before it is not part of the hash.
fn v2_hash(prehashed: String, cost: u32, metrics: Option<&BcryptMetrics>) -> ApiResult<String> {
    let hash = timed(metrics, BcryptOperation::Hash, || bcrypt::hash(prehashed, cost))?;
    Ok(format!("{V2_PREFIX}{hash}"))
}

/// `base64(HMAC-SHA-384(pepper, password))`: 64 ASCII bytes, whatever the password's length.
fn prehash(pepper: &[u8], password: &str) -> String {
    let mut mac = Hmac::<Sha384>::new_from_slice(pepper).expect("HMAC accepts keys of any length");
    mac.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw).unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn strict(raw: &str, address: &str) -> Result<(), String> {
        PasswordPolicy::Strict.check(&password(raw), &email(address)).map_err(|e| e.public_message().into())
    }

    #[test]
    fn password_lengths_are_checked_in_characters() {
        assert!(Password::parse("").is_err());
        assert!(Password::parse(&"é".repeat(1024)).is_ok());
        assert!(Password::parse(&"é".repeat(1025)).is_err());
    }

    #[test]
    fn the_seed_policy_accepts_short_passwords() {
        assert!(PasswordPolicy::Seed.check(&password("b4l0u"), &email("guillaume@holberton.io")).is_ok());
    }

    #[test]
    fn the_strict_policy_refuses_short_common_weak_and_email_based_passwords() {
        let short = strict("Ab3$x", "bob@example.com").unwrap_err();
        assert_eq!(short, "password is too weak: use at least 8 characters");
        let common = strict("password1", "bob@example.com").unwrap_err();
        assert!(common.contains("commonly used"), "{common}");
        let common_leet = strict("P@ssw0rd", "bob@example.com").unwrap_err();
        assert!(common_leet.contains("commonly used"), "{common_leet}");
        let from_email = strict("guillaume2024!", "guillaume@holberton.io").unwrap_err();
        assert!(from_email.contains("email"), "{from_email}");
        let weak = strict("aaaaaaaaaaaa", "bob@example.com").unwrap_err();
        assert!(weak.starts_with("password is too weak"), "{weak}");
    }

    #[test]
    fn the_strict_policy_accepts_long_unusual_passwords() {
        assert_eq!(strict("correct horse battery staple 42", "bob@example.com"), Ok(()));
        assert_eq!(strict("tR8#qL2!vZ9@", "bob@example.com"), Ok(()));
        let random = rand::Rng::sample_iter(rand::thread_rng(), rand::distributions::Alphanumeric)
            .take(1024)
            .map(char::from)
            .collect::<String>();
        assert_eq!(strict(&random, "bob@example.com"), Ok(()));
    }

    #[test]
    fn the_prehash_is_fixed_length_and_depends_on_the_pepper() {
        let long = "x".repeat(1000);
        assert_eq!(prehash(b"pepper", &long).len(), 64);
        assert_ne!(prehash(b"pepper", "a"), prehash(b"other", "a"));
        // Passwords that share their first 72 bytes still differ after the pre-hash.
        assert_ne!(prehash(b"p", &format!("{long}a")), prehash(b"p", &format!("{long}b")));
    }

    #[rocket::async_test]
    async fn v2_hashes_verify_long_passwords_in_full() {
        let hasher = Hasher::new(4, b"pepper", 2);
        let long = "y".repeat(100);
        let hash = hasher.hash(&password(&format!("{long}1"))).await.unwrap();
        assert!(hash.starts_with("v2$$2b$04$"), "{hash}");
        let right = hasher.verify(&password(&format!("{long}1")), &hash).await.unwrap();
        assert_eq!(right, Verified { matches: true, needs_rehash: false });
        let wrong = hasher.verify(&password(&format!("{long}2")), &hash).await.unwrap();
        assert!(!wrong.matches);
        // The same password under another pepper does not match.
        let other = Hasher::new(4, b"another pepper", 2);
        assert!(!other.verify(&password(&format!("{long}1")), &hash).await.unwrap().matches);
    }

    #[rocket::async_test]
    async fn v1_and_low_cost_hashes_match_and_ask_for_a_rehash() {
        let hasher = Hasher::new(5, b"pepper", 2);
        let v1 = bcrypt::hash("b4l0u", 4).unwrap();
        assert_eq!(
            hasher.verify(&password("b4l0u"), &v1).await.unwrap(),
            Verified { matches: true, needs_rehash: true }
        );
        let low_cost = Hasher::new(4, b"pepper", 2).hash(&password("b4l0u")).await.unwrap();
        assert_eq!(
            hasher.verify(&password("b4l0u"), &low_cost).await.unwrap(),
            Verified { matches: true, needs_rehash: true }
        );
        // A v1 hash never matches a password longer than 72 bytes, even one that starts alike.
        let v1_of_72 = bcrypt::hash("z".repeat(72), 4).unwrap();
        assert!(!hasher.verify(&password(&"z".repeat(80)), &v1_of_72).await.unwrap().matches);
    }

    #[rocket::async_test]
    async fn the_dummy_verify_never_matches() {
        let hasher = Hasher::new(4, b"pepper", 1);
        let outcome = hasher.verify_dummy(&password("placeholder for unknown accounts")).await.unwrap();
        assert!(!outcome.matches);
    }
}
