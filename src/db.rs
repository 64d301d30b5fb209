//! The DB layer: one connection type over SQLite or PostgreSQL, its pool and migrations, and the
//! seed's `add_user` / `find_user_by` / `update_user`.
//!
//! This is the only module that names `users::` columns. Its functions are synchronous and take
//! `&mut AnyConnection`, so the Auth layer can run several of them inside one `run` closure and
//! one transaction.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use rocket::fairing::AdHoc;
use rocket::tokio::{self, sync::Semaphore};
use rocket::{Build, Rocket};
use rocket_sync_db_pools::{database, Config as PoolConfig, PoolResult, Poolable};

use crate::coalesce::{CoalesceError, Coalescer};
use crate::event::{auth_events, NewAuthEvent};
use crate::user::{
    login_throttles, sessions, users, LoginThrottle, NewSession, NewUser, Session, User, UserChanges,
    UserFilter,
};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The PostgreSQL advisory lock that serialises migrations across nodes ("auth" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6175_7468;

/// How long a SQLite writer waits for the lock before giving up, in milliseconds. A write
/// transaction here lasts well under a millisecond, so a writer that waits this long is facing
/// something else holding the file (a backup, a stuck process): better a 503 within the 2 s a
/// client can wait than a hang.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 1_500;

/// How long the launch waits for the first connection. Longer than the per-request `timeout`: a
/// fresh SQLite file is created and switched to WAL with an fsync, which a disk busy with other
/// writers can stretch past a second, and a database that is still starting deserves a moment.
/// Requests never see it: they wait through [`DbPool::run`] with their own deadline.
const STARTUP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to either backend, chosen by the database URL at start.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// The pooled connection request guard for the `auth` database.
#[database("auth")]
pub struct DbConn(AnyConnection);

/// The Auth layer's handle on the connection pool that [`DbConn`]'s fairing builds.
///
/// A database step leaves the async workers, as every blocking call must, and each departure
/// costs thread wake-ups and context switches, which on a small machine cost more than the
/// query itself. `DbConn::run` makes three trips to the blocking pool per step (take a
/// connection, use it, give it back); [`tokio::task::block_in_place`] makes one, but hands the
/// worker's other tasks to a second thread and back; [`DbPool::run`] sends the whole step (take,
/// use, give back) to the blocking pool once. Session look-ups, which every logged-in request
/// makes, go further: [`DbPool::find_session`] gives the look-ups that arrive together one query
/// and one trip. `GET /profile` as a share of `GET /` on 2 cores, each pair measured in one run:
/// 24% with three trips, 42% with `block_in_place`, 45% with one trip, 54 to 57% coalesced.
///
/// The pool shares the r2d2 pool with [`DbConn`], so the pool size still bounds the connections,
/// and queues on an async semaphore, so a request waiting for a connection holds no thread.
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<AnyConnectionManager>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    session_lookups: Arc<SessionLookups>,
}

/// Session look-ups by token digest, coalesced into one query per trip (see [`crate::coalesce`]).
type SessionLookups = Coalescer<String, (Session, User), DbError>;

/// The most digests one session query carries: far below SQLite's 32,766 bound parameters, and
/// more than the requests in flight on a small node.
const SESSION_LOOKUP_BATCH: usize = 64;

impl DbPool {
    /// Runs `work` on a pooled connection, outside the async scheduler (see [`DbPool`]); the
    /// connection is back in the pool when this returns. No connection within the pool timeout is
    /// [`DbError::Unavailable`].
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let unavailable = || DbError::Unavailable("no database connection within the pool timeout".into());
        // One timeout for the whole wait: the turn in the queue and the connection together.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let pool = self.pool.clone();
        let step = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get_timeout(left).map_err(|e| DbError::Unavailable(e.to_string()))?;
            work(&mut conn)
        });
        match step.await {
            Ok(result) => result,
            // A panic in `work` stays a panic of the request, which Rocket answers with a 500.
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(_) => Err(DbError::Unavailable("the runtime is shutting down".into())),
        }
    }

    /// The session whose token has the SHA-256 `digest`, with its user, expired or not;
    /// [`DbError::NotFound`] if none. Every logged-in request asks this, so look-ups that arrive
    /// together share one query and one trip to the blocking pool.
    pub async fn find_session(&self, digest: String) -> Result<(Session, User), DbError> {
        let pool = self.clone();
        let fetch = move |digests: Vec<String>| {
            let pool = pool.clone();
            async move { pool.run(move |conn| find_sessions(conn, &digests)).await }
        };
        match self.session_lookups.get(digest, fetch).await {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(DbError::NotFound),
            Err(CoalesceError::Failed(error)) => Err(error.duplicate()),
            Err(CoalesceError::Panicked) => {
                Err(DbError::Query(DieselError::QueryBuilderError("the session look-up panicked".into())))
            }
            Err(CoalesceError::Abandoned) => Err(DbError::Unavailable("the runtime is shutting down".into())),
        }
    }

    /// The pool's use now; reading it takes no connection.
    pub fn usage(&self) -> PoolUsage {
        let state = self.pool.state();
        PoolUsage {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

/// How the pool's connections are used at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections checked out now.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The pool's size (`databases.auth.pool_size`).
    pub max: u32,
}

/// Where [`Poolable::pool`] leaves a handle on the pool it builds, for [`DbPool`].
#[derive(Default)]
struct PoolSlot(OnceLock<r2d2::Pool<AnyConnectionManager>>);

/// Errors of the DB layer. The Auth layer decides what each one means to a client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No row matched the filter.
    #[error("no user matches the filter")]
    NotFound,
    /// The request named nothing that can be done, such as an empty change set.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A unique index refused the write.
    #[error("duplicate value: {0}")]
    Duplicate(String),
    /// The database could not be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of a query.
    #[error("query failed: {0}")]
    Query(#[source] DieselError),
}

impl DbError {
    /// The same failure again, for each of several callers that shared the step that failed:
    /// the same kind (so the same status), with the message. A query error keeps its text only.
    pub fn duplicate(&self) -> DbError {
        match self {
            DbError::NotFound => DbError::NotFound,
            DbError::InvalidRequest(what) => DbError::InvalidRequest(what),
            DbError::Duplicate(message) => DbError::Duplicate(message.clone()),
            DbError::Unavailable(message) => DbError::Unavailable(message.clone()),
            DbError::Query(error) => DbError::Query(DieselError::QueryBuilderError(error.to_string().into())),
        }
    }
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Duplicate(info.message().to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            // SQLite reports a lock that outlived the busy timeout, a read-only file or a full disk
            // this way: the database cannot serve now, which is a 503, not a bug.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_transient_sqlite_message(info.message()) =>
            {
                DbError::Unavailable(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

fn is_transient_sqlite_message(message: &str) -> bool {
    ["database is locked", "readonly database", "disk is full", "disk I/O error", "unable to open"]
        .iter()
        .any(|needle| message.contains(needle))
}

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` URLs are PostgreSQL; `sqlite://` URLs and plain paths are
    /// SQLite. Any other scheme is refused rather than taken for a file name.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite://") || !url.contains("://") {
            Ok(Backend::Sqlite)
        } else {
            Err(format!("unsupported database URL scheme in `{url}`: use a file path or postgres://"))
        }
    }
}

/// An r2d2 manager that opens the backend the URL names, keeping each driver's own error message
/// (Diesel's derived `establish` tries every backend in turn and reports only the last failure).
#[derive(Debug)]
pub struct AnyConnectionManager {
    url: String,
    backend: Backend,
}

impl AnyConnectionManager {
    pub fn new(url: &str) -> Result<Self, String> {
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => url.trim_start_matches("sqlite://").to_owned(),
            Backend::Postgres => url.to_owned(),
        };
        Ok(Self { url, backend })
    }
}

impl ManageConnection for AnyConnectionManager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        let connection = match self.backend {
            Backend::Sqlite => SqliteConnection::establish(&self.url).map(AnyConnection::Sqlite),
            Backend::Postgres => PgConnection::establish(&self.url).map(AnyConnection::Postgres),
        };
        connection.map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.ping().map(drop).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Sets the SQLite PRAGMAs on every new connection: WAL so readers never block the writer, a
/// busy timeout so concurrent writers queue instead of failing, and enforced foreign keys.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<AnyConnection, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        if let AnyConnection::Sqlite(sqlite) = conn {
            let pragmas = format!(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
            );
            sqlite.batch_execute(&pragmas).map_err(r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

impl Poolable for AnyConnection {
    type Manager = AnyConnectionManager;
    type Error = String;

    fn pool(db_name: &str, rocket: &Rocket<Build>) -> PoolResult<Self> {
        let config = PoolConfig::from(db_name, rocket)?;
        let manager = AnyConnectionManager::new(&config.url).map_err(rocket_sync_db_pools::Error::Custom)?;
        if manager.backend == Backend::Sqlite {
            create_parent_dir(&manager.url).map_err(rocket_sync_db_pools::Error::Custom)?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            // Keep one connection warm, not the whole pool: start-up stays fast and a PostgreSQL
            // outage at start does not have to wait for every connection to time out.
            .min_idle(Some(1))
            .connection_timeout(STARTUP_CONNECT_TIMEOUT.max(Duration::from_secs(u64::from(config.timeout))))
            .connection_customizer(Box::new(SqlitePragmas))
            // A SQLite connection is a file handle that does not go stale; testing it on each
            // checkout would cost a query per step. A PostgreSQL one can, after a restart.
            .test_on_check_out(manager.backend == Backend::Postgres)
            .build(manager)?;
        if let Some(slot) = rocket.state::<PoolSlot>() {
            let _ = slot.0.set(pool.clone());
        }
        Ok(pool)
    }
}

/// Creates the directory that will hold a SQLite file, so `cargo run` works on a fresh clone.
fn create_parent_dir(path: &str) -> Result<(), String> {
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() && path != ":memory:" => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Attaches the pool, manages the [`DbPool`] over it, and runs pending migrations at ignite; a
/// failed migration stops the launch.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Database", |rocket| async {
        rocket
            .manage(PoolSlot::default())
            .attach(DbConn::fairing())
            .attach(AdHoc::try_on_ignite("Database pool handle", manage_db_pool))
            .attach(AdHoc::try_on_ignite("Run migrations", run_migrations))
    })
}

/// Manages a [`DbPool`] over the pool that [`DbConn`]'s fairing built, with its size and timeout.
async fn manage_db_pool(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let built = rocket.state::<PoolSlot>().and_then(|slot| slot.0.get().cloned());
    let (Some(pool), Ok(config)) = (built, PoolConfig::from("auth", &rocket)) else {
        rocket::error!("the database pool was not built");
        return Err(rocket);
    };
    let db_pool = DbPool {
        permits: Arc::new(Semaphore::new(config.pool_size as usize)),
        timeout: Duration::from_secs(u64::from(config.timeout)),
        pool,
        session_lookups: Arc::new(Coalescer::new(SESSION_LOOKUP_BATCH)),
    };
    Ok(rocket.manage(db_pool))
}

async fn run_migrations(rocket: Rocket<Build>) -> Result<Rocket<Build>, Rocket<Build>> {
    let Some(conn) = DbConn::get_one(&rocket).await else {
        rocket::error!("no database connection for migrations");
        return Err(rocket);
    };
    match conn.run(migrate).await {
        Ok(()) => Ok(rocket),
        Err(error) => {
            rocket::error!("database migrations failed: {error}");
            Err(rocket)
        }
    }
}

/// Checks that the database answers a query.
pub fn ping(conn: &mut AnyConnection) -> Result<(), DbError> {
    conn.batch_execute("SELECT 1")?;
    Ok(())
}

/// Runs every pending migration of the connection's backend.
pub fn migrate(conn: &mut AnyConnection) -> Result<(), String> {
    let applied = match conn {
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        AnyConnection::Postgres(c) => {
            // Nodes started together would race to create the same tables: one migrates at a
            // time, and the others then find nothing pending.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .map_err(|e| e.to_string())?;
            let applied = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len());
            let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            applied
        }
    };
    let applied = applied.map_err(|e| e.to_string())?;
    if applied > 0 {
        rocket::info!("applied {applied} database migration(s)");
    }
    Ok(())
}

/// Runs `work` in a write transaction. On SQLite it begins with `BEGIN IMMEDIATE`, which takes the
/// write lock up front: a transaction that reads and then writes cannot then fail with "database
/// is locked" when another writer got there between its read and its write.
pub fn write_transaction<T, F>(conn: &mut AnyConnection, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, DbError>,
{
    match conn {
        AnyConnection::Postgres(_) => conn.transaction(work),
        AnyConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            let outcome = work(conn);
            let AnyConnection::Sqlite(sqlite) = conn else { unreachable!("the backend cannot change") };
            match outcome {
                Ok(value) => {
                    AnsiTransactionManager::commit_transaction(sqlite)?;
                    Ok(value)
                }
                Err(error) => {
                    AnsiTransactionManager::rollback_transaction(sqlite)?;
                    Err(error)
                }
            }
        }
    }
}

diesel::define_sql_function! {
    /// SQL `lower()`, matching the case-insensitive unique index on `users.email`.
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Inserts a user and returns the stored row. A taken email is [`DbError::Duplicate`]: the unique
/// index decides, so two concurrent registrations cannot both succeed.
pub fn add_user(conn: &mut AnyConnection, new_user: &NewUser<'_>) -> Result<User, DbError> {
    let user = diesel::insert_into(users::table)
        .values(new_user)
        // A plain column tuple: a `SelectBy` returning clause does not cross `MultiConnection`.
        .returning(users::all_columns)
        .get_result(conn)?;
    Ok(user)
}

/// Returns the first user the filter matches, or [`DbError::NotFound`].
pub fn find_user_by(conn: &mut AnyConnection, filter: UserFilter<'_>) -> Result<User, DbError> {
    let query = users::table.select(User::as_select()).into_boxed();
    let query = match filter {
        UserFilter::Id(id) => query.filter(users::id.eq(id)),
        UserFilter::Email(email) => query.filter(lower(users::email).eq(lower(email))),
        UserFilter::SessionId(digest) => query.filter(
            users::id
                .eq_any(sessions::table.filter(sessions::token_hash.eq(digest)).select(sessions::user_id)),
        ),
        UserFilter::ResetToken(digest) => query.filter(users::reset_token.eq(digest)),
    };
    // Every filter names a unique key. `get_result` rather than `first`: `first` adds `LIMIT ?`,
    // and SQLite re-prepares a statement each time its LIMIT parameter is bound.
    Ok(query.get_result(conn)?)
}

/// Applies `changes` to the user with `user_id` and bumps `updated_at`.
///
/// Fails with [`DbError::InvalidRequest`] for an empty change set, the one mistake of the seed's
/// `update_user` that the types cannot rule out, and with [`DbError::NotFound`] when no user has
/// that id.
pub fn update_user(conn: &mut AnyConnection, user_id: i32, changes: &UserChanges) -> Result<(), DbError> {
    if changes.is_empty() {
        return Err(DbError::InvalidRequest("the change set names no column"));
    }
    let updated = diesel::update(users::table.find(user_id))
        .set((changes, users::updated_at.eq(Utc::now().naive_utc())))
        .execute(conn)?;
    match updated {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Stores one authentication event, stamped with the current UTC time. Callers go through
/// [`crate::audit::AuthEvent::record`], which also logs and counts it.
pub fn record_event(conn: &mut AnyConnection, event: &NewAuthEvent<'_>) -> Result<(), DbError> {
    diesel::insert_into(auth_events::table)
        .values((event, auth_events::created_at.eq(Utc::now().naive_utc())))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_url_scheme() {
        assert_eq!(Backend::from_url("data/auth.sqlite3"), Ok(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite://data/auth.sqlite3"), Ok(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(Backend::from_url("postgresql://u@h/db"), Ok(Backend::Postgres));
        // A typo in the scheme is refused, not taken for a new SQLite file.
        assert!(Backend::from_url("postgress://u@h/db").is_err());
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }

    #[test]
    fn sqlite_connections_get_wal_a_busy_timeout_and_foreign_keys() {
        #[derive(QueryableByName)]
        struct Pragmas {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            timeout: i32,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            foreign_keys: i32,
        }
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("nested/dir/auth.sqlite3").to_string_lossy().into_owned();
        create_parent_dir(&url).unwrap();
        let manager = AnyConnectionManager::new(&url).unwrap();
        let pool = r2d2::Pool::builder()
            .max_size(1)
            .connection_customizer(Box::new(SqlitePragmas))
            // A SQLite connection is a file handle that does not go stale; testing it on each
            // checkout would cost a query per step. A PostgreSQL one can, after a restart.
            .test_on_check_out(manager.backend == Backend::Postgres)
            .build(manager)
            .unwrap();
        let mut conn = pool.get().unwrap();
        let AnyConnection::Sqlite(sqlite) = &mut *conn else { panic!("a SQLite connection") };
        let pragmas: Pragmas = diesel::sql_query(
            "SELECT (SELECT journal_mode FROM pragma_journal_mode) AS journal_mode, \
             (SELECT timeout FROM pragma_busy_timeout) AS timeout, \
             (SELECT foreign_keys FROM pragma_foreign_keys) AS foreign_keys",
        )
        .get_result(sqlite)
        .unwrap();
        assert_eq!(pragmas.journal_mode, "wal");
        assert_eq!(pragmas.timeout, SQLITE_BUSY_TIMEOUT_MS as i32);
        assert_eq!(pragmas.foreign_keys, 1);
    }

    #[test]
    fn a_bad_postgres_url_keeps_the_driver_message() {
        let manager = AnyConnectionManager::new("postgres://nobody@127.0.0.1:1/none").unwrap();
        let error = manager.connect().err().expect("nothing listens on port 1");
        assert!(error.to_string().to_lowercase().contains("connect"), "{error}");
    }
}

/// Which of a user's sessions to delete.
#[derive(Debug, Clone, Copy)]
pub enum SessionScope {
    /// The session with this id.
    One(i32),
    /// Every session but this one ("log out everywhere else").
    AllBut(i32),
    /// Every session.
    All,
}

/// Stores a new session.
pub fn add_session(conn: &mut AnyConnection, new_session: &NewSession<'_>) -> Result<(), DbError> {
    diesel::insert_into(sessions::table).values(new_session).execute(conn)?;
    Ok(())
}

/// The session with this token digest, with its user, or [`DbError::NotFound`].
pub fn find_session(conn: &mut AnyConnection, token_hash: &str) -> Result<(Session, User), DbError> {
    // Every logged-in request makes this query. On the backend's own connection the statement
    // cache finds it by its type; through `AnyConnection` it renders the SQL first to look it up.
    // The macro builds one query per backend. (`get_result`, not `first`: see find_user_by.)
    macro_rules! query {
        () => {
            sessions::table
                .inner_join(users::table)
                .filter(sessions::token_hash.eq(token_hash))
                .select((Session::as_select(), User::as_select()))
        };
    }
    let row = match conn {
        AnyConnection::Sqlite(conn) => query!().get_result(conn),
        AnyConnection::Postgres(conn) => query!().get_result(conn),
    }?;
    Ok(row)
}

/// The sessions (with their users) whose token digests are among `digests`, by digest; digests
/// that match no session are absent.
pub fn find_sessions(
    conn: &mut AnyConnection,
    digests: &[String],
) -> Result<HashMap<String, (Session, User)>, DbError> {
    // Alone, a digest takes the single-row query, whose prepared statement is cached.
    if let [digest] = digests {
        return match find_session(conn, digest) {
            Ok(row) => Ok(HashMap::from([(digest.clone(), row)])),
            Err(DbError::NotFound) => Ok(HashMap::new()),
            Err(other) => Err(other),
        };
    }
    let rows: Vec<(Session, User)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq_any(digests))
        .select((Session::as_select(), User::as_select()))
        .load(conn)?;
    Ok(rows.into_iter().map(|row| (row.0.token_hash.clone(), row)).collect())
}

/// Records that a session was used at `now`.
pub fn touch_session(conn: &mut AnyConnection, session_id: i32, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(sessions::table.find(session_id)).set(sessions::last_seen_at.eq(now)).execute(conn)?;
    Ok(())
}

/// A user's live sessions (not past `now`, used since `idle_cutoff`), the most recently used first.
pub fn list_sessions(
    conn: &mut AnyConnection,
    user_id: i32,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<Vec<Session>, DbError> {
    let rows = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(session_is_live(now, idle_cutoff))
        .order(sessions::last_seen_at.desc())
        .select(Session::as_select())
        .load(conn)?;
    Ok(rows)
}

/// A session is live until `expires_at` and while it was used since `idle_cutoff`.
#[diesel::dsl::auto_type]
fn session_is_live(now: NaiveDateTime, idle_cutoff: NaiveDateTime) -> _ {
    sessions::expires_at.gt(now).and(sessions::last_seen_at.ge(idle_cutoff))
}

/// How many sessions of any user are live (not past `now`, used since `idle_cutoff`).
pub fn count_live_sessions(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<i64, DbError> {
    let count = sessions::table.filter(session_is_live(now, idle_cutoff)).count().get_result(conn)?;
    Ok(count)
}

/// Deletes some of a user's sessions and returns how many went.
pub fn delete_sessions(
    conn: &mut AnyConnection,
    user_id: i32,
    scope: SessionScope,
) -> Result<usize, DbError> {
    let owned = sessions::table.filter(sessions::user_id.eq(user_id));
    let deleted = match scope {
        SessionScope::One(id) => diesel::delete(owned.filter(sessions::id.eq(id))).execute(conn)?,
        SessionScope::AllBut(id) => diesel::delete(owned.filter(sessions::id.ne(id))).execute(conn)?,
        SessionScope::All => diesel::delete(owned).execute(conn)?,
    };
    Ok(deleted)
}

/// Deletes every session that expired or sat idle since `idle_cutoff`; returns how many went.
pub fn delete_expired_sessions(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<usize, DbError> {
    let expired = sessions::table.filter(diesel::dsl::not(session_is_live(now, idle_cutoff)));
    Ok(diesel::delete(expired).execute(conn)?)
}

/// Deletes a user; their sessions go with them (`ON DELETE CASCADE`). Returns whether one was.
pub fn delete_user(conn: &mut AnyConnection, user_id: i32) -> Result<bool, DbError> {
    Ok(diesel::delete(users::table.find(user_id)).execute(conn)? > 0)
}

/// Clears reset tokens whose time is up; returns how many.
pub fn clear_expired_reset_tokens(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    let expired = users::table.filter(users::reset_token_expires_at.le(now));
    let cleared = diesel::update(expired)
        .set((users::reset_token.eq(None::<String>), users::reset_token_expires_at.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    Ok(cleared)
}

/// The failed-login record of an account key, if any.
pub fn find_login_throttle(
    conn: &mut AnyConnection,
    email_key: &str,
) -> Result<Option<LoginThrottle>, DbError> {
    let row = login_throttles::table
        .find(email_key)
        .select(LoginThrottle::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row)
}

/// Counts one more failed login for an account key at `now`, forgetting failures from before
/// `window_start`, and returns the updated record.
pub fn record_failed_login(
    conn: &mut AnyConnection,
    email_key: &str,
    now: NaiveDateTime,
    window_start: NaiveDateTime,
) -> Result<LoginThrottle, DbError> {
    match count_failure(conn, email_key, now, window_start) {
        // Two nodes inserted the first failure at once: the row exists now, so count again.
        Err(DbError::Duplicate(_)) => count_failure(conn, email_key, now, window_start),
        outcome => outcome,
    }
}

fn count_failure(
    conn: &mut AnyConnection,
    email_key: &str,
    now: NaiveDateTime,
    window_start: NaiveDateTime,
) -> Result<LoginThrottle, DbError> {
    write_transaction(conn, |conn| {
        let previous = find_login_throttle(conn, email_key)?;
        let failures = match &previous {
            Some(previous) if previous.last_failure_at >= window_start => previous.failures + 1,
            _ => 1,
        };
        let record = LoginThrottle { email_key: email_key.to_owned(), failures, last_failure_at: now };
        let columns = (login_throttles::failures.eq(failures), login_throttles::last_failure_at.eq(now));
        if previous.is_some() {
            diesel::update(login_throttles::table.find(email_key)).set(columns).execute(conn)?;
        } else {
            diesel::insert_into(login_throttles::table)
                .values((login_throttles::email_key.eq(email_key), columns.0, columns.1))
                .execute(conn)?;
        }
        Ok(record)
    })
}

/// Forgets the failed logins of an account key (after a successful login).
pub fn clear_login_throttle(conn: &mut AnyConnection, email_key: &str) -> Result<(), DbError> {
    diesel::delete(login_throttles::table.find(email_key)).execute(conn)?;
    Ok(())
}
