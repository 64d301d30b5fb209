//! The service's one error type, its responder and the catchers.
//!
//! Every variant knows its status and its public message. The cause of a 5xx goes to the log and
//! never into the body, which is `{"message": "..."}`, or an HTML error page with the same message
//! when the client prefers `text/html` (browsers).

use std::borrow::Cow;

use rocket::form::{self, error::ErrorKind};
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher};
use rocket_dyn_templates::Template;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::guard::prefers_html;
use crate::ops::CurrentRequestId;

/// The result type of handlers and of the Auth layer.
pub type ApiResult<T> = Result<T, Error>;

/// Everything that can go wrong on a request, named by what it means to the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is missing or malformed; the message names the field.
    #[error("bad request: {0}")]
    BadRequest(Cow<'static, str>),
    /// Registration with an email that already has an account.
    #[error("User {0} already exists")]
    EmailTaken(String),
    /// Unknown email or wrong password; deliberately one case.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A missing or wrong `Authorization: Bearer` token (the metrics endpoint).
    #[error("missing or wrong bearer token")]
    BearerTokenRequired,
    /// No valid session, or a token or email the action needs is not valid.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many requests; retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// The database (or another dependency) cannot serve the request now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The mail server refused or could not be reached; what was stored stays valid.
    #[error("mail delivery failed: {0}")]
    MailUnavailable(String),
    /// A bug or an unexpected failure; the detail is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "email is required"}))]
pub struct MessageResponse {
    /// A short reason for a person; it never carries a cause, a token or a password.
    #[schema(value_type = String)]
    pub message: Cow<'static, str>,
}

/// The error answers several endpoints share, as reusable OpenAPI responses (see
/// [`crate::openapi`]); each one's body is a [`MessageResponse`].
pub mod responses {
    use super::MessageResponse;
    use utoipa::ToResponse;

    /// The form body is over `limits.form` (urlencoded) or `limits.data-form` (multipart).
    #[derive(ToResponse)]
    #[response(example = json!({"message": "request body too large"}))]
    pub struct PayloadTooLarge(pub MessageResponse);

    /// Over the per-IP limit (`ip_limit_per_minute`), or, for log-ins, an account that failed too
    /// often (`login_throttle_*`).
    #[derive(ToResponse)]
    #[response(
        headers(("Retry-After" = u64, description = "Whole seconds to wait before trying again (at least 1).")),
        example = json!({"message": "too many requests; slow down"})
    )]
    pub struct TooManyRequests(pub MessageResponse);

    /// The database did not answer within the pool timeout; the request changed nothing.
    #[derive(ToResponse)]
    #[response(example = json!({"message": "service temporarily unavailable"}))]
    pub struct Unavailable(pub MessageResponse);
}

impl Error {
    pub fn status(&self) -> Status {
        match self {
            Error::BadRequest(_) | Error::EmailTaken(_) => Status::BadRequest,
            Error::InvalidCredentials | Error::BearerTokenRequired => Status::Unauthorized,
            Error::Forbidden(_) => Status::Forbidden,
            Error::NotFound => Status::NotFound,
            Error::PayloadTooLarge => Status::PayloadTooLarge,
            Error::TooManyRequests { .. } => Status::TooManyRequests,
            Error::Unavailable(_) | Error::MailUnavailable(_) => Status::ServiceUnavailable,
            Error::Internal(_) => Status::InternalServerError,
        }
    }

    /// The message a client sees. It never carries a cause, a token or a password.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            Error::BadRequest(message) => message.clone(),
            Error::EmailTaken(_) => "email already registered".into(),
            Error::InvalidCredentials => "wrong email or password".into(),
            Error::BearerTokenRequired => "a valid bearer token is required".into(),
            Error::Forbidden(reason) => Cow::Borrowed(reason),
            Error::TooManyRequests { .. } => "too many requests; slow down".into(),
            Error::MailUnavailable(_) => "could not send the reset email; try again later".into(),
            _ => default_message(self.status()).into(),
        }
    }

    /// Logs the error with the id of the request it answers, so the line joins its access line.
    fn log(&self, request: &Request<'_>) {
        let request_id = CurrentRequestId::of(request);
        if self.status().code >= 500 {
            tracing::error!(status = self.status().code, request_id, "{self}");
        } else {
            tracing::debug!(status = self.status().code, request_id, "{self}");
        }
    }
}

/// The public message for a status when no handler said more.
pub fn default_message(status: Status) -> &'static str {
    match status.code {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden: a valid session is required",
        404 => "not found",
        405 => "method not allowed",
        413 => "request body too large",
        415 => "unsupported media type: send a form body",
        422 => "unprocessable request",
        429 => "too many requests",
        503 => "service temporarily unavailable",
        500 => "internal server error",
        _ => status.reason().unwrap_or("error"),
    }
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        self.log(request);
        if prefers_html(request) {
            // Browsers get the HTML error page, which the catcher renders with this message.
            remember(request, &self);
            return Err(self.status());
        }
        let mut response =
            (self.status(), Json(MessageResponse { message: self.public_message() })).respond_to(request)?;
        if let Error::TooManyRequests { retry_after } = self {
            response.set_header(Header::new("Retry-After", retry_after.to_string()));
        }
        Ok(response)
    }
}

impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => Error::NotFound,
            DbError::Unavailable(cause) => Error::Unavailable(cause),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<rocket::tokio::task::JoinError> for Error {
    fn from(error: rocket::tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {error}"))
    }
}

impl From<bcrypt::BcryptError> for Error {
    fn from(error: bcrypt::BcryptError) -> Self {
        Error::Internal(format!("bcrypt: {error}"))
    }
}

/// A form that failed to parse: 413 when it is over the size limit, otherwise a 400 that names
/// the first bad field.
impl From<form::Errors<'_>> for Error {
    fn from(errors: form::Errors<'_>) -> Self {
        if errors.status() == Status::PayloadTooLarge {
            return Error::PayloadTooLarge;
        }
        let Some(first) = errors.iter().next() else {
            return Error::BadRequest("malformed form body".into());
        };
        let field = first.name.as_ref().map(|name| name.to_string());
        let message = match (field, &first.kind) {
            (Some(field), ErrorKind::Missing) => format!("{field} is required"),
            (Some(field), ErrorKind::Validation(reason)) => format!("{field} {reason}"),
            (Some(field), kind) => format!("{field} is invalid: {kind}"),
            (None, kind) => format!("malformed form body: {kind}"),
        };
        Error::BadRequest(message.into())
    }
}

/// The public error a request guard failed with, kept for the catcher that answers the request
/// (Rocket 0.5 catchers see only the status).
#[derive(Debug)]
pub struct GuardError(pub Option<(Status, Cow<'static, str>)>);

/// The `Retry-After` seconds of a guard that refused with 429, kept for the catcher.
#[derive(Debug)]
struct GuardRetryAfter(Option<u64>);

/// Records `error` for the catcher and hands back its status, for `Outcome::Error`.
pub fn remember(request: &Request<'_>, error: &Error) -> Status {
    request.local_cache(|| GuardError(Some((error.status(), error.public_message()))));
    if let Error::TooManyRequests { retry_after } = error {
        request.local_cache(|| GuardRetryAfter(Some(*retry_after)));
    }
    error.status()
}

/// What the catcher answers: the HTML error page for a client that prefers HTML (browsers), the
/// JSON envelope for every other, plus `Retry-After` when a guard refused the request with 429
/// (as [`Error`]'s own responder adds it).
#[derive(Debug)]
pub struct CaughtError {
    pub status: Status,
    pub body: Json<MessageResponse>,
    pub retry_after: Option<u64>,
    /// The page that replaces `body` for browsers.
    pub page: Option<Box<Template>>,
}

impl<'r> Responder<'r, 'static> for CaughtError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = match self.page {
            Some(page) => (self.status, *page).respond_to(request)?,
            None => (self.status, self.body).respond_to(request)?,
        };
        if let Some(seconds) = self.retry_after {
            response.set_header(Header::new("Retry-After", seconds.to_string()));
        }
        Ok(response)
    }
}

#[catch(default)]
fn default_catcher(status: Status, request: &Request<'_>) -> CaughtError {
    let (status, body) = json_catcher(status, request);
    let retry_after = match request.local_cache(|| GuardRetryAfter(None)) {
        GuardRetryAfter(Some(seconds)) if status == Status::TooManyRequests => Some(*seconds),
        _ => None,
    };
    let page = prefers_html(request).then(|| Box::new(crate::pages::error_page(status, &body.message)));
    CaughtError { status, body, retry_after, page }
}

/// The status and body of the catcher: what a guard remembered for this status, or the
/// generic message.
fn json_catcher(status: Status, request: &Request<'_>) -> (Status, Json<MessageResponse>) {
    let message = match &request.local_cache(|| GuardError(None)).0 {
        Some((remembered, message)) if *remembered == status => message.clone(),
        _ => default_message(status).into(),
    };
    (status, Json(MessageResponse { message }))
}

/// The catchers: one for every status, in HTML or JSON as the client prefers.
pub fn catchers() -> Vec<Catcher> {
    catchers![default_catcher]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_public_message() {
        let cases = [
            (Error::BadRequest("email is required".into()), 400, "email is required"),
            (Error::EmailTaken("a@b.c".into()), 400, "email already registered"),
            (Error::InvalidCredentials, 401, "wrong email or password"),
            (Error::BearerTokenRequired, 401, "a valid bearer token is required"),
            (Error::Forbidden("invalid reset token"), 403, "invalid reset token"),
            (Error::NotFound, 404, "not found"),
            (Error::PayloadTooLarge, 413, "request body too large"),
            (Error::TooManyRequests { retry_after: 3 }, 429, "too many requests; slow down"),
            (Error::Unavailable("pool timed out".into()), 503, "service temporarily unavailable"),
            (
                Error::MailUnavailable("connection refused".into()),
                503,
                "could not send the reset email; try again later",
            ),
            (Error::Internal("secret detail".into()), 500, "internal server error"),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status().code, status, "{error:?}");
            assert_eq!(error.public_message(), message, "{error:?}");
        }
    }

    #[test]
    fn the_catcher_answers_every_status_in_the_json_envelope() {
        let client = rocket::local::blocking::Client::debug_with(vec![]).expect("a client");
        let request = client.get("/");
        for (code, message) in [
            (400, "bad request"),
            (401, "unauthorized"),
            (403, "forbidden: a valid session is required"),
            (404, "not found"),
            (405, "method not allowed"),
            (413, "request body too large"),
            (422, "unprocessable request"),
            (500, "internal server error"),
            (503, "service temporarily unavailable"),
        ] {
            let status = Status::new(code);
            let (answered, Json(body)) = json_catcher(status, request.inner());
            assert_eq!(answered, status);
            assert_eq!(body.message, message, "{code}");
        }
    }

    #[test]
    fn the_catcher_repeats_what_a_guard_remembered() {
        let client = rocket::local::blocking::Client::debug_with(vec![]).expect("a client");
        let request = client.get("/");
        remember(request.inner(), &Error::BadRequest("email is required".into()));
        let (status, Json(body)) = json_catcher(Status::BadRequest, request.inner());
        assert_eq!((status, body.message.as_ref()), (Status::BadRequest, "email is required"));
        // A different status falls back to the generic message.
        let (_, Json(body)) = json_catcher(Status::NotFound, request.inner());
        assert_eq!(body.message, "not found");
    }

    #[test]
    fn the_catcher_adds_retry_after_when_a_guard_refused_with_429() {
        let client = rocket::local::blocking::Client::debug_with(vec![]).expect("a client");
        let request = client.get("/");
        remember(request.inner(), &Error::TooManyRequests { retry_after: 7 });
        let caught = default_catcher(Status::TooManyRequests, request.inner());
        assert_eq!((caught.status, caught.retry_after), (Status::TooManyRequests, Some(7)));
        assert_eq!(caught.body.message, "too many requests; slow down");
        // Another status never carries the header.
        assert_eq!(default_catcher(Status::NotFound, request.inner()).retry_after, None);

        let fresh = client.get("/");
        assert_eq!(default_catcher(Status::TooManyRequests, fresh.inner()).retry_after, None);
    }

    #[test]
    fn email_taken_keeps_the_seed_wording_for_logs() {
        assert_eq!(Error::EmailTaken("a@b.c".into()).to_string(), "User a@b.c already exists");
    }

    #[test]
    fn db_errors_map_to_client_meanings() {
        assert!(matches!(Error::from(DbError::NotFound), Error::NotFound));
        assert!(matches!(Error::from(DbError::Unavailable("x".into())), Error::Unavailable(_)));
        assert!(matches!(Error::from(DbError::InvalidRequest("x")), Error::Internal(_)));
    }
}
