//! The JSON API: the seven endpoints of the contract. Each handler parses its form, calls one
//! `Auth` method and shapes the answer; failures are [`Error`]s. Each one's `#[utoipa::path]`
//! lists every status it can answer, for the OpenAPI document ([`crate::openapi`]).

use rocket::form::{self, FromForm};
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, uri, Route, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Auth, CurrentSession, Password};
use crate::config::Config;
use crate::error::responses::{PayloadTooLarge, TooManyRequests, Unavailable};
use crate::error::{ApiResult, MessageResponse};
use crate::guard::{self, ApiForm};
use crate::limit::IpLimit;
use crate::user::{Email, User};

/// `email` and `password`, for registering and logging in.
#[derive(Debug, FromForm, ToSchema)]
pub struct CredentialsForm {
    pub email: Email,
    pub password: Password,
}

/// `email`, to request a reset token.
#[derive(Debug, FromForm, ToSchema)]
pub struct ResetRequestForm {
    pub email: Email,
}

/// `email`, `reset_token` and `new_password`, to set a new password.
#[derive(Debug, FromForm, ToSchema)]
pub struct PasswordUpdateForm {
    pub email: Email,
    /// The token `POST /reset_password` issued; it works once, for `reset_token_ttl` seconds.
    #[field(validate = required())]
    #[schema(min_length = 1)]
    pub reset_token: String,
    pub new_password: Password,
}

/// The link expression that takes the session id out of `POST /sessions`' `Set-Cookie` (a
/// schemathesis extension of OpenAPI runtime expressions).
const SESSION_FROM_SET_COOKIE: &str = "$response.header.Set-Cookie#regex:session_id=([^;]+)";

fn required<'v>(value: &str) -> form::Result<'v, ()> {
    match value.is_empty() {
        true => Err(form::Error::validation("is required").into()),
        false => Ok(()),
    }
}

/// The `session_id` cookie that `POST /sessions` sets, as the operations that need a session
/// document it (the `User` and `CurrentSession` guards read it).
#[derive(IntoParams)]
#[into_params(parameter_in = Cookie)]
pub struct SessionCookie {
    /// The session id. Required for the operation to succeed: missing, unknown, expired or
    /// ended, the answer is a 403.
    pub session_id: String,
}

/// `{"message": "Bienvenue"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WelcomeResponse {
    #[schema(value_type = String, example = "Bienvenue")]
    pub message: &'static str,
}

/// `{"email": ..., "message": ...}`, the answer to register, log in and password update.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailMessageResponse {
    pub email: String,
    #[schema(value_type = String, example = "logged in")]
    pub message: &'static str,
}

/// `{"email": ...}`, the profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    pub email: String,
}

/// `{"email": ..., "reset_token": ...}` where the settings reveal the token (the contract), or
/// `{"email": ..., "message": ...}`, the same for every email, where they do not.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ResetRequestResponse {
    Token {
        email: String,
        reset_token: String,
    },
    Sent {
        email: String,
        #[schema(value_type = String)]
        message: &'static str,
    },
}

/// `GET /`: the welcome message. A browser that asks for `text/html` gets the home page instead.
// Rank 2: `pages::home_page` is tried first.
#[get("/", rank = 2)]
#[utoipa::path(get, path = "/", tag = "api", responses((status = 200, body = WelcomeResponse)))]
pub fn index() -> Json<WelcomeResponse> {
    Json(WelcomeResponse { message: "Bienvenue" })
}

/// `POST /users`: registers a user; a taken email is a 400.
#[post("/users", data = "<form>")]
#[utoipa::path(post, path = "/users", tag = "api", request_body(content(
        (CredentialsForm = "application/x-www-form-urlencoded"), (CredentialsForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "User created.", body = EmailMessageResponse, links(
            ("logIn" = (operation_id = "create_session", request_body = json!({
                "email": "$request.body#/email", "password": "$request.body#/password"}))),
            ("requestResetToken" = (operation_id = "create_reset_token",
                request_body = json!({"email": "$request.body#/email"}))))),
        (status = 400, description = "A field is missing or invalid, or the email is already registered.",
            body = MessageResponse),
        (status = 413, response = PayloadTooLarge), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)))]
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
#[utoipa::path(post, path = "/sessions", tag = "api", request_body(content(
        (CredentialsForm = "application/x-www-form-urlencoded"), (CredentialsForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "Logged in.", body = EmailMessageResponse,
            headers(("Set-Cookie" = String, description = "`session_id=<id>; HttpOnly; SameSite=Lax; Path=/`")),
            links(
                ("profile" = (operation_id = "profile", parameters(("cookie.session_id" = SESSION_FROM_SET_COOKIE)))),
                ("logOut" = (operation_id = "destroy_session",
                    parameters(("cookie.session_id" = SESSION_FROM_SET_COOKIE)))))),
        (status = 400, description = "A field is missing or invalid.", body = MessageResponse),
        (status = 401, description = "Unknown email or wrong password.", body = MessageResponse),
        (status = 413, response = PayloadTooLarge), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)))]
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
#[utoipa::path(delete, path = "/sessions", tag = "api", params(SessionCookie),
    responses(
        (status = 303, description = "Logged out; `GET /` answers the welcome message.", headers(
            ("Location" = String, description = "`/`"),
            ("Set-Cookie" = String, description = "Expires the `session_id` cookie."))),
        (status = 403, description = "No live session.", body = MessageResponse),
        (status = 503, response = Unavailable)))]
pub async fn destroy_session(
    current: CurrentSession,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
) -> ApiResult<Redirect> {
    auth.logout(&current).await?;
    guard::remove_session_cookie(cookies);
    Ok(Redirect::to(uri!(index)))
}

/// `GET /profile`: the logged-in user's email; no session is a 403. A browser that asks for
/// `text/html` gets the profile page, or a redirect to the login page, instead.
// Rank 3: `pages::profile_page` and `pages::profile_redirect` are tried first.
#[get("/profile", rank = 3)]
#[utoipa::path(get, path = "/profile", tag = "api", params(SessionCookie),
    responses(
        (status = 200, body = ProfileResponse),
        (status = 403, description = "No live session.", body = MessageResponse),
        (status = 503, response = Unavailable)))]
pub fn profile(user: User) -> Json<ProfileResponse> {
    Json(ProfileResponse { email: user.email })
}

/// `POST /reset_password`: issues a reset token and mails a link carrying it. Where the token is
/// revealed (the contract), an unknown email is a 403 and a mail that cannot be sent a 503; where
/// it is not, known and unknown emails get the same answer.
#[post("/reset_password", data = "<form>")]
#[utoipa::path(post, path = "/reset_password", tag = "api", request_body(content(
        (ResetRequestForm = "application/x-www-form-urlencoded"), (ResetRequestForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "A token was issued and mailed: in the answer where `reveal_reset_token` \
            is on, otherwise only by mail, with the same answer for every email.", body = ResetRequestResponse,
            links(("updatePassword" = (operation_id = "update_password", request_body = json!({
                "email": "$request.body#/email", "reset_token": "$response.body#/reset_token"}))))),
        (status = 400, description = "A field is missing or invalid, or mail cannot be sent to the address.",
            body = MessageResponse),
        (status = 403, description = "The email is not registered (only where the token is revealed).",
            body = MessageResponse),
        (status = 413, response = PayloadTooLarge), (status = 429, response = TooManyRequests),
        (status = 503, description = "The database did not answer, or the mail could not be sent (the token \
            stays valid).", body = MessageResponse)))]
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
#[utoipa::path(put, path = "/reset_password", tag = "api", request_body(content(
        (PasswordUpdateForm = "application/x-www-form-urlencoded"),
        (PasswordUpdateForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "Password updated; every session of the user ended.",
            body = EmailMessageResponse),
        (status = 400, description = "A field is missing or invalid, or the policy refuses the new password.",
            body = MessageResponse),
        (status = 403, description = "The token is unknown, used, expired or for another email.",
            body = MessageResponse),
        (status = 413, response = PayloadTooLarge), (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)))]
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
