//! Adapters: one per wire format (and per version where a version's shape
//! differs), each turning a byte stream into [`RawRow`]s handed over one at
//! a time, so memory does not grow with the file. Every rule lives in
//! [`super::validate`]; an adapter only reads. Rows are pushed to the caller
//! (who may stop early) rather than pulled: a streaming deserializer hands
//! out one array element at a time from inside its own loop.
//!
//! Adding a format or a version: a new file here implementing [`Adapter`],
//! and one line in [`ADAPTERS`].

pub mod csv;
pub mod json;

use super::{FeedVersion, RawRow};
use std::io::Read;

/// The wire formats a feed may come in (the file's extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Json,
    Xml,
}

impl Format {
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "xml" => Some(Self::Xml),
            _ => None,
        }
    }
}

/// Why a file cannot be read at all: the import is `rejected` with it, and
/// nothing of the file is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the file is empty")]
    Empty,
    #[error("row {row} is not valid UTF-8")]
    BadUtf8 { row: u64 },
    #[error("row {row}: {reason}")]
    Malformed { row: u64, reason: String },
    #[error("the file could not be read: {0}")]
    Read(String),
}

/// What the caller says after each row: go on, or stop reading.
pub use std::ops::ControlFlow;

pub trait Adapter: Sync {
    /// Reads `input`, handing each row in order to `each` until it answers
    /// `Break` or the file ends. A `FeedError` (the file cannot be read)
    /// ends the reading; the rows handed over before it were read.
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError>;
}

/// Every row of a small input (a dry run's body, a test), or its error.
pub fn collect(adapter: &dyn Adapter, mut input: &[u8]) -> Result<Vec<RawRow>, FeedError> {
    let mut rows = Vec::new();
    adapter.read(&mut input, &mut |row| {
        rows.push(row);
        ControlFlow::Continue(())
    })?;
    Ok(rows)
}

/// Every (format, version) the platform reads, and who reads it.
pub static ADAPTERS: &[(Format, FeedVersion, &dyn Adapter)] = &[
    (Format::Csv, FeedVersion::V1, &csv::Csv),
    (Format::Csv, FeedVersion::V2, &csv::Csv),
    (Format::Json, FeedVersion::V1, &json::Json),
    (Format::Json, FeedVersion::V2, &json::Json),
];

pub fn adapter(format: Format, version: FeedVersion) -> Option<&'static dyn Adapter> {
    ADAPTERS
        .iter()
        .find(|(f, v, _)| *f == format && *v == version)
        .map(|(_, _, a)| *a)
}
