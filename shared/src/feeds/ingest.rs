//! One import from claim to end (ADR 0022), in two passes over the object:
//!
//! 1. read and validate every row, writing the report as it goes. A file
//!    that cannot be read (too large, bad UTF-8, truncated, empty, malformed)
//!    or, in strict mode, any invalid row: the import is `rejected` and
//!    nothing was written. Every file-level failure is known only at its
//!    end, so nothing is applied before the whole file has been read once.
//! 2. read it again and write the valid rows, [`MAX_ITEMS`] to a conditional
//!    transaction, a bounded number at once ([`FeedWriter`]).
//!
//! The object is streamed from S3 on a blocking thread (the adapters read
//! `std::io`), through the gunzip and the size limit, and handed over in
//! small batches on a bounded channel: memory holds a few batches and the
//! transactions in flight, whatever the file's size.
//!
//! When the invocation's time runs low, no new transaction starts; the
//! ones in flight finish, the first row not yet written is saved on the
//! record, and a message to the feed queue hands the rest to the next
//! invocation, which skips the rows before it. A row written twice (after a
//! crash between checkpoints) is refused by its own stamp, so nothing is
//! applied twice and nothing is skipped.

use super::adapters::{self, Adapter, ControlFlow, FeedError};
use super::import::{Counts, Import, ImportStatus, Source, Validation, stamp};
use super::scan::{FeedKey, Scanned, scan};
use super::{FeedVersion, RowError};
use crate::clock::SharedClock;
use crate::objects::{ObjectError, Objects};
use crate::store::StoreError;
use crate::store::audit::{AuditEvent, AuditStore};
use crate::store::feed_writes::{
    Applied, FeedWrite, FeedWriter, MAX_BYTES, MAX_ITEMS, Probe, Written,
};
use crate::store::imports::{Claim, ImportStore};
use crate::store::partners::PartnerStore;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Errors a report lists at most (the rest are counted in `errors_total`).
const MAX_REPORTED: u64 = 100_000;
/// Rows per hand-over from the reading thread.
const BATCH: usize = 256;
/// ...or fewer, when they weigh this much (a v2 row may weigh 200 KB).
const BATCH_BYTES: usize = 1 << 20;
/// Batches waiting between the reading thread and the writers.
const QUEUED: usize = 8;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest object accepted, as stored (`FEED_MAX_BYTES`).
    pub max_object_bytes: u64,
    /// Largest feed once decompressed (`FEED_MAX_DECODED_BYTES`).
    pub max_decoded_bytes: u64,
    /// Transactions in flight (`FEED_WRITE_CONCURRENCY`).
    pub concurrency: usize,
    /// Stop this long before the invocation's deadline (`FEED_DEADLINE_RESERVE_MS`).
    pub reserve: Duration,
    /// At most this long per invocation (`FEED_TIME_BUDGET_MS`): makes the
    /// hand-over testable in seconds.
    pub budget: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_object_bytes: 256 << 20,
            max_decoded_bytes: 1 << 30,
            concurrency: 4,
            reserve: Duration::from_secs(60),
            budget: None,
        }
    }
}

/// What a feed-events message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// An object was created (one S3 notification record).
    Object(Source),
    /// Go on with an import that run `run` handed over.
    Continue { import_id: String, run: u32 },
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: `not_a_feed`, `superseded`, `duplicate`, `stale`.
    Skipped(&'static str),
    /// Another run holds the import until then. The message is kept and
    /// looked at again once the lease runs out: by then the import has
    /// ended (and the message is a duplicate) or its holder died without
    /// releasing it (and the message takes it over). Deleting it would
    /// leave such an import `processing` for good.
    Busy(DateTime<Utc>),
    Finished(Box<Import>),
    HandedOver(Box<Import>),
}

/// Why a message goes back to the queue (the import's record says where it was).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("the continuation could not be queued: {0}")]
    Queue(String),
    #[error("the reading thread failed: {0}")]
    Thread(String),
}

/// Sends the rest of an import to the next invocation.
#[derive(Clone, Debug)]
pub struct Continuations {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Continuations {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    async fn send(&self, import_id: &str, run: u32) -> Result<(), IngestError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(continuation(import_id, run))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| IngestError::Queue(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}

/// The body of a continuation message.
pub fn continuation(import_id: &str, run: u32) -> String {
    serde_json::json!({ "continue_import": import_id, "run": run }).to_string()
}

pub struct Ingest {
    pub imports: ImportStore,
    pub writer: FeedWriter,
    pub partners: PartnerStore,
    pub audit: AuditStore,
    pub objects: Objects,
    pub continuations: Continuations,
    pub settings: Settings,
    pub clock: SharedClock,
}

/// How a pass ended.
enum Pass {
    Done,
    OutOfTime,
    Unreadable(FeedError),
}

impl Ingest {
    /// Does what `work` asks until it is done or `deadline` (the
    /// invocation's end) comes near. `receives` is how often SQS has handed
    /// the message over: the last allowed delivery marks an import `failed`
    /// rather than leave it to the DLQ unfinished.
    pub async fn run(
        &self,
        work: Work,
        deadline: Instant,
        last_delivery: bool,
    ) -> Result<Outcome, IngestError> {
        let hard = deadline
            .checked_sub(self.settings.reserve)
            .unwrap_or_else(Instant::now);
        let stops = Stops {
            hard,
            soft: match self.settings.budget {
                Some(b) => hard.min(Instant::now() + b),
                None => hard,
            },
        };
        let (import, key) = match self.hold(work, deadline).await? {
            Held::Import(import, key) => (import, key),
            Held::Skip(why) => return Ok(Outcome::Skipped(why)),
            Held::Busy(until) => return Ok(Outcome::Busy(until)),
        };
        let import_id = import.import_id.clone();
        let run = import.run;
        match self.work(*import, &key, stops).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // let the next delivery take it at once, or end it here
                if let Some(mut import) =
                    self.imports.get(&import_id).await?.filter(|i| i.run == run)
                {
                    let now = self.clock.now();
                    import.lease_until = now;
                    import.updated_at = now;
                    if last_delivery {
                        import.status = ImportStatus::Failed;
                        import.reason_code = Some("failed".into());
                        import.reason = Some(crate::domain::text::printable(&e.to_string(), 300));
                        if self.imports.save(&import).await? {
                            self.finished(&import).await;
                            return Ok(Outcome::Finished(Box::new(import)));
                        }
                    } else {
                        self.imports.save(&import).await?;
                    }
                }
                Err(e)
            }
        }
    }

    /// Claims the object version, or takes a handed-over or abandoned import.
    async fn hold(&self, work: Work, deadline: Instant) -> Result<Held, IngestError> {
        let now = self.clock.now();
        let lease = now
            + chrono::Duration::from_std(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_default()
            + chrono::Duration::seconds(30);
        let existing = match work {
            Work::Object(source) => {
                let key = match FeedKey::parse(&source.key, adapters::ADAPTERS) {
                    Ok(key) => key,
                    Err(reason) => {
                        tracing::warn!(key = %source.key, %reason, "not a feed's key; ignored");
                        return Ok(Held::Skip("not_a_feed"));
                    }
                };
                if let Some(seq) = &source.sequencer
                    && !self
                        .imports
                        .newest_event(&source.bucket, &source.key, seq)
                        .await?
                {
                    // an import of it that began, failed before writing and
                    // waits for this redelivery ends here rather than stay
                    // `processing`; one that may have written rows goes on
                    // below (its rows lose to the newer feed's by their stamps)
                    match self.imports.get(&source.import_id()).await? {
                        Some(started) if !started.status.is_final() && started.validated => {}
                        Some(started)
                            if !started.status.is_final() && started.lease_until > now =>
                        {
                            return Ok(Held::Busy(started.lease_until));
                        }
                        Some(started) if !started.status.is_final() => {
                            if let Some(taken) = self
                                .imports
                                .take(&started.import_id, started.run, lease, now)
                                .await?
                            {
                                let reason =
                                    "a newer version of the object was notified first".into();
                                self.reject(taken, "superseded", reason).await?;
                            }
                            return Ok(Held::Skip("superseded"));
                        }
                        _ => return Ok(Held::Skip("superseded")),
                    }
                }
                let import = Import {
                    import_id: source.import_id(),
                    partner_id: key.partner_id.clone(),
                    feed_id: key.feed_id.clone(),
                    source,
                    status: ImportStatus::Processing,
                    reason_code: None,
                    reason: None,
                    feed_version: None,
                    validation: None,
                    counts: Counts::default(),
                    validated: false,
                    validated_at: None,
                    next_row: 1,
                    run: 1,
                    lease_until: lease,
                    report_key: None,
                    fetch_id: None,
                    created_at: now,
                    updated_at: now,
                };
                match self.imports.claim(&import).await? {
                    Claim::New => return Ok(Held::Import(Box::new(import), key)),
                    Claim::Taken(existing) if existing.status.is_final() => {
                        return Ok(Held::Skip("duplicate"));
                    }
                    // another delivery holds it, or a run of this one whose
                    // lease could not be released: look again once it runs out
                    Claim::Taken(existing) if existing.lease_until > now => {
                        return Ok(Held::Busy(existing.lease_until));
                    }
                    Claim::Taken(existing) => *existing,
                }
            }
            // the run that sent it, or a later one that died (its lease out)
            Work::Continue { import_id, run } => match self.imports.get(&import_id).await? {
                Some(i) if !i.status.is_final() && (i.run == run || i.lease_until <= now) => i,
                // a later run holds it: if it dies, this message takes over
                Some(i) if !i.status.is_final() => return Ok(Held::Busy(i.lease_until)),
                _ => return Ok(Held::Skip("stale")),
            },
        };
        let Some(import) = self
            .imports
            .take(&existing.import_id, existing.run, lease, now)
            .await?
        else {
            return Ok(Held::Skip("stale"));
        };
        match FeedKey::parse(&import.source.key, adapters::ADAPTERS) {
            Ok(key) => Ok(Held::Import(Box::new(import), key)),
            Err(_) => Ok(Held::Skip("not_a_feed")),
        }
    }

    async fn work(
        &self,
        mut import: Import,
        key: &FeedKey,
        stops: Stops,
    ) -> Result<Outcome, IngestError> {
        let Some(partner) = self.partners.get(&key.partner_id).await? else {
            return self
                .reject(
                    import,
                    "unknown_partner",
                    format!("no partner {} is registered", key.partner_id),
                )
                .await;
        };
        if import.source.size > self.settings.max_object_bytes {
            let reason = format!(
                "the object is {} bytes; the limit is {}",
                import.source.size, self.settings.max_object_bytes
            );
            return self.reject_unread(import, key, "too_large", reason).await;
        }
        let source = import.source.clone();
        let open = || {
            self.objects.open(
                &source.bucket,
                &source.key,
                &source.etag,
                source.version_id.as_deref(),
            )
        };
        let opened = match open().await {
            Ok(o) => o,
            // a later run of a validated import keeps its validation report
            Err(ObjectError::Gone) if import.validated => {
                let reason = "the object was deleted or replaced while it was read".into();
                return self.reject(import, "object_gone", reason).await;
            }
            Err(ObjectError::Gone) => {
                return self
                    .reject_unread(
                        import,
                        key,
                        "object_gone",
                        "the object was deleted or replaced before it was read".into(),
                    )
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        // decided once: a later run keeps the rules the rows were validated by
        if opened.length > self.settings.max_object_bytes {
            let reason = format!(
                "the object is {} bytes; the limit is {}",
                opened.length, self.settings.max_object_bytes
            );
            return self.reject_unread(import, key, "too_large", reason).await;
        }
        let version = match (import.version(), opened.metadata.get("feed-version")) {
            (Some(v), _) => Some(v),
            (None, None) => FeedVersion::parse(&partner.feed_version.to_string()),
            (None, Some(v)) => FeedVersion::parse(v),
        };
        let validation = match (import.validation, opened.metadata.get("validation")) {
            (Some(v), _) => Some(v),
            (None, None) => Some(partner.validation),
            (None, Some(v)) => Validation::parse(v),
        };
        let (Some(version), Some(validation)) = (version, validation) else {
            return self
                .reject_unread(
                    import,
                    key,
                    "bad_metadata",
                    "metadata feed-version must be 1 or 2, and validation strict or lenient".into(),
                )
                .await;
        };
        let Some(adapter) = adapters::find(adapters::ADAPTERS, key.format, version) else {
            return self
                .reject_unread(
                    import,
                    key,
                    "unsupported",
                    format!("no reader for {} version {version:?}", key.format),
                )
                .await;
        };
        import.feed_version = Some(if version == FeedVersion::V1 { 1 } else { 2 });
        import.validation = Some(validation);
        // the fetch that put the object, when it names a well-formed one
        if import.fetch_id.is_none() {
            import.fetch_id = opened
                .metadata
                .get("fetch-id")
                .filter(|f| crate::domain::text::check_id("fetch-id", f, 64).is_ok())
                .cloned();
        }
        import.report_key = Some(key.report_key());

        let mut body = Some(opened.body);
        if !import.validated {
            let first = body
                .take()
                .ok_or_else(|| IngestError::Thread("no body".into()))?;
            let (pass, counts) = self
                .validate(&import, key, adapter, version, first, stops.hard)
                .await?;
            match pass {
                // it cannot resume, and another invocation has no more time
                Pass::OutOfTime => {
                    let reason =
                        "the file could not be read and validated within one invocation; split it"
                            .into();
                    return self.reject_unread(import, key, "too_slow", reason).await;
                }
                Pass::Unreadable(e) => {
                    import.counts = counts;
                    return self.reject(import, e.code(), e.to_string()).await;
                }
                Pass::Done => {}
            }
            import.counts = counts;
            if validation == Validation::Strict && counts.rejected > 0 {
                let reason = format!(
                    "strict validation: {} of {} rows are invalid (see the report); nothing was applied",
                    counts.rejected, counts.rows
                );
                return self.reject(import, "strict_invalid_rows", reason).await;
            }
            import.validated = true;
            import.updated_at = self.clock.now();
            import.validated_at = Some(import.updated_at);
            if !self.imports.save(&import).await? {
                return Ok(Outcome::Skipped("stale"));
            }
        }
        let body = match body {
            Some(b) => b,
            None => match open().await {
                Ok(o) => o.body,
                // the report of the validating pass stays: it is this file's
                Err(ObjectError::Gone) => {
                    return self
                        .reject(
                            import,
                            "object_gone",
                            "the object was deleted or replaced while it was read".into(),
                        )
                        .await;
                }
                Err(e) => return Err(e.into()),
            },
        };
        match self
            .apply(&mut import, key, adapter, version, body, stops)
            .await?
        {
            Pass::Done => {}
            Pass::OutOfTime => return self.hand_over(import).await,
            // the same bytes read the same way a second time: only if S3
            // answered differently, which a retry settles
            Pass::Unreadable(e) => return Err(IngestError::Thread(e.to_string())),
        }
        let status = if import.counts.rejected > 0 {
            ImportStatus::CompletedWithErrors
        } else {
            ImportStatus::Completed
        };
        self.finish(import, status, None, None).await
    }

    /// Pass 1: every row read and validated, the report written.
    async fn validate(
        &self,
        import: &Import,
        key: &FeedKey,
        adapter: &'static dyn Adapter,
        version: FeedVersion,
        body: aws_sdk_s3::primitives::ByteStream,
        stop_at: Instant,
    ) -> Result<(Pass, Counts), IngestError> {
        let mut report = self
            .objects
            .report(&import.source.bucket, &key.report_key());
        let header = serde_json::json!({
            "partner_id": import.partner_id,
            "feed_id": import.feed_id,
            "import_id": import.import_id,
        });
        let header = header.to_string();
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&header.as_bytes()[..header.len() - 1]);
        out.extend_from_slice(b",\"errors\":[");
        let mut counts = Counts::default();
        let mut first = true;
        let mut reported = 0u64;
        let (mut rx, reader) = self.read(body, key, adapter, version, &import.partner_id);
        let mut out_of_time = false;
        while let Some(batch) = rx.recv().await {
            for scanned in batch {
                counts.rows += 1;
                if let Scanned::Invalid { errors, .. } = scanned {
                    counts.rejected += 1;
                    for e in &errors {
                        reported += 1;
                        if reported > MAX_REPORTED {
                            continue;
                        }
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        out.push(b'\n');
                        write_error(&mut out, e);
                    }
                }
            }
            if out.len() >= crate::objects::PART
                && let Err(e) = report.write(&std::mem::take(&mut out)).await
            {
                report.abandon().await;
                return Err(e.into());
            }
            if Instant::now() >= stop_at {
                out_of_time = true;
                break;
            }
        }
        drop(rx);
        let read = reader
            .await
            .map_err(|e| IngestError::Thread(e.to_string()))?;
        if out_of_time {
            report.abandon().await;
            return Ok((Pass::OutOfTime, counts));
        }
        let file_error = read.as_ref().err().map(ToString::to_string);
        let tail = serde_json::json!({
            "rows": counts.rows,
            "rejected_rows": counts.rejected,
            "errors_total": reported,
            "errors_truncated": reported > MAX_REPORTED,
            "file_error": file_error,
        })
        .to_string();
        out.extend_from_slice(b"\n],");
        out.extend_from_slice(&tail.as_bytes()[1..]);
        out.push(b'\n');
        let written = async {
            report.write(&out).await?;
            report.finish().await
        };
        written.await?;
        Ok(match read {
            Ok(()) => (Pass::Done, counts),
            Err(e) => (Pass::Unreadable(e), counts),
        })
    }

    /// Pass 2: the valid rows from `import.next_row` on, written.
    async fn apply(
        &self,
        import: &mut Import,
        key: &FeedKey,
        adapter: &'static dyn Adapter,
        version: FeedVersion,
        body: aws_sdk_s3::primitives::ByteStream,
        stops: Stops,
    ) -> Result<Pass, IngestError> {
        let (mut rx, reader) = self.read(body, key, adapter, version, &import.partner_id);
        let partner = import.partner_id.clone();
        let now = self.clock.now();
        // spawned, not merely pushed into a FuturesUnordered: a transaction
        // must go on while this loop waits for rows, not only while it waits
        // for a transaction
        let mut in_flight = tokio::task::JoinSet::new();
        // a first import writes new products: assume so until a chunk says not
        let mut probe = Probe::AssumeNew;
        let mut chunk = Chunk::default();
        let mut dispatched_through = import.next_row.saturating_sub(1);
        let first = import.next_row;
        let mut out_of_time = false;
        let mut failed: Option<IngestError> = None;
        let mut counts = import.counts;
        'read: while let Some(batch) = rx.recv().await {
            for scanned in batch {
                let Scanned::Valid { row, product } = scanned else {
                    continue;
                };
                if row < import.next_row {
                    continue;
                }
                let write = FeedWrite {
                    stamp: stamp(&import.source, &import.import_id, row),
                    product: *product,
                };
                if chunk.full_with(&write) {
                    // every row read before this one is in a transaction now
                    dispatched_through = row - 1;
                    let full = std::mem::take(&mut chunk);
                    in_flight.spawn(self.write_chunk(&partner, full, now, probe));
                }
                chunk.add(write);
                while in_flight.len() >= self.settings.concurrency.max(1) {
                    match in_flight.join_next().await.map(flatten) {
                        Some(Ok(done)) => probe = add(&mut counts, &done),
                        Some(Err(e)) => {
                            failed = Some(e);
                            break 'read;
                        }
                        None => break,
                    }
                }
                // a run writes at least one transaction, so each makes progress
                let now = Instant::now();
                if now >= stops.hard || (now >= stops.soft && dispatched_through >= first) {
                    out_of_time = true;
                    break 'read;
                }
            }
        }
        drop(rx);
        let read = reader
            .await
            .map_err(|e| IngestError::Thread(e.to_string()))?;
        if failed.is_none() && !out_of_time {
            if let Err(e) = read {
                failed = Some(IngestError::Thread(e.to_string()));
            } else if !chunk.rows.is_empty() {
                dispatched_through = u64::MAX - 1;
                in_flight.spawn(self.write_chunk(&partner, std::mem::take(&mut chunk), now, probe));
            } else {
                dispatched_through = u64::MAX - 1;
            }
        }
        while let Some(done) = in_flight.join_next().await.map(flatten) {
            match done {
                Ok(done) => {
                    add(&mut counts, &done);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        import.counts = counts;
        if out_of_time {
            // everything before the chunk being filled is written
            import.next_row = dispatched_through + 1;
            return Ok(Pass::OutOfTime);
        }
        Ok(Pass::Done)
    }

    fn write_chunk(
        &self,
        partner: &str,
        chunk: Chunk,
        now: DateTime<Utc>,
        probe: Probe,
    ) -> impl Future<Output = Result<Done, IngestError>> + Send + 'static {
        let (writer, partner) = (self.writer.clone(), partner.to_owned());
        async move {
            let written = writer.apply(&partner, &chunk.rows, now, probe).await?;
            Ok(Done {
                written,
                stands_for: chunk.stands_for,
            })
        }
    }

    /// Streams `body` through the adapter on a blocking thread.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        body: aws_sdk_s3::primitives::ByteStream,
        key: &FeedKey,
        adapter: &'static dyn Adapter,
        version: FeedVersion,
        partner_id: &str,
    ) -> (
        mpsc::Receiver<Vec<Scanned>>,
        tokio::task::JoinHandle<Result<(), FeedError>>,
    ) {
        let (tx, rx) = mpsc::channel::<Vec<Scanned>>(QUEUED);
        let bridge = tokio_util::io::SyncIoBridge::new(body.into_async_read());
        let (gzip, limit, partner) = (
            key.gzip,
            self.settings.max_decoded_bytes,
            partner_id.to_owned(),
        );
        let reader = tokio::task::spawn_blocking(move || {
            let mut input = adapters::decoded(bridge, gzip, limit);
            let mut batch = Vec::with_capacity(BATCH);
            let mut bytes = 0;
            let mut gone = false;
            let read = scan(adapter, &mut input, &partner, version, &mut |s| {
                bytes += s.weight();
                batch.push(s);
                if (batch.len() == BATCH || bytes >= BATCH_BYTES)
                    && {
                        bytes = 0;
                        true
                    }
                    && tx
                        .blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                        .is_err()
                {
                    gone = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            if !gone && !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            read
        });
        (rx, reader)
    }

    async fn hand_over(&self, mut import: Import) -> Result<Outcome, IngestError> {
        let now = self.clock.now();
        import.lease_until = now;
        import.updated_at = now;
        if !self.imports.save(&import).await? {
            return Ok(Outcome::Skipped("stale"));
        }
        self.continuations
            .send(&import.import_id, import.run)
            .await?;
        tracing::info!(
            import_id = %import.import_id,
            next_row = import.next_row,
            validated = import.validated,
            "out of time; the rest is handed to the next invocation"
        );
        Ok(Outcome::HandedOver(Box::new(import)))
    }

    async fn reject(
        &self,
        import: Import,
        code: &str,
        reason: String,
    ) -> Result<Outcome, IngestError> {
        self.finish(import, ImportStatus::Rejected, Some(code), Some(reason))
            .await
    }

    /// Rejected before a row was read: the report says why, so the feed's
    /// report never shows an earlier import's errors.
    async fn reject_unread(
        &self,
        mut import: Import,
        key: &FeedKey,
        code: &str,
        reason: String,
    ) -> Result<Outcome, IngestError> {
        let report_key = key.report_key();
        let body = serde_json::json!({
            "partner_id": import.partner_id,
            "feed_id": import.feed_id,
            "import_id": import.import_id,
            "errors": [],
            "rows": 0,
            "rejected_rows": 0,
            "errors_total": 0,
            "errors_truncated": false,
            "file_error": reason,
        });
        let mut report = self.objects.report(&import.source.bucket, &report_key);
        report.write(body.to_string().as_bytes()).await?;
        report.finish().await?;
        import.report_key = Some(report_key);
        self.reject(import, code, reason).await
    }

    async fn finish(
        &self,
        mut import: Import,
        status: ImportStatus,
        code: Option<&str>,
        reason: Option<String>,
    ) -> Result<Outcome, IngestError> {
        let now = self.clock.now();
        import.status = status;
        import.reason_code = code.map(str::to_owned);
        import.reason = reason;
        import.updated_at = now;
        import.lease_until = now;
        if !self.imports.save(&import).await? {
            return Ok(Outcome::Skipped("stale"));
        }
        self.finished(&import).await;
        Ok(Outcome::Finished(Box::new(import)))
    }

    /// The import's end: a log line, its metrics, its audit record.
    async fn finished(&self, import: &Import) {
        let c = import.counts;
        tracing::info!(
            import_id = %import.import_id,
            partner_id = %import.partner_id,
            feed_id = %import.feed_id,
            status = import.status.as_str(),
            reason_code = import.reason_code.as_deref().unwrap_or(""),
            rows = c.rows,
            ingested = c.ingested,
            rejected = c.rejected,
            skipped_older = c.skipped_older,
            "import finished"
        );
        let took = (import.updated_at - import.created_at)
            .num_milliseconds()
            .max(0) as f64;
        crate::metrics::emit(
            "feed-ingest",
            &[
                ("FeedRows", c.rows as f64, "Count"),
                ("FeedRowsIngested", c.ingested as f64, "Count"),
                ("FeedRowsRejected", c.rejected as f64, "Count"),
                ("FeedRowsSkippedOlder", c.skipped_older as f64, "Count"),
                (
                    "FeedImportRejected",
                    f64::from(u8::from(import.status == ImportStatus::Rejected)),
                    "Count",
                ),
                (
                    "FeedImportFailed",
                    f64::from(u8::from(import.status == ImportStatus::Failed)),
                    "Count",
                ),
                ("FeedImportDuration", took, "Milliseconds"),
            ],
        );
        // an upload through the partner API names the key that asked for it
        let key = match self
            .imports
            .upload(&import.partner_id, &import.feed_id)
            .await
        {
            Ok(Some(upload)) => format!("/key:{}", upload.key_id),
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!(error = %e, import_id = %import.import_id, "the feed's upload record was not read");
                String::new()
            }
        };
        let event = AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            at: import.updated_at,
            actor: format!("partner:{}{key}", import.partner_id),
            action: "feed import".into(),
            target: format!("{}/{}", import.partner_id, import.feed_id),
            source_ip: import
                .source
                .source_ip
                .clone()
                .unwrap_or_else(|| "s3".into()),
            outcome: import
                .reason_code
                .clone()
                .unwrap_or_else(|| import.status.as_str().to_owned()),
            request_id: import.import_id.clone(),
        };
        if let Err(e) = self.audit.record(&event).await {
            tracing::warn!(error = %e, import_id = %import.import_id, "the import's audit record was not written");
        }
    }
}

/// When a run stops: the soft stop (the time budget) only once it has
/// written something; the hard one (the invocation's end less the reserve)
/// always, and it is the only one the validating pass obeys: that pass
/// cannot resume, and the size limit bounds how long it takes.
#[derive(Debug, Clone, Copy)]
struct Stops {
    hard: Instant,
    soft: Instant,
}

/// A spawned write's answer, its panic an error like any other.
fn flatten(
    joined: Result<Result<Done, IngestError>, tokio::task::JoinError>,
) -> Result<Done, IngestError> {
    joined.map_err(|e| IngestError::Thread(e.to_string()))?
}

enum Held {
    Import(Box<Import>, FeedKey),
    Skip(&'static str),
    Busy(DateTime<Utc>),
}

/// A written chunk: its answers, and how many rows of the file each stands for.
struct Done {
    written: Written,
    stands_for: Vec<u64>,
}

/// Counts a chunk's answers (a row that took the place of earlier rows of
/// its SKU answers for them too); what the next chunk may assume.
fn add(counts: &mut Counts, done: &Done) -> Probe {
    for (a, n) in done.written.answers.iter().zip(&done.stands_for) {
        match a {
            Applied::Written | Applied::AlreadyWritten => counts.ingested += n,
            Applied::Newer => counts.skipped_older += n,
            Applied::NotOwner => counts.rejected += n,
        }
    }
    if done.written.all_new {
        Probe::AssumeNew
    } else {
        Probe::Read
    }
}

/// Rows for one transaction: each SKU once (a later row of the same SKU
/// takes the earlier one's place, as a top-to-bottom upsert would end).
#[derive(Default)]
struct Chunk {
    rows: Vec<FeedWrite>,
    /// Rows of the file each of `rows` stands for: itself and those it replaced.
    stands_for: Vec<u64>,
    at: HashMap<String, usize>,
    bytes: usize,
}

impl Chunk {
    fn full_with(&self, w: &FeedWrite) -> bool {
        !self.at.contains_key(&w.product.sku)
            && (self.rows.len() == MAX_ITEMS || self.bytes + w.size() > MAX_BYTES)
    }

    fn add(&mut self, w: FeedWrite) {
        self.bytes += w.size();
        match self.at.get(&w.product.sku) {
            Some(&i) => {
                self.stands_for[i] += 1;
                self.rows[i] = w;
            }
            None => {
                self.at.insert(w.product.sku.clone(), self.rows.len());
                self.rows.push(w);
                self.stands_for.push(1);
            }
        }
    }
}

fn write_error(out: &mut Vec<u8>, e: &RowError) {
    // RowError serialises infallibly (strings and numbers)
    let _ = serde_json::to_writer(&mut *out, e);
}
