//! The admin command line against a temporary database, through the real binary, with the
//! running service (a local client over the same database) seeing what the commands did.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{form, TestApp, TestDatabase, PASSWORD};
use rocket::http::Status;

const EMAIL: &str = "operator-made@example.com";

/// Runs `auth-service ARGS` over `database`, with `stdin` as standard input.
fn cli(database: &TestDatabase, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(args)
        .env("ROCKET_PROFILE", "debug")
        .env("ROCKET_DATABASES", format!("{{auth={{url=\"{}\"}}}}", database.url))
        .env("ROCKET_BCRYPT_COST", "4")
        .env("ROCKET_MAIL_OUTBOX", database.mail_outbox())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("the password");
    child.wait_with_output().expect("the command ends")
}

/// What the command printed, without the service's start-up log lines (mail transport,
/// migrations applied) that come before it.
fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let start_up = ["mail is written to files", "applied "];
    text.lines().filter(|line| !start_up.iter().any(|p| line.starts_with(p))).collect::<Vec<_>>().join("\n")
}

fn login_status(app: &TestApp, password: &str) -> Status {
    app.post_form("/sessions", &form(&[("email", EMAIL), ("password", password)])).status()
}

#[test]
fn every_command_has_help() {
    let database = TestDatabase::sqlite();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "create", "--help"],
        vec!["user", "show", "--help"],
        vec!["user", "delete", "--help"],
        vec!["user", "set-password", "--help"],
        vec!["sessions", "list", "--help"],
        vec!["sessions", "revoke", "--help"],
        vec!["purge-expired", "--help"],
    ] {
        let out = stdout(&cli(&database, &args, ""));
        assert!(out.contains("Usage: auth-service"), "{args:?}: {out}");
    }
}

#[test]
fn migrate_creates_the_schema_of_a_new_database() {
    let database = TestDatabase::sqlite();
    assert_eq!(stdout(&cli(&database, &["migrate"], "")).trim(), "the database is migrated");
    assert!(std::path::Path::new(&database.url).exists());
}

#[test]
fn an_operator_creates_shows_resets_revokes_and_deletes_an_account() {
    let database = TestDatabase::sqlite();
    let created = stdout(&cli(&database, &["user", "create", EMAIL], &format!("{PASSWORD}\n")));
    assert!(created.starts_with("created user 1 <operator-made@example.com>"), "{created}");
    let again = cli(&database, &["user", "create", EMAIL], &format!("{PASSWORD}\n"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("email already registered"));

    // The service logs the account in; the operator sees and ends that session.
    let app = TestApp::with_database(database, |figment| figment);
    assert_eq!(login_status(&app, PASSWORD), Status::Ok);
    let shown = stdout(&cli(&app.database, &["user", "show", EMAIL], ""));
    assert!(
        shown.contains("email: operator-made@example.com") && shown.contains("live sessions: 1"),
        "{shown}"
    );
    let listed = stdout(&cli(&app.database, &["sessions", "list", "--user", EMAIL], ""));
    assert!(listed.starts_with("1 live session(s)"), "{listed}");
    let revoked = stdout(&cli(&app.database, &["sessions", "revoke", "--user", EMAIL], ""));
    assert_eq!(revoked.trim(), "1 session(s) of <operator-made@example.com> ended");
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);

    // A new password from the operator: the old one stops working.
    let set = stdout(&cli(&app.database, &["user", "set-password", EMAIL], "n3w-from-the-operator\n"));
    assert!(set.starts_with("password of <operator-made@example.com> set"), "{set}");
    assert_eq!(login_status(&app, PASSWORD), Status::Unauthorized);
    assert_eq!(login_status(&app, "n3w-from-the-operator"), Status::Ok);

    let purged = stdout(&cli(&app.database, &["purge-expired"], ""));
    assert!(purged.starts_with("purged 0 expired session(s)"), "{purged}");

    let deleted = stdout(&cli(&app.database, &["user", "delete", EMAIL], ""));
    assert_eq!(deleted.trim(), "deleted user 1 <operator-made@example.com>");
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);
    assert_eq!(login_status(&app, "n3w-from-the-operator"), Status::Unauthorized);
    let gone = cli(&app.database, &["user", "show", EMAIL], "");
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no account has the email"));
}

#[test]
fn a_password_must_come_on_standard_input() {
    let database = TestDatabase::sqlite();
    let out = cli(&database, &["user", "create", EMAIL], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password is required"), "{out:?}");
}
