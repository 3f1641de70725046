//! CloudWatch embedded metric format (EMF): one JSON document per line on
//! stdout, which Lambda ships to CloudWatch Logs and CloudWatch turns into
//! metrics without an API call. The document must be the whole log line, so it
//! is written directly, not through the tracing subscriber's JSON envelope.

use std::io::Write;

pub const NAMESPACE: &str = "Flashcart";

/// Whether to write EMF lines: on Lambda always; elsewhere (the local stack,
/// tests, benchmarks) only with `FLASHCART_EMF=1`, so a test run is not
/// thousands of metric lines.
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var("FLASHCART_EMF").is_ok_and(|v| v == "1")
    })
}

/// Emits `metrics` (name, value, unit) with the `Function` dimension.
pub fn emit(function: &str, metrics: &[(&str, f64, &str)]) {
    if !enabled() {
        return;
    }
    let line = document(function, metrics, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// One checkout answer: counters by outcome (`accepted`, `replayed`, or the
/// error code) and its latency.
pub fn checkout(function: &str, outcome: &str, latency: std::time::Duration) {
    emit(function, &checkout_metrics(outcome, latency));
}

fn checkout_metrics(
    outcome: &str,
    latency: std::time::Duration,
) -> [(&'static str, f64, &'static str); 5] {
    let is = |what: &str| if outcome == what { 1.0 } else { 0.0 };
    [
        ("CheckoutAccepted", is("accepted"), "Count"),
        ("CheckoutReplayed", is("replayed"), "Count"),
        ("CheckoutSoldOut", is("sold_out"), "Count"),
        ("CheckoutThrottled", is("throttled"), "Count"),
        (
            "CheckoutLatency",
            latency.as_secs_f64() * 1000.0,
            "Milliseconds",
        ),
    ]
}

pub fn document(
    function: &str,
    metrics: &[(&str, f64, &str)],
    timestamp_ms: i64,
) -> serde_json::Value {
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    for (name, value, _) in metrics {
        doc[*name] = serde_json::json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_checkout_outcome_has_its_own_counter() {
        let m = super::checkout_metrics("replayed", std::time::Duration::from_millis(3));
        let value = |name: &str| m.iter().find(|(n, ..)| *n == name).unwrap().1;
        assert_eq!(value("CheckoutAccepted"), 0.0);
        assert_eq!(value("CheckoutReplayed"), 1.0);
        assert_eq!(value("CheckoutLatency"), 3.0);
    }

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let d = super::document(
            "checkout",
            &[
                ("CheckoutAccepted", 1.0, "Count"),
                ("Latency", 12.5, "Milliseconds"),
            ],
            42,
        );
        assert_eq!(d["_aws"]["Timestamp"], 42);
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Flashcart");
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
            "Milliseconds"
        );
        assert_eq!(d["Function"], "checkout");
        assert_eq!(d["CheckoutAccepted"], 1.0);
        assert_eq!(d["Latency"], 12.5);
    }
}
