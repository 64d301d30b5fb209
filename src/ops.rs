//! What operators and load balancers ask of a running node: `GET /health` (the process answers),
//! `GET /ready` (it can reach its database), and an `X-Request-Id` on every response, taken from
//! the request when a proxy set a sane one, so one id follows a request through every log.

use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::serde::json::Json;
use rocket::{get, routes, Data, Request, Response, Route, State};
use serde::Serialize;

use crate::db::{self, DbPool};
use crate::error::ApiResult;

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// Longest request id taken from a client; anything longer is replaced.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// The body of `GET /health` and `GET /ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /health`: the process is up and serving; it touches nothing else, so a slow database
/// does not make a load balancer kill a healthy node.
#[get("/health")]
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Status)))]
pub fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// `GET /ready`: the database answers a query within the pool timeout; otherwise 503, so a load
/// balancer sends traffic elsewhere until it does.
#[get("/ready")]
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, body = Status), (status = 503, response = crate::error::responses::Unavailable)))]
pub async fn ready(pool: &State<DbPool>) -> ApiResult<Json<Status>> {
    pool.run(db::ping).await?;
    Ok(Json(Status { status: "ready" }))
}

pub fn routes() -> Vec<Route> {
    routes![health, ready]
}

/// Gives every request an id: the client's `X-Request-Id` when it is 1 to 64 characters of
/// letters, digits, `-` and `_`, else a new UUID. The response carries it back. It also stamps
/// the request's arrival ([`RequestStart`]).
pub struct RequestId;

/// The id of the current request, cached in the request.
#[derive(Debug, Clone)]
pub struct CurrentRequestId(pub String);

impl CurrentRequestId {
    /// The id of `request` (made on first use).
    pub fn of<'r>(request: &'r Request<'_>) -> &'r str {
        &request
            .local_cache(|| {
                let given = request.headers().get_one(REQUEST_ID_HEADER).filter(|id| is_sane(id));
                CurrentRequestId(given.map_or_else(crate::auth::generate_uuid, str::to_owned))
            })
            .0
    }
}

/// When the request arrived, stamped by [`RequestId`] (attached in [`crate::build`] before the
/// access log and the metrics), so both measure from the same instant.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

impl RequestStart {
    /// The arrival time of `request` (stamped now if no fairing did).
    pub fn of(request: &Request<'_>) -> Instant {
        request.local_cache(|| RequestStart(Instant::now())).0
    }
}

/// What logs and metrics name a request that no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The path template of the route that answered `request` (`/profile`, `/static/<path..>`), or
/// [`UNMATCHED_ROUTE`]: a bounded name for logs and metric labels, free of anything a client
/// typed. A request that a guard forwarded to a catcher keeps the last route it was tried
/// against.
pub fn route_template<'r>(request: &'r Request<'_>) -> &'r str {
    request.route().map_or(UNMATCHED_ROUTE, |route| route.uri.path())
}

fn is_sane(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[rocket::async_trait]
impl Fairing for RequestId {
    fn info(&self) -> Info {
        Info { name: "Request id", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        RequestStart::of(request);
        CurrentRequestId::of(request);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        response.set_header(Header::new(REQUEST_ID_HEADER, CurrentRequestId::of(request).to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn request_ids_from_clients_must_be_short_and_plain() {
        for good in ["a", "req-123_ABC", &"x".repeat(64)] {
            assert!(is_sane(good), "{good}");
        }
        for bad in ["", "has space", "new\nline", "semi;colon", &"x".repeat(65), "ünïcode"] {
            assert!(!is_sane(bad), "{bad:?}");
        }
    }
}
