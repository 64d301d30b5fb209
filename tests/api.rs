//! The JSON contract, one test per row and per failure case.

mod common;

use common::{form, json, TestApp, EMAIL, PASSWORD};
use rocket::http::{ContentType, Header, Status};
use serde_json::json as j;

#[test]
fn get_index_says_bienvenue() {
    let app = TestApp::new();
    let response = app.client.get("/").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(response.into_string().unwrap(), r#"{"message":"Bienvenue"}"#);
}

#[test]
fn post_users_creates_the_user() {
    let app = TestApp::new();
    let response = app.post_form("/users", &form(&[("email", EMAIL), ("password", PASSWORD)]));
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(json(response), j!({"email": EMAIL, "message": "user created"}));
}
