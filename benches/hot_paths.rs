//! Micro-benchmarks of the two hot paths, without HTTP: the session look-up behind every
//! authenticated request, and the bcrypt verify behind every login.
//!
//! Run with `cargo bench --bench hot_paths`; `cargo test --benches` runs each once as a check.
//! The session look-up is measured in three layers, so a regression points at its layer:
//! `digest` (hashing the cookie), `query` (the indexed SELECT on a bare connection) and
//! `auth` (the whole `Auth::get_user_from_session_id`, through the pool and its threads).

use std::time::Duration;

use auth_service::auth::{token_digest, Auth, Hasher, Password};
use auth_service::db::{self, AnyConnection, AnyConnectionManager};
use auth_service::user::Email;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use diesel::r2d2::ManageConnection;
use rocket::tokio::runtime::{Builder, Runtime};

const PASSWORD: &str = "bench-password";

/// Users in the database besides the one whose session is looked up, so the index has depth.
const OTHER_USERS: usize = 200;

fn runtime() -> Runtime {
    Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a Tokio runtime")
}

fn session_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = dir.path().join("auth.sqlite3").to_string_lossy().into_owned();
    let runtime = runtime();

    // The service itself, ignited but not serving, over a fresh database with cost-4 hashes.
    // `cargo bench` builds in release, which would select Rocket.toml's hardened release profile
    // (it refuses the development pepper); the debug profile's settings are the ones measured.
    let figment = rocket::Config::figment()
        .select(rocket::Config::DEBUG_PROFILE)
        .merge(("databases.auth.url", url.as_str()))
        .merge(("mail_outbox", dir.path().join("mail_outbox")))
        .merge(("bcrypt_cost", 4))
        .merge(("log_level", "off"));
    let rocket = runtime.block_on(auth_service::build(figment).ignite()).expect("the service ignites");
    let auth = Auth::from_rocket(&rocket).expect("every stage of the service");
    let password = Password::parse(PASSWORD).expect("a valid password");
    let session_id = runtime.block_on(async {
        for n in 0..OTHER_USERS {
            let email = Email::parse(&format!("user{n}@bench.test")).expect("a valid email");
            auth.register_user(&email, &password).await.expect("registered");
            auth.create_session(&email).await.expect("a session");
        }
        let email = Email::parse("looked-up@bench.test").expect("a valid email");
        auth.register_user(&email, &password).await.expect("registered");
        auth.create_session(&email).await.expect("a session").expect("a known user")
    });
    let digest = token_digest(&session_id);

    let mut conn: AnyConnection = AnyConnectionManager::new(&url)
        .and_then(|manager| manager.connect().map_err(|e| e.to_string()))
        .expect("a direct connection");

    let mut group = c.benchmark_group("session_lookup");
    group.bench_function("digest", |b| b.iter(|| token_digest(std::hint::black_box(&session_id))));
    group.bench_function("query", |b| b.iter(|| db::find_session(&mut conn, std::hint::black_box(&digest))));
    group.bench_function("auth", |b| {
        b.iter(|| {
            runtime
                .block_on(auth.get_user_from_session_id(std::hint::black_box(&session_id)))
                .expect("the look-up succeeds")
                .expect("the session exists")
        })
    });
    group.finish();
    drop(rocket);
}

fn password_verify(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("password_verify");
    for cost in [4, 12] {
        let hash = bcrypt::hash(PASSWORD, cost).expect("a hash");
        if cost >= 10 {
            // A quarter of a second per call: ten flat samples instead of criterion's ramp.
            group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(5));
        }
        group.bench_function(format!("bcrypt_cost_{cost}"), |b| {
            b.iter(|| bcrypt::verify(PASSWORD, std::hint::black_box(&hash)).expect("a valid hash"))
        });
    }

    // What a login pays on top of bcrypt: the semaphore and the hop to the blocking pool.
    let hasher = Hasher::new(4, b"bench pepper", 2);
    let password = Password::parse(PASSWORD).expect("a valid password");
    let hash = runtime.block_on(hasher.hash(&password)).expect("a hash");
    group.sampling_mode(SamplingMode::Auto).sample_size(100).measurement_time(Duration::from_secs(5));
    group.bench_function("hasher_cost_4", |b| {
        b.iter(|| {
            runtime.block_on(hasher.verify(&password, std::hint::black_box(&hash))).expect("a valid hash")
        })
    });
    group.finish();
}

criterion_group!(benches, session_lookup, password_verify);
criterion_main!(benches);
