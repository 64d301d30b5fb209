//! The server-rendered pages: Tera templates over the same `Auth` methods as the JSON API.
//!
//! GET handlers render a page. POST handlers take a [`CsrfForm`] (the CSRF token is checked
//! before they run), call one `Auth` method, and answer a flash message with a redirect, or the
//! form again with the user's input and what to fix. `GET /` and `GET /profile` are shared with
//! the API: clients that prefer `text/html` get the routes here, every other client the JSON
//! ones, by rank.

use rocket::form::{self, error::ErrorKind, Contextual, FromForm, FromFormField, ValueField};
use rocket::http::impl_from_uri_param_identity;
use rocket::http::uri::fmt::{Formatter, Query, UriDisplay};
use rocket::http::uri::Origin;
use rocket::http::{CookieJar, Header, RawStr, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FlashMessage, FromRequest, Request};
use rocket::response::{Flash, Redirect};
use rocket::{get, post, routes, uri, Responder, Route, State};
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::api::{CredentialsForm, ResetRequestForm};
use crate::auth::{Auth, CurrentSession, Password};
use crate::config::Config;
use crate::csrf::{CsrfForm, CsrfToken, NoFields};
use crate::db::SessionScope;
use crate::error::{default_message, ApiResult, Error};
use crate::guard::{self, PrefersHtml};
use crate::limit::IpLimit;
use crate::user::{Email, Session, User};

/// The longest `next` path the login form carries.
const MAX_NEXT_BYTES: usize = 1024;

/// What the forgot-password page says, whether or not the account exists.
const RESET_LINK_SENT: &str =
    "If an account uses that email, a link to choose a new password is on its way. Check your inbox.";

/// A path to return to after logging in. Local only: it starts with `/` but not `//`, has no
/// backslash, space or control character, and parses as an origin-form URI, so the login form
/// cannot send anyone to another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeNext(String);

impl SafeNext {
    pub fn parse(raw: &str) -> Option<Self> {
        let local = raw.starts_with('/')
            && !raw.starts_with("//")
            && raw.len() <= MAX_NEXT_BYTES
            && !raw.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control());
        (local && Origin::parse(raw).is_ok()).then(|| SafeNext(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A route's own URI is always local.
impl From<Origin<'_>> for SafeNext {
    fn from(origin: Origin<'_>) -> Self {
        SafeNext(origin.to_string())
    }
}

/// In a query the path keeps its slashes (`/login?next=/profile`); each segment is
/// percent-encoded, so `?`, `&`, `=`, `#` and `%` cannot leak into the outer query.
impl UriDisplay<Query> for SafeNext {
    fn fmt(&self, f: &mut Formatter<'_, Query>) -> std::fmt::Result {
        let segments: Vec<_> =
            self.0.split('/').map(|segment| RawStr::new(segment).percent_encode()).collect();
        f.write_raw(segments.iter().map(|segment| segment.as_str()).collect::<Vec<_>>().join("/"))
    }
}

impl_from_uri_param_identity!([Query] SafeNext);

#[rocket::async_trait]
impl<'v> FromFormField<'v> for SafeNext {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        SafeNext::parse(field.value).ok_or_else(|| form::Error::validation("must be a local path").into())
    }
}

/// The login form: credentials, and where to go next.
#[derive(Debug, FromForm)]
pub struct LoginForm {
    pub email: Email,
    pub password: Password,
    /// Dropped, not refused, when it is not a safe local path.
    pub next: Option<SafeNext>,
}

/// The change-password form on the profile page.
#[derive(Debug, FromForm)]
pub struct PasswordChangeForm {
    pub current_password: Password,
    pub new_password: Password,
}

/// The new-password form reached from a reset link.
#[derive(Debug, FromForm)]
pub struct PasswordResetForm {
    pub token: String,
    pub new_password: Password,
}

/// Who is looking at a page, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visitor {
    Guest,
    Member,
    /// Error pages do not look the session up.
    Unknown,
}

/// A flash message, shown once by the base layout.
#[derive(Debug, Serialize)]
pub struct FlashContext {
    /// `success`, `error` or `info`: a CSS class, never the cookie's text.
    pub kind: &'static str,
    pub message: String,
}

impl From<FlashMessage<'_>> for FlashContext {
    fn from(flash: FlashMessage<'_>) -> Self {
        let (kind, message) = flash.into_inner();
        let kind = match kind.as_str() {
            "success" => "success",
            "error" => "error",
            _ => "info",
        };
        FlashContext { kind, message }
    }
}

/// The cookie Rocket keeps a flash message in: `<length of the kind>:<kind><message>`.
const FLASH_COOKIE: &str = "_flash";

/// Whether Rocket's `FlashMessage` guard can read the flash cookie. It cuts the value at the
/// length prefix, in bytes, and panics when that falls inside a character (`_flash=1:é`); the
/// service never sets such a cookie, so a client that sends one gets the page without a flash.
fn flash_cookie_is_sound(cookies: &CookieJar<'_>) -> bool {
    let Some(cookie) = cookies.get(FLASH_COOKIE) else {
        return true;
    };
    match cookie.value().split_once(':') {
        Some((length, rest)) => length.parse::<usize>().map_or(true, |length| rest.is_char_boundary(length)),
        None => true,
    }
}

/// What the base layout needs on every page. As a request guard it takes (and so clears) the
/// flash message and looks the session up.
#[derive(Debug, Serialize)]
pub struct LayoutContext {
    pub flash: Option<FlashContext>,
    pub visitor: Visitor,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LayoutContext {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let user = request.guard::<Option<User>>().await.succeeded().flatten();
        let flash = match flash_cookie_is_sound(request.cookies()) {
            true => request.guard::<Option<FlashMessage<'_>>>().await.succeeded().flatten(),
            false => {
                request.cookies().remove(FLASH_COOKIE);
                None
            }
        };
        let visitor = match user {
            Some(_) => Visitor::Member,
            None => Visitor::Guest,
        };
        Outcome::Success(LayoutContext { flash: flash.map(FlashContext::from), visitor })
    }
}

/// The first error of form field `name`, as a sentence that starts with its label.
fn field_error(context: &form::Context<'_>, name: &str, label: &str) -> Option<String> {
    context.field_errors(name).next().map(|error| match &error.kind {
        ErrorKind::Validation(reason) => format!("{label} {reason}."),
        ErrorKind::Missing => format!("{label} is required."),
        _ => format!("{label} is not valid."),
    })
}

/// The answer to a page form.
#[derive(Responder)]
pub enum FormReply {
    /// The action is done: on to the next page, with a flash message.
    Done(Flash<Redirect>),
    /// The form again, with the user's input and what to fix.
    Retry((Status, Template)),
    /// The form again, saying how long to wait before the next attempt.
    Throttled(ThrottledForm),
}

/// A form page answered with 429 and `Retry-After`.
#[derive(Responder)]
#[response(status = 429)]
pub struct ThrottledForm {
    page: Template,
    retry_after: Header<'static>,
}

impl FormReply {
    fn done(to: Origin<'static>, message: &str) -> Self {
        FormReply::Done(Flash::success(Redirect::to(to), message))
    }

    fn retry(status: Status, name: &'static str, context: impl Serialize) -> Self {
        FormReply::Retry((status, Template::render(name, context)))
    }
}

/// The message for a password the policy refused, as the page shows it by the field.
fn policy_error(error: Error, label: &str) -> Result<String, Error> {
    match error {
        // `password is too weak: ...` names the field itself; the page names it by its label.
        Error::BadRequest(message) => {
            Ok(sentence(&format!("{label} {}", message.strip_prefix("password ").unwrap_or(&message))))
        }
        other => Err(other),
    }
}

/// The home page.
#[derive(Debug, Serialize)]
pub struct HomeContext {
    pub layout: LayoutContext,
    pub email: Option<String>,
}

/// `GET /` for browsers: links to log in and register, or to the profile.
#[get("/", rank = 1)]
pub fn home_page(_html: PrefersHtml, user: Option<User>, layout: LayoutContext) -> Template {
    Template::render("home", HomeContext { layout, email: user.map(|user| user.email) })
}

/// The registration form.
#[derive(Debug, Serialize)]
pub struct RegisterContext {
    pub layout: LayoutContext,
    pub csrf_token: String,
    pub email: String,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
}

impl RegisterContext {
    fn new(layout: LayoutContext, csrf_token: String) -> Self {
        Self { layout, csrf_token, email: String::new(), email_error: None, password_error: None }
    }

    fn invalid(layout: LayoutContext, csrf_token: String, context: &form::Context<'_>) -> Self {
        Self {
            email: context.field_value("email").unwrap_or_default().to_owned(),
            email_error: field_error(context, "email", "Email"),
            password_error: field_error(context, "password", "Password"),
            ..Self::new(layout, csrf_token)
        }
    }

    fn taken(layout: LayoutContext, csrf_token: String, email: &Email) -> Self {
        Self {
            email: email.to_string(),
            email_error: Some("An account with this email already exists. Log in instead?".into()),
            ..Self::new(layout, csrf_token)
        }
    }

    fn weak(layout: LayoutContext, csrf_token: String, email: &Email, message: String) -> Self {
        Self { email: email.to_string(), password_error: Some(message), ..Self::new(layout, csrf_token) }
    }
}

/// `GET /register`.
#[get("/register")]
pub fn register_page(layout: LayoutContext, csrf: CsrfToken) -> Template {
    Template::render("register", RegisterContext::new(layout, csrf.0))
}

/// `POST /register`: creates the account and logs the user in.
#[post("/register", data = "<form>")]
pub async fn register_submit(
    _limit: IpLimit,
    layout: LayoutContext,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
    config: &State<Config>,
    form: CsrfForm<Contextual<'_, CredentialsForm>>,
) -> ApiResult<FormReply> {
    let CsrfForm { value: Contextual { value, context }, token } = form;
    let Some(CredentialsForm { email, password }) = value else {
        let page = RegisterContext::invalid(layout, token, &context);
        return Ok(FormReply::retry(Status::UnprocessableEntity, "register", page));
    };
    let page = match auth.register_user(&email, &password).await {
        Ok(_) => None,
        Err(Error::EmailTaken(_)) => Some(RegisterContext::taken(layout, token, &email)),
        Err(error) => Some(RegisterContext::weak(layout, token, &email, policy_error(error, "Password")?)),
    };
    if let Some(page) = page {
        return Ok(FormReply::retry(Status::UnprocessableEntity, "register", page));
    }
    let session_id = auth.create_session(&email).await?.ok_or(Error::InvalidCredentials)?;
    guard::set_session_cookie(cookies, session_id, config);
    Ok(FormReply::done(uri!(profile_page), "Welcome! Your account is ready."))
}

/// The login form.
#[derive(Debug, Serialize)]
pub struct LoginContext {
    pub layout: LayoutContext,
    pub csrf_token: String,
    pub email: String,
    pub next: Option<String>,
    /// The one neutral message for a wrong email or password.
    pub error: Option<String>,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
}

impl LoginContext {
    fn new(layout: LayoutContext, csrf_token: String, next: Option<SafeNext>) -> Self {
        Self {
            layout,
            csrf_token,
            email: String::new(),
            next: next.map(|next| next.0),
            error: None,
            email_error: None,
            password_error: None,
        }
    }

    fn invalid(layout: LayoutContext, csrf_token: String, context: &form::Context<'_>) -> Self {
        let next = context.field_value("next").and_then(SafeNext::parse);
        Self {
            email: context.field_value("email").unwrap_or_default().to_owned(),
            email_error: field_error(context, "email", "Email"),
            password_error: field_error(context, "password", "Password"),
            ..Self::new(layout, csrf_token, next)
        }
    }

    fn refused(layout: LayoutContext, csrf_token: String, email: &Email, next: Option<SafeNext>) -> Self {
        Self {
            email: email.to_string(),
            error: Some("Wrong email or password.".into()),
            ..Self::new(layout, csrf_token, next)
        }
    }

    fn throttled(
        layout: LayoutContext,
        csrf_token: String,
        email: &Email,
        next: Option<SafeNext>,
        retry_after: u64,
    ) -> ThrottledForm {
        let wait = match retry_after {
            1 => "1 second".to_owned(),
            n => format!("{n} seconds"),
        };
        let page = Self {
            email: email.to_string(),
            error: Some(format!("Too many failed attempts. Wait {wait}, then try again.")),
            ..Self::new(layout, csrf_token, next)
        };
        ThrottledForm {
            page: Template::render("login", page),
            retry_after: Header::new("Retry-After", retry_after.to_string()),
        }
    }
}

/// `GET /login?next=…`.
#[get("/login?<next>")]
pub fn login_page(next: Option<SafeNext>, layout: LayoutContext, csrf: CsrfToken) -> Template {
    Template::render("login", LoginContext::new(layout, csrf.0, next))
}

/// `POST /login`: logs in, then goes to `next` or the profile. A wrong email or password gets
/// one neutral message; a throttled account is told how long to wait.
#[post("/login", data = "<form>")]
pub async fn login_submit(
    _limit: IpLimit,
    layout: LayoutContext,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
    config: &State<Config>,
    form: CsrfForm<Contextual<'_, LoginForm>>,
) -> ApiResult<FormReply> {
    let CsrfForm { value: Contextual { value, context }, token } = form;
    let Some(LoginForm { email, password, next }) = value else {
        let page = LoginContext::invalid(layout, token, &context);
        return Ok(FormReply::retry(Status::UnprocessableEntity, "login", page));
    };
    let session_id = match auth.login(&email, &password).await {
        Ok(session_id) => session_id,
        Err(Error::InvalidCredentials) => {
            let page = LoginContext::refused(layout, token, &email, next);
            return Ok(FormReply::retry(Status::Unauthorized, "login", page));
        }
        Err(Error::TooManyRequests { retry_after }) => {
            let page = LoginContext::throttled(layout, token, &email, next, retry_after);
            return Ok(FormReply::Throttled(page));
        }
        Err(other) => return Err(other),
    };
    guard::set_session_cookie(cookies, session_id, config);
    let to = next.map_or_else(|| uri!(profile_page).to_string(), |next| next.0);
    Ok(FormReply::Done(Flash::success(Redirect::to(to), "You are logged in.")))
}

/// `POST /logout`: ends this session; other devices stay logged in, as with `DELETE /sessions`.
#[post("/logout", data = "<_form>")]
pub async fn logout_submit(
    current: CurrentSession,
    auth: Auth<'_>,
    cookies: &CookieJar<'_>,
    _form: CsrfForm<NoFields>,
) -> ApiResult<Flash<Redirect>> {
    auth.logout(&current).await?;
    guard::remove_session_cookie(cookies);
    Ok(Flash::success(Redirect::to(uri!(home_page)), "You have been logged out."))
}

/// `POST /logout` when the session has already ended: drops the stale cookie all the same.
#[post("/logout", data = "<_form>", rank = 2)]
pub fn logout_redirect(cookies: &CookieJar<'_>, _form: CsrfForm<NoFields>) -> Flash<Redirect> {
    guard::remove_session_cookie(cookies);
    Flash::success(Redirect::to(uri!(home_page)), "You are logged out.")
}

/// The profile page.
#[derive(Debug, Serialize)]
pub struct ProfileContext {
    pub layout: LayoutContext,
    pub csrf_token: String,
    pub email: String,
    /// For people: "25 November 2026 at 11:48 UTC".
    pub created_at: String,
    /// For machines, in the `datetime` attribute.
    pub created_at_iso: String,
    pub current_password_error: Option<String>,
    pub new_password_error: Option<String>,
    /// Where the user is logged in, most recently used first.
    pub sessions: Vec<SessionView>,
}

/// One of the user's sessions, as the profile page lists it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: i32,
    /// Whether this is the session of the browser looking at the page.
    pub current: bool,
    pub user_agent: String,
    pub ip: String,
    pub created_at: String,
    pub last_seen_at: String,
}

impl SessionView {
    fn new(session: &Session, current_id: i32) -> Self {
        Self {
            id: session.id,
            current: session.id == current_id,
            user_agent: session.user_agent.clone().unwrap_or_else(|| "Unknown browser".into()),
            ip: session.ip.clone().unwrap_or_else(|| "unknown address".into()),
            created_at: session.created_at.format("%-d %B %Y at %H:%M UTC").to_string(),
            last_seen_at: session.last_seen_at.format("%-d %B %Y at %H:%M UTC").to_string(),
        }
    }
}

impl ProfileContext {
    /// The page with the sessions of `current`'s user listed.
    async fn with_sessions(mut self, auth: &Auth<'_>, current: &CurrentSession) -> ApiResult<Self> {
        let sessions = auth.list_sessions(current.user.id).await?;
        self.sessions =
            sessions.iter().map(|session| SessionView::new(session, current.session.id)).collect();
        Ok(self)
    }

    fn new(layout: LayoutContext, csrf_token: String, user: &User) -> Self {
        Self {
            layout,
            csrf_token,
            email: user.email.clone(),
            created_at: user.created_at.format("%-d %B %Y at %H:%M UTC").to_string(),
            created_at_iso: user.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            current_password_error: None,
            new_password_error: None,
            sessions: Vec::new(),
        }
    }

    fn invalid(layout: LayoutContext, csrf_token: String, user: &User, context: &form::Context<'_>) -> Self {
        Self {
            current_password_error: field_error(context, "current_password", "Current password"),
            new_password_error: field_error(context, "new_password", "New password"),
            ..Self::new(layout, csrf_token, user)
        }
    }

    fn wrong_current(layout: LayoutContext, csrf_token: String, user: &User) -> Self {
        Self {
            current_password_error: Some("Current password is not correct.".into()),
            ..Self::new(layout, csrf_token, user)
        }
    }

    fn weak(layout: LayoutContext, csrf_token: String, user: &User, message: String) -> Self {
        Self { new_password_error: Some(message), ..Self::new(layout, csrf_token, user) }
    }
}

/// `GET /profile` for browsers with a session.
#[get("/profile", rank = 1)]
pub async fn profile_page(
    _html: PrefersHtml,
    current: CurrentSession,
    auth: Auth<'_>,
    layout: LayoutContext,
    csrf: CsrfToken,
) -> ApiResult<Template> {
    let page = ProfileContext::new(layout, csrf.0, &current.user).with_sessions(&auth, &current).await?;
    Ok(Template::render("profile", page))
}

/// The session to end, from the profile page's list.
#[derive(Debug, FromForm)]
pub struct EndSessionForm {
    pub session: i32,
}

/// `POST /profile/sessions/end`: ends one of the user's other sessions (a lost phone, a shared
/// computer). A session of another user, or one already ended, ends nothing.
#[post("/profile/sessions/end", data = "<form>")]
pub async fn end_session_submit(
    current: CurrentSession,
    auth: Auth<'_>,
    form: CsrfForm<Contextual<'_, EndSessionForm>>,
) -> ApiResult<Flash<Redirect>> {
    let to = Redirect::to(uri!(profile_page));
    let Some(EndSessionForm { session }) = form.value.value else {
        return Ok(Flash::error(to, "Choose a session to end."));
    };
    if session == current.session.id {
        return Ok(Flash::error(to, "This is the session you are using: log out to end it."));
    }
    Ok(match auth.revoke_sessions(&current, SessionScope::One(session)).await? {
        0 => Flash::error(to, "That session had already ended."),
        _ => Flash::success(to, "That session has ended; the device there is logged out."),
    })
}

/// `POST /profile/sessions/end-others`: logs every other device out.
#[post("/profile/sessions/end-others", data = "<_form>")]
pub async fn end_other_sessions_submit(
    current: CurrentSession,
    auth: Auth<'_>,
    _form: CsrfForm<NoFields>,
) -> ApiResult<Flash<Redirect>> {
    let ended = auth.revoke_sessions(&current, SessionScope::AllBut(current.session.id)).await?;
    let message = match ended {
        0 => "You were not logged in anywhere else.".to_owned(),
        1 => "You have been logged out of 1 other session.".to_owned(),
        n => format!("You have been logged out of {n} other sessions."),
    };
    Ok(Flash::success(Redirect::to(uri!(profile_page)), message))
}

/// `GET /profile` for browsers without a session: 303 to the login page, which comes back here.
#[get("/profile", rank = 2)]
pub fn profile_redirect(_html: PrefersHtml) -> Redirect {
    Redirect::to(uri!(login_page(next = Some(SafeNext::from(uri!(profile_page))))))
}

/// `POST /password/change`, from the profile page: a wrong current password or a new one the
/// policy refuses is a form error. A changed password logs every other device out.
#[post("/password/change", data = "<form>")]
pub async fn password_change_submit(
    _limit: IpLimit,
    current: CurrentSession,
    layout: LayoutContext,
    auth: Auth<'_>,
    form: CsrfForm<Contextual<'_, PasswordChangeForm>>,
) -> ApiResult<FormReply> {
    let CsrfForm { value: Contextual { value, context }, token } = form;
    let user = &current.user;
    let Some(PasswordChangeForm { current_password, new_password }) = value else {
        let page =
            ProfileContext::invalid(layout, token, user, &context).with_sessions(&auth, &current).await?;
        return Ok(FormReply::retry(Status::UnprocessableEntity, "profile", page));
    };
    let page = match auth.change_password(&current, &current_password, &new_password).await {
        Ok(()) => None,
        Err(Error::InvalidCredentials) => Some(ProfileContext::wrong_current(layout, token, user)),
        Err(error) => Some(ProfileContext::weak(layout, token, user, policy_error(error, "New password")?)),
    };
    if let Some(page) = page {
        let page = page.with_sessions(&auth, &current).await?;
        return Ok(FormReply::retry(Status::UnprocessableEntity, "profile", page));
    }
    Ok(FormReply::done(uri!(profile_page), "Your password has been changed. Every other session has ended."))
}

/// `POST /password/change` once the session has ended: back through the login page.
#[post("/password/change", data = "<_form>", rank = 2)]
pub fn password_change_redirect(_form: CsrfForm<NoFields>) -> Flash<Redirect> {
    let to = uri!(login_page(next = Some(SafeNext::from(uri!(profile_page)))));
    Flash::error(Redirect::to(to), "Your session has ended. Log in again to change your password.")
}

/// The forgot-password form.
#[derive(Debug, Serialize)]
pub struct PasswordForgotContext {
    pub layout: LayoutContext,
    pub csrf_token: String,
    pub email: String,
    pub email_error: Option<String>,
}

/// `GET /password/forgot`.
#[get("/password/forgot")]
pub fn password_forgot_page(layout: LayoutContext, csrf: CsrfToken) -> Template {
    let page = PasswordForgotContext { layout, csrf_token: csrf.0, email: String::new(), email_error: None };
    Template::render("password_forgot", page)
}

/// `POST /password/forgot`: sends a reset link. The answer is the same whether or not an account
/// uses the email.
#[post("/password/forgot", data = "<form>")]
pub async fn password_forgot_submit(
    _limit: IpLimit,
    layout: LayoutContext,
    auth: Auth<'_>,
    form: CsrfForm<Contextual<'_, ResetRequestForm>>,
) -> ApiResult<FormReply> {
    let CsrfForm { value: Contextual { value, context }, token } = form;
    let Some(ResetRequestForm { email }) = value else {
        let page = PasswordForgotContext {
            layout,
            csrf_token: token,
            email: context.field_value("email").unwrap_or_default().to_owned(),
            email_error: field_error(&context, "email", "Email"),
        };
        return Ok(FormReply::retry(Status::UnprocessableEntity, "password_forgot", page));
    };
    // The token is never shown here, even where the API reveals it: the link goes only by mail.
    match auth.request_password_reset(&email).await {
        Ok(_) | Err(Error::Forbidden(_)) => Ok(FormReply::done(uri!(password_forgot_page), RESET_LINK_SENT)),
        Err(other) => Err(other),
    }
}

/// The new-password form, or, without `token`, the page that says the link is invalid or used.
#[derive(Debug, Serialize)]
pub struct PasswordResetContext {
    pub layout: LayoutContext,
    pub csrf_token: String,
    pub token: Option<String>,
    pub new_password_error: Option<String>,
}

impl PasswordResetContext {
    fn form(layout: LayoutContext, csrf_token: String, token: String) -> Self {
        Self { layout, csrf_token, token: Some(token), new_password_error: None }
    }

    fn invalid_link(layout: LayoutContext, csrf_token: String) -> (Status, Template) {
        let page = Self { layout, csrf_token, token: None, new_password_error: None };
        (Status::Forbidden, Template::render("password_reset", page))
    }
}

/// `GET /password/reset?token=…`: the form for a valid token. Showing it does not use the token up.
#[get("/password/reset?<token>")]
pub async fn password_reset_page(
    token: Option<String>,
    layout: LayoutContext,
    auth: Auth<'_>,
    csrf: CsrfToken,
) -> ApiResult<(Status, Template)> {
    let token = token.unwrap_or_default();
    match auth.reset_token_is_valid(&token).await? {
        true => Ok((
            Status::Ok,
            Template::render("password_reset", PasswordResetContext::form(layout, csrf.0, token)),
        )),
        false => Ok(PasswordResetContext::invalid_link(layout, csrf.0)),
    }
}

/// `POST /password/reset`: sets the new password (the token then stops working, and every
/// session of the account ends) and sends the user to log in with it.
#[post("/password/reset", data = "<form>")]
pub async fn password_reset_submit(
    _limit: IpLimit,
    layout: LayoutContext,
    auth: Auth<'_>,
    form: CsrfForm<Contextual<'_, PasswordResetForm>>,
) -> ApiResult<FormReply> {
    let CsrfForm { value: Contextual { value, context }, token: csrf_token } = form;
    let Some(PasswordResetForm { token, new_password }) = value else {
        let token = context.field_value("token").unwrap_or_default().to_owned();
        let page = PasswordResetContext {
            new_password_error: field_error(&context, "new_password", "New password"),
            ..PasswordResetContext::form(layout, csrf_token, token)
        };
        return Ok(FormReply::retry(Status::UnprocessableEntity, "password_reset", page));
    };
    match auth.update_password(&token, &new_password).await {
        Ok(_) => Ok(FormReply::done(
            uri!(login_page(next = _)),
            "Your password has been reset. Log in with your new password.",
        )),
        Err(Error::Forbidden(_)) => {
            Ok(FormReply::Retry(PasswordResetContext::invalid_link(layout, csrf_token)))
        }
        Err(error) => {
            let page = PasswordResetContext {
                new_password_error: Some(policy_error(error, "New password")?),
                ..PasswordResetContext::form(layout, csrf_token, token)
            };
            Ok(FormReply::retry(Status::UnprocessableEntity, "password_reset", page))
        }
    }
}

/// The HTML error page.
#[derive(Debug, Serialize)]
pub struct ErrorContext {
    pub layout: LayoutContext,
    pub code: u16,
    pub title: &'static str,
    /// What the status means for the visitor.
    pub lead: &'static str,
    /// The specific reason, when there is one beyond the status.
    pub detail: Option<String>,
}

/// The error page for `status`, as the catchers render it for browsers.
pub fn error_page(status: Status, message: &str) -> Template {
    let (title, lead) = match status.code {
        400 => ("Bad request", "The request could not be understood."),
        401 => ("Not logged in", "Log in to continue."),
        403 => ("Access denied", "You cannot do this here, or the form you sent has expired."),
        404 => (
            "Page not found",
            "There is no page at this address. Check the link, or start again from the home page.",
        ),
        405 => ("Method not allowed", "This address does not accept that kind of request."),
        413 => ("Too much data", "The form sent more data than the service accepts."),
        429 => ("Too many attempts", "Wait a moment, then try again."),
        503 => ("Service unavailable", "The service is briefly unavailable. Please try again in a moment."),
        500..=599 => {
            ("Something went wrong", "The service hit an unexpected problem. Please try again in a moment.")
        }
        _ => ("Request not completed", "The request could not be completed."),
    };
    let detail = (message != default_message(status)).then(|| sentence(message));
    let layout = LayoutContext { flash: None, visitor: Visitor::Unknown };
    Template::render("error", ErrorContext { layout, code: status.code, title, lead, detail })
}

/// `message` with a capital first letter and a final full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !text.is_empty() && !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Every page route.
pub fn routes() -> Vec<Route> {
    routes![
        home_page,
        register_page,
        register_submit,
        login_page,
        login_submit,
        logout_submit,
        logout_redirect,
        profile_page,
        profile_redirect,
        end_session_submit,
        end_other_sessions_submit,
        password_change_submit,
        password_change_redirect,
        password_forgot_page,
        password_forgot_submit,
        password_reset_page,
        password_reset_submit,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_local_paths_only() {
        for good in ["/", "/profile", "/profile?tab=1", "/a/b.c"] {
            assert_eq!(SafeNext::parse(good).map(|n| n.0), Some(good.to_owned()), "{good}");
        }
        for bad in [
            "",
            "profile",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(SafeNext::parse(bad), None, "{bad:?}");
        }
        assert_eq!(SafeNext::parse(&format!("/{}", "a".repeat(MAX_NEXT_BYTES))), None);
    }

    #[test]
    fn next_keeps_its_slashes_in_a_query_and_encodes_the_rest() {
        let next = |raw: &str| SafeNext::parse(raw).expect("a local path");
        assert_eq!(uri!(login_page(next = Some(next("/profile")))).to_string(), "/login?next=/profile");
        assert_eq!(
            uri!(login_page(next = Some(next("/c?d=e&f+g")))).to_string(),
            "/login?next=/c%3Fd%3De%26f%2Bg"
        );
    }

    #[test]
    fn sentence_capitalises_and_ends_with_a_full_stop() {
        assert_eq!(sentence("invalid CSRF token"), "Invalid CSRF token.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
