//! Structured JSON logs on stdout, which Lambda ships to CloudWatch Logs.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls are no-ops. `RUST_LOG`
/// overrides the default level (`info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}
