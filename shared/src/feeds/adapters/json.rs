//! JSON, versions 1 and 2: a top-level array of product objects, or an
//! object whose `products` member is that array (other members ignored).
//! Elements are deserialized one at a time from inside serde's sequence
//! loop and handed over at once, so only one product is ever held: serde
//! JSON's `StreamDeserializer` would not stream the elements of one array.
//!
//! Nested objects are flattened with dots (`dimensions.length`); a number is
//! kept as the exact text the file wrote (`19.999999999999999` stays that,
//! and is then refused for its decimals: it never passes through a float);
//! `null` is an absent field; arrays are kept as JSON text (`extra`).
//! Anything else (not JSON, nesting deeper than serde JSON's 128 levels, a
//! product that is not an object, content after the document) makes the
//! file unreadable.

use super::{Adapter, ControlFlow, FeedError};
use crate::feeds::RawRow;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::io::Read;

pub struct Json;

impl Adapter for Json {
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        let (input, start) = super::RowBytes::new(input);
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
        let mut state = State {
            each,
            rows: 0,
            stopped: false,
            empty: true,
            start,
        };
        let read = Document { state: &mut state }.deserialize(&mut de);
        let rows = state.rows;
        match read {
            // stopping leaves the array unfinished, which serde reports
            _ if state.stopped => Ok(()),
            Ok(()) => de.end().map_err(|e| malformed(rows + 1, &e)),
            Err(e) if e.is_eof() && state.empty => Err(FeedError::Empty),
            Err(e) if e.is_io() => Err(FeedError::from_io(&std::io::Error::from(e))),
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
    start: super::RowStart,
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
/// One product: each member's value as the exact text of the file.
type Object = Vec<(String, Box<RawValue>)>;

fn products<'de, A: SeqAccess<'de>>(state: &mut State<'_>, mut seq: A) -> Result<(), A::Error> {
    // what came before the array is no product's weight
    state.start.next_row();
    while let Some(Members(object)) = seq.next_element::<Members>()? {
        state.rows += 1;
        let mut row = RawRow::new();
        flatten("", object, &mut row, 0).map_err(serde::de::Error::custom)?;
        if (state.each)(row).is_break() {
            state.stopped = true;
            return Ok(());
        }
        state.start.next_row();
    }
    Ok(())
}

/// An object's members, in order, their values unparsed.
fn members(text: &str) -> Result<Object, serde_json::Error> {
    let members: Members = serde_json::from_str(text)?;
    Ok(members.0)
}

struct Members(Object);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a product object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members, M::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.len() == super::MAX_ROW_FIELDS {
                        return Err(serde::de::Error::custom(format!(
                            "a product has more than {} fields",
                            super::MAX_ROW_FIELDS
                        )));
                    }
                    out.push((key, map.next_value::<Box<RawValue>>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Objects nested in a product this deep at most (`dimensions.length` is 1).
const MAX_DEPTH: usize = 8;

fn flatten(
    prefix: &str,
    object: Object,
    row: &mut RawRow,
    depth: usize,
) -> Result<(), serde_json::Error> {
    if depth > MAX_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "objects nest deeper than {MAX_DEPTH} levels in a product"
        )));
    }
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        let text = value.get().trim();
        match text.as_bytes().first() {
            Some(b'n') => {}
            Some(b'"') => {
                // most strings have no escapes: their text is the value
                let inner = &text[1..text.len() - 1];
                let value = if inner.contains('\\') {
                    serde_json::from_str::<String>(text)?
                } else {
                    inner.to_owned()
                };
                row.insert(name, value);
            }
            Some(b'{') => flatten(&name, members(text)?, row, depth + 1)?,
            // numbers as written; booleans and arrays as JSON text
            _ => {
                row.insert(name, text.to_owned());
            }
        }
        if row.len() > super::MAX_ROW_FIELDS {
            return Err(serde::de::Error::custom(format!(
                "a product has more than {} fields",
                super::MAX_ROW_FIELDS
            )));
        }
    }
    Ok(())
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
    fn numbers_keep_the_text_the_file_wrote() {
        let rows = collect(
            &Json,
            br#"[{"price": 19.999999999999999, "quantity": 1e3, "big": 123456789012345678901234567890, "ok": true}]"#,
        )
        .unwrap();
        assert_eq!(rows[0]["price"], "19.999999999999999");
        assert_eq!(rows[0]["quantity"], "1e3");
        assert_eq!(rows[0]["big"], "123456789012345678901234567890");
        assert_eq!(rows[0]["ok"], "true");
        let refused = crate::feeds::validate::row(
            "acme",
            1,
            &{
                let mut r = rows[0].clone();
                r.extend(
                    [
                        ("sku", "A"),
                        ("name", "A"),
                        ("currency", "EUR"),
                        ("category", "c"),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
                );
                r.insert("quantity".into(), "1".into());
                r
            },
            crate::feeds::FeedVersion::V1,
        );
        assert!(refused.unwrap_err().iter().any(|e| e.field == "price"));
    }

    #[test]
    fn what_comes_before_the_products_is_not_the_first_products_weight() {
        let big = "x".repeat(super::super::MAX_ROW_BYTES / 2 + 1000);
        let doc = format!(r#"{{"note":"{big}","products":[{{"name":"{big}"}}]}}"#);
        assert_eq!(collect(&Json, doc.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn one_endless_product_is_refused_not_held() {
        let huge = format!(
            "[{{\"sku\":\"{}\"}}]",
            "x".repeat(super::super::MAX_ROW_BYTES + (128 << 10))
        );
        assert!(matches!(
            collect(&Json, huge.as_bytes()),
            Err(FeedError::RowTooLarge { .. })
        ));
        let wide: String = (0..=super::super::MAX_ROW_FIELDS)
            .map(|i| format!("\"f{i}\":1"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            collect(&Json, format!("[{{{wide}}}]").as_bytes()),
            Err(FeedError::Malformed { .. })
        ));
        // the limit is per product: many products of ordinary size read fine
        let many = format!(
            "[{}]",
            vec![r#"{"sku":"A","name":"a fine product"}"#; 200_000].join(",")
        );
        assert_eq!(collect(&Json, many.as_bytes()).unwrap().len(), 200_000);
    }

    #[test]
    fn a_nesting_bomb_is_refused_not_recursed() {
        let objects = format!("[{}1{}]", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(matches!(
            collect(&Json, objects.as_bytes()),
            Err(FeedError::Malformed { .. })
        ));
        // an array is a field's JSON text: deep, but read without recursing
        let arrays = format!(
            "[{{\"a\":{}1{}}}]",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            collect(&Json, arrays.as_bytes()).unwrap()[0]["a"].len(),
            200_001
        );
    }
}
