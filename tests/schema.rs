//! Both backends' migrations produce the same schema: tables, columns (name, type family,
//! nullability), primary keys, indexes and their uniqueness.
//!
//! Needs a PostgreSQL server: `scripts/test` starts one and sets `TEST_PG_URL`.

use std::collections::BTreeSet;

use auth_service::db::{migrate, AnyConnection};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};

/// One column as both backends can describe it.
type ColumnShape = (String, String, String, bool, bool);
/// One index: table, name, unique.
type IndexShape = (String, String, bool);

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    pk: bool,
}

#[derive(QueryableByName)]
struct Index {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    unique: bool,
}

/// Maps each backend's type names onto one family name.
fn family(declared: &str) -> String {
    let declared = declared.to_lowercase();
    let family = if declared.contains("int") || declared == "serial" {
        "integer"
    } else if declared.contains("char") || declared.contains("text") {
        "text"
    } else if declared.contains("timestamp") {
        "timestamp"
    } else if declared.contains("bool") {
        "boolean"
    } else {
        declared.as_str()
    };
    family.to_owned()
}

fn sqlite_schema() -> (BTreeSet<ColumnShape>, BTreeSet<IndexShape>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.sqlite3");
    let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(path.to_str().unwrap()).unwrap());
    migrate(&mut conn).unwrap();
    let AnyConnection::Sqlite(conn) = &mut conn else { unreachable!() };
    let tables = "SELECT name FROM sqlite_master WHERE type = 'table' \
                  AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'";
    let columns: Vec<SqliteColumn> = diesel::sql_query(format!(
        "SELECT t.name AS table_name, c.name AS name, c.type AS declared, c.\"notnull\" AS not_null, c.pk AS pk \
         FROM ({tables}) t, pragma_table_info(t.name) c"
    ))
    .load(conn)
    .unwrap();
    let indexes: Vec<Index> = diesel::sql_query(format!(
        "SELECT t.name AS table_name, i.name AS name, i.\"unique\" = 1 AS \"unique\" \
         FROM ({tables}) t, pragma_index_list(t.name) i WHERE i.origin = 'c'"
    ))
    .load(conn)
    .unwrap();
    let columns = columns
        .into_iter()
        // SQLite lets a declared INTEGER PRIMARY KEY be NULL in its metadata; it never is.
        .map(|c| (c.table_name, c.name, family(&c.declared), c.not_null == 1 || c.pk > 0, c.pk > 0))
        .collect();
    (columns, indexes.into_iter().map(|i| (i.table_name, i.name, i.unique)).collect())
}

fn postgres_schema(base: &str) -> (BTreeSet<ColumnShape>, BTreeSet<IndexShape>) {
    let schema = format!("schema_check_{}", std::process::id());
    let mut admin = PgConnection::establish(base).expect("TEST_PG_URL accepts connections");
    admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).unwrap();
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let mut conn = AnyConnection::Postgres(PgConnection::establish(&url).unwrap());
    migrate(&mut conn).unwrap();
    let AnyConnection::Postgres(conn) = &mut conn else { unreachable!() };
    let columns: Vec<PgColumn> = diesel::sql_query(format!(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS name, c.data_type::text AS declared, \
         c.is_nullable = 'NO' AS not_null, \
         EXISTS (SELECT 1 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) \
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema \
                 AND k.table_name = c.table_name AND k.column_name = c.column_name) AS pk \
         FROM information_schema.columns c \
         WHERE c.table_schema = '{schema}' AND c.table_name <> '__diesel_schema_migrations'"
    ))
    .load(conn)
    .unwrap();
    let indexes: Vec<Index> = diesel::sql_query(format!(
        "SELECT t.relname::text AS table_name, i.relname::text AS name, x.indisunique AS \"unique\" \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = '{schema}' AND NOT x.indisprimary AND t.relname <> '__diesel_schema_migrations'"
    ))
    .load(conn)
    .unwrap();
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    let columns =
        columns.into_iter().map(|c| (c.table_name, c.name, family(&c.declared), c.not_null, c.pk)).collect();
    (columns, indexes.into_iter().map(|i| (i.table_name, i.name, i.unique)).collect())
}

#[test]
fn sqlite_and_postgres_migrations_give_the_same_schema() {
    let base = std::env::var("TEST_PG_URL")
        .expect("TEST_PG_URL must name a PostgreSQL server: run scripts/test, which starts one");
    let (sqlite_columns, sqlite_indexes) = sqlite_schema();
    let (pg_columns, pg_indexes) = postgres_schema(&base);
    assert!(sqlite_columns.iter().any(|c| c.0 == "users" && c.1 == "email"), "{sqlite_columns:?}");
    assert_eq!(sqlite_columns, pg_columns);
    assert!(sqlite_indexes.contains(&("users".into(), "users_email_key".into(), true)), "{sqlite_indexes:?}");
    assert_eq!(sqlite_indexes, pg_indexes);
}
