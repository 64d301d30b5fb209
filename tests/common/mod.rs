//! `TestApp`: the service over a fresh database per test, with bcrypt at cost 4.
//!
//! SQLite by default: a file in a temporary directory that is deleted with the app. When
//! `TEST_DATABASE_URL` holds a `postgres://` URL, each app gets its own schema on that server
//! instead, dropped with the app.
#![allow(dead_code)]

pub mod chaos;
pub mod http;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use auth_service::db::Backend;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use rocket::figment::Figment;
use rocket::http::{ContentType, Cookie, Status};
use rocket::local::asynchronous::Client as AsyncClient;
use rocket::local::blocking::{Client, LocalResponse};
use tempfile::TempDir;

pub const EMAIL: &str = "guillaume@holberton.io";
pub const PASSWORD: &str = "b4l0u";

/// Where one test's data lives; removing it happens on drop. The temporary directory holds the
/// SQLite file and the mail outbox, and exists for PostgreSQL runs too.
pub struct TestDatabase {
    pub url: String,
    dir: TempDir,
    pg_schema: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if Backend::from_url(&base) == Ok(Backend::Postgres) => Self::postgres(&base),
            _ => Self::sqlite(),
        }
    }

    /// A SQLite file whatever `TEST_DATABASE_URL` says, for tests about SQLite itself.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = dir.path().join("auth.sqlite3").to_string_lossy().into_owned();
        Self { url, dir, pg_schema: None }
    }

    fn postgres(base: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let mut conn = PgConnection::establish(base).expect("TEST_DATABASE_URL must accept connections");
        conn.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create the test schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self { url, dir, pg_schema: Some((base.to_owned(), schema)) }
    }

    /// The directory the file mail transport writes this test's `.eml` files into.
    pub fn mail_outbox(&self) -> PathBuf {
        self.dir.path().join("mail_outbox")
    }

    pub fn backend(&self) -> Backend {
        Backend::from_url(&self.url).expect("a valid test URL")
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg_schema {
            if let Ok(mut conn) = PgConnection::establish(base) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

/// The settings every test starts from: `Rocket.toml`'s debug profile, the test database and its
/// mail outbox, bcrypt cost 4 and no log noise.
pub fn test_figment(database: &TestDatabase) -> Figment {
    rocket::Config::figment()
        .merge(("databases.auth.url", database.url.as_str()))
        .merge(("mail_outbox", database.mail_outbox()))
        .merge(("databases.auth.pool_size", 4))
        .merge(("bcrypt_cost", 4))
        .merge(("log_level", "off"))
}

/// A tracked blocking client (cookies carry across requests) over a fresh database.
pub struct TestApp {
    pub client: Client,
    pub database: TestDatabase,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(|figment| figment)
    }

    /// Lets a test change settings on top of [`test_figment`].
    pub fn with_config(configure: impl FnOnce(Figment) -> Figment) -> Self {
        Self::with_database(TestDatabase::new(), configure)
    }

    /// An app over an existing test database, as a restarted service would see it.
    pub fn with_database(database: TestDatabase, configure: impl FnOnce(Figment) -> Figment) -> Self {
        let figment = configure(test_figment(&database));
        let client = Client::tracked(auth_service::build(figment)).expect("the service launches");
        Self { client, database }
    }

    pub fn post_form(&self, uri: &str, body: &str) -> LocalResponse<'_> {
        self.client.post(uri.to_owned()).header(ContentType::Form).body(body).dispatch()
    }

    pub fn put_form(&self, uri: &str, body: &str) -> LocalResponse<'_> {
        self.client.put(uri.to_owned()).header(ContentType::Form).body(body).dispatch()
    }

    /// Registers `email` / `password` and checks that it worked.
    pub fn register(&self, email: &str, password: &str) {
        let response = self.post_form("/users", &form(&[("email", email), ("password", password)]));
        assert_eq!(response.status(), Status::Ok, "registering {email}");
    }

    /// Logs in and returns the session cookie the service set.
    pub fn login(&self, email: &str, password: &str) -> Cookie<'static> {
        let response = self.post_form("/sessions", &form(&[("email", email), ("password", password)]));
        assert_eq!(response.status(), Status::Ok, "logging in {email}");
        response.cookies().get("session_id").expect("a session cookie").clone().into_owned()
    }

    /// Runs `work` on a pooled connection of the app, as an operator (or an attacker with the
    /// database) would see the data.
    pub fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut auth_service::db::AnyConnection) -> T + Send + 'static,
    ) -> T {
        let rocket = self.client.rocket();
        // The connection must be dropped inside the runtime, so it lives in this one future.
        rocket::execute(async move {
            let conn = auth_service::db::DbConn::get_one(rocket).await.expect("a database connection");
            conn.run(work).await
        })
    }

    /// A registered and logged-in user: its session cookie.
    pub fn with_user(&self) -> Cookie<'static> {
        self.register(EMAIL, PASSWORD);
        self.login(EMAIL, PASSWORD)
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

/// An untracked async client over a fresh database, for tests that send requests concurrently.
pub async fn async_app() -> (AsyncClient, TestDatabase) {
    async_app_with(|figment| figment).await
}

/// [`async_app`] with changed settings.
pub async fn async_app_with(configure: impl FnOnce(Figment) -> Figment) -> (AsyncClient, TestDatabase) {
    let database = TestDatabase::new();
    let figment = configure(test_figment(&database));
    let client = AsyncClient::untracked(auth_service::build(figment)).await.expect("the service launches");
    (client, database)
}

/// A urlencoded form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(name, value)| format!("{name}={}", encode(value))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body as JSON.
pub fn json(response: LocalResponse<'_>) -> serde_json::Value {
    response.into_json().expect("a JSON body")
}
