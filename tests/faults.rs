//! Database faults: the service answers 503 within 2 s while the database cannot serve, keeps
//! answering what needs no database, and recovers by itself once the database is back.

mod common;

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use common::chaos::ChaosProxy;
use common::{form, TestApp, TestDatabase, PASSWORD};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use rocket::http::Status;
use serde_json::{json, Value};

/// Sends requests until one answers `wanted`, for at most `limit`; returns the last status.
fn wait_for(limit: Duration, mut request: impl FnMut() -> Status, wanted: Status) -> Status {
    let started = Instant::now();
    loop {
        let status = request();
        if status == wanted || started.elapsed() > limit {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_unavailable_fast(app: &TestApp, request: impl FnOnce(&TestApp) -> (Status, Option<Value>)) {
    let started = Instant::now();
    let (status, body) = request(app);
    let elapsed = started.elapsed();
    assert_eq!(status, Status::ServiceUnavailable);
    assert_eq!(body, Some(json!({"message": "service temporarily unavailable"})));
    assert!(elapsed < Duration::from_secs(2), "503 after {elapsed:?}");
    eprintln!("503 after {elapsed:?}");
}

fn register(app: &TestApp, email: &str) -> (Status, Option<Value>) {
    let response = app.post_form("/users", &form(&[("email", email), ("password", PASSWORD)]));
    (response.status(), response.into_json())
}

/// A schema of the test PostgreSQL server reached through a [`ChaosProxy`], dropped at the end.
struct ProxiedPostgres {
    proxy: ChaosProxy,
    admin: PgConnection,
    schema: String,
    url: String,
}

impl ProxiedPostgres {
    fn new(name: &str) -> Self {
        let base = std::env::var("TEST_PG_URL")
            .expect("TEST_PG_URL must name a PostgreSQL server: run scripts/test, which starts one");
        let parts = url_parts::parse(&base);
        let upstream = (parts.host.as_str(), parts.port).to_socket_addrs().unwrap().next().unwrap();
        let proxy = ChaosProxy::start(upstream);
        let schema = format!("{name}_{}", std::process::id());
        let mut admin = PgConnection::establish(&base).unwrap();
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
            .unwrap();
        let url = format!(
            "postgres://{}@127.0.0.1:{}/{}?options=-c%20search_path%3D{schema}",
            parts.user, proxy.port, parts.database
        );
        Self { proxy, admin, schema, url }
    }

    /// The service over this schema, through the proxy, with a 1 s pool timeout.
    fn app(&self) -> TestApp {
        TestApp::with_database(TestDatabase::new(), |f| {
            f.merge(("databases.auth.url", self.url.as_str())).merge(("databases.auth.timeout", 1))
        })
    }
}

impl Drop for ProxiedPostgres {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

#[test]
fn postgres_outage_gives_503_within_2_seconds_then_recovers() {
    let database = ProxiedPostgres::new("faults");
    let app = database.app();
    let cookie = app.with_user();

    database.proxy.cut();
    assert_unavailable_fast(&app, |app| {
        let response = app.client.get("/profile").cookie(cookie.clone()).dispatch();
        (response.status(), response.into_json())
    });
    assert_unavailable_fast(&app, |app| register(app, "during@example.com"));
    assert_eq!(app.client.get("/").dispatch().status(), Status::Ok);

    database.proxy.restore();
    let started = Instant::now();
    let status = wait_for(
        Duration::from_secs(10),
        || app.client.get("/profile").cookie(cookie.clone()).dispatch().status(),
        Status::Ok,
    );
    assert_eq!(status, Status::Ok, "recovered after {:?}", started.elapsed());
    eprintln!("recovered {:?} after the database came back", started.elapsed());
    assert_eq!(register(&app, "after@example.com").0, Status::Ok);
}

/// The launch waits longer for its first connection than a request waits for one: a database
/// still starting (or a disk slow to create a SQLite file) is not a failed launch.
#[test]
fn a_database_that_comes_up_2_seconds_after_the_launch_began_is_waited_for() {
    let database = ProxiedPostgres::new("late_start");
    database.proxy.cut();
    let app = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            database.proxy.restore();
        });
        let started = Instant::now();
        let app = database.app();
        assert!(started.elapsed() >= Duration::from_secs(2), "launched before the database was up");
        app
    });
    app.register("late@example.com", PASSWORD);
}

/// Just enough URL parsing for `postgres://user@host:port/database`.
mod url_parts {
    pub struct Parts {
        pub user: String,
        pub host: String,
        pub port: u16,
        pub database: String,
    }

    pub fn parse(url: &str) -> Parts {
        let rest = url.split_once("://").expect("a scheme").1;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (user, host_port) = authority.rsplit_once('@').unwrap_or(("postgres", authority));
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        Parts {
            user: user.to_owned(),
            host: host.to_owned(),
            port: port.parse().expect("a port"),
            database: database.split('?').next().unwrap_or("postgres").to_owned(),
        }
    }
}
