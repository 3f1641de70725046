//! Adapters: one per wire format (and per version where a version's shape
//! differs), each turning a byte stream into [`RawRow`]s, one at a time, so
//! memory does not grow with the file. Every rule lives in
//! [`super::validate`]; an adapter only reads.
//!
//! Adding a format or a version: a new file here implementing [`Adapter`],
//! and one line in [`ADAPTERS`].

pub mod csv;

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

/// The rows of one file, in order; the first error ends them.
pub type Rows<'r> = Box<dyn Iterator<Item = Result<RawRow, FeedError>> + Send + 'r>;

pub trait Adapter: Sync {
    /// The file's rows, read as they are needed.
    fn rows<'r>(&self, input: Box<dyn Read + Send + 'r>) -> Rows<'r>;
}

/// Every (format, version) the platform reads, and who reads it.
pub static ADAPTERS: &[(Format, FeedVersion, &dyn Adapter)] = &[
    (Format::Csv, FeedVersion::V1, &csv::Csv),
    (Format::Csv, FeedVersion::V2, &csv::Csv),
];

pub fn adapter(format: Format, version: FeedVersion) -> Option<&'static dyn Adapter> {
    ADAPTERS
        .iter()
        .find(|(f, v, _)| *f == format && *v == version)
        .map(|(_, _, a)| *a)
}
