//! CSRF protection for the pages' forms: a signed double-submit token.
//!
//! The browser holds a random nonce in the `csrf` cookie (HttpOnly, SameSite=Lax). Every form
//! carries `csrf_token`, an HMAC-SHA256 over that nonce and the current session cookie, keyed with
//! a server secret. A POST is accepted only when the token verifies against the cookies it came
//! with. Another site can neither read the token nor forge one, and a nonce planted in the
//! browser is useless without the key; binding to the session means a token from one login does
//! not work for another. The comparison is constant-time. `docs/csrf.md` says why the JSON API
//! needs none of this.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rocket::data::{self, Data, FromData, Limits};
use rocket::fairing::AdHoc;
use rocket::form::{self, DataField, Form, FromForm, Options, ValueField};
use rocket::http::{Cookie, CookieJar, RawStr, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use sha2::Sha256;

use crate::config::Config;
use crate::error::{remember, Error};
use crate::guard::SESSION_COOKIE;

/// The cookie that holds the browser's nonce.
pub const CSRF_COOKIE: &str = "csrf";
/// The form field that carries the token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The answer to a POST whose token is missing or wrong.
pub const CSRF_REFUSED: Error =
    Error::Forbidden("invalid CSRF token: reload the page and submit the form again");

/// Random bytes in a nonce, and the least a configured key may have.
const KEY_AND_NONCE_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The signing key, built once at ignite from `csrf_secret` or at random.
pub struct CsrfKey(HmacSha256);

impl CsrfKey {
    /// A key from the base64 of at least 32 bytes.
    pub fn from_base64(secret: &str) -> Result<Self, String> {
        let bytes =
            STANDARD.decode(secret.trim()).map_err(|_| "csrf_secret is not valid base64".to_owned())?;
        if bytes.len() < KEY_AND_NONCE_BYTES {
            return Err(format!("csrf_secret must decode to at least {KEY_AND_NONCE_BYTES} bytes"));
        }
        Self::from_bytes(&bytes)
    }

    /// A fresh random key, good until the process ends.
    pub fn random() -> Result<Self, String> {
        Self::from_bytes(&rand::random::<[u8; KEY_AND_NONCE_BYTES]>())
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        HmacSha256::new_from_slice(bytes).map(CsrfKey).map_err(|e| format!("csrf key: {e}"))
    }

    fn mac(&self, nonce: &str, session: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        // Length-prefixed parts, so no two (nonce, session) pairs sign the same bytes.
        for part in [nonce, session] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The token for a form shown to the holder of `nonce` and `session`.
    pub fn sign(&self, nonce: &str, session: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(nonce, session).finalize().into_bytes())
    }

    /// Whether `token` was signed for `nonce` and `session`, compared in constant time.
    pub fn verify(&self, nonce: &str, session: &str, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(tag) => self.mac(nonce, session).verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    }
}

/// Builds the [`CsrfKey`] from [`Config`] at ignite; a malformed `csrf_secret` stops the launch.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("CSRF key", |rocket| async {
        let Some(config) = rocket.state::<Config>() else {
            rocket::error!("the CSRF key needs the configuration stage first");
            return Err(rocket);
        };
        let key = match &config.csrf_secret {
            Some(secret) => CsrfKey::from_base64(&secret.0),
            None => {
                if rocket.figment().profile() == rocket::Config::RELEASE_PROFILE {
                    rocket::warn!("csrf_secret is not set: a random key signs CSRF tokens until restart");
                }
                CsrfKey::random()
            }
        };
        match key {
            Ok(key) => Ok(rocket.manage(key)),
            Err(message) => {
                rocket::error!("invalid configuration: {message}");
                Err(rocket)
            }
        }
    })
}

/// The session cookie's value as the browser sent it, or "" without one.
fn session_binding(cookies: &CookieJar<'_>) -> String {
    cookies.get(SESSION_COOKIE).map(|cookie| cookie.value().to_owned()).unwrap_or_default()
}

fn is_nonce(value: &str) -> bool {
    URL_SAFE_NO_PAD.decode(value).is_ok_and(|bytes| bytes.len() == KEY_AND_NONCE_BYTES)
}

/// The token to embed in the forms of the page being rendered. Gives the browser a nonce
/// cookie first if it has none.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let rocket = request.rocket();
        let (Some(key), Some(config)) = (rocket.state::<CsrfKey>(), rocket.state::<Config>()) else {
            rocket::error!("CsrfToken needs the configuration and CSRF key stages");
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let cookies = request.cookies();
        let nonce = match cookies.get(CSRF_COOKIE) {
            Some(cookie) if is_nonce(cookie.value()) => cookie.value().to_owned(),
            _ => {
                let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; KEY_AND_NONCE_BYTES]>());
                let cookie = Cookie::build((CSRF_COOKIE, nonce.clone()))
                    .http_only(true)
                    .same_site(SameSite::Lax)
                    .path("/")
                    .secure(config.cookie_secure);
                cookies.add(cookie);
                nonce
            }
        };
        Outcome::Success(CsrfToken(key.sign(&nonce, &session_binding(cookies))))
    }
}

/// A page form whose CSRF token has been checked: a urlencoded body with a valid `csrf_token`,
/// then parsed (leniently) as `T`. A missing or wrong token fails the request with 403 before
/// the handler runs, so nothing changes. `token` is the checked token, to render the form again.
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub value: T,
    pub token: String,
}

/// The decoded fields of the body, kept in the request so `T` can borrow from them.
struct DecodedFields(Vec<(String, String)>);

#[rocket::async_trait]
impl<'r, T: FromForm<'r> + Send> FromData<'r> for CsrfForm<T> {
    type Error = ();

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self, ()> {
        let fields = match read_fields(request, data).await {
            Ok(fields) => request.local_cache(move || DecodedFields(fields)),
            Err(error) => return Outcome::Error((remember(request, &error), ())),
        };
        let Some(token) = checked_token(request, &fields.0) else {
            return Outcome::Error((remember(request, &CSRF_REFUSED), ()));
        };
        let values = fields.0.iter().map(|(name, value)| ValueField::from((name.as_str(), value.as_str())));
        match Form::<T>::parse_iter(values) {
            Ok(value) => Outcome::Success(CsrfForm { value, token: token.to_owned() }),
            Err(errors) => Outcome::Error((remember(request, &Error::from(errors)), ())),
        }
    }
}

/// Reads a urlencoded body within the `form` limit and decodes its fields, leaving out any whose
/// name holds `=`. Any other body has no token, and is refused as such.
async fn read_fields(request: &Request<'_>, data: Data<'_>) -> Result<Vec<(String, String)>, Error> {
    if !request.content_type().is_some_and(|ct| ct.is_form()) {
        return Err(CSRF_REFUSED);
    }
    let limit = request.limits().get("form").unwrap_or(Limits::FORM);
    let body =
        data.open(limit).into_string().await.map_err(|_| Error::BadRequest("malformed form body".into()))?;
    if !body.is_complete() {
        return Err(Error::PayloadTooLarge);
    }
    Ok(body
        .split('&')
        .filter(|field| !field.is_empty())
        .map(|field| {
            let (name, value) = field.split_once('=').unwrap_or((field, ""));
            let decode = |raw: &str| RawStr::new(raw).url_decode_lossy().into_owned();
            (decode(name), decode(value))
        })
        // Rocket's form names end at `=`: a decoded name with one where a key starts
        // (`%3D=x`) never ends, and looking a field up in the form context then loops forever.
        // No form of ours has such a name, so the field is dropped.
        .filter(|(name, _)| !name.contains('='))
        .collect())
}

/// The request's token when it verifies against the request's own cookies.
fn checked_token<'a>(request: &Request<'_>, fields: &'a [(String, String)]) -> Option<&'a str> {
    let key = request.rocket().state::<CsrfKey>()?;
    let cookies = request.cookies();
    let nonce = cookies.get(CSRF_COOKIE)?.value().to_owned();
    let (_, token) = fields.iter().find(|(name, _)| name == CSRF_FIELD)?;
    key.verify(&nonce, &session_binding(cookies), token).then_some(token.as_str())
}

/// A form with no fields of its own, for buttons such as "Log out" that carry only the token.
#[derive(Debug, Clone, Copy)]
pub struct NoFields;

#[rocket::async_trait]
impl<'v> FromForm<'v> for NoFields {
    type Context = ();

    fn init(_: Options) {}

    fn push_value(_: &mut (), _: ValueField<'v>) {}

    async fn push_data(_: &mut (), _: DataField<'v, '_>) {}

    fn finalize(_: ()) -> form::Result<'v, Self> {
        Ok(NoFields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CsrfKey {
        CsrfKey::from_base64(&STANDARD.encode([7u8; 32])).expect("a valid key")
    }

    #[test]
    fn a_token_verifies_for_its_own_nonce_and_session_only() {
        let key = key();
        let token = key.sign("nonce", "session");
        assert!(key.verify("nonce", "session", &token));
        assert!(!key.verify("other", "session", &token));
        assert!(!key.verify("nonce", "", &token));
        assert!(!key.verify("nonce", "session", &token[1..]));
        assert!(!key.verify("nonce", "session", "not base64 !"));
    }

    #[test]
    fn parts_cannot_be_shifted_between_nonce_and_session() {
        let key = key();
        assert_ne!(key.sign("ab", "c"), key.sign("a", "bc"));
    }

    #[test]
    fn another_key_signs_differently() {
        let other = CsrfKey::from_base64(&STANDARD.encode([8u8; 32])).expect("a valid key");
        assert!(!other.verify("nonce", "session", &key().sign("nonce", "session")));
    }

    #[test]
    fn short_or_malformed_secrets_are_refused() {
        assert!(CsrfKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(CsrfKey::from_base64("not base64 !").is_err());
    }
}
