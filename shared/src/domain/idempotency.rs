//! Idempotency keys and what makes two requests "the same".

use super::Invalid;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Stripe allows 255; longer keys are a client bug, not a need.
pub const MAX_KEY: usize = 255;

/// 1..=255 visible ASCII characters.
pub fn check_key(key: Option<&str>) -> Result<&str, Invalid> {
    let field = "Idempotency-Key";
    let key = key.ok_or_else(|| {
        Invalid::new(
            field,
            "the header is required on this request; send a unique value such as a UUID",
        )
    })?;
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Invalid::new(
            field,
            format!("must be 1 to {MAX_KEY} visible ASCII characters"),
        ));
    }
    Ok(key)
}

/// A fingerprint of what a request asks for: its route, its path, and its JSON
/// body with object keys sorted, so reformatting the same body is the same request.
pub fn fingerprint(route_key: &str, path: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(route_key.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical(body).as_bytes());
    hex::encode(h.finalize())
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_must_be_present_visible_and_bounded() {
        assert_eq!(check_key(Some("7f1c-..")), Ok("7f1c-.."));
        assert!(check_key(None).is_err());
        assert!(check_key(Some("")).is_err());
        assert!(check_key(Some("has space")).is_err());
        assert!(check_key(Some("ünïcode")).is_err());
        assert!(check_key(Some(&"k".repeat(256))).is_err());
        assert!(check_key(Some(&"k".repeat(255))).is_ok());
    }

    #[test]
    fn the_same_body_reformatted_is_the_same_request() {
        let a = json!({"items": [{"sku": "A", "quantity": 1}], "payment_token": "tok_ok"});
        let b: Value = serde_json::from_str(
            r#"{ "payment_token":"tok_ok", "items":[ {"quantity":1,"sku":"A"} ] }"#,
        )
        .unwrap();
        assert_eq!(
            fingerprint("POST /checkout", "/checkout", &a),
            fingerprint("POST /checkout", "/checkout", &b)
        );
        let c = json!({"items": [{"sku": "A", "quantity": 2}], "payment_token": "tok_ok"});
        assert_ne!(
            fingerprint("POST /checkout", "/checkout", &a),
            fingerprint("POST /checkout", "/checkout", &c)
        );
        assert_ne!(
            fingerprint(
                "POST /flash-sales/{sale_id}/checkout",
                "/flash-sales/a/checkout",
                &a
            ),
            fingerprint(
                "POST /flash-sales/{sale_id}/checkout",
                "/flash-sales/b/checkout",
                &a
            )
        );
    }
}
