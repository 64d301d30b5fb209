//! Security headers on every response: a strict Content-Security-Policy, no framing, no MIME
//! sniffing, no referrer, no shared browsing context with other origins, `Cache-Control:
//! no-store` on everything that is not a static file, and HSTS when the `hsts` setting is on.
//!
//! Rocket's own `Shield` fairing is attached first and sets `X-Content-Type-Options`,
//! `X-Frame-Options: SAMEORIGIN` and `Permissions-Policy`; this fairing runs after it, keeps its
//! `Permissions-Policy` and tightens the frame policy to `DENY`.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Request, Response};

use crate::config::Config;
use crate::guard::SESSION_COOKIE;

/// Same-origin content only, no plugins, no embedding in frames, no `<base>` rewriting, forms
/// post back here. `object-src 'none'` and `base-uri 'none'` are the minimum of ASVS 3.4.3.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Two years, subdomains included: the value ASVS 3.4.1 asks for (at least a year, all
/// subdomains) and that HSTS preload lists accept.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=63072000; includeSubDomains";

/// The headers every response carries, whatever its status.
const ALWAYS: [(&str, &str); 5] = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    // Obsolete beside `frame-ancestors`, kept for browsers that predate CSP.
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    // A page opened from here, or opening this one, gets no handle on its window.
    ("Cross-Origin-Opener-Policy", "same-origin"),
];

/// The response fairing that sets the security headers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "Security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        for (name, value) in ALWAYS {
            response.set_header(Header::new(name, value));
        }
        // Anything dynamic may be personal: the profile, a reset token, a page with a flash. Only
        // static files may sit in a browser or proxy cache, and never one that sets a cookie.
        let cacheable = is_static_file(request) && response.status().class().is_success();
        if !cacheable || sets_session_cookie(response) {
            response.set_header(Header::new("Cache-Control", "no-store"));
        }
        let hsts = request.rocket().state::<Config>().is_some_and(|config| config.hsts);
        if hsts {
            response.set_header(Header::new("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY));
        }
    }
}

/// Whether the request was answered by a `FileServer` route (Rocket names those routes
/// `FileServer: <dir>`).
fn is_static_file(request: &Request<'_>) -> bool {
    request
        .route()
        .and_then(|route| route.name.as_deref())
        .is_some_and(|name| name.starts_with("FileServer:"))
}

/// Whether the response sets or removes the session cookie.
fn sets_session_cookie(response: &Response<'_>) -> bool {
    response
        .headers()
        .get("Set-Cookie")
        .any(|cookie| cookie.split_once('=').is_some_and(|(name, _)| name.trim() == SESSION_COOKIE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::fs::FileServer;
    use rocket::http::{CookieJar, Status};
    use rocket::local::blocking::Client;
    use rocket::{get, routes};

    #[get("/cookie")]
    fn sets_cookie(cookies: &CookieJar<'_>) -> &'static str {
        cookies.add((SESSION_COOKIE, "abc"));
        "set"
    }

    fn client(static_dir: &std::path::Path) -> Client {
        let rocket = rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
            .attach(SecurityHeaders)
            .mount("/", routes![sets_cookie])
            .mount("/static", FileServer::from(static_dir));
        Client::untracked(rocket).expect("a client")
    }

    #[test]
    fn static_files_may_be_cached_but_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.css"), "body {}").unwrap();
        let client = client(dir.path());

        let file = client.get("/static/site.css").dispatch();
        assert_eq!(file.status(), Status::Ok);
        assert_eq!(file.headers().get_one("Cache-Control"), None);
        assert_eq!(file.headers().get_one("Content-Security-Policy"), Some(CONTENT_SECURITY_POLICY));

        let missing = client.get("/static/none.css").dispatch();
        assert_eq!(missing.status(), Status::NotFound);
        assert_eq!(missing.headers().get_one("Cache-Control"), Some("no-store"));
    }

    #[test]
    fn a_response_that_sets_the_session_cookie_is_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path());
        let response = client.get("/cookie").dispatch();
        let set_cookie = response.headers().get_one("Set-Cookie").unwrap_or_default().to_owned();
        assert!(set_cookie.starts_with("session_id=abc"), "{set_cookie}");
        assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    }

    #[test]
    fn only_the_session_cookie_counts_as_setting_the_session() {
        let with = |cookie: &'static str| Response::build().raw_header("Set-Cookie", cookie).finalize();
        assert!(sets_session_cookie(&with("session_id=abc; Path=/; HttpOnly")));
        assert!(sets_session_cookie(&with("session_id=; Max-Age=0")));
        assert!(!sets_session_cookie(&with("session_idx=abc")));
        assert!(!sets_session_cookie(&with("_flash=hi")));
        assert!(!sets_session_cookie(&Response::new()));
    }
}
