//! The real binary as an operator runs it: SIGTERM lets requests in flight finish (a login in the
//! middle of bcrypt included) and exits 0; `kill -9` in the middle of a write storm loses no
//! acknowledged registration and leaves a sound database: `PRAGMA integrity_check` on SQLite,
//! amcheck's heap and B-tree checks on PostgreSQL (the test backend, as `TEST_DATABASE_URL` picks).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use auth_service::db::Backend;
use common::TestDatabase;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use rand::Rng;
use tempfile::TempDir;

const PASSWORD: &str = "b4l0u-process";

/// Starts the binary over the SQLite file in `dir` on a free port; returns it and its port.
fn start(dir: &Path, bcrypt_cost: u32) -> (Child, u16) {
    start_on(&dir.join("auth.sqlite3").to_string_lossy(), &dir.join("outbox"), bcrypt_cost)
}

/// Starts the binary over the database at `url` on a free port; returns it and its port.
fn start_on(url: &str, outbox: &Path, bcrypt_cost: u32) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env("ROCKET_PROFILE", "debug")
        .env("ROCKET_DATABASES", format!("{{auth={{url=\"{url}\"}}}}"))
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_BCRYPT_COST", bcrypt_cost.to_string())
        .env("ROCKET_LOG_LEVEL", "off")
        .env("ROCKET_MAIL_OUTBOX", outbox)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the auth-service binary starts");
    let started = Instant::now();
    while request(port, "GET", "/", "").map(|(status, _)| status) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(20), "the server did not come up");
        thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// One request to the server on `port`: the status and body, or `None` if the connection failed.
fn request(port: u16, method: &str, path: &str, form: &str) -> Option<(u16, String)> {
    common::http::request(port, method, path, form).map(|answer| (answer.status, answer.body))
}

fn credentials(email: &str) -> String {
    format!("email={}&password={PASSWORD}", email.replace('@', "%40"))
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_finishes_a_login_in_flight_and_exits_0() {
    let dir = TempDir::new().expect("a data directory");
    // Cost 12: a login spends a few hundred milliseconds in bcrypt.
    let (mut child, port) = start(dir.path(), 12);
    assert_eq!(request(port, "POST", "/users", &credentials("ada@example.com")).map(|r| r.0), Some(200));

    let login = thread::spawn(move || request(port, "POST", "/sessions", &credentials("ada@example.com")));
    thread::sleep(Duration::from_millis(100)); // the login is now hashing
    let signalled = Instant::now();
    sigterm(&child);
    thread::sleep(Duration::from_millis(50));
    assert!(request(port, "GET", "/", "").is_none(), "a new connection during the grace period is refused");

    let answer = login.join().expect("the login thread");
    assert_eq!(answer.map(|(status, _)| status), Some(200), "the login in flight completed");
    let exit = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// The database's own verdict on its files after the crash: SQLite's `PRAGMA integrity_check`,
/// or on PostgreSQL amcheck over every table of the test schema (heap pages) and every index
/// (B-tree structure, and every heap row present in it).
fn assert_database_is_sound(database: &TestDatabase, round: u64) {
    match database.backend() {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(&database.url).expect("the database file");
            conn.batch_execute("PRAGMA busy_timeout = 5000").expect("a pragma");
            let check: Vec<Check> =
                diesel::sql_query("PRAGMA integrity_check").load(&mut conn).expect("a check");
            let verdict: Vec<_> = check.iter().map(|c| c.integrity_check.as_str()).collect();
            assert_eq!(verdict, ["ok"], "round {round}");
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&database.url).expect("the test schema");
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA public").expect("amcheck");
            let tables: Count = diesel::sql_query(
                "SELECT count(*) AS count FROM pg_class \
                 WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'",
            )
            .get_result(&mut conn)
            .expect("the tables");
            assert!(tables.count >= 4, "round {round}: the schema has {} tables", tables.count);
            let corrupt: Count = diesel::sql_query(
                "SELECT count(*) AS count FROM pg_class c, LATERAL public.verify_heapam(c.oid) \
                 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'",
            )
            .get_result(&mut conn)
            .expect("verify_heapam");
            assert_eq!(corrupt.count, 0, "round {round}: corrupt heap pages");
            // bt_index_check raises an error on the first inconsistency, failing the query.
            let checked: Count = diesel::sql_query(
                "SELECT count(public.bt_index_check(c.oid, true)) AS count FROM pg_class c \
                 JOIN pg_am am ON am.oid = c.relam \
                 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'i' \
                 AND am.amname = 'btree'",
            )
            .get_result(&mut conn)
            .expect("bt_index_check finds every index consistent");
            assert!(checked.count >= 4, "round {round}: only {} indexes checked", checked.count);
        }
    }
}

#[test]
fn kill_9_during_a_write_storm_loses_no_acknowledged_registration() {
    let database = TestDatabase::new();
    let outbox = database.mail_outbox();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut rng = rand::thread_rng();
    for round in 0..3u64 {
        let (mut child, port) = start_on(&database.url, &outbox, 4);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..16)
            .map(|writer| {
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let email = format!("r{round}-w{writer}-{n}@example.com");
                        match request(port, "POST", "/users", &credentials(&email)) {
                            Some((200, _)) => {
                                acknowledged.lock().expect("the list").push(email.clone());
                                // Logins and resets write sessions and tokens in the storm too.
                                request(port, "POST", "/sessions", &credentials(&email));
                                request(
                                    port,
                                    "POST",
                                    "/reset_password",
                                    &format!("email={}", email.replace('@', "%40")),
                                );
                            }
                            Some(_) => {}
                            None => break,
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        // A random moment, a few hundred milliseconds into the storm; printed for a rerun.
        let moment = rng.gen_range(250..900);
        println!("round {round}: kill -9 after {moment} ms");
        thread::sleep(Duration::from_millis(moment));
        Command::new("kill").args(["-KILL", &child.id().to_string()]).status().expect("kill -9");
        let _ = child.wait();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("a writer");
        }

        // Restarted at once: it serves, every acknowledged account logs in, the data is sound.
        let (mut child, port) = start_on(&database.url, &outbox, 4);
        let emails = acknowledged.lock().expect("the list").clone();
        assert!(!emails.is_empty(), "round {round}: the storm registered nobody");
        for email in &emails {
            let status = request(port, "POST", "/sessions", &credentials(email)).map(|r| r.0);
            assert_eq!(status, Some(200), "round {round}: acknowledged {email} is missing");
        }
        assert_database_is_sound(&database, round);
        child.kill().expect("stop the server");
        let _ = child.wait();
    }
}
