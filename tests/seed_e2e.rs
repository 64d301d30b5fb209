//! The seed's end-to-end run (task 20), as its Python client does it, step by step.

mod common;

use common::{form, json, TestApp};
use rocket::http::Status;
use serde_json::json as j;

const EMAIL: &str = "guillaume@holberton.io";
const PASSWD: &str = "b4l0u";
const NEW_PASSWD: &str = "t4rt1fl3tt3";

#[test]
fn seed_task_20_end_to_end() {
    let app = TestApp::new();
    let credentials = |password: &str| form(&[("email", EMAIL), ("password", password)]);

    // register_user
    let response = app.post_form("/users", &credentials(PASSWD));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": EMAIL, "message": "user created"}));

    // log_in_wrong_password
    assert_eq!(app.post_form("/sessions", &credentials(NEW_PASSWD)).status(), Status::Unauthorized);

    // profile_unlogged
    assert_eq!(app.client.get("/profile").dispatch().status(), Status::Forbidden);

    // log_in
    let response = app.post_form("/sessions", &credentials(PASSWD));
    assert_eq!(response.status(), Status::Ok);
    let session_id = response.cookies().get("session_id").expect("a session cookie").value().to_owned();
    assert_eq!(json(response), j!({"email": EMAIL, "message": "logged in"}));

    // profile_logged (the tracked client sends the cookie back, as requests' session would)
    let response = app.client.get("/profile").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({ "email": EMAIL }));

    // log_out, following the redirect
    let response = app.client.delete("/sessions").dispatch();
    assert_eq!(response.status(), Status::SeeOther);
    let location = response.headers().get_one("Location").expect("a redirect").to_owned();
    let response = app.client.get(location).dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"message": "Bienvenue"}));
    assert!(!session_id.is_empty());

    // reset_password_token
    let response = app.post_form("/reset_password", &form(&[("email", EMAIL)]));
    assert_eq!(response.status(), Status::Ok);
    let body = json(response);
    assert_eq!(body["email"], EMAIL);
    let reset_token = body["reset_token"].as_str().expect("a token").to_owned();

    // update_password
    let body = form(&[("email", EMAIL), ("reset_token", &reset_token), ("new_password", NEW_PASSWD)]);
    let response = app.put_form("/reset_password", &body);
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": EMAIL, "message": "Password updated"}));

    // log_in with the new password
    let response = app.post_form("/sessions", &credentials(NEW_PASSWD));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": EMAIL, "message": "logged in"}));
}
