//! Typed settings. Each field has a default here and in `Rocket.toml`, and each can be overridden
//! with a `ROCKET_<NAME>` environment variable (for example `ROCKET_BCRYPT_COST=10`).

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
    /// The key that signs the CSRF tokens of the pages' forms: the base64 of at least 32 random
    /// bytes. Unset, each start makes a random key, so a form rendered before a restart or by
    /// another instance is refused once; deployments with several instances must set it.
    pub csrf_secret: Option<Secret>,
}

/// A secret setting: read from a string like any other, never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { bcrypt_cost: 12, bcrypt_concurrency: 0, cookie_secure: false, csrf_secret: None }
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
