//! The partner contract (`GET /partner/contract`): a JSON Schema per feed
//! version, and example payloads per format and version. The schema is built
//! from the validator's own limits and field lists ([`super::validate`]), so
//! changing a rule changes what partners are told; tests run every example
//! through the real adapters and the validator, and the schema against the
//! validator on the same documents (tests/tests/partner.rs).
//!
//! The schema states each field's shape and limits. Three rules need the
//! validator itself (the dry run, `POST /partner/feeds/validate`): a GTIN's
//! check digit, the decimals a currency allows (JPY none, EUR two) and
//! whether a three-letter code is an ISO 4217 currency. The schema only ever
//! errs on the strict side: a document it accepts breaks at most those three.
//! It holds no remote `$ref`: its one reference is to its own `$defs`.

use super::FeedVersion;
use super::validate::{
    MAX_BRAND, MAX_CATEGORY, MAX_DESCRIPTION, MAX_EXTRA_FIELDS, MAX_EXTRA_VALUE, MAX_FIELD_NAME,
    MAX_NAME, MAX_QUANTITY, MAX_SKU,
};
use crate::domain::money::MAX_AMOUNT;
use serde_json::{Value, json};

/// Raised when a rule changes what a partner must send.
pub const CONTRACT_VERSION: &str = "2026-12-06";
pub const VERSIONS: [u8; 2] = [1, 2];
pub const FORMATS: [&str; 3] = ["csv", "json", "xml"];

/// No control character anywhere (Unicode's Cc: U+0000-U+001F, U+007F-U+009F).
const NO_CONTROL: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// Not starting as a spreadsheet formula would.
const NO_FORMULA: &str = r"^[^=+\-@\t\r]";
/// Newlines and tabs allowed (a CRLF counts as one newline).
const MULTILINE: &str = r"^(?:[^\x00-\x08\x0B-\x1F\x7F-\x9F]|\r\n)*$";
/// 1 to n of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
fn identifier(max: usize) -> String {
    format!("^[A-Za-z0-9][A-Za-z0-9._-]{{0,{}}}$", max - 1)
}
/// A positive decimal, at most 12 characters.
const POSITIVE_DECIMAL: &str = r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$";

fn text(max: usize, description: &str) -> Value {
    json!({
        "type": "string",
        "maxLength": max,
        "allOf": [{"pattern": NO_CONTROL}, {"pattern": NO_FORMULA}],
        "description": description,
    })
}

fn required_text(max: usize, description: &str) -> Value {
    let mut t = text(max, description);
    t["minLength"] = json!(1);
    if let Some(all) = t["allOf"].as_array_mut() {
        // at least one character that is not white space
        all.push(json!({"pattern": r"\S"}));
    }
    t
}

/// One product's schema in `version`.
fn product(version: FeedVersion) -> Value {
    let mut properties = json!({
        "sku": {
            "type": "string",
            "pattern": identifier(MAX_SKU),
            "description": "Your SKU. The catalog names it <partner_id>:<sku>, so a feed can only create or change your own products.",
        },
        "name": required_text(MAX_NAME, "Shown to shoppers."),
        "description": {
            "type": "string",
            "maxLength": MAX_DESCRIPTION,
            "allOf": [{"pattern": MULTILINE}, {"pattern": format!("^$|{NO_FORMULA}")}],
            "description": "Newlines and tabs allowed; no other control characters.",
        },
        "price": {
            "type": "string",
            // at most 999,999.9999: under the largest amount in every
            // currency's minor units (10^10, with up to 4 decimals)
            "allOf": [{"pattern": r"^[0-9]{1,6}(?:\.[0-9]{1,4})?$"}, {"pattern": "[1-9]"}],
            "description": format!("A positive decimal in the currency's units, as text (\"12.99\"): never through a float; at most {MAX_AMOUNT} minor units. No more decimals than the currency has (the dry run checks)."),
        },
        "currency": {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "An ISO 4217 code such as EUR (the dry run checks the list).",
        },
        "quantity": {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_QUANTITY},
                {"type": "string", "pattern": "^(?:[0-9]{1,9}|1000000000)$"},
            ],
            "description": format!("Units in stock, a whole number from 0 to {MAX_QUANTITY}, no sign or decimals (25, not 25.0)."),
        },
        "category": {
            "type": "string",
            "pattern": identifier(MAX_CATEGORY),
        },
    });
    let mut doc = json!({
        "type": "object",
        "required": super::validate::REQUIRED_FIELDS,
        "properties": properties.clone(),
    });
    match version {
        FeedVersion::V1 => {
            doc["additionalProperties"] = json!(true);
            doc["description"] =
                json!("A version 1 product. Fields the version does not define are ignored.");
        }
        FeedVersion::V2 => {
            let decimal = json!({"anyOf": [
                {"type": "string", "maxLength": 12, "pattern": POSITIVE_DECIMAL},
                {"type": "number", "exclusiveMinimum": 0},
            ]});
            let extra = properties.as_object_mut();
            if let Some(p) = extra {
                p.insert("brand".into(), text(MAX_BRAND, "Optional."));
                p.insert("manufacturer".into(), text(MAX_BRAND, "Optional."));
                p.insert(
                    "gtin".into(),
                    json!({
                        "type": "string",
                        "pattern": "^(?:[0-9]{8}|[0-9]{12,14})$",
                        "description": "Optional: GTIN-8, -12, -13 or -14 with a valid GS1 check digit (the dry run checks the digit).",
                    }),
                );
                p.insert(
                    "dimensions".into(),
                    json!({
                        "type": "object",
                        "required": ["length", "width", "height", "unit"],
                        "properties": {
                            "length": decimal, "width": decimal, "height": decimal,
                            "unit": {"enum": ["cm", "mm", "m", "in"]},
                        },
                        "description": "Optional, all four parts or none. CSV columns and XML elements spell them dimensions.length and so on.",
                    }),
                );
            }
            doc["properties"] = properties;
            doc["additionalProperties"] = json!({
                "type": ["string", "number", "boolean"],
                "maxLength": MAX_EXTRA_VALUE,
                "allOf": [{"pattern": NO_CONTROL}, {"pattern": format!("^$|{NO_FORMULA}")}],
            });
            doc["propertyNames"] = json!({
                "minLength": 1,
                "maxLength": MAX_FIELD_NAME,
                "pattern": r"^[^\s=+\-@\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?$",
            });
            // the 11 fields of version 2, and at most this many others
            doc["maxProperties"] = json!(11 + MAX_EXTRA_FIELDS);
            doc["description"] = json!(format!(
                "A version 2 product. Up to {MAX_EXTRA_FIELDS} fields the version does not define are kept, as text, in the product's extra fields."
            ));
        }
    }
    doc
}

/// The JSON Schema (draft 2020-12) of a JSON feed in `version`; a CSV row or
/// an XML `<product>` carries the same fields as text.
pub fn schema(version: FeedVersion) -> Value {
    let n = number(version);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("Flashcart partner feed, version {n}"),
        "description": "A JSON feed: an array of products, or an object whose `products` member is one. CSV: a header row naming these fields, one product a row. XML: a <products> root, one <product> element a product, one child element a field.",
        "anyOf": [
            {"type": "array", "items": {"$ref": "#/$defs/product"}},
            {
                "type": "object",
                "required": ["products"],
                "properties": {"products": {"type": "array", "items": {"$ref": "#/$defs/product"}}},
            },
        ],
        "$defs": {"product": product(version)},
    })
}

/// The whole contract, as `GET /partner/contract` answers it.
pub fn contract() -> Value {
    json!({
        "contract_version": CONTRACT_VERSION,
        "versions": VERSIONS,
        "formats": FORMATS,
        "schemas": {
            "1": schema(FeedVersion::V1),
            "2": schema(FeedVersion::V2),
        },
        "rules_beyond_the_schema": [
            "gtin: a valid GS1 check digit",
            "price: no more decimals than the currency has (EUR 2, JPY 0)",
            "currency: an ISO 4217 code",
        ],
    })
}

fn number(version: FeedVersion) -> u8 {
    match version {
        FeedVersion::V1 => 1,
        FeedVersion::V2 => 2,
    }
}

/// The example products: every field of the version, one with a description
/// that needs quoting in CSV and escaping in XML.
fn example_rows(version: FeedVersion) -> Vec<Vec<(&'static str, &'static str)>> {
    let mut rows = vec![
        vec![
            ("sku", "MUG-1"),
            ("name", "Blue mug"),
            ("price", "12.99"),
            ("currency", "EUR"),
            ("quantity", "40"),
            ("category", "kitchen"),
            ("description", "Stoneware, 350 ml & \"dishwasher safe\""),
        ],
        vec![
            ("sku", "TEA-GREEN-100"),
            ("name", "Green tea, 100 g"),
            ("price", "7.50"),
            ("currency", "EUR"),
            ("quantity", "0"),
            ("category", "pantry"),
            ("description", "Loose leaf"),
        ],
    ];
    if version == FeedVersion::V2 {
        rows[0].extend([
            ("brand", "Acme"),
            ("manufacturer", "Acme Ceramics Ltd"),
            ("gtin", "4006381333931"),
            ("dimensions.length", "12"),
            ("dimensions.width", "9"),
            ("dimensions.height", "10.5"),
            ("dimensions.unit", "cm"),
            ("colour", "blue"),
        ]);
        rows[1].extend([
            ("brand", "Leaf & Co"),
            ("manufacturer", ""),
            ("gtin", ""),
            ("dimensions.length", ""),
            ("dimensions.width", ""),
            ("dimensions.height", ""),
            ("dimensions.unit", ""),
            ("colour", "green"),
        ]);
    }
    rows
}

/// An example feed in `format` and `version` that passes validation, with
/// its Content-Type; `None` for a format the platform does not read.
pub fn example(version: FeedVersion, format: &str) -> Option<(&'static str, String)> {
    let rows = example_rows(version);
    match format {
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let header: Vec<&str> = rows[0].iter().map(|(k, _)| *k).collect();
            w.write_record(&header).ok()?;
            for row in &rows {
                w.write_record(row.iter().map(|(_, v)| *v)).ok()?;
            }
            let bytes = w.into_inner().ok()?;
            Some(("text/csv", String::from_utf8(bytes).ok()?))
        }
        "json" => {
            let products: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let mut product = serde_json::Map::new();
                    for (k, v) in row {
                        if v.is_empty() {
                            continue;
                        }
                        match k.split_once('.') {
                            Some((outer, inner)) => {
                                let nested =
                                    product.entry(outer.to_owned()).or_insert_with(|| json!({}));
                                nested[inner] = json!(v);
                            }
                            None if *k == "quantity" => {
                                product.insert((*k).into(), json!(v.parse::<u64>().ok()?));
                            }
                            None => {
                                product.insert((*k).into(), json!(v));
                            }
                        }
                    }
                    Some(Value::Object(product))
                })
                .collect::<Option<_>>()?;
            let doc = json!({ "products": products });
            Some(("application/json", serde_json::to_string_pretty(&doc).ok()?))
        }
        "xml" => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<products>\n");
            for row in &rows {
                out.push_str("  <product>\n");
                let mut dims = String::new();
                for (k, v) in row {
                    if v.is_empty() {
                        continue;
                    }
                    let v = quick_xml::escape::escape(*v);
                    match k.strip_prefix("dimensions.") {
                        Some(inner) => dims.push_str(&format!("<{inner}>{v}</{inner}>")),
                        None => out.push_str(&format!("    <{k}>{v}</{k}>\n")),
                    }
                }
                if !dims.is_empty() {
                    out.push_str(&format!("    <dimensions>{dims}</dimensions>\n"));
                }
                out.push_str("  </product>\n");
            }
            out.push_str("</products>\n");
            Some(("application/xml", out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::adapters::ADAPTERS;
    use crate::feeds::scan::scan_all;

    #[test]
    fn every_example_passes_the_validator_in_every_format_and_version() {
        for version in [FeedVersion::V1, FeedVersion::V2] {
            for format in FORMATS {
                let (_, body) = example(version, format).unwrap();
                let whole = scan_all(
                    ADAPTERS,
                    format,
                    version,
                    "acme",
                    false,
                    1 << 20,
                    body.as_bytes(),
                )
                .unwrap_or_else(|e| panic!("{format} {version:?}: {e}\n{body}"));
                assert!(
                    whole.errors.is_empty(),
                    "{format} {version:?}: {:?}\n{body}",
                    whole.errors
                );
                assert_eq!(whole.valid.len(), 2, "{format} {version:?}");
                if version == FeedVersion::V2 {
                    let mug = &whole.valid[0].1;
                    assert_eq!(mug.gtin.as_deref(), Some("4006381333931"));
                    assert_eq!(mug.extra.get("colour").map(String::as_str), Some("blue"));
                    assert!(mug.dimensions.is_some());
                }
            }
        }
        assert!(example(FeedVersion::V1, "yaml").is_none());
    }

    /// The schema's fields are the validator's: the same names in each
    /// version, the same required ones.
    #[test]
    fn the_schema_has_the_validators_fields() {
        use crate::feeds::validate::{REQUIRED_FIELDS, V1_FIELDS, V2_FIELDS};
        let names = |v: FeedVersion| -> Vec<String> {
            let mut n: Vec<String> = schema(v)["$defs"]["product"]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            n.sort();
            n
        };
        let mut v1: Vec<String> = V1_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        v1.sort();
        assert_eq!(names(FeedVersion::V1), v1);
        // v2 spells the nested part as one object in JSON
        let mut v2: Vec<String> = V1_FIELDS
            .iter()
            .chain(V2_FIELDS.iter())
            .filter(|f| !f.contains('.'))
            .map(|f| (*f).to_owned())
            .collect();
        v2.sort();
        assert_eq!(names(FeedVersion::V2), v2);
        let dims = &schema(FeedVersion::V2)["$defs"]["product"]["properties"]["dimensions"];
        let mut parts: Vec<String> = dims["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("dimensions.{}", p.as_str().unwrap()))
            .collect();
        parts.sort();
        let mut dotted: Vec<String> = V2_FIELDS
            .iter()
            .filter(|f| f.contains('.'))
            .map(|f| (*f).to_owned())
            .collect();
        dotted.sort();
        assert_eq!(parts, dotted);
        for v in [FeedVersion::V1, FeedVersion::V2] {
            let doc = schema(v);
            let required: Vec<&str> = doc["$defs"]["product"]["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(required, REQUIRED_FIELDS);
        }
    }

    #[test]
    fn the_schema_names_the_validators_limits_and_no_remote_reference() {
        let text = contract().to_string();
        assert!(text.contains(&format!("\"maxLength\":{MAX_NAME}")));
        assert!(text.contains(&format!("\"maxLength\":{MAX_DESCRIPTION}")));
        // the only $ref is local; the $schema URI is an identifier, not fetched
        for (i, _) in text.match_indices("\"$ref\":") {
            assert!(
                text[i..].starts_with("\"$ref\":\"#/"),
                "{}",
                &text[i..i + 40]
            );
        }
    }
}
