//! Request guards shared by the API and the pages: the session guard (`User`), the form body
//! guard of the API (`ApiForm`), `PrefersHtml`, and the one place the session cookie is built.

use std::borrow::Cow;

use rocket::data::{self, Data, FromData};
use rocket::form::{self, Form, FromForm};
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::auth::{Auth, CurrentSession};
use crate::config::Config;
use crate::error::{remember, Error};
use crate::user::User;

/// The name of the cookie that carries the session id, as the contract fixes it.
pub const SESSION_COOKIE: &str = "session_id";

/// The outcome of resolving the session cookie, cached for the rest of the request.
enum SessionLookup {
    Found(Box<CurrentSession>),
    Missing,
    Failed(Status, Cow<'static, str>),
}

/// Resolves the `session_id` cookie to its live session and user through [`Auth`].
///
/// A missing, unknown or expired session forwards with 403, so a lower-ranked page route can
/// redirect to the login page; when none does, the 403 catcher answers. A database failure is an
/// error (503). The look-up runs once per request, however many guards ask.
#[rocket::async_trait]
impl<'r> FromRequest<'r> for CurrentSession {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let lookup = request.local_cache_async(lookup_session(request)).await;
        match lookup {
            SessionLookup::Found(current) => Outcome::Success(current.as_ref().clone()),
            SessionLookup::Missing => Outcome::Forward(Status::Forbidden),
            SessionLookup::Failed(status, message) => {
                request.local_cache(|| crate::error::GuardError(Some((*status, message.clone()))));
                Outcome::Error((*status, ()))
            }
        }
    }
}

/// The logged-in user: [`CurrentSession`] without the session.
#[rocket::async_trait]
impl<'r> FromRequest<'r> for User {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        CurrentSession::from_request(request).await.map(|current| current.user)
    }
}

async fn lookup_session(request: &Request<'_>) -> SessionLookup {
    let Some(session_id) = request.cookies().get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return SessionLookup::Missing;
    };
    let auth = match request.guard::<Auth<'_>>().await {
        Outcome::Success(auth) => auth,
        _ => return SessionLookup::Failed(Status::InternalServerError, "internal server error".into()),
    };
    match auth.resolve_session(&session_id).await {
        Ok(Some(current)) => SessionLookup::Found(Box::new(current)),
        Ok(None) => SessionLookup::Missing,
        Err(error) => {
            tracing::error!("session look-up failed: {error}");
            SessionLookup::Failed(error.status(), error.public_message())
        }
    }
}

/// Sets the session cookie: HttpOnly, SameSite=Lax, Path=/, and Secure when configured.
pub fn set_session_cookie(cookies: &CookieJar<'_>, session_id: String, config: &Config) {
    let cookie = Cookie::build((SESSION_COOKIE, session_id))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(config.cookie_secure);
    cookies.add(cookie);
}

/// Tells the browser to drop the session cookie.
pub fn remove_session_cookie(cookies: &CookieJar<'_>) {
    cookies.remove(Cookie::build(SESSION_COOKIE).path("/"));
}

/// Succeeds when the client prefers HTML (as browsers do) and forwards otherwise, so a path can
/// serve pages to browsers and the contract's JSON to everyone else with ranked routes.
#[derive(Debug, Clone, Copy)]
pub struct PrefersHtml;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PrefersHtml {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match prefers_html(request) {
            true => Outcome::Success(PrefersHtml),
            false => Outcome::Forward(Status::NotFound),
        }
    }
}

/// Whether the request's `Accept` header ranks `text/html` first, as browsers send it. No header,
/// `*/*` and `application/json` all mean JSON.
pub fn prefers_html(request: &Request<'_>) -> bool {
    request.accept().is_some_and(|accept| accept.preferred().media_type().is_html())
}

/// A form body for the JSON API (urlencoded or multipart). Every failure is a JSON 4xx: a bad or
/// missing field is a 400 naming it, an oversized body a 413, and a body that is not a form at
/// all reads as an empty form, so the client hears which field is missing, as the seed's clients
/// expect.
#[derive(Debug)]
pub struct ApiForm<T>(pub T);

#[rocket::async_trait]
impl<'r, T: FromForm<'r> + Send> FromData<'r> for ApiForm<T> {
    type Error = ();

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self, ()> {
        let parsed = match Form::<T>::from_data(request, data).await {
            Outcome::Success(form) => Ok(form.into_inner()),
            Outcome::Error((_, errors)) => Err(Error::from(errors)),
            Outcome::Forward(_) => empty_form::<T>(),
        };
        match parsed {
            Ok(value) => Outcome::Success(ApiForm(value)),
            Err(error) => Outcome::Error((remember(request, &error), ())),
        }
    }
}

/// Parses an empty form, which names the first required field.
fn empty_form<'r, T: FromForm<'r>>() -> Result<T, Error> {
    T::finalize(T::init(form::Options::Lenient)).map_err(Error::from)
}
