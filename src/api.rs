//! The JSON API: the seven endpoints of the contract. Each handler parses its form, calls one
//! `Auth` method and shapes the answer; failures are [`Error`]s.

use rocket::form::{self, FromForm};
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, uri, Route, State};
use serde::Serialize;

use crate::auth::{Auth, Password};
use crate::config::Config;
use crate::error::{ApiResult, Error};
use crate::guard::{self, ApiForm};
use crate::user::{Email, User};

/// `email` and `password`, for registering and logging in.
#[derive(Debug, FromForm)]
pub struct CredentialsForm {
    pub email: Email,
    pub password: Password,
}

/// `email`, to request a reset token.
#[derive(Debug, FromForm)]
pub struct ResetRequestForm {
    pub email: Email,
}

/// `email`, `reset_token` and `new_password`, to set a new password.
#[derive(Debug, FromForm)]
pub struct PasswordUpdateForm {
    pub email: Email,
    #[field(validate = required())]
    pub reset_token: String,
    pub new_password: Password,
}

fn required<'v>(value: &str) -> form::Result<'v, ()> {
    match value.is_empty() {
        true => Err(form::Error::validation("is required").into()),
        false => Ok(()),
    }
}

/// `{"message": "Bienvenue"}`.
#[derive(Debug, Serialize)]
pub struct WelcomeResponse {
    pub message: &'static str,
}

/// `{"email": ..., "message": ...}`, the answer to register, log in and password update.
#[derive(Debug, Serialize)]
pub struct EmailMessageResponse {
    pub email: String,
    pub message: &'static str,
}

/// `{"email": ...}`, the profile.
#[derive(Debug, Serialize)]
pub struct ProfileResponse {
    pub email: String,
}

/// `{"email": ..., "reset_token": ...}`.
#[derive(Debug, Serialize)]
pub struct ResetTokenResponse {
    pub email: String,
    pub reset_token: String,
}

/// `GET /`: the welcome message.
#[get("/")]
pub fn index() -> Json<WelcomeResponse> {
    Json(WelcomeResponse { message: "Bienvenue" })
}

/// `POST /users`: registers a user; a taken email is a 400.
#[post("/users", data = "<form>")]
pub async fn create_user(
    form: ApiForm<CredentialsForm>,
    auth: Auth<'_>,
) -> ApiResult<Json<EmailMessageResponse>> {
    let ApiForm(CredentialsForm { email, password }) = form;
    auth.register_user(&email, &password).await?;
    Ok(Json(EmailMessageResponse { email: email.to_string(), message: "user created" }))
}

/// `POST /sessions`: logs in and sets the `session_id` cookie; bad credentials are a 401.
#[post("/sessions", data = "<form>")]
pub async fn create_session(
    form: ApiForm<CredentialsForm>,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
    config: &State<Config>,
) -> ApiResult<Json<EmailMessageResponse>> {
    let ApiForm(CredentialsForm { email, password }) = form;
    if !auth.valid_login(&email, &password).await? {
        return Err(Error::InvalidCredentials);
    }
    let session_id = auth.create_session(&email).await?.ok_or(Error::InvalidCredentials)?;
    guard::set_session_cookie(cookies, session_id, config);
    Ok(Json(EmailMessageResponse { email: email.to_string(), message: "logged in" }))
}

/// `DELETE /sessions`: ends the session and redirects to `GET /`; no session is a 403.
#[delete("/sessions")]
pub async fn destroy_session(user: User, auth: Auth<'_>, cookies: &CookieJar<'_>) -> ApiResult<Redirect> {
    auth.destroy_session(user.id).await?;
    guard::remove_session_cookie(cookies);
    Ok(Redirect::to(uri!(index)))
}

/// `GET /profile`: the logged-in user's email; no session is a 403.
#[get("/profile")]
pub fn profile(user: User) -> Json<ProfileResponse> {
    Json(ProfileResponse { email: user.email })
}

/// `POST /reset_password`: issues a reset token and mails a link carrying it; an unknown email
/// is a 403, a mail that cannot be sent a 503.
#[post("/reset_password", data = "<form>")]
pub async fn create_reset_token(
    form: ApiForm<ResetRequestForm>,
    auth: Auth<'_>,
) -> ApiResult<Json<ResetTokenResponse>> {
    let ApiForm(ResetRequestForm { email }) = form;
    let reset_token = auth.request_password_reset(&email).await?;
    Ok(Json(ResetTokenResponse { email: email.to_string(), reset_token }))
}

/// `PUT /reset_password`: sets a new password with a reset token; a bad token is a 403.
#[put("/reset_password", data = "<form>")]
pub async fn update_password(
    form: ApiForm<PasswordUpdateForm>,
    auth: Auth<'_>,
) -> ApiResult<Json<EmailMessageResponse>> {
    let ApiForm(PasswordUpdateForm { email, reset_token, new_password }) = form;
    auth.update_password_for(&email, &reset_token, &new_password).await?;
    Ok(Json(EmailMessageResponse { email: email.to_string(), message: "Password updated" }))
}

/// Every API route.
pub fn routes() -> Vec<Route> {
    routes![index, create_user, create_session, destroy_session, profile, create_reset_token, update_password]
}
