//! Opaque page cursors: a DynamoDB `LastEvaluatedKey` as base64url JSON.
//! A cursor only says where a read of public data resumes; one that does not
//! decode to exactly the expected key attributes is refused ([`CursorError`],
//! a 400), never a 500.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::{BTreeMap, HashMap};

pub type Key = HashMap<String, AttributeValue>;

/// Longer than any key this API encodes.
const MAX_CURSOR: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor this endpoint returned")]
pub struct CursorError;

pub fn encode(key: &Key) -> Option<String> {
    let plain: BTreeMap<&str, &str> = key
        .iter()
        .map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect::<Option<_>>()?;
    serde_json::to_vec(&plain)
        .ok()
        .map(|j| URL_SAFE_NO_PAD.encode(j))
}

/// Decodes a cursor that must hold exactly `attributes`, all non-empty
/// strings: it becomes a DynamoDB `ExclusiveStartKey`, and DynamoDB refuses an
/// empty key string (a forged cursor must be a 400, not a 500).
pub fn decode(cursor: &str, attributes: &[&str]) -> Result<Key, CursorError> {
    let key = decode_position(cursor, attributes)?;
    if key.values().any(|v| v.as_s().is_ok_and(String::is_empty)) {
        return Err(CursorError);
    }
    Ok(key)
}

/// Decodes a cursor that must hold exactly `attributes` (all strings, empty
/// allowed): a position of ours that is not itself a DynamoDB key.
pub fn decode_position(cursor: &str, attributes: &[&str]) -> Result<Key, CursorError> {
    if cursor.len() > MAX_CURSOR {
        return Err(CursorError);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| CursorError)?;
    let plain: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| CursorError)?;
    let mut expected: Vec<&str> = attributes.to_vec();
    expected.sort_unstable();
    if plain.keys().map(String::as_str).ne(expected) {
        return Err(CursorError);
    }
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips() {
        let key: Key = [("pk", "PRODUCT#A"), ("sk", "PRODUCT")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
            .collect();
        let c = encode(&key).unwrap();
        assert_eq!(decode(&c, &["sk", "pk"]).unwrap(), key);
    }

    #[test]
    fn forged_cursors_are_refused() {
        for bad in [
            "",
            "!!!",
            "e30",
            &URL_SAFE_NO_PAD.encode(r#"{"pk":"x","other":"y"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"pk":1,"sk":"y"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"pk":"","sk":""}"#),
        ] {
            assert_eq!(decode(bad, &["pk", "sk"]), Err(CursorError), "{bad}");
        }
    }
}
