//! Every adapter and version from the files in tests/fixtures/feeds/, read
//! by the same scan feed-ingest runs (no emulator needed): the same products
//! whatever the format, every rule broken once, hostile files refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use shared::feeds::adapters::{ADAPTERS, FeedError};
use shared::feeds::scan::{FeedKey, Whole, scan_all};
use shared::feeds::{FeedProduct, FeedVersion};
use std::collections::BTreeMap;
use std::io::Write;

const LIMIT: u64 = 64 << 20;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/feeds/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Reads `name` as its extension says, for partner `acme`.
fn read(name: &str, version: FeedVersion) -> Result<Whole, FeedError> {
    let key = FeedKey::parse(&format!("incoming/acme/{name}"), ADAPTERS).unwrap();
    scan_all(
        ADAPTERS,
        key.format,
        version,
        "acme",
        key.gzip,
        LIMIT,
        &fixture(name),
    )
}

fn by_sku(products: &[(u64, FeedProduct)]) -> BTreeMap<String, FeedProduct> {
    products
        .iter()
        .map(|(_, p)| (p.sku.clone(), p.clone()))
        .collect()
}

#[test]
fn version_1_reads_the_same_in_every_format() {
    let mut seen = Vec::new();
    for name in ["valid-v1.csv", "valid-v1.json", "valid-v1.xml"] {
        let whole = read(name, FeedVersion::V1).unwrap();
        assert!(whole.errors.is_empty(), "{name}: {:?}", whole.errors);
        let products = by_sku(&whole.valid);
        let tent = &products["acme:TENT-2P"];
        assert_eq!(tent.name, "Tent, 2 person", "{name}");
        assert_eq!(
            (tent.price.amount, tent.price.currency.as_str(), tent.stock),
            (14900, "EUR", 12)
        );
        assert!(
            tent.description.starts_with("Two-person tent.\n"),
            "{name}: {:?}",
            tent.description
        );
        let stove = &products["acme:STOVE-1"];
        assert_eq!(stove.name, "The \"Mini\" stove");
        assert_eq!((stove.price.amount, stove.stock), (3990, 0));
        // JPY has no minor unit: 4500 yen is 4500
        assert_eq!(products["acme:YEN-1"].price.amount, 4500);
        seen.push(products.keys().cloned().collect::<Vec<_>>());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    // the CSV has a BOM, CRLF rows, quoted commas, quotes and a newline
    let raw = fixture("valid-v1.csv");
    assert!(raw.starts_with(&[0xEF, 0xBB, 0xBF]) && raw.windows(2).any(|w| w == b"\r\n"));
}

#[test]
fn version_2_keeps_unknown_fields_in_extra_in_every_format() {
    let mut products = Vec::new();
    for name in ["valid-v2.csv", "valid-v2.json", "valid-v2.xml"] {
        let whole = read(name, FeedVersion::V2).unwrap();
        assert!(whole.errors.is_empty(), "{name}: {:?}", whole.errors);
        assert_eq!(whole.valid.len(), 1);
        let p = whole.valid[0].1.clone();
        assert_eq!(p.brand.as_deref(), Some("Acme"), "{name}");
        assert_eq!(p.gtin.as_deref(), Some("4006381333931"));
        let d = p.dimensions.clone().unwrap();
        assert_eq!(
            (
                d.length.as_str(),
                d.width.as_str(),
                d.height.as_str(),
                d.unit.as_str()
            ),
            ("50", "30", "20", "cm")
        );
        assert_eq!(
            p.extra.get("colour").map(String::as_str),
            Some("green"),
            "{name}"
        );
        assert_eq!(p.extra.get("material").map(String::as_str), Some("nylon"));
        assert_eq!(p.extra.len(), 2, "{name}: {:?}", p.extra);
        products.push(p);
    }
    assert!(products.windows(2).all(|w| w[0] == w[1]));
    // version 1 reads the same file without brand, gtin or extra
    let v1 = read("valid-v2.csv", FeedVersion::V1).unwrap();
    assert!(v1.valid[0].1.brand.is_none() && v1.valid[0].1.extra.is_empty());
}

#[test]
fn every_rule_broken_once_is_reported_with_its_row_field_and_code() {
    let whole = read("every-rule-broken-v2.csv", FeedVersion::V2).unwrap();
    let got: BTreeMap<u64, Vec<(String, &str)>> =
        whole.errors.iter().fold(BTreeMap::new(), |mut m, e| {
            m.entry(e.row).or_default().push((e.field.clone(), e.code));
            m
        });
    let expected: &[(u64, &str, &str)] = &[
        (1, "sku", "required"),
        (2, "sku", "invalid_sku"),
        (3, "name", "required"),
        (4, "price", "not_positive"),
        (5, "price", "too_many_decimals"),
        (6, "currency", "invalid_currency"),
        (7, "quantity", "invalid_quantity"),
        (8, "quantity", "invalid_quantity"),
        (9, "category", "required"),
        (10, "name", "formula_prefix"),
        (11, "name", "control_character"),
        (12, "gtin", "invalid_gtin"),
        (13, "dimensions.length", "invalid_dimension"),
        (14, "brand", "too_long"),
    ];
    for (row, field, code) in expected {
        assert_eq!(
            got.get(row).map(Vec::as_slice),
            Some(&[((*field).to_owned(), *code)][..]),
            "row {row}: {got:?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert_eq!(whole.valid.len(), 1);
    assert_eq!(whole.valid[0].0, 15);
    assert!(whole.errors.iter().all(|e| !e.message.is_empty()));
}

#[test]
fn gzip_reads_as_the_plain_file_and_concatenated_members_too() {
    let plain = fixture("valid-v1.csv");
    let mut two = gzip(&plain[..120]);
    two.extend(gzip(&plain[120..]));
    let got = scan_all(ADAPTERS, "csv", FeedVersion::V1, "acme", true, LIMIT, &two).unwrap();
    assert_eq!(
        by_sku(&got.valid),
        by_sku(&read("valid-v1.csv", FeedVersion::V1).unwrap().valid)
    );
    let cut = &two[..two.len() - 10];
    assert!(matches!(
        scan_all(ADAPTERS, "csv", FeedVersion::V1, "acme", true, LIMIT, cut),
        Err(FeedError::BadGzip(_))
    ));
}

#[test]
fn hostile_files_are_refused_as_a_whole() {
    for (name, code) in [
        ("billion-laughs.xml", "malformed"),
        ("external-entity.xml", "malformed"),
        ("bad-utf8.csv", "bad_utf8"),
        ("empty.csv", "empty"),
    ] {
        let got = read(name, FeedVersion::V1);
        assert_eq!(
            got.as_ref().map_err(FeedError::code).err(),
            Some(code),
            "{name}: {got:?}"
        );
    }
    let bomb = format!("[{}1{}]", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    assert_eq!(
        scan_all(
            ADAPTERS,
            "json",
            FeedVersion::V2,
            "acme",
            false,
            LIMIT,
            bomb.as_bytes()
        )
        .err()
        .map(|e| e.code()),
        Some("malformed")
    );
    // the limit is on what comes out: 10 MB of zeros in ~10 KB of gzip
    let zeros = gzip(&vec![b'0'; 10 << 20]);
    assert_eq!(
        scan_all(
            ADAPTERS,
            "csv",
            FeedVersion::V1,
            "acme",
            true,
            1 << 20,
            &zeros
        )
        .err()
        .map(|e| e.code()),
        Some("too_large")
    );
}

#[test]
fn huge_rows_are_reported_not_swallowed() {
    // a million-character field: the row's error, not the file's
    let long = format!(
        "sku,name,price,currency,quantity,category\nLONG,{},1.00,EUR,1,kitchen\nOK,Fine,1.00,EUR,1,kitchen\n",
        "x".repeat(1_000_000)
    );
    let got = scan_all(
        ADAPTERS,
        "csv",
        FeedVersion::V1,
        "acme",
        false,
        LIMIT,
        long.as_bytes(),
    )
    .unwrap();
    assert_eq!(got.valid.len(), 1);
    assert_eq!(
        (
            got.errors[0].row,
            got.errors[0].field.as_str(),
            got.errors[0].code
        ),
        (1, "name", "too_long")
    );
    assert!(got.errors[0].message.len() < 300);
    // ten thousand columns: version 2 keeps at most 50 unknown fields
    let names: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    let wide = format!(
        "sku,name,price,currency,quantity,category,{}\nWIDE,Wide,1.00,EUR,1,kitchen,{}\n",
        names.join(","),
        vec!["v"; 10_000].join(",")
    );
    let got = scan_all(
        ADAPTERS,
        "csv",
        FeedVersion::V2,
        "acme",
        false,
        LIMIT,
        wide.as_bytes(),
    )
    .unwrap();
    assert!(got.valid.is_empty());
    assert!(
        got.errors.iter().any(|e| e.code == "too_many_fields"),
        "{:?}",
        &got.errors[..1]
    );
    assert!(got.errors.len() < 60);
}

#[test]
fn a_failed_message_waits_longer_each_time_and_about_an_hour_in_all() {
    let waits: Vec<i64> = (1..=7).map(feed_ingest::backoff).collect();
    assert_eq!(waits, [60, 120, 240, 480, 900, 900, 900]);
    assert_eq!(waits.iter().sum::<i64>(), 3600);
}
