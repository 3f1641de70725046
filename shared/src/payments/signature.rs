//! The provider's webhook signature (DESIGN.md, "Payment callback"):
//! `Payment-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, each `v1` an
//! HMAC-SHA256 under a webhook secret over `"<t>." + the raw body bytes`.
//!
//! As Stripe's own verifier does: any `v1` may match any of our secrets (so a
//! secret can be rotated with both valid for a while), other schemes (`v0`)
//! are ignored, MACs are compared in constant time, and the timestamp must be
//! within [`TOLERANCE_SECS`] of now, past or future, so a captured delivery
//! cannot be replayed later. Pure: the caller passes the clock's reading.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. Every variant is a 401 `invalid_signature`;
/// the reason is logged, and named in the answer's message, never a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Payment-Signature header is missing")]
    Missing,
    #[error("the Payment-Signature header is not t=<unix>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is more than 300 seconds old")]
    Stale,
    #[error("the signature's timestamp is more than 300 seconds in the future")]
    Future,
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// The parsed header: one timestamp, the `v1` MACs that decoded as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub timestamp: i64,
    pub v1: Vec<Vec<u8>>,
}

/// Parses the header. Exactly one `t`; at least one `v1` element; `v1` values
/// that are not hex can never match and are dropped; other schemes ignored.
pub fn parse(header: &str) -> Result<Header, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                saw_v1 = true;
                if let Ok(mac) = hex::decode(value.trim()) {
                    v1.push(mac);
                }
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if saw_v1 => Ok(Header { timestamp, v1 }),
        _ => Err(SignatureError::Malformed),
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks `header` against the raw `body` under any of `secrets`, at `now`
/// (unix seconds). The timestamp is checked before any MAC is computed.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&[u8]],
    now: i64,
) -> Result<Header, SignatureError> {
    let parsed = parse(header.ok_or(SignatureError::Missing)?)?;
    let age = now.saturating_sub(parsed.timestamp);
    if age > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    if age < -TOLERANCE_SECS {
        return Err(SignatureError::Future);
    }
    let matches = secrets.iter().any(|secret| {
        parsed
            .v1
            .iter()
            .any(|v| mac(secret, parsed.timestamp, body).verify_slice(v).is_ok())
    });
    if matches {
        Ok(parsed)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header a sender computes: what the sandbox provider sends, and what a
/// developer signs a test webhook with (README).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let v1 = hex::encode(mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={v1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment.succeeded"}"#;
    const OLD: &[u8] = b"whsec_old";
    const NEW: &[u8] = b"whsec_new";

    fn check(header: &str, body: &[u8], now: i64) -> Result<Header, SignatureError> {
        verify(Some(header), body, &[OLD, NEW], now)
    }

    #[test]
    fn a_signature_under_either_secret_is_accepted() {
        assert!(check(&sign(OLD, NOW, BODY), BODY, NOW).is_ok());
        assert!(check(&sign(NEW, NOW, BODY), BODY, NOW).is_ok());
    }

    #[test]
    fn the_sender_may_sign_with_several_secrets_and_add_other_schemes() {
        let other = sign(b"whsec_someone_else", NOW, BODY);
        let ours = sign(NEW, NOW, BODY);
        let header = format!(
            "t={NOW},v0=deadbeef,v1={},v1=nothex,{}",
            other.split("v1=").nth(1).unwrap(),
            ours.split(',').nth(1).unwrap()
        );
        assert!(check(&header, BODY, NOW).is_ok());
    }

    #[test]
    fn forged_tampered_or_misdirected_signatures_are_refused() {
        let good = sign(NEW, NOW, BODY);
        // wrong secret
        assert_eq!(
            check(&sign(b"whsec_guess", NOW, BODY), BODY, NOW),
            Err(SignatureError::Mismatch)
        );
        // a body changed by one byte
        let mut tampered = BODY.to_vec();
        tampered[2] ^= 1;
        assert_eq!(check(&good, &tampered, NOW), Err(SignatureError::Mismatch));
        // a timestamp moved without re-signing
        let moved = good.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(check(&moved, BODY, NOW), Err(SignatureError::Mismatch));
        // only other schemes
        let v0 = good.replace("v1=", "v0=");
        assert_eq!(check(&v0, BODY, NOW), Err(SignatureError::Malformed));
        // a MAC truncated to a prefix
        let short = &good[..good.len() - 2];
        assert_eq!(check(short, BODY, NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_are_refused() {
        let at = |t: i64| check(&sign(NEW, t, BODY), BODY, NOW);
        assert!(at(NOW - TOLERANCE_SECS).is_ok());
        assert!(at(NOW + TOLERANCE_SECS).is_ok());
        assert_eq!(at(NOW - TOLERANCE_SECS - 1), Err(SignatureError::Stale));
        assert_eq!(at(NOW + TOLERANCE_SECS + 1), Err(SignatureError::Future));
        assert_eq!(at(i64::MIN), Err(SignatureError::Stale));
        assert_eq!(at(i64::MAX), Err(SignatureError::Future));
    }

    #[test]
    fn missing_and_garbled_headers_are_refused() {
        assert_eq!(
            verify(None, BODY, &[NEW], NOW),
            Err(SignatureError::Missing)
        );
        for garbled in [
            "",
            "garbage",
            "t=,v1=00",
            "t=abc,v1=00",
            "v1=00",
            &format!("t={NOW}"),
            &format!("t={NOW},t={NOW},v1=00"),
            &format!("t={NOW};v1=00"),
        ] {
            assert_eq!(
                check(garbled, BODY, NOW),
                Err(SignatureError::Malformed),
                "{garbled:?}"
            );
        }
    }

    #[test]
    fn no_secret_configured_matches_nothing() {
        assert_eq!(
            verify(Some(&sign(b"", NOW, BODY)), BODY, &[], NOW),
            Err(SignatureError::Mismatch)
        );
    }
}
