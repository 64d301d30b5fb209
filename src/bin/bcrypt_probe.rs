//! Measures what bcrypt costs on this machine at the configured work factor, for `scripts/bench`.
//!
//! It reads the same settings as the service (`Rocket.toml` and `ROCKET_*` variables, so run it
//! from the repository root), times single-threaded hashes and verifies, and derives the ceiling
//! for logins per second: `cores / verify time`. It also times verifies on every core at once,
//! which shows how much of that ceiling the machine really offers while other work shares it.
//! It prints one JSON object on stdout.
//!
//! Usage: `bcrypt_probe [ROUNDS]` (default 5 timed rounds of each, after one warm-up).

use std::time::{Duration, Instant};

use auth_service::config::Config;

const PASSWORD: &str = "bench-password";

fn main() {
    if let Err(message) = run() {
        eprintln!("bcrypt_probe: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("ROUNDS must be a number, not {arg:?}"))?,
        None => 5,
    }
    .max(1);
    let config: Config = rocket::Config::figment().extract().map_err(|e| format!("settings: {e}"))?;
    config.validate(false)?;
    let cost = config.bcrypt_cost;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let hash = bcrypt::hash(PASSWORD, cost).map_err(|e| e.to_string())?;
    let hash_times = time_rounds(rounds, || bcrypt::hash(PASSWORD, cost).map(drop))?;
    let verify_times = time_rounds(rounds, || bcrypt::verify(PASSWORD, &hash).map(drop))?;
    let hash_ms = median_ms(hash_times);
    let verify_ms = median_ms(verify_times.clone());
    let verify_min_ms = verify_times.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1e3);

    // Every core verifying at once: the rate the machine gives right now.
    let per_thread = rounds.div_ceil(2).max(2);
    let started = Instant::now();
    let workers: Vec<_> = (0..cores)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                (0..per_thread).try_for_each(|_| bcrypt::verify(PASSWORD, &hash).map(drop))
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a verify thread panicked".to_owned())?.map_err(|e| e.to_string())?;
    }
    let parallel_per_s = (cores * per_thread) as f64 / started.elapsed().as_secs_f64();

    println!(
        "{{\"cost\": {cost}, \"cores\": {cores}, \"rounds\": {rounds}, \"hash_ms\": {hash_ms:.2}, \
         \"verify_ms\": {verify_ms:.2}, \"verify_min_ms\": {verify_min_ms:.2}, \
         \"bound_per_s\": {:.3}, \"parallel_verify_per_s\": {parallel_per_s:.3}}}",
        cores as f64 * 1e3 / verify_ms
    );
    Ok(())
}

/// Runs `work` once to warm up, then `rounds` timed times.
fn time_rounds(
    rounds: usize,
    mut work: impl FnMut() -> Result<(), bcrypt::BcryptError>,
) -> Result<Vec<Duration>, String> {
    work().map_err(|e| e.to_string())?;
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            work().map_err(|e| e.to_string())?;
            Ok(started.elapsed())
        })
        .collect()
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    let mid = times.len() / 2;
    let median = match times.len() % 2 {
        1 => times[mid],
        _ => (times[mid - 1] + times[mid]) / 2,
    };
    median.as_secs_f64() * 1e3
}
