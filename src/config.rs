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
    /// Whether every response carries `Strict-Transport-Security` (set it when served over HTTPS
    /// only: browsers then refuse plain HTTP to this host for two years).
    pub hsts: bool,
    /// Requests per minute one client IP may make to the credential endpoints (log in, register,
    /// reset); 0 turns the per-IP limit off.
    pub ip_limit_per_minute: u32,
    /// How many of those requests one IP may make back to back before the per-minute pace applies.
    pub ip_limit_burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bcrypt_cost: 12,
            bcrypt_concurrency: 0,
            cookie_secure: false,
            hsts: false,
            ip_limit_per_minute: 60,
            ip_limit_burst: 10,
        }
    }
}

impl Config {
    /// Checks the values that would otherwise fail later, on a request.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!("bcrypt_cost must be between 4 and 31, not {}", self.bcrypt_cost));
        }
        // A burst of 0 would refuse every request, which is never meant: turning the limit off is
        // `ip_limit_per_minute = 0`.
        if self.ip_limit_per_minute > 0 && self.ip_limit_burst == 0 {
            return Err(
                "ip_limit_burst must be at least 1 (set ip_limit_per_minute = 0 to turn the limit off)"
                    .into(),
            );
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
        assert_eq!(from_file.hsts, defaults.hsts);
        assert_eq!(from_file.ip_limit_per_minute, defaults.ip_limit_per_minute);
        assert_eq!(from_file.ip_limit_burst, defaults.ip_limit_burst);
    }

    #[test]
    fn an_ip_limit_burst_of_0_is_refused_unless_the_limit_is_off() {
        let no_burst = Config { ip_limit_burst: 0, ..Config::default() };
        assert!(no_burst.validate().is_err());
        assert!(Config { ip_limit_per_minute: 0, ..no_burst }.validate().is_ok());
    }

    #[test]
    fn bcrypt_cost_outside_4_to_31_is_refused() {
        for cost in [0, 3, 32] {
            assert!(Config { bcrypt_cost: cost, ..Config::default() }.validate().is_err(), "{cost}");
        }
        assert!(Config { bcrypt_cost: 4, ..Config::default() }.validate().is_ok());
    }

    #[test]
    fn bcrypt_permits_default_to_the_core_count() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(Config::default().bcrypt_permits(), cores);
        assert_eq!(Config { bcrypt_concurrency: 3, ..Config::default() }.bcrypt_permits(), 3);
    }
}
