//! The JSON API: the seven endpoints of the contract. Each handler parses its form, calls one
//! `Auth` method and shapes the answer; failures are [`Error`]s.

use rocket::form::{self, FromForm};
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, uri, Route, State};
use serde::Serialize;

use crate::auth::{Auth, CurrentSession, Password};
use crate::config::Config;
use crate::error::ApiResult;
use crate::guard::{self, ApiForm};
use crate::limit::IpLimit;
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

/// `{"email": ..., "reset_token": ...}` where the settings reveal the token (the contract), or
/// `{"email": ..., "message": ...}`, the same for every email, where they do not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ResetRequestResponse {
    Token { email: String, reset_token: String },
    Sent { email: String, message: &'static str },
}

/// `GET /`: the welcome message. Rank 2: browsers get the home page (`pages::home_page`) first.
#[get("/", rank = 2)]
pub fn index() -> Json<WelcomeResponse> {
    Json(WelcomeResponse { message: "Bienvenue" })
}

/// `POST /users`: registers a user; a taken email is a 400.
#[post("/users", data = "<form>")]
pub async fn create_user(
    _limit: IpLimit,
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
    _limit: IpLimit,
    form: ApiForm<CredentialsForm>,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
    config: &State<Config>,
) -> ApiResult<Json<EmailMessageResponse>> {
    let ApiForm(CredentialsForm { email, password }) = form;
    let session_id = auth.login(&email, &password).await?;
    guard::set_session_cookie(cookies, session_id, config);
    Ok(Json(EmailMessageResponse { email: email.to_string(), message: "logged in" }))
}

/// `DELETE /sessions`: ends this session (other devices stay logged in) and redirects to `GET /`;
/// no session is a 403.
#[delete("/sessions")]
pub async fn destroy_session(
    current: CurrentSession,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
) -> ApiResult<Redirect> {
    auth.logout(&current).await?;
    guard::remove_session_cookie(cookies);
    Ok(Redirect::to(uri!(index)))
}

/// `GET /profile`: the logged-in user's email; no session is a 403. Rank 3: browsers get the
/// profile page or the redirect to log in (`pages::profile_page`, `pages::profile_redirect`) first.
#[get("/profile", rank = 3)]
pub fn profile(user: User) -> Json<ProfileResponse> {
    Json(ProfileResponse { email: user.email })
}

/// `POST /reset_password`: issues a reset token and mails a link carrying it. Where the token is
/// revealed (the contract), an unknown email is a 403 and a mail that cannot be sent a 503; where
/// it is not, known and unknown emails get the same answer.
#[post("/reset_password", data = "<form>")]
pub async fn create_reset_token(
    _limit: IpLimit,
    form: ApiForm<ResetRequestForm>,
    auth: Auth<'_>,
) -> ApiResult<Json<ResetRequestResponse>> {
    let ApiForm(ResetRequestForm { email }) = form;
    let email_text = email.to_string();
    Ok(Json(match auth.request_password_reset(&email).await? {
        Some(reset_token) => ResetRequestResponse::Token { email: email_text, reset_token },
        None => ResetRequestResponse::Sent {
            email: email_text,
            message: "if this email is registered, a reset link is on its way",
        },
    }))
}

/// `PUT /reset_password`: sets a new password with a reset token; a bad token is a 403.
#[put("/reset_password", data = "<form>")]
pub async fn update_password(
    _limit: IpLimit,
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
