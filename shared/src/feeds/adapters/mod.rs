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
pub mod xml;

use super::{FeedVersion, RawRow};
use std::io::Read;

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
    #[error("the file is larger than {limit} bytes once decompressed")]
    TooLarge { limit: u64 },
    #[error("the gzip stream is truncated or corrupt: {0}")]
    BadGzip(String),
    #[error("a row is longer than {limit} bytes or has more than {MAX_ROW_FIELDS} fields")]
    RowTooLarge { limit: usize },
    #[error("the file could not be read: {0}")]
    Read(String),
}

impl FeedError {
    /// Stable, for machines: the import record's `reason_code`.
    pub fn code(&self) -> &'static str {
        match self {
            FeedError::Empty => "empty",
            FeedError::BadUtf8 { .. } => "bad_utf8",
            FeedError::Malformed { .. } => "malformed",
            FeedError::TooLarge { .. } => "too_large",
            FeedError::BadGzip(_) => "bad_gzip",
            FeedError::RowTooLarge { .. } => "row_too_large",
            FeedError::Read(_) => "unreadable",
        }
    }

    /// An adapter's read failed: the limits and the decoder of [`decoded`]
    /// say what they are; anything else is the source's failure.
    pub fn from_io(e: &std::io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FeedError>())
        {
            Some(known) => known.clone(),
            None => FeedError::Read(e.to_string()),
        }
    }

    fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }
}

/// The most bytes one row may take in the file: a field of a million
/// characters is a row's error (`too_long`), more than this is the file's.
pub const MAX_ROW_BYTES: usize = 2 << 20;
/// The most fields one row may have: 10,000 columns are a row's error
/// (`too_many_fields`), more than this the file's.
pub const MAX_ROW_FIELDS: usize = 20_000;

/// Caps what one row may read, so one endless row cannot hold the file in
/// memory: the adapter calls [`RowBytes::next_row`] at each row's start; a
/// row that reads more than [`MAX_ROW_BYTES`] (give or take one buffer)
/// fails the read with [`FeedError::RowTooLarge`].
pub struct RowBytes<R> {
    inner: R,
    since: std::rc::Rc<std::cell::Cell<usize>>,
}

/// The adapter's handle on a [`RowBytes`] reader.
#[derive(Clone, Default)]
pub struct RowStart(std::rc::Rc<std::cell::Cell<usize>>);

impl RowStart {
    pub fn next_row(&self) {
        self.0.set(0);
    }
}

impl<R: Read> RowBytes<R> {
    pub fn new(inner: R) -> (Self, RowStart) {
        let start = RowStart::default();
        (
            Self {
                inner,
                since: start.0.clone(),
            },
            start,
        )
    }
}

impl<R: Read> Read for RowBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let since = self.since.get() + n;
        self.since.set(since);
        if since > MAX_ROW_BYTES + (64 << 10) {
            return Err(FeedError::RowTooLarge {
                limit: MAX_ROW_BYTES,
            }
            .into_io());
        }
        Ok(n)
    }
}

/// The bytes an adapter reads: `input` gunzipped when `gzip` (every member of
/// a concatenated file), and refused once more than `limit` bytes come out,
/// so a small gzip bomb cannot stand in for a huge file.
pub fn decoded<'a>(input: impl Read + 'a, gzip: bool, limit: u64) -> impl Read + 'a {
    let inner: Box<dyn Read + 'a> = if gzip {
        Box::new(Gunzip(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::new(input),
        )))
    } else {
        Box::new(input)
    };
    Limited {
        inner,
        left: limit,
        limit,
    }
}

struct Gunzip<R>(flate2::read::MultiGzDecoder<R>);

impl<R: std::io::BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<FeedError>()) {
                e
            } else {
                FeedError::BadGzip(e.to_string()).into_io()
            }
        })
    }
}

struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // one byte past the limit proves it was passed
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let take = buf.len().min(room);
        let n = self.inner.read(&mut buf[..take])?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(FeedError::TooLarge { limit: self.limit }.into_io()),
        }
    }
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

/// One (format, version) the platform reads, and who reads it.
pub struct Registration {
    /// The file's extension before any `.gz`: `csv`, `json`, `xml`.
    pub format: &'static str,
    pub version: FeedVersion,
    pub adapter: &'static dyn Adapter,
}

/// Every format and version the platform reads.
pub static ADAPTERS: &[Registration] = &[
    Registration {
        format: "csv",
        version: FeedVersion::V1,
        adapter: &csv::Csv,
    },
    Registration {
        format: "csv",
        version: FeedVersion::V2,
        adapter: &csv::Csv,
    },
    Registration {
        format: "json",
        version: FeedVersion::V1,
        adapter: &json::Json,
    },
    Registration {
        format: "json",
        version: FeedVersion::V2,
        adapter: &json::Json,
    },
    Registration {
        format: "xml",
        version: FeedVersion::V1,
        adapter: &xml::Xml,
    },
    Registration {
        format: "xml",
        version: FeedVersion::V2,
        adapter: &xml::Xml,
    },
];

/// The adapter of `registry` (normally [`ADAPTERS`]) for a format and version.
pub fn find(
    registry: &[Registration],
    format: &str,
    version: FeedVersion,
) -> Option<&'static dyn Adapter> {
    registry
        .iter()
        .find(|r| r.format == format && r.version == version)
        .map(|r| r.adapter)
}

/// Whether `registry` reads `format` in any version.
pub fn reads(registry: &[Registration], format: &str) -> bool {
    registry.iter().any(|r| r.format == format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::scan::{FeedKey, scan_all};
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(input: &[u8], gz: bool, limit: u64) -> Result<Vec<u8>, FeedError> {
        let mut out = Vec::new();
        decoded(input, gz, limit)
            .read_to_end(&mut out)
            .map_err(|e| FeedError::from_io(&e))?;
        Ok(out)
    }

    #[test]
    fn gzip_members_are_all_read_and_a_cut_stream_is_refused() {
        let mut two = gzip(b"sku,name\n");
        two.extend(gzip(b"A,Mug\n"));
        assert_eq!(read_all(&two, true, 100).unwrap(), b"sku,name\nA,Mug\n");
        let cut = &two[..two.len() - 6];
        assert!(matches!(
            read_all(cut, true, 100),
            Err(FeedError::BadGzip(_))
        ));
        assert!(matches!(
            read_all(b"not gzip", true, 100),
            Err(FeedError::BadGzip(_))
        ));
    }

    #[test]
    fn the_limit_counts_decompressed_bytes() {
        assert_eq!(read_all(b"12345", false, 5).unwrap(), b"12345");
        assert_eq!(
            read_all(b"123456", false, 5),
            Err(FeedError::TooLarge { limit: 5 })
        );
        // a 100 MB bomb of zeros in a 100 KB file stops at the limit
        let bomb = gzip(&vec![0u8; 100 << 20]);
        assert!(bomb.len() < 200 << 10);
        assert_eq!(
            read_all(&bomb, true, 1 << 20),
            Err(FeedError::TooLarge { limit: 1 << 20 })
        );
        // and the adapter reports the limit, not a generic read error
        let csv = find(ADAPTERS, "csv", FeedVersion::V1).unwrap();
        let got = csv.read(&mut decoded(&b"sku\nA\nB\n"[..], false, 4), &mut |_| {
            ControlFlow::Continue(())
        });
        assert_eq!(got, Err(FeedError::TooLarge { limit: 4 }));
    }

    /// A format added the way the ADR says: one adapter, one registration.
    struct KeyValue;

    impl Adapter for KeyValue {
        fn read(
            &self,
            input: &mut dyn Read,
            each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
        ) -> Result<(), FeedError> {
            let mut text = String::new();
            input
                .read_to_string(&mut text)
                .map_err(|e| FeedError::from_io(&e))?;
            for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
                let row = block
                    .lines()
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                if each(row).is_break() {
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn a_toy_format_needs_an_adapter_and_one_registration() {
        static WITH_TOY: &[Registration] = &[
            Registration {
                format: "csv",
                version: FeedVersion::V1,
                adapter: &csv::Csv,
            },
            Registration {
                format: "kv",
                version: FeedVersion::V2,
                adapter: &KeyValue,
            },
        ];
        let key = FeedKey::parse("incoming/acme/spring.kv.gz", WITH_TOY).unwrap();
        assert_eq!((key.format, key.gzip), ("kv", true));
        assert!(FeedKey::parse("incoming/acme/spring.kv", ADAPTERS).is_err());
        let feed = gzip(b"sku: A\nname: Mug\nprice: 4.50\ncurrency: EUR\nquantity: 3\ncategory: kitchen\ncolour: blue\n\nsku: B\n");
        let crate::feeds::scan::Whole { valid, errors } = scan_all(
            WITH_TOY,
            key.format,
            FeedVersion::V2,
            "acme",
            key.gzip,
            1 << 20,
            &feed,
        )
        .unwrap();
        assert_eq!(valid.len(), 1);
        assert_eq!(valid[0].1.price.amount, 450);
        assert_eq!(valid[0].1.extra["colour"], "blue");
        assert!(errors.iter().all(|e| e.row == 2));
        assert!(scan_all(WITH_TOY, "kv", FeedVersion::V1, "acme", false, 100, b"").is_err());
    }
}
