//! Partner feeds (issue 10): the canonical product a feed row becomes, and
//! the rules every row must meet, whatever its format. Adapters (one per
//! format and version) turn a file into [`RawRow`]s; [`validate::row`] turns a
//! row into a [`FeedProduct`] or every reason it is not one.

pub mod adapters;
pub mod contract;
pub mod import;
pub mod ingest;
pub mod scan;
pub mod validate;

use std::collections::BTreeMap;

/// A feed's version: `feed-version` metadata, else the partner's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedVersion {
    /// `sku, name, price, currency, quantity, category, description`.
    V1,
    /// V1 and `brand, manufacturer, gtin, dimensions {length, width, height,
    /// unit}`; unknown fields kept in `extra`.
    V2,
}

impl FeedVersion {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" => Some(Self::V1),
            "2" => Some(Self::V2),
            _ => None,
        }
    }
}

/// One row as an adapter read it: field name -> text, nested fields flattened
/// with dots (`dimensions.length`), in no particular order. Every value is
/// text, as the file wrote it: numbers are never read through floats.
pub type RawRow = BTreeMap<String, String>;

/// Package dimensions (v2): each a positive decimal in `unit`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dimensions {
    pub length: String,
    pub width: String,
    pub height: String,
    /// `cm`, `mm`, `m` or `in`.
    pub unit: String,
}

/// What a valid row becomes: the catalog's product of `<partner_id>:<sku>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedProduct {
    /// `<partner_id>:<partner sku>`: a partner can only name its own.
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: crate::domain::money::Money,
    pub category: String,
    pub stock: i64,
    pub brand: Option<String>,
    pub manufacturer: Option<String>,
    pub gtin: Option<String>,
    pub dimensions: Option<Dimensions>,
    /// v2's unknown fields, as text.
    pub extra: BTreeMap<String, String>,
}

/// Why one field of one row is refused: what the report lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based data row (the header of a CSV file is not a row).
    pub row: u64,
    pub field: String,
    /// Stable, for machines: `required`, `too_long`, `control_character`, ...
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}
