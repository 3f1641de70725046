//! JSON, versions 1 and 2: a top-level array of product objects, or an
//! object whose `products` member is that array (other members ignored).
//! Elements are deserialized one at a time from inside serde's sequence
//! loop and handed over at once, so only one product is ever held: serde
//! JSON's `StreamDeserializer` would not stream the elements of one array.
//!
//! Nested objects are flattened with dots (`dimensions.length`); numbers keep
//! the text serde JSON prints for them (`12.99`), never summed or rounded
//! here; `null` is an absent field; arrays are kept as JSON text (`extra`).
//! Anything else (not JSON, nesting deeper than serde JSON's 128 levels, a
//! product that is not an object, content after the document) makes the
//! file unreadable.

use super::{Adapter, ControlFlow, FeedError};
use crate::feeds::RawRow;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;

pub struct Json;

impl Adapter for Json {
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
        let mut state = State {
            each,
            rows: 0,
            stopped: false,
            empty: true,
        };
        let read = Document { state: &mut state }.deserialize(&mut de);
        let rows = state.rows;
        match read {
            // stopping leaves the array unfinished, which serde reports
            _ if state.stopped => Ok(()),
            Ok(()) => de.end().map_err(|e| malformed(rows + 1, &e)),
            Err(e) if e.is_eof() && state.empty => Err(FeedError::Empty),
            Err(e) if e.is_io() => Err(FeedError::Read(e.to_string())),
            Err(e)
                if {
                    let m = e.to_string();
                    m.contains("UTF-8") || m.contains("unicode")
                } =>
            {
                Err(FeedError::BadUtf8 { row: rows + 1 })
            }
            Err(e) => Err(malformed(rows + 1, &e)),
        }
    }
}

fn malformed(row: u64, e: &serde_json::Error) -> FeedError {
    FeedError::Malformed {
        row,
        reason: crate::domain::text::printable(&e.to_string(), 200),
    }
}

struct State<'a> {
    each: &'a mut dyn FnMut(RawRow) -> ControlFlow<()>,
    rows: u64,
    stopped: bool,
    empty: bool,
}

/// The whole document: an array, or an object with `products`.
struct Document<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of products, or an object with a products array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.state.empty = false;
        products(self.state, seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.state.empty = false;
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "products" && !found {
                found = true;
                map.next_value_seed(Products {
                    state: &mut *self.state,
                })?;
                if self.state.stopped {
                    return Ok(());
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(serde::de::Error::custom("the object has no products array"))
        }
    }
}

struct Products<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for Products<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Products<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of products")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        products(self.state, seq)
    }
}

/// One element at a time: read it, hand it over, forget it.
fn products<'de, A: SeqAccess<'de>>(state: &mut State<'_>, mut seq: A) -> Result<(), A::Error> {
    while let Some(element) = seq.next_element::<Value>()? {
        let Value::Object(object) = element else {
            return Err(serde::de::Error::custom("a product must be an object"));
        };
        state.rows += 1;
        let mut row = RawRow::new();
        flatten("", object, &mut row);
        if (state.each)(row).is_break() {
            state.stopped = true;
            return Ok(());
        }
    }
    Ok(())
}

fn flatten(prefix: &str, object: Map<String, Value>, row: &mut RawRow) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Null => {}
            Value::String(s) => {
                row.insert(name, s);
            }
            Value::Object(inner) => flatten(&name, inner, row),
            other => {
                row.insert(name, other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::adapters::collect;

    #[test]
    fn an_array_or_an_object_with_products() {
        let array = collect(&Json, br#"[{"sku":"A","price":"12.99","quantity":4,"dimensions":{"length":10.5,"unit":"cm"},"tags":["x"],"gtin":null}]"#).unwrap();
        assert_eq!(array.len(), 1);
        let row = &array[0];
        assert_eq!(row["price"], "12.99");
        assert_eq!(row["quantity"], "4");
        assert_eq!(row["dimensions.length"], "10.5");
        assert_eq!(row["dimensions.unit"], "cm");
        assert_eq!(row["tags"], r#"["x"]"#);
        assert!(!row.contains_key("gtin"));
        let object = collect(
            &Json,
            br#"{"version":1,"products":[{"sku":"A"},{"sku":"B"}],"note":{}}"#,
        )
        .unwrap();
        assert_eq!(object.len(), 2);
        // a JSON number price reads as the decimal it wrote, not a float sum
        let number = collect(&Json, br#"[{"price":0.3}]"#).unwrap();
        assert_eq!(number[0]["price"], "0.3");
    }

    #[test]
    fn elements_are_handed_over_as_they_are_read_and_the_caller_may_stop() {
        let mut seen = Vec::new();
        let r = Json.read(
            &mut &br#"[{"sku":"A"},{"sku":"B"},{"sku":"C"}, oops"#[..],
            &mut |row| {
                seen.push(row["sku"].clone());
                if seen.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(r, Ok(()));
        assert_eq!(seen, ["A", "B"]);
    }

    #[test]
    fn unreadable_documents_are_refused_with_the_row_they_broke_at() {
        assert_eq!(collect(&Json, b""), Err(FeedError::Empty));
        assert_eq!(collect(&Json, b"[]"), Ok(vec![]));
        for (bad, row) in [
            (&b"[{\"sku\":\"A\"}, {\"sku\":"[..], 2),
            (b"{\"items\":[]}", 1),
            (b"[1,2]", 1),
            (b"[{\"sku\":\"A\"}] trailing", 2),
            (b"not json", 1),
            (b"\"products\"", 1),
        ] {
            let got = collect(&Json, bad);
            assert!(
                matches!(got, Err(FeedError::Malformed { row: r, .. }) if r == row),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            collect(&Json, b"[{\"sku\":\"caf\xC3\"}]"),
            Err(FeedError::BadUtf8 { .. })
        ));
    }

    #[test]
    fn a_nesting_bomb_is_refused_not_recursed() {
        let bomb = format!(
            "[{{\"a\":{}1{}}}]",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            collect(&Json, bomb.as_bytes()),
            Err(FeedError::Malformed { .. })
        ));
    }
}
