//! auth-service: a user authentication service with a JSON API and server-rendered pages.
//!
//! Layers, with dependencies pointing one way: routes ([`api`], [`pages`]) → [`auth`] → [`db`] →
//! [`user`]. [`guard`] holds the request guards both kinds of route share, [`csrf`] the pages'
//! form protection, [`error`] the one error type, [`config`] the typed settings, and [`mail`]
//! the outgoing mail that [`auth`] sends.
//!
//! Hardening beside the layers: [`headers`] (security headers on every response), [`limit`] (the
//! per-IP rate limit guard) and [`audit`] (the audit trail, whose rows are [`event`]s stored by
//! [`db`]); [`ops`] answers health checks and tags each request with an id, [`metrics`] serves
//! `GET /metrics` when a token is set, [`logging`] formats the log and writes the access log,
//! and [`openapi`] serves the API's OpenAPI document.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod csrf;
pub mod db;
pub mod error;
pub mod event;
pub mod guard;
pub mod headers;
pub mod limit;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod password;
pub mod user;

use rocket::figment::Figment;
use rocket::fs::{relative, FileServer};
use rocket::{Build, Rocket};
use rocket_dyn_templates::Template;

/// The service as `cargo run` starts it: settings from `Rocket.toml` and `ROCKET_*` variables.
pub fn rocket() -> Rocket<Build> {
    build(rocket::Config::figment())
}

/// The service over the given settings; tests pass their own database and bcrypt cost.
pub fn build(figment: Figment) -> Rocket<Build> {
    // Templates and static files are found from any working directory: both default to this
    // source tree, as the static files' route does. Rocket.toml's `template_dir` still wins.
    rocket::custom(figment.join(("template_dir", relative!("templates"))))
        .attach(config::stage())
        // Before the hasher is built, which takes its histograms from the metrics.
        .attach(metrics::stage())
        .attach(auth::stage())
        .attach(csrf::stage())
        .attach(mail::stage())
        .attach(db::stage())
        .attach(auth::session_sweeper())
        .attach(limit::stage())
        .attach(headers::SecurityHeaders)
        .attach(ops::RequestId)
        .attach(logging::AccessLog)
        .attach(audit::stage())
        .attach(openapi::stage())
        .attach(Template::fairing())
        .mount("/", api::routes())
        .mount("/", pages::routes())
        .mount("/", ops::routes())
        .mount("/", metrics::routes())
        .mount("/", openapi::routes())
        .mount("/static", FileServer::from(relative!("static")))
        .register("/", error::catchers())
}
