//! Logging with tracing (text for people, JSON for log pipelines), and the conventions
//! every part's metrics share. It imports nothing of the crate: every layer may use it.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// Latency buckets, seconds: resolve 0.5 ms to 2.5 s, dense around the 100 ms objective.
/// Every latency histogram uses them (requests, shard queries), so dashboards can put
/// them side by side.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `shortener=debug,actix_web=warn`); `RUST_LOG` wins.
    pub filter: String,
    /// One line per request (method, route, status, latency, request ID).
    pub requests: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
            requests: true,
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the configured filter. Calling
/// it twice is harmless (the second call does nothing), which keeps tests simple.
pub fn init(settings: &LogSettings) {
    let configured = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| settings.filter.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&configured))
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The dispatcher's own log target: it logs every request the HTTP parser refuses at
/// `ERROR` ("stream error: …"), so any client could fill the log; the service answers
/// them with JSON and counts them (`shortener_http_refused_total`) instead.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// The filter of `directives`, with the dispatcher's target off unless they name it.
fn filter(directives: &str) -> EnvFilter {
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    if directives.contains(DISPATCHER) {
        return filter;
    }
    match format!("{DISPATCHER}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// A name for this process among others: `{host}-{pid}-{random hex}`, unique even for
/// two processes that reuse a pid on one host. The click stream's consumer and the
/// worker ID lease's holder.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// An error and its sources, `a: b: c`: what a log line shows of an error (a
/// `thiserror` type's own message leaves its `#[source]` out).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatchers_refusals_are_off_unless_a_filter_names_them() {
        assert!(filter("info")
            .to_string()
            .contains("actix_http::h1::dispatcher=off"));
        let named = filter("info,actix_http::h1::dispatcher=debug").to_string();
        assert!(
            named.contains("actix_http::h1::dispatcher=debug"),
            "{named}"
        );
        assert!(!named.contains("=off"), "{named}");
    }
}
