//! The per-client-IP rate limit on the credential endpoints: a keyed GCRA limiter (governor)
//! held as managed state, and the [`IpLimit`] request guard that spends one request of the
//! client's allowance or fails with 429 and `Retry-After`.
//!
//! The client IP is `Request::client_ip()`: the TCP peer, or the header named by Rocket's
//! `ip_header` setting when one is set. `Rocket.toml` sets `ip_header = false`, so a client cannot
//! choose its own key with `X-Real-IP`; a deployment behind a reverse proxy that overwrites the
//! header sets it. IPv6 clients are keyed by their /64 network, the block one subscriber
//! usually gets, so rotating addresses within it buys nothing.
//!
//! A route opts in by taking the guard, as its first guard so nothing costly runs before it:
//! `_limit: IpLimit`.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::audit::{AuthEvent, AuthEventKind, AuthOutcome, RequestMeta};
use crate::config::Config;
use crate::error::{remember, Error};

/// After this many checks the limiter forgets the clients whose allowance is full again, so a
/// stream of one-off addresses cannot grow memory without bound.
const SWEEP_EVERY: u64 = 1024;

/// The limiter shared by every request; `None` inside when the limit is off.
pub struct IpLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

impl IpLimiter {
    /// `per_minute` requests a minute per client, `burst` of them back to back; a `per_minute` of
    /// 0 turns the limit off (and a `burst` of 0 counts as 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self { limiter, checks: AtomicU64::new(0) }
    }

    /// Spends one request of `ip`'s allowance, or says how many whole seconds to wait (at least 1).
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        limiter
            .check_key(&limit_key(ip))
            .map_err(|not_until| retry_after_seconds(not_until.wait_time_from(limiter.clock().now())))
    }

    /// Drops the clients whose allowance is full again and gives the memory back.
    pub fn sweep(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients the limiter remembers.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }
}

/// The key of a client: its IPv4 address (also when written as IPv4-mapped IPv6), or its IPv6
/// /64 network.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// A wait in whole seconds, rounded up and never 0 (a client told "0" would retry at once).
fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Builds the [`IpLimiter`] from [`Config`] at ignite.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Per-IP rate limit", |rocket| async {
        let Some(config) = rocket.state::<Config>() else {
            rocket::error!("the per-IP rate limit needs the configuration stage first");
            return Err(rocket);
        };
        let limiter = IpLimiter::new(config.ip_limit_per_minute, config.ip_limit_burst);
        Ok(rocket.manage(limiter))
    })
}

/// Proof that the client was within its per-IP allowance. Over it, the request fails with 429,
/// `Retry-After` and `{"message": "too many requests; slow down"}`, and one `throttled` line goes
/// to the audit log.
///
/// The verdict is cached for the request, so a request that several ranked routes try spends
/// one unit of allowance, not one per route. A request without a client address is not limited: only
/// Rocket's local test client sends such requests; a served request always has its TCP peer.
#[derive(Debug, Clone, Copy)]
pub struct IpLimit;

/// The cached verdict of [`IpLimit`] for one request.
struct Verdict(Result<(), u64>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IpLimit {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(limiter) = request.rocket().state::<IpLimiter>() else {
            rocket::error!("IpLimit needs the per-IP rate limit stage");
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let verdict = request.local_cache(|| match request.client_ip() {
            Some(ip) => {
                let verdict = limiter.check(ip);
                if verdict.is_err() {
                    let meta = RequestMeta::of(request);
                    AuthEvent::new(AuthEventKind::Throttled, AuthOutcome::IpLimit, &meta).trace();
                }
                Verdict(verdict)
            }
            None => Verdict(Ok(())),
        });
        match verdict.0 {
            Ok(()) => Outcome::Success(IpLimit),
            Err(retry_after) => {
                Outcome::Error((remember(request, &Error::TooManyRequests { retry_after }), ()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn waits_round_up_to_whole_seconds_and_never_0() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip("2001:db8:1:2::"));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_burst_passes_then_the_client_waits_for_the_pace() {
        let limiter = IpLimiter::new(60, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        }
        // One request a second: the next one is due within a second.
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(1));
        // Another client has its own allowance.
        assert_eq!(limiter.check(ip("192.0.2.2")), Ok(()));
    }

    #[test]
    fn a_slow_pace_gives_a_longer_retry_after() {
        let limiter = IpLimiter::new(2, 1);
        assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(30));
    }

    #[test]
    fn a_rate_of_0_turns_the_limit_off() {
        let limiter = IpLimiter::new(0, 10);
        for _ in 0..100 {
            assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        }
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[test]
    fn sweeping_forgets_clients_whose_allowance_is_full_again() {
        // 60 000 a minute: one request is paid back within a millisecond.
        let limiter = IpLimiter::new(60_000, 1);
        for last in 0..100u8 {
            assert_eq!(limiter.check(IpAddr::from([198, 51, 100, last])), Ok(()));
        }
        assert_eq!(limiter.tracked_clients(), 100);
        std::thread::sleep(Duration::from_millis(5));
        limiter.sweep();
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[test]
    fn every_1024th_check_sweeps() {
        let limiter = IpLimiter::new(60_000, 1);
        for n in 0..(SWEEP_EVERY - 1) {
            assert_eq!(limiter.check(IpAddr::from((n as u32 + 1).to_be_bytes())), Ok(()));
        }
        assert_eq!(limiter.tracked_clients(), (SWEEP_EVERY - 1) as usize);
        std::thread::sleep(Duration::from_millis(5));
        // This check sweeps first, then records its own client.
        assert_eq!(limiter.check(ip("203.0.113.1")), Ok(()));
        assert_eq!(limiter.tracked_clients(), 1);
    }
}
