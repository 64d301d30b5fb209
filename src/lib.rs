//! auth-service: a user authentication service with a JSON API and server-rendered pages.
//!
//! Layers, with dependencies pointing one way: routes ([`api`], and later pages) → [`auth`] →
//! [`db`] → [`user`]. [`guard`] holds the request guards both kinds of route share, [`error`]
//! the one error type, [`config`] the typed settings, and [`mail`] the outgoing mail that
//! [`auth`] sends.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod guard;
pub mod mail;
pub mod user;

use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// The service as `cargo run` starts it: settings from `Rocket.toml` and `ROCKET_*` variables.
pub fn rocket() -> Rocket<Build> {
    build(rocket::Config::figment())
}

/// The service over the given settings; tests pass their own database and bcrypt cost.
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(config::stage())
        .attach(auth::stage())
        .attach(mail::stage())
        .attach(db::stage())
        .mount("/", api::routes())
        .register("/", error::catchers())
}
