//! From an object's key and bytes to validated rows, with no I/O of its own:
//! what feed-ingest runs on a stream from S3 and what the partner API's dry
//! run (issue 11) runs on a request body, so the two cannot disagree.

use super::adapters::{self, Adapter, ControlFlow, FeedError, Registration};
use super::{FeedProduct, FeedVersion, RowError, validate};
use std::io::Read;

/// Where partners drop feeds; the notification is filtered to it.
pub const INCOMING: &str = "incoming/";
/// Where each feed's report goes.
pub const REPORTS: &str = "reports/";
pub const MAX_FEED_ID: usize = 100;

/// What an object's key says: `incoming/<partner_id>/<feed_id>.<format>[.gz]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedKey {
    pub partner_id: String,
    pub feed_id: String,
    pub format: &'static str,
    pub gzip: bool,
}

impl FeedKey {
    /// The key (already URL-decoded) read against `registry`, or why it is
    /// not a feed's.
    pub fn parse(key: &str, registry: &[Registration]) -> Result<Self, String> {
        let rest = key
            .strip_prefix(INCOMING)
            .ok_or_else(|| format!("the key is not under {INCOMING}"))?;
        let (partner_id, file) = rest
            .split_once('/')
            .ok_or("the key has no partner folder: incoming/<partner_id>/<feed_id>.<format>")?;
        crate::domain::text::check_id("partner_id", partner_id, 64)
            .map_err(|e| format!("partner folder: {}", e.reason))?;
        let (file, gzip) = match file.strip_suffix(".gz") {
            Some(inner) => (inner, true),
            None => (file, false),
        };
        let (feed_id, format) = file
            .rsplit_once('.')
            .ok_or("the file name has no format extension (.csv, .json or .xml)")?;
        let format = registry
            .iter()
            .map(|r| r.format)
            .find(|f| *f == format)
            .ok_or_else(|| {
                format!(
                    "the format .{} is not one the platform reads",
                    printable(format)
                )
            })?;
        let ok = !feed_id.is_empty()
            && feed_id.len() <= MAX_FEED_ID
            && feed_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !ok {
            return Err(format!(
                "the feed id must be 1 to {MAX_FEED_ID} letters, digits, '_' or '-'"
            ));
        }
        Ok(Self {
            partner_id: partner_id.to_owned(),
            feed_id: feed_id.to_owned(),
            format,
            gzip,
        })
    }

    pub fn report_key(&self) -> String {
        format!("{REPORTS}{}/{}.errors.json", self.partner_id, self.feed_id)
    }
}

fn printable(s: &str) -> String {
    crate::domain::text::printable(s, 20)
}

/// One row as the scan found it.
#[derive(Debug)]
pub enum Scanned {
    Valid { row: u64, product: Box<FeedProduct> },
    Invalid { row: u64, errors: Vec<RowError> },
}

impl Scanned {
    /// Roughly what it holds in memory, in bytes.
    pub fn weight(&self) -> usize {
        match self {
            Scanned::Valid { product, .. } => {
                256 + product.name.len()
                    + product.description.len()
                    + product
                        .extra
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 64)
                        .sum::<usize>()
            }
            Scanned::Invalid { errors, .. } => errors
                .iter()
                .map(|e| 64 + e.field.len() + e.message.len())
                .sum(),
        }
    }
}

/// Reads `input` with `adapter` and validates every row for `partner_id`,
/// handing each to `each` in order (which may stop). A `FeedError` means the
/// file as a whole cannot be read: the rows handed over before it must not
/// be applied.
pub fn scan(
    adapter: &dyn Adapter,
    input: &mut dyn Read,
    partner_id: &str,
    version: FeedVersion,
    each: &mut dyn FnMut(Scanned) -> ControlFlow<()>,
) -> Result<(), FeedError> {
    let mut row = 0u64;
    adapter.read(input, &mut |raw| {
        row += 1;
        each(match validate::row(partner_id, row, &raw, version) {
            Ok(product) => Scanned::Valid {
                row,
                product: Box::new(product),
            },
            Err(errors) => Scanned::Invalid { row, errors },
        })
    })
}

/// A small input read whole: its valid products by row, and every row's errors.
#[derive(Debug, Default)]
pub struct Whole {
    pub valid: Vec<(u64, FeedProduct)>,
    pub errors: Vec<RowError>,
}

/// A small input read whole (a dry run's body, a test), or the file's error
/// if it could not be read.
pub fn scan_all(
    registry: &[Registration],
    format: &str,
    version: FeedVersion,
    partner_id: &str,
    gzip: bool,
    limit: u64,
    input: &[u8],
) -> Result<Whole, FeedError> {
    let adapter = adapters::find(registry, format, version)
        .ok_or_else(|| FeedError::Read(format!("no adapter reads {format} version {version:?}")))?;
    let mut whole = Whole::default();
    scan(
        adapter,
        &mut adapters::decoded(input, gzip, limit),
        partner_id,
        version,
        &mut |s| {
            match s {
                Scanned::Valid { row, product } => whole.valid.push((row, *product)),
                Scanned::Invalid { errors, .. } => whole.errors.extend(errors),
            }
            ControlFlow::Continue(())
        },
    )?;
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::adapters::ADAPTERS;

    #[test]
    fn keys_name_the_partner_the_feed_and_the_format() {
        let k = FeedKey::parse("incoming/acme/daily-2026_11.csv.gz", ADAPTERS).unwrap();
        assert_eq!(
            k,
            FeedKey {
                partner_id: "acme".into(),
                feed_id: "daily-2026_11".into(),
                format: "csv",
                gzip: true
            }
        );
        assert_eq!(k.report_key(), "reports/acme/daily-2026_11.errors.json");
        assert!(
            !FeedKey::parse("incoming/acme/f.xml", ADAPTERS)
                .unwrap()
                .gzip
        );
        for bad in [
            "reports/acme/f.csv",
            "incoming/f.csv",
            "incoming/acme/f",
            "incoming/acme/f.txt",
            "incoming/acme/sub/f.csv",
            "incoming/acme/f.v2.csv",
            "incoming/ac me/f.csv",
            "incoming/acme/.csv",
            "incoming/acme/f.csv.gz.gz",
        ] {
            assert!(FeedKey::parse(bad, ADAPTERS).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_row_is_validated_and_numbered() {
        let csv = b"sku,name,price,currency,quantity,category\nA,Mug,12.99,EUR,4,kitchen\nB,,1,EUR,1,kitchen\n";
        let Whole { valid, errors } = scan_all(
            ADAPTERS,
            "csv",
            FeedVersion::V1,
            "acme",
            false,
            1 << 20,
            csv,
        )
        .unwrap();
        assert_eq!(valid.len(), 1);
        assert_eq!(valid[0].0, 1);
        assert_eq!(valid[0].1.sku, "acme:A");
        assert_eq!(valid[0].1.price.amount, 1299);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].row, errors[0].field.as_str(), errors[0].code),
            (2, "name", "required")
        );
    }
}
