//! Settings: bad values stop the launch with a message, and the SQLite data directory is created.

mod common;

use common::{test_figment, TestDatabase};
use rocket::error::ErrorKind;
use rocket::local::blocking::Client;

/// Launching fails in the named fairing (Rocket panics if a launch error is never looked at).
fn assert_launch_fails_in(figment: rocket::figment::Figment, fairing: &str) {
    match Client::untracked(auth_service::build(figment)) {
        Ok(_) => panic!("the launch should fail in {fairing}"),
        Err(error) => match error.kind() {
            ErrorKind::FailedFairings(failed) => {
                assert!(failed.iter().any(|f| f.name == fairing), "{failed:?}")
            }
            other => panic!("unexpected launch error {other:?}"),
        },
    }
}

#[test]
fn a_bcrypt_cost_below_4_stops_the_launch() {
    let database = TestDatabase::new();
    assert_launch_fails_in(test_figment(&database).merge(("bcrypt_cost", 3)), "Configuration");
}

#[test]
fn an_unknown_database_scheme_stops_the_launch() {
    let database = TestDatabase::new();
    let figment = test_figment(&database).merge(("databases.auth.url", "postgress://typo@localhost/auth"));
    assert_launch_fails_in(figment, "'auth' Database Pool");
}

#[test]
fn the_sqlite_data_directory_is_created_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/nested/auth.sqlite3");
    let database = TestDatabase::new();
    let figment = test_figment(&database).merge(("databases.auth.url", file.to_str().unwrap()));
    let client = Client::untracked(auth_service::build(figment)).expect("the service launches");
    assert!(file.exists(), "{} was created", file.display());
    drop(client);
}
