//! The rules of a feed row (DESIGN.md, "Feed versions"; ADR 0021), pure:
//! every failure of a row is reported, each with its row, field, code and a
//! message, not only the first.
//!
//! - `sku`: 1 to 50 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit;
//!   the catalog SKU is `<partner_id>:<sku>`, so no row can name another
//!   partner's product.
//! - `name`: required, at most 150 characters; `description` at most 5,000;
//!   `category`: an identifier of at most 50; `brand`, `manufacturer` at most
//!   70 (Merchant Center's limits).
//! - `price`: a decimal string converted exactly to minor units for the
//!   currency's exponent (`Money::parse_decimal`); `currency` ISO 4217.
//! - `quantity`: a whole number from 0 to 1,000,000,000.
//! - v2 `gtin`: 8, 12, 13 or 14 digits with a valid check digit;
//!   `dimensions`: all four parts, each a positive decimal, unit `cm`, `mm`,
//!   `m` or `in`.
//! - Text: no control characters (newline and tab allowed in `description`),
//!   and no spreadsheet formula prefix (`= + - @`, or a leading tab or
//!   carriage return): rejected, not rewritten (ADR 0021).

use super::{Dimensions, FeedProduct, FeedVersion, RawRow, RowError};
use crate::domain::money::{DecimalError, Money};
use std::collections::BTreeMap;

pub const MAX_SKU: usize = 50;
pub const MAX_NAME: usize = 150;
pub const MAX_DESCRIPTION: usize = 5000;
pub const MAX_CATEGORY: usize = 50;
pub const MAX_BRAND: usize = 70;
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Longest value of a field the rules do not know (v2 `extra`).
pub const MAX_EXTRA_VALUE: usize = 1000;
/// Most unknown fields a v2 row may carry.
pub const MAX_EXTRA_FIELDS: usize = 50;

/// The fields every row must have (each is `required` when empty or absent).
pub const REQUIRED_FIELDS: [&str; 6] = ["sku", "name", "price", "currency", "quantity", "category"];
/// The fields of version 1.
pub const V1_FIELDS: [&str; 7] = [
    "sku",
    "name",
    "price",
    "currency",
    "quantity",
    "category",
    "description",
];
/// The fields version 2 adds.
pub const V2_FIELDS: [&str; 8] = [
    "brand",
    "manufacturer",
    "gtin",
    "dimensions.length",
    "dimensions.width",
    "dimensions.height",
    "dimensions.unit",
    // the nested object itself, when an adapter reports it whole
    "dimensions",
];

struct Errors {
    row: u64,
    list: Vec<RowError>,
}

impl Errors {
    fn add(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.list.push(RowError {
            row: self.row,
            // a field's name as the file spelt it: short and printable in the report
            field: crate::domain::text::printable(field, MAX_FIELD_NAME),
            code,
            message: message.into(),
        });
    }
}

/// The row as the catalog product of `partner_id`, or every reason it is not.
pub fn row(
    partner_id: &str,
    number: u64,
    raw: &RawRow,
    version: FeedVersion,
) -> Result<FeedProduct, Vec<RowError>> {
    let mut e = Errors {
        row: number,
        list: Vec::new(),
    };
    let get = |f: &str| raw.get(f).map(String::as_str);

    let sku = get("sku").unwrap_or("");
    if sku.is_empty() {
        e.add("sku", "required", "sku is required.");
    } else if !is_identifier(sku, MAX_SKU) {
        e.add(
            "sku",
            "invalid_sku",
            format!("sku must be 1 to {MAX_SKU} letters, digits, '.', '_' or '-', starting with a letter or digit."),
        );
    }
    let name = text(&mut e, "name", get("name"), MAX_NAME, true, false);
    let description = text(
        &mut e,
        "description",
        get("description"),
        MAX_DESCRIPTION,
        false,
        true,
    );
    let category = get("category").unwrap_or("");
    if category.is_empty() {
        e.add("category", "required", "category is required.");
    } else if !is_identifier(category, MAX_CATEGORY) {
        e.add(
            "category",
            "invalid_category",
            format!("category must be 1 to {MAX_CATEGORY} letters, digits, '.', '_' or '-'."),
        );
    }
    let price = price(&mut e, get("price"), get("currency"));
    let stock = quantity(&mut e, get("quantity"));

    let (mut brand, mut manufacturer, mut gtin, mut dimensions, mut extra) =
        (None, None, None, None, BTreeMap::new());
    if version == FeedVersion::V2 {
        brand = optional_text(&mut e, "brand", get("brand"), MAX_BRAND);
        manufacturer = optional_text(&mut e, "manufacturer", get("manufacturer"), MAX_BRAND);
        gtin = get("gtin").filter(|g| !g.is_empty()).and_then(|g| {
            if is_gtin(g) {
                Some(g.to_owned())
            } else {
                e.add(
                    "gtin",
                    "invalid_gtin",
                    "gtin must be 8, 12, 13 or 14 digits with a valid check digit.",
                );
                None
            }
        });
        dimensions = dims(&mut e, raw);
        // counted before their names are checked: a row of 10,000 oddly
        // named columns costs 51 errors, not 10,000
        let mut unknown = 0;
        for (field, value) in raw {
            if V1_FIELDS.contains(&field.as_str()) || V2_FIELDS.contains(&field.as_str()) {
                continue;
            }
            if unknown == MAX_EXTRA_FIELDS {
                e.add(field, "too_many_fields", format!("a row may carry at most {MAX_EXTRA_FIELDS} fields the feed version does not define."));
                break;
            }
            unknown += 1;
            // a name is stored as a map key and echoed in the report
            if !is_field_name(field) {
                e.add(
                    field,
                    "invalid_field_name",
                    format!("a field's name must be 1 to {MAX_FIELD_NAME} printable characters, without spaces around it, and not start with = + - or @."),
                );
                continue;
            }
            if let Some(v) = text(&mut e, field, Some(value), MAX_EXTRA_VALUE, false, false) {
                extra.insert(field.clone(), v);
            }
        }
    }

    match (e.list.is_empty(), name, description, price, stock) {
        (true, Some(name), Some(description), Some(price), Some(stock)) => Ok(FeedProduct {
            sku: format!("{partner_id}:{sku}"),
            name,
            description,
            price,
            category: category.to_owned(),
            stock,
            brand,
            manufacturer,
            gtin,
            dimensions,
            extra,
        }),
        _ => Err(e.list),
    }
}

/// Longest name of a field the version does not define (v2 `extra`).
pub const MAX_FIELD_NAME: usize = 64;

/// A column such as `size (cm)` or `Farbe` is kept under its own name; a
/// name is refused only when it could not be shown or would act as a
/// spreadsheet formula where the report or an export echoes it.
fn is_field_name(name: &str) -> bool {
    (1..=MAX_FIELD_NAME).contains(&name.chars().count())
        && name.trim() == name
        && !name.starts_with(['=', '+', '-', '@'])
        && !name.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Format characters that would hide or reorder a name where it is shown:
/// zero-width ones, bidi overrides and isolates, the soft hyphen, the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn is_identifier(value: &str, max: usize) -> bool {
    crate::domain::text::check_id("", value, max).is_ok()
}

/// A text field: its length, control characters and formula prefix.
fn text(
    e: &mut Errors,
    field: &str,
    value: Option<&str>,
    max: usize,
    required: bool,
    multiline: bool,
) -> Option<String> {
    let value = value.unwrap_or("");
    // a multi-line field of a CRLF file ends its lines with CRLF: one newline
    let normalized;
    let value = if multiline && value.contains("\r\n") {
        normalized = value.replace("\r\n", "\n");
        normalized.as_str()
    } else {
        value
    };
    let before = e.list.len();
    if value.trim().is_empty() {
        if required {
            e.add(field, "required", format!("{field} is required."));
            return None;
        }
        return Some(String::new());
    }
    if value.chars().count() > max {
        e.add(
            field,
            "too_long",
            format!("{field} must be at most {max} characters."),
        );
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        e.add(
            field,
            "control_character",
            format!("{field} must not contain control characters."),
        );
    }
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        e.add(
            field,
            "formula_prefix",
            format!("{field} must not start with '=', '+', '-', '@', a tab or a carriage return: spreadsheets run such text as a formula."),
        );
    }
    (e.list.len() == before).then(|| value.to_owned())
}

fn optional_text(e: &mut Errors, field: &str, value: Option<&str>, max: usize) -> Option<String> {
    text(e, field, value, max, false, false).filter(|v| !v.is_empty())
}

fn price(e: &mut Errors, amount: Option<&str>, currency: Option<&str>) -> Option<Money> {
    let currency = currency.unwrap_or("");
    let Some(amount) = amount.filter(|a| !a.is_empty()) else {
        e.add(
            "price",
            "required",
            "price is required, as a decimal such as 12.99.",
        );
        if currency.is_empty() {
            e.add("currency", "required", "currency is required, such as EUR.");
        }
        return None;
    };
    if currency.is_empty() {
        e.add("currency", "required", "currency is required, such as EUR.");
        return None;
    }
    match Money::parse_decimal(amount, currency) {
        Ok(m) => Some(m),
        Err(DecimalError::UnknownCurrency) => {
            e.add(
                "currency",
                "invalid_currency",
                "currency must be an ISO 4217 code such as EUR or USD.",
            );
            None
        }
        Err(why) => {
            let code = match why {
                DecimalError::TooManyDecimals(_) => "too_many_decimals",
                DecimalError::NotPositive => "not_positive",
                DecimalError::TooLarge => "too_large",
                _ => "invalid_price",
            };
            e.add("price", code, format!("price {why}."));
            None
        }
    }
}

fn quantity(e: &mut Errors, value: Option<&str>) -> Option<i64> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        e.add(
            "quantity",
            "required",
            "quantity is required, a whole number of units.",
        );
        return None;
    };
    let whole = value.bytes().all(|b| b.is_ascii_digit()) && value.len() <= 10;
    match value
        .parse::<i64>()
        .ok()
        .filter(|q| whole && *q <= MAX_QUANTITY)
    {
        Some(q) => Some(q),
        None => {
            e.add(
                "quantity",
                "invalid_quantity",
                format!("quantity must be a whole number from 0 to {MAX_QUANTITY}, with no sign or decimals."),
            );
            None
        }
    }
}

/// GS1 check digit: from the right, digits weighted 3, 1, 3, ...
fn is_gtin(g: &str) -> bool {
    if !matches!(g.len(), 8 | 12 | 13 | 14) || !g.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = g.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, check) = digits.split_at(digits.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == check[0]
}

fn dims(e: &mut Errors, raw: &RawRow) -> Option<Dimensions> {
    let part = |p: &str| {
        raw.get(&format!("dimensions.{p}"))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let parts = [part("length"), part("width"), part("height"), part("unit")];
    if parts.iter().all(Option::is_none) {
        return None;
    }
    let mut ok = true;
    for (name, value) in ["length", "width", "height"].iter().zip(&parts) {
        let positive = value.is_some_and(|v| {
            let (w, f) = v.split_once('.').unwrap_or((v, "0"));
            !w.is_empty()
                && !f.is_empty()
                && w.bytes().all(|b| b.is_ascii_digit())
                && f.bytes().all(|b| b.is_ascii_digit())
                && v.bytes().any(|b| (b'1'..=b'9').contains(&b))
                && v.len() <= 12
        });
        if !positive {
            ok = false;
            e.add(
                &format!("dimensions.{name}"),
                "invalid_dimension",
                format!("dimensions.{name} must be a positive decimal such as 12.5."),
            );
        }
    }
    if !matches!(parts[3], Some("cm" | "mm" | "m" | "in")) {
        ok = false;
        e.add(
            "dimensions.unit",
            "invalid_unit",
            "dimensions.unit must be cm, mm, m or in.",
        );
    }
    ok.then(|| Dimensions {
        length: parts[0].unwrap_or_default().to_owned(),
        width: parts[1].unwrap_or_default().to_owned(),
        height: parts[2].unwrap_or_default().to_owned(),
        unit: parts[3].unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawRow {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn valid() -> RawRow {
        raw(&[
            ("sku", "MUG-1"),
            ("name", "Blue mug"),
            ("price", "12.99"),
            ("currency", "EUR"),
            ("quantity", "40"),
            ("category", "kitchen"),
            ("description", "Stoneware,\n350 ml"),
        ])
    }

    fn codes(r: Result<FeedProduct, Vec<RowError>>) -> Vec<(String, &'static str)> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn with(changes: &[(&str, &str)]) -> RawRow {
        let mut r = valid();
        for (k, v) in changes {
            r.insert((*k).to_owned(), (*v).to_owned());
        }
        r
    }

    #[test]
    fn a_valid_row_becomes_the_partners_product() {
        let p = row("acme", 1, &valid(), FeedVersion::V1).unwrap();
        assert_eq!(p.sku, "acme:MUG-1");
        assert_eq!(
            p.price,
            Money {
                amount: 1299,
                currency: "EUR".into()
            }
        );
        assert_eq!(p.stock, 40);
        assert_eq!(p.description, "Stoneware,\n350 ml");
        assert!(p.extra.is_empty() && p.gtin.is_none());
    }

    #[test]
    fn each_rule_broken_once_is_reported_with_row_field_and_code() {
        // (the changes to a valid row, the field reported, its code)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("sku", "")], "sku", "required"),
            (&[("sku", "other:MUG-1")], "sku", "invalid_sku"),
            (&[("sku", &"S".repeat(51))], "sku", "invalid_sku"),
            (&[("name", "  ")], "name", "required"),
            (&[("name", &"n".repeat(151))], "name", "too_long"),
            (&[("name", "Blue\u{0}mug")], "name", "control_character"),
            (
                &[("name", "=HYPERLINK(\"http://x\")")],
                "name",
                "formula_prefix",
            ),
            (&[("name", "@SUM(A1)")], "name", "formula_prefix"),
            (&[("description", "-2+3")], "description", "formula_prefix"),
            (
                &[("description", &"d".repeat(5001))],
                "description",
                "too_long",
            ),
            (
                &[("description", "line\u{1b}[31m")],
                "description",
                "control_character",
            ),
            (&[("price", "0")], "price", "not_positive"),
            (&[("price", "-1")], "price", "invalid_price"),
            (&[("price", "12.999")], "price", "too_many_decimals"),
            (&[("price", "1e3")], "price", "invalid_price"),
            (&[("price", "")], "price", "required"),
            (&[("currency", "EURO")], "currency", "invalid_currency"),
            (&[("currency", "")], "currency", "required"),
            (&[("quantity", "-1")], "quantity", "invalid_quantity"),
            (&[("quantity", "1.5")], "quantity", "invalid_quantity"),
            (
                &[("quantity", "1000000001")],
                "quantity",
                "invalid_quantity",
            ),
            (&[("quantity", "")], "quantity", "required"),
            (
                &[("category", "Kitchen & Home")],
                "category",
                "invalid_category",
            ),
        ];
        for (change, field, code) in cases {
            let got = codes(row("acme", 7, &with(change), FeedVersion::V1));
            assert_eq!(got, vec![((*field).to_owned(), *code)], "{change:?}");
        }
        // every failure of a row, not only the first, with its row number
        let errors = row(
            "acme",
            7,
            &with(&[("name", ""), ("price", "x"), ("quantity", "-3")]),
            FeedVersion::V1,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3);
        assert!(
            errors
                .iter()
                .all(|e| e.row == 7 && e.message.ends_with('.'))
        );
        assert!(
            errors
                .iter()
                .all(|e| e.message.split_whitespace().count() < 30)
        );
    }

    #[test]
    fn a_million_character_field_is_one_error_not_a_million() {
        let huge = "x".repeat(1_000_000);
        let got = codes(row("acme", 1, &with(&[("name", &huge)]), FeedVersion::V1));
        assert_eq!(got, vec![("name".to_owned(), "too_long")]);
    }

    #[test]
    fn v2_checks_its_fields_and_keeps_unknown_ones_in_extra() {
        let v2 = with(&[
            ("brand", "Acme"),
            ("gtin", "4006381333931"),
            ("dimensions.length", "10"),
            ("dimensions.width", "8.5"),
            ("dimensions.height", "12"),
            ("dimensions.unit", "cm"),
            ("colour", "blue"),
        ]);
        let p = row("acme", 1, &v2, FeedVersion::V2).unwrap();
        assert_eq!(p.gtin.as_deref(), Some("4006381333931"));
        assert_eq!(p.dimensions.unwrap().width, "8.5");
        assert_eq!(p.extra.get("colour").map(String::as_str), Some("blue"));
        // v1 knows none of it, and keeps none of it
        let p1 = row("acme", 1, &v2, FeedVersion::V1).unwrap();
        assert!(p1.extra.is_empty() && p1.gtin.is_none() && p1.dimensions.is_none());

        let bad = |changes: &[(&str, &str)]| codes(row("acme", 1, &with(changes), FeedVersion::V2));
        assert_eq!(
            bad(&[("gtin", "4006381333932")]),
            vec![("gtin".into(), "invalid_gtin")]
        );
        assert_eq!(
            bad(&[("gtin", "12345")]),
            vec![("gtin".into(), "invalid_gtin")]
        );
        assert_eq!(
            bad(&[("dimensions.length", "10"), ("dimensions.unit", "cm")]),
            vec![
                ("dimensions.width".into(), "invalid_dimension"),
                ("dimensions.height".into(), "invalid_dimension")
            ]
        );
        assert_eq!(
            bad(&[
                ("dimensions.length", "1"),
                ("dimensions.width", "0"),
                ("dimensions.height", "1"),
                ("dimensions.unit", "ft")
            ]),
            vec![
                ("dimensions.width".into(), "invalid_dimension"),
                ("dimensions.unit".into(), "invalid_unit")
            ]
        );
        assert_eq!(
            bad(&[("colour", "=1+1")]),
            vec![("colour".into(), "formula_prefix")]
        );
    }

    #[test]
    fn a_row_with_ten_thousand_columns_is_refused_after_fifty_unknown_ones() {
        let mut r = valid();
        for i in 0..10_000 {
            r.insert(format!("c{i:05}"), "v".into());
        }
        let errors = row("acme", 1, &r, FeedVersion::V2).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "too_many_fields");
    }

    #[test]
    fn unknown_field_names_are_checked_before_they_are_kept() {
        let long = "n".repeat(100_000);
        for name in [
            "=cmd",
            " x",
            "x ",
            "a\u{7}b",
            long.as_str(),
            "@sum",
            "-1",
            "ab\u{202E}cd",
            "a\u{200B}",
        ] {
            let mut r = valid();
            r.insert(name.to_owned(), "v".into());
            let errors = row("acme", 1, &r, FeedVersion::V2).unwrap_err();
            assert_eq!(errors.len(), 1, "{name:.20}");
            assert_eq!(errors[0].code, "invalid_field_name");
            assert!(errors[0].field.chars().count() <= MAX_FIELD_NAME + 1);
            assert!(errors[0].message.len() < 200);
        }
        let mut r = valid();
        for name in ["care.instructions-v2_en", "size (cm)", "Größe", "9lives"] {
            r.insert(name.into(), "wash cold".into());
        }
        assert_eq!(row("acme", 1, &r, FeedVersion::V2).unwrap().extra.len(), 4);
    }

    #[test]
    fn ten_thousand_badly_named_columns_cost_a_bounded_number_of_errors() {
        let mut r = valid();
        for i in 0..10_000 {
            r.insert(format!("={i}"), "v".into());
        }
        let errors = row("acme", 1, &r, FeedVersion::V2).unwrap_err();
        assert_eq!(errors.len(), MAX_EXTRA_FIELDS + 1);
        assert_eq!(errors[MAX_EXTRA_FIELDS].code, "too_many_fields");
    }

    #[test]
    fn gtin_check_digits() {
        for good in [
            "96385074",
            "036000291452",
            "4006381333931",
            "10012345678902",
        ] {
            assert!(is_gtin(good), "{good}");
        }
        for bad in ["96385075", "036000291453", "400638133393a", "", "123456789"] {
            assert!(!is_gtin(bad), "{bad}");
        }
    }
}
