//! Log output: one tracing subscriber for the service's own lines and Rocket's, in the format
//! the `log_format` setting names (`human` or `json`), and the access log, one line per request.
//!
//! [`init`] is called by the binary, never by [`crate::build`]: tests install their own
//! subscribers to capture what is logged. Rocket 0.5 logs through the `log` crate, so [`init`]
//! also installs a `log` logger that forwards each record to the subscriber, and Rocket's lines
//! come out in the same format as ours.
//!
//! The level follows Rocket's `log_level` (`critical`: warnings and errors; `normal`: info;
//! `debug`: debug), or `RUST_LOG` when set (`RUST_LOG=info,audit=debug`). Below `debug`, Rocket's
//! own per-request lines are left out: they show the query string, where reset links carry their
//! token, and the access line says the same without it. The warnings and errors Rocket still
//! writes about a request have the query cut from its path.

use std::borrow::Cow;
use std::fmt;
use std::io::IsTerminal;

use rocket::config::LogLevel;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Request, Response};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::{AsLog, NormalizeEvent};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::ops::{route_template, CurrentRequestId, RequestStart};

/// Installs the process-wide subscriber and the bridge from `log`, as `figment` configures them.
/// Fails with a readable message for a bad `log_format` or `RUST_LOG`, or when a logger is set.
pub fn init(figment: &Figment) -> Result<(), String> {
    let format = match figment.extract_inner::<LogFormat>("log_format") {
        Ok(format) => format,
        Err(error) if error.missing() => LogFormat::Human,
        Err(error) => return Err(format!("invalid log_format: {error}")),
    };
    // A bad Rocket setting is Rocket's to report, at ignite, through this subscriber.
    let level = rocket::Config::try_from(figment).map_or(LogLevel::Normal, |config| config.log_level);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).map_err(|error| format!("invalid RUST_LOG: {error}"))?
        }
        _ => EnvFilter::new(default_directives(level)),
    };
    // The `log` side filters too, so Rocket does not format records nobody shows. Never above
    // `debug`: at `trace` Rocket's form parser logs every field, passwords included.
    let log_max = filter.max_level_hint().map_or(log::LevelFilter::Trace, |level| level.as_log());
    let log_max = log_max.min(log::LevelFilter::Debug);

    let writer = std::io::stdout;
    let (human, json) = match format {
        LogFormat::Human => {
            let ansi = std::io::stdout().is_terminal();
            (Some(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer)), None)
        }
        LogFormat::Json => {
            (None, Some(tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(writer)))
        }
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(human).with(json);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| "a log subscriber is already installed".to_owned())?;
    log::set_boxed_logger(Box::new(LogBridge))
        .map_err(|_| "a `log` logger is already installed".to_owned())?;
    log::set_max_level(log_max);
    Ok(())
}

/// The filter for Rocket's `log_level` when `RUST_LOG` is not set.
fn default_directives(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Off => "off",
        // The access line replaces Rocket's request lines (see the module comment).
        LogLevel::Critical => "warn",
        LogLevel::Normal => "info,rocket::server=warn",
        LogLevel::Debug => "debug",
    }
}

/// Forwards `log` records (Rocket's) to the tracing subscriber.
///
/// Rocket writes its launch banner ("Rocket has launched from ...") at `warn` so that it shows
/// at the `critical` level; it marks those records with a `rocket::launch` target and shows them
/// as info. The bridge does the same, so a JSON log does not carry a warning per start.
struct LogBridge;

impl log::Log for LogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        // The subscriber's filter decides, in `format_trace`.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Warn if record.target().contains("rocket::launch") => log::Level::Info,
            level => level,
        };
        // Rocket's request-level lines ("No matching routes for GET /path?query.") show the
        // query, where a mistyped reset link carries its token; only those are rewritten.
        if record.target().starts_with("rocket::server") {
            let message = record.args().to_string();
            forward(record, level, format_args!("{}", without_queries(&message)));
        } else {
            forward(record, level, *record.args());
        }
    }

    fn flush(&self) {}
}

/// Hands `record` to the tracing subscriber at `level`, with `args` as its message.
fn forward(record: &log::Record<'_>, level: log::Level, args: fmt::Arguments<'_>) {
    let _ = tracing_log::format_trace(
        &log::Record::builder()
            .args(args)
            .level(level)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build(),
    );
}

/// `message` with the query cut from every word that is a path (`/reset?token=x.` → `/reset.`).
fn without_queries(message: &str) -> Cow<'_, str> {
    if !message.contains('?') {
        return Cow::Borrowed(message);
    }
    let words = message.split(' ').map(|word| match (word.starts_with('/'), word.find('?')) {
        (true, Some(at)) if word.ends_with('.') => format!("{}.", &word[..at]),
        (true, Some(at)) => word[..at].to_owned(),
        _ => word.to_owned(),
    });
    Cow::Owned(words.collect::<Vec<_>>().join(" "))
}

/// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message` and the
/// event's own fields at the top level. Records that came from `log` keep their real target and
/// lose the `log.*` bookkeeping fields that tracing-subscriber's own JSON format would add.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut object = Map::new();
        event.record(&mut JsonFields(&mut object));
        // Set last, so an event field of the same name cannot hide them.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        object.insert("timestamp".into(), now.into());
        object.insert("level".into(), metadata.level().as_str().into());
        object.insert("target".into(), metadata.target().into());
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// Collects an event's fields as JSON values, numbers and booleans as such.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // A message's `Debug` is its text.
        self.insert(field, format!("{value:?}").into());
    }
}

impl JsonFields<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

/// One line per request on target `access`: method, route template, path without the query
/// string (reset links carry their token there), status, latency in milliseconds, request id.
pub struct AccessLog;

#[rocket::async_trait]
impl Fairing for AccessLog {
    fn info(&self) -> Info {
        // The arrival time is stamped by `ops::RequestId`, which runs before this.
        Info { name: "Access log", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let took = RequestStart::of(request).elapsed();
        // Microsecond precision is plenty, and keeps the field short.
        let latency_ms = (took.as_secs_f64() * 1_000_000.0).round() / 1_000.0;
        tracing::info!(
            target: "access",
            method = request.method().as_str(),
            route = route_template(request),
            path = request.uri().path().as_str(),
            status = response.status().code,
            latency_ms,
            request_id = CurrentRequestId::of(request),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_cut_from_the_paths_in_rocket_lines() {
        assert_eq!(
            without_queries("No matching routes for GET /pasword/reset?token=secret."),
            "No matching routes for GET /pasword/reset."
        );
        assert_eq!(without_queries("GET /a?b=c d /e?f"), "GET /a d /e");
        assert_eq!(without_queries("is this a question?"), "is this a question?");
        assert!(matches!(without_queries("no query"), Cow::Borrowed("no query")));
    }

    #[test]
    fn rocket_levels_map_to_filters_that_drop_its_request_lines_below_debug() {
        assert_eq!(default_directives(LogLevel::Off), "off");
        assert_eq!(default_directives(LogLevel::Critical), "warn");
        assert_eq!(default_directives(LogLevel::Normal), "info,rocket::server=warn");
        assert_eq!(default_directives(LogLevel::Debug), "debug");
        for level in [LogLevel::Off, LogLevel::Critical, LogLevel::Normal, LogLevel::Debug] {
            assert!(EnvFilter::try_new(default_directives(level)).is_ok());
        }
    }
}
