//! Structured JSON logs on stdout, which Lambda ships to CloudWatch Logs.
//! Each line carries the fields of the span it was written in (the request's
//! id, and its order or sale once known; see `http::RequestInfo::span`).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls are no-ops. `RUST_LOG`
/// overrides the default level (`info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}
