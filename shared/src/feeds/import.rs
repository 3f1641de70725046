//! One import: one S3 object version of a feed, from its claim to its end.
//! The record is both the claim (put once per bucket, key, ETag and version)
//! and the progress a later invocation continues from (ADR 0022).

use super::FeedVersion;
use crate::domain::ts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Strict: any invalid row and nothing is applied. Lenient: the valid rows
/// are applied and the rest reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    Strict,
    #[default]
    Lenient,
}

impl Validation {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "strict" => Some(Self::Strict),
            "lenient" => Some(Self::Lenient),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Processing,
    Completed,
    CompletedWithErrors,
    Rejected,
    Failed,
}

impl ImportStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Processing)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::CompletedWithErrors => "completed_with_errors",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// What happened to the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Rows read (valid or not).
    pub rows: u64,
    /// Rows written to the catalog.
    pub ingested: u64,
    /// Rows refused: invalid, or naming a product the partner does not own.
    pub rejected: u64,
    /// Valid rows not written: a newer feed had changed the product.
    pub skipped_older: u64,
}

/// The S3 object an import reads, as its notification named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub bucket: String,
    /// Decoded (`+` is a space in the notification).
    pub key: String,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub size: u64,
    /// When S3 took the object (the event's time): a feed's age.
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    /// Who put it, as S3 saw them (`requestParameters.sourceIPAddress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

impl Source {
    /// The import's id: the same object version always gives the same id,
    /// which is what makes the claim a conditional put.
    pub fn import_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.bucket.as_str(),
            &self.key,
            &self.etag,
            self.version_id.as_deref().unwrap_or(""),
        ] {
            h.update(part.len().to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// An import's record (Partners table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    pub import_id: String,
    pub partner_id: String,
    pub feed_id: String,
    pub source: Source,
    pub status: ImportStatus,
    /// Stable, for machines, when rejected or failed: `too_large`,
    /// `malformed`, `strict_invalid_rows`, `unknown_partner`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Decided once the object's metadata is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
    #[serde(default)]
    pub counts: Counts,
    /// Every row was read and validated, and the report written.
    #[serde(default)]
    pub validated: bool,
    /// When that was (the first pass's end).
    #[serde(default, with = "ts::option", skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<DateTime<Utc>>,
    /// Applying: every valid row numbered below this one has been written.
    #[serde(default)]
    pub next_row: u64,
    /// Which invocation holds the import; each takes it by raising this.
    pub run: u32,
    /// Until when the holder may still be working on it.
    #[serde(with = "ts")]
    pub lease_until: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
    /// The scheduled fetch that put the object (its `fetch-id` metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_id: Option<String>,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
}

/// What an operator sees of an import (`GET /admin/feeds`): its object,
/// status, counts and report; not the run that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportView {
    pub import_id: String,
    pub partner_id: String,
    pub feed_id: String,
    pub status: ImportStatus,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub feed_version: Option<u8>,
    pub validation: Option<Validation>,
    pub counts: Counts,
    pub report_key: Option<String>,
    /// The scheduled fetch that put the object, if one did.
    pub fetch_id: Option<String>,
    pub object: ObjectView,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
}

/// The object version an import reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectView {
    pub key: String,
    pub size: u64,
    pub version_id: Option<String>,
}

impl From<Import> for ImportView {
    fn from(i: Import) -> Self {
        Self {
            import_id: i.import_id,
            partner_id: i.partner_id,
            feed_id: i.feed_id,
            status: i.status,
            reason_code: i.reason_code,
            reason: i.reason,
            feed_version: i.feed_version,
            validation: i.validation,
            counts: i.counts,
            report_key: i.report_key,
            fetch_id: i.fetch_id,
            object: ObjectView {
                key: i.source.key,
                size: i.source.size,
                version_id: i.source.version_id,
            },
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// An upload a partner asked for (`POST /partner/feeds`): where to put the
/// file, until when the URL works, and who asked. What it becomes is the
/// import of the object put there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub partner_id: String,
    pub feed_id: String,
    /// `incoming/<partner_id>/<feed_id>.<format>`
    pub object_key: String,
    pub format: String,
    pub feed_version: u8,
    pub validation: Validation,
    /// The key that asked for it.
    pub key_id: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub expires_at: DateTime<Utc>,
}

/// Row counts as a partner sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartnerCounts {
    pub rows: u64,
    pub ingested: u64,
    pub rejected: u64,
    pub skipped_older: u64,
}

/// What a partner sees of its feed (`GET /partner/feeds/{feed_id}`): the
/// newest import of the feed's object, or the upload it is still waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedView {
    pub feed_id: String,
    /// `awaiting_upload`, then the import's status.
    pub status: &'static str,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub feed_version: Option<u8>,
    pub validation: Option<Validation>,
    pub counts: PartnerCounts,
    /// The report's first errors (at most 100).
    pub errors: Vec<ReportedError>,
    pub report_key: Option<String>,
    pub object_key: String,
    #[serde(with = "ts::option")]
    pub upload_expires_at: Option<DateTime<Utc>>,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
}

impl FeedView {
    pub fn awaiting(upload: &Upload) -> Self {
        Self {
            feed_id: upload.feed_id.clone(),
            status: "awaiting_upload",
            reason_code: None,
            reason: None,
            feed_version: Some(upload.feed_version),
            validation: Some(upload.validation),
            counts: PartnerCounts {
                rows: 0,
                ingested: 0,
                rejected: 0,
                skipped_older: 0,
            },
            errors: Vec::new(),
            report_key: None,
            object_key: upload.object_key.clone(),
            upload_expires_at: Some(upload.expires_at),
            created_at: upload.created_at,
            updated_at: upload.created_at,
        }
    }

    pub fn of(import: Import, errors: Vec<ReportedError>) -> Self {
        let c = import.counts;
        Self {
            feed_id: import.feed_id,
            status: import.status.as_str(),
            reason_code: import.reason_code,
            reason: import.reason,
            feed_version: import.feed_version,
            validation: import.validation,
            counts: PartnerCounts {
                rows: c.rows,
                ingested: c.ingested,
                rejected: c.rejected,
                skipped_older: c.skipped_older,
            },
            errors,
            report_key: import.report_key,
            object_key: import.source.key,
            upload_expires_at: None,
            created_at: import.created_at,
            updated_at: import.updated_at,
        }
    }
}

/// One error as a report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedError {
    pub row: u64,
    pub field: String,
    pub code: String,
    pub message: String,
}

/// The first `limit` errors of a report from its first bytes (a report puts
/// one error a line after its header), or none if the report is another
/// import's (a newer object of the same feed wrote it).
pub fn first_errors(head: &[u8], import_id: &str, limit: usize) -> Vec<ReportedError> {
    #[derive(Deserialize)]
    struct Header {
        import_id: String,
        #[serde(default)]
        errors: Vec<ReportedError>,
    }
    let mut lines = head.split(|b| *b == b'\n');
    let Some(first) = lines.next() else {
        return Vec::new();
    };
    // a report rejected unread is one line, whole; a longer one's header
    // line ends in the errors' opening bracket
    let header: Option<Header> = serde_json::from_slice(first).ok().or_else(|| {
        let mut closed = first.to_vec();
        closed.extend_from_slice(b"]}");
        serde_json::from_slice(&closed).ok()
    });
    let Some(header) = header.filter(|h| h.import_id == import_id) else {
        return Vec::new();
    };
    let mut errors = header.errors;
    for line in lines {
        if errors.len() >= limit || line.starts_with(b"]") {
            break;
        }
        let line = line.strip_suffix(b",").unwrap_or(line);
        match serde_json::from_slice(line) {
            Ok(e) => errors.push(e),
            // the range cut the line
            Err(_) => break,
        }
    }
    errors.truncate(limit);
    errors
}

impl Import {
    pub fn version(&self) -> Option<FeedVersion> {
        self.feed_version
            .and_then(|v| FeedVersion::parse(&v.to_string()))
    }
}

/// What a product remembers of the feed row that last wrote it, compared as
/// text: the feed's time, then its S3 sequencer (two versions of one key in
/// the same millisecond), then the import, then the row. A write carries the
/// condition "the product's stamp is lower", so an older feed never
/// overwrites a newer one, a later row of one feed wins over an earlier one
/// (as a plain top-to-bottom upsert would), and a row written once is never
/// written again by a retry or a continuation of the same import.
pub fn stamp(source: &Source, import_id: &str, row: u64) -> String {
    let sequencer = source
        .sequencer
        .as_deref()
        .map(padded_sequencer)
        .unwrap_or_default();
    format!(
        "{}#{sequencer:0<32.32}#{import_id}#{row:012}",
        ts::format(&source.created_at)
    )
}

/// The import part of a stamp (everything before the row).
pub fn stamp_import(stamp: &str) -> &str {
    stamp.rsplit_once('#').map_or(stamp, |(head, _)| head)
}

/// Orders S3 `sequencer`s of one key: the shorter is right-padded with zeros
/// (AWS's rule), here to a fixed width so stored values compare as text.
pub fn padded_sequencer(sequencer: &str) -> String {
    format!("{:0<32}", sequencer.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn source(at_: &str, sequencer: Option<&str>) -> Source {
        Source {
            bucket: "b".into(),
            key: "incoming/p/f.csv".into(),
            etag: "e".into(),
            version_id: None,
            sequencer: sequencer.map(str::to_owned),
            size: 1,
            created_at: at(at_),
            source_ip: None,
        }
    }

    #[test]
    fn stamps_order_feeds_by_time_then_sequencer_then_rows_within_a_feed() {
        let t = "2026-11-22T10:00:00Z";
        let old = stamp(&source(t, None), "aaaa", 900);
        let new = stamp(&source("2026-11-22T10:00:00.001Z", None), "0000", 1);
        assert!(old < new);
        let row9 = stamp(&source(t, None), "aaaa", 9);
        let row10 = stamp(&source(t, None), "aaaa", 10);
        assert!(row9 < row10);
        assert_eq!(stamp_import(&row9), stamp_import(&row10));
        assert_ne!(stamp_import(&old), stamp_import(&new));
        // the same millisecond: S3's sequencer decides, whatever the import ids
        let first = stamp(&source(t, Some("0055B9F3A11")), "ffff", 1);
        let second = stamp(&source(t, Some("0055B9F3A12")), "0000", 1);
        assert!(first < second);
        let longer = stamp(&source(t, Some("0055B9F3A11F")), "0000", 1);
        assert!(first < longer && longer < second);
    }

    #[test]
    fn a_reports_first_errors_are_read_from_its_head() {
        let report = "{\"partner_id\":\"p\",\"feed_id\":\"f\",\"import_id\":\"i1\",\"errors\":[\n{\"row\":1,\"field\":\"sku\",\"code\":\"required\",\"message\":\"m\"},\n{\"row\":2,\"field\":\"name\",\"code\":\"too_long\",\"message\":\"m\"},\n{\"row\":3,\"field\":\"name\",\"code\":\"required\",\"message\":\"m\"}\n],\"rows\":3}\n";
        let all = first_errors(report.as_bytes(), "i1", 100);
        assert_eq!(all.len(), 3);
        assert_eq!((all[1].row, all[1].code.as_str()), (2, "too_long"));
        assert_eq!(first_errors(report.as_bytes(), "i1", 2).len(), 2);
        assert!(first_errors(report.as_bytes(), "other", 100).is_empty());
        // cut by the range in the middle of the third error
        let cut = &report.as_bytes()[..report.find("\"row\":3").unwrap() + 4];
        assert_eq!(first_errors(cut, "i1", 100).len(), 2);
        let unread = "{\"partner_id\":\"p\",\"feed_id\":\"f\",\"import_id\":\"i1\",\"errors\":[],\"rows\":0}";
        assert!(first_errors(unread.as_bytes(), "i1", 100).is_empty());
        assert!(first_errors(b"", "i1", 100).is_empty());
    }

    #[test]
    fn an_object_version_has_one_import_id() {
        let s = Source {
            bucket: "b".into(),
            key: "incoming/p/f.csv".into(),
            etag: "\"e1\"".into(),
            version_id: Some("v1".into()),
            sequencer: None,
            size: 10,
            created_at: at("2026-11-22T10:00:00Z"),
            source_ip: None,
        };
        let mut other = s.clone();
        other.sequencer = Some("0A".into());
        other.size = 11;
        assert_eq!(s.import_id(), other.import_id());
        other.version_id = Some("v2".into());
        assert_ne!(s.import_id(), other.import_id());
        // parts cannot run into each other
        let mut shifted = s.clone();
        shifted.bucket = "bi".into();
        shifted.key = "ncoming/p/f.csv".into();
        assert_ne!(s.import_id(), shifted.import_id());
    }

    /// AWS: compare sequencers after right-padding the shorter with zeros.
    #[test]
    fn padded_sequencers_compare_as_aws_says() {
        let mut rng = fastrand::Rng::with_seed(7);
        let hex = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(1..=20))
                .map(|_| b"0123456789ABCDEF"[rng.usize(..16)] as char)
                .collect()
        };
        for _ in 0..10_000 {
            let (a, b) = (hex(&mut rng), hex(&mut rng));
            let width = a.len().max(b.len());
            let (pa, pb) = (format!("{a:0<width$}"), format!("{b:0<width$}"));
            assert_eq!(
                padded_sequencer(&a).cmp(&padded_sequencer(&b)),
                pa.cmp(&pb),
                "{a} {b}"
            );
        }
    }
}
