//! The DB and Auth layers on their own, mirroring the seed's task examples (tasks 1-5, 8-10,
//! 12-13, 16, 18).

mod common;

use auth_service::auth::{generate_uuid, token_digest, Auth, Hasher, Password};
use auth_service::db::{self, DbConn, DbError};
use auth_service::error::Error;
use auth_service::user::{Email, NewUser, UserChanges, UserFilter};
use common::async_app;
use rocket::local::asynchronous::Client;

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid email")
}

fn password(raw: &str) -> Password {
    Password::parse(raw).expect("a valid password")
}

fn auth(client: &Client) -> Auth<'_> {
    Auth::from_rocket(client.rocket()).expect("every stage of the service")
}

async fn db_run<T: Send + 'static>(
    client: &Client,
    work: impl FnOnce(&mut db::AnyConnection) -> T + Send + 'static,
) -> T {
    DbConn::get_one(client.rocket()).await.expect("a connection").run(work).await
}

#[rocket::async_test]
async fn db_add_user_returns_rows_with_increasing_ids() {
    let (client, _database) = async_app().await;
    let (first, second) = db_run(&client, |conn| {
        let first = db::add_user(conn, &NewUser::new("test@test.com", "SuperHashedPwd"));
        let second = db::add_user(conn, &NewUser::new("test1@test.com", "SuperHashedPwd1"));
        (first.unwrap(), second.unwrap())
    })
    .await;
    assert_eq!((first.id, second.id), (1, 2));
    assert_eq!(first.email, "test@test.com");
    assert_eq!(first.hashed_password, "SuperHashedPwd");
    assert_eq!((first.session_id, first.reset_token), (None, None));
}

#[rocket::async_test]
async fn db_add_user_duplicate_email_is_duplicate() {
    let (client, _database) = async_app().await;
    let outcome = db_run(&client, |conn| {
        db::add_user(conn, &NewUser::new("a@b.c", "h")).unwrap();
        db::add_user(conn, &NewUser::new("A@B.C", "h"))
    })
    .await;
    assert!(matches!(outcome, Err(DbError::Duplicate(_))), "{outcome:?}");
}

#[rocket::async_test]
async fn db_find_user_by_finds_and_reports_not_found() {
    let (client, _database) = async_app().await;
    let (by_email, by_id, missing) = db_run(&client, |conn| {
        let user = db::add_user(conn, &NewUser::new("test@test.com", "h")).unwrap();
        (
            db::find_user_by(conn, UserFilter::Email("TEST@test.com")).unwrap(),
            db::find_user_by(conn, UserFilter::Id(user.id)).unwrap(),
            db::find_user_by(conn, UserFilter::Email("test2@test.com")),
        )
    })
    .await;
    assert_eq!(by_email.id, by_id.id);
    assert!(matches!(missing, Err(DbError::NotFound)), "{missing:?}");
}

#[rocket::async_test]
async fn db_update_user_changes_columns_and_rejects_empty_changes() {
    let (client, _database) = async_app().await;
    let (updated, empty, unknown) = db_run(&client, |conn| {
        let user = db::add_user(conn, &NewUser::new("test@test.com", "h")).unwrap();
        let changes = UserChanges { hashed_password: Some("NewPwd".into()), ..Default::default() };
        db::update_user(conn, user.id, &changes).unwrap();
        (
            db::find_user_by(conn, UserFilter::Id(user.id)).unwrap(),
            db::update_user(conn, user.id, &UserChanges::default()),
            db::update_user(conn, user.id + 100, &changes),
        )
    })
    .await;
    assert_eq!(updated.hashed_password, "NewPwd");
    assert!(updated.updated_at >= updated.created_at);
    assert!(matches!(empty, Err(DbError::InvalidRequest(_))), "{empty:?}");
    assert!(matches!(unknown, Err(DbError::NotFound)), "{unknown:?}");
}

#[rocket::async_test]
async fn db_update_user_sets_nullable_columns_to_null() {
    let (client, _database) = async_app().await;
    let user = db_run(&client, |conn| {
        let user = db::add_user(conn, &NewUser::new("a@b.c", "h")).unwrap();
        let set = UserChanges { reset_token: Some(Some("digest".into())), ..Default::default() };
        db::update_user(conn, user.id, &set).unwrap();
        assert!(db::find_user_by(conn, UserFilter::ResetToken("digest")).is_ok());
        let clear = UserChanges { reset_token: Some(None), ..Default::default() };
        db::update_user(conn, user.id, &clear).unwrap();
        db::find_user_by(conn, UserFilter::Id(user.id)).unwrap()
    })
    .await;
    assert_eq!(user.reset_token, None);
}

#[rocket::async_test]
async fn auth_hash_password_is_salted_bcrypt() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    let first = auth.hash_password(&password("b4l0u")).await.unwrap();
    let second = auth.hash_password(&password("b4l0u")).await.unwrap();
    assert!(first.starts_with("v2$$2b$04$"), "{first}");
    assert_ne!(first, second, "each hash has its own salt");
    let hasher = client.rocket().state::<Hasher>().unwrap();
    assert!(hasher.verify(&password("b4l0u"), &first).await.unwrap().matches);
}

#[rocket::async_test]
async fn auth_register_user_twice_fails_with_the_seed_message() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    let user = auth.register_user(&email("me@me.com"), &password("mySecuredPwd")).await.unwrap();
    assert_eq!(user.email, "me@me.com");
    assert_ne!(user.hashed_password, "mySecuredPwd");
    let again = auth.register_user(&email("me@me.com"), &password("mySecuredPwd")).await;
    match again {
        Err(error @ Error::EmailTaken(_)) => assert_eq!(error.to_string(), "User me@me.com already exists"),
        other => panic!("expected EmailTaken, got {other:?}"),
    }
}

#[rocket::async_test]
async fn auth_valid_login_checks_the_password_and_never_errors_for_unknown_emails() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    auth.register_user(&email("bob@bob.com"), &password("MyPwdOfBob")).await.unwrap();
    assert!(auth.valid_login(&email("bob@bob.com"), &password("MyPwdOfBob")).await.unwrap());
    assert!(!auth.valid_login(&email("bob@bob.com"), &password("mypwdofbob")).await.unwrap());
    assert!(!auth.valid_login(&email("unknown@bob.com"), &password("MyPwdOfBob")).await.unwrap());
}

#[test]
fn auth_generate_uuid_gives_distinct_v4_uuids() {
    let (first, second) = (generate_uuid(), generate_uuid());
    assert_ne!(first, second);
    let parsed = uuid::Uuid::parse_str(&first).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(first.len(), 36);
}

#[rocket::async_test]
async fn auth_create_session_stores_only_the_digest() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    let user = auth.register_user(&email("bob@bob.com"), &password("MyPwdOfBob")).await.unwrap();
    let session_id = auth.create_session(&email("bob@bob.com")).await.unwrap().expect("a session id");
    assert_eq!(auth.create_session(&email("unknown@email.com")).await.unwrap(), None);
    let digest = token_digest(&session_id);
    let (session, owner) = {
        let digest = digest.clone();
        db_run(&client, move |conn| db::find_session(conn, &digest).unwrap()).await
    };
    assert_eq!(owner.id, user.id);
    assert_eq!(session.token_hash, digest);
    assert_ne!(session.token_hash, session_id);
    // The seed's filter finds the user by the session digest too.
    let found =
        db_run(&client, move |conn| db::find_user_by(conn, UserFilter::SessionId(&digest)).unwrap()).await;
    assert_eq!(found.id, user.id);
}

#[rocket::async_test]
async fn auth_get_user_from_session_id_and_destroy_session() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    let user = auth.register_user(&email("bob@bob.com"), &password("pwd")).await.unwrap();
    let session_id = auth.create_session(&email("bob@bob.com")).await.unwrap().unwrap();
    let found = auth.get_user_from_session_id(&session_id).await.unwrap().expect("the user");
    assert_eq!(found.id, user.id);
    assert!(auth.get_user_from_session_id("unknown").await.unwrap().is_none());
    assert!(auth.get_user_from_session_id("").await.unwrap().is_none());
    // A copy of the stored digest is not a session id.
    assert!(auth.get_user_from_session_id(&token_digest(&session_id)).await.unwrap().is_none());

    auth.destroy_session(user.id).await.unwrap();
    assert!(auth.get_user_from_session_id(&session_id).await.unwrap().is_none());
}

#[rocket::async_test]
async fn auth_reset_token_and_update_password() {
    let (client, _database) = async_app().await;
    let auth = auth(&client);
    auth.register_user(&email("bob@bob.com"), &password("old")).await.unwrap();
    assert!(matches!(
        auth.get_reset_password_token(&email("nobody@bob.com")).await,
        Err(Error::Forbidden("email not registered"))
    ));
    let token = auth.get_reset_password_token(&email("bob@bob.com")).await.unwrap();
    let stored =
        db_run(&client, |conn| db::find_user_by(conn, UserFilter::Email("bob@bob.com")).unwrap()).await;
    assert_eq!(stored.reset_token, Some(token_digest(&token)));

    assert!(matches!(
        auth.update_password("wrong-token", &password("new")).await,
        Err(Error::Forbidden("invalid reset token"))
    ));
    auth.update_password(&token, &password("new")).await.unwrap();
    assert!(auth.valid_login(&email("bob@bob.com"), &password("new")).await.unwrap());
    assert!(!auth.valid_login(&email("bob@bob.com"), &password("old")).await.unwrap());
    let stored =
        db_run(&client, |conn| db::find_user_by(conn, UserFilter::Email("bob@bob.com")).unwrap()).await;
    assert_eq!(stored.reset_token, None);
    assert!(matches!(auth.update_password(&token, &password("again")).await, Err(Error::Forbidden(_))));
}
