//! feed-ingest: consumes `feed-events`, where S3 notifies every object
//! created under `incoming/` and where an import hands its rest to the next
//! invocation. Each message is one of:
//!
//! - an S3 notification (`Records`, usually one): each object version is
//!   claimed once and ingested (`shared::feeds::ingest`, ADR 0022);
//! - `s3:TestEvent`, sent when the notification is configured: acknowledged;
//! - `{"continue_import", "run"}`: the rest of an import.
//!
//! A message whose work failed is reported in the partial batch response and
//! comes back after the visibility timeout; the import's record says where
//! it was. A message that is none of these goes to the DLQ, kept.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::clock::{SharedClock, system};
use shared::config::{ConfigError, FeedConfig, Source};
use shared::feeds::import::Source as Object;
use shared::feeds::ingest::{Continuations, Ingest, Outcome, Work};
use shared::objects::Objects;
use shared::store::audit::AuditStore;
use shared::store::feed_writes::FeedWriter;
use shared::store::imports::ImportStore;
use shared::store::partners::PartnerStore;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub const FUNCTION: &str = "feed-ingest";
/// Lambda's longest invocation, when nothing says otherwise.
const LAMBDA_MAX: Duration = Duration::from_secs(15 * 60);

pub struct Deps {
    ingest: Ingest,
    max_receives: u32,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Deps {
    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let config = FeedConfig::from_source(src)?;
        let dynamo = shared::aws::dynamodb(sdk);
        let t = &config.tables;
        Ok(Self {
            ingest: Ingest {
                imports: ImportStore::new(dynamo.clone(), &t.partners),
                writer: FeedWriter::new(dynamo.clone(), &t.catalog),
                partners: PartnerStore::new(dynamo.clone(), &t.partners),
                audit: AuditStore::new(dynamo, &t.audit),
                objects: Objects::new(shared::aws::s3(sdk)),
                continuations: Continuations::new(shared::aws::sqs(sdk), config.queue_url.clone()),
                settings: config.ingest,
                clock: system(),
            },
            max_receives: config.max_receives,
            sqs: shared::aws::sqs(sdk),
            queue_url: config.queue_url,
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.ingest.clock = clock;
        self
    }

    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }
}

/// The invocation's deadline (Lambda's context, milliseconds since the epoch).
pub fn deadline_of(deadline_ms: u64) -> Instant {
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)).min(LAMBDA_MAX)
}

/// As Lambda runs it, with Lambda's longest deadline (the local stack).
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    handle_until(deps, event, Instant::now() + LAMBDA_MAX).await
}

/// One message after another (each may take the whole invocation).
pub async fn handle_until(
    deps: &Deps,
    event: SqsEvent,
    deadline: Instant,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        if let Some(failed) = process(deps, record, deadline).await {
            response.batch_item_failures.push(failed);
        }
    }
    Ok(response)
}

/// An S3 notification, read for what feed-ingest uses: `aws_lambda_events`'
/// `S3Event` requires fields (`userIdentity`) the local emulator leaves out.
#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    request_parameters: Option<RequestParameters>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct RequestParameters {
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default)]
    size: u64,
    e_tag: String,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

#[derive(Deserialize)]
struct Continue {
    continue_import: String,
    run: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TestEvent {
    event: String,
}

/// What a message body holds.
#[derive(Debug, PartialEq)]
pub enum Message {
    Work(Vec<Work>),
    Test,
}

/// Reads a message body, or says why it is not one of ours.
pub fn parse(body: &str) -> Result<Message, String> {
    if let Ok(c) = serde_json::from_str::<Continue>(body) {
        return Ok(Message::Work(vec![Work::Continue {
            import_id: c.continue_import,
            run: c.run,
        }]));
    }
    if let Ok(t) = serde_json::from_str::<TestEvent>(body)
        && t.event == "s3:TestEvent"
    {
        return Ok(Message::Test);
    }
    let event: Notification = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut work = Vec::new();
    for r in event.records {
        if !r.event_name.starts_with("ObjectCreated:") {
            continue;
        }
        let o = r.s3.object;
        work.push(Work::Object(Object {
            bucket: r.s3.bucket.name,
            key: decode_key(&o.key)?,
            etag: o.e_tag,
            version_id: o.version_id.filter(|v| !v.is_empty() && v != "null"),
            sequencer: o.sequencer.filter(|s| !s.is_empty()),
            size: o.size,
            created_at: r.event_time,
            source_ip: r.request_parameters.and_then(|p| p.source_ip_address),
        }));
    }
    Ok(Message::Work(work))
}

/// S3 notification keys are form-URL-encoded: `+` is a space.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("the key {raw:?} is not UTF-8 once decoded"))
}

/// One message: `None` when done with it (deleted), or its failure.
async fn process(deps: &Deps, record: SqsMessage, deadline: Instant) -> Option<BatchItemFailure> {
    let Some(message_id) = record.message_id.filter(|id| !id.is_empty()) else {
        tracing::error!("a message without a message id was dropped");
        return None;
    };
    let fail = || {
        let mut f = BatchItemFailure::default();
        f.item_identifier = message_id.clone();
        Some(f)
    };
    let receives: u32 = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let last_delivery = receives >= deps.max_receives;
    let work = match parse(record.body.as_deref().unwrap_or("")) {
        Ok(Message::Test) => {
            tracing::info!(message_id = %message_id, "s3:TestEvent acknowledged");
            return None;
        }
        Ok(Message::Work(work)) => work,
        Err(reason) => {
            tracing::error!(message_id = %message_id, %reason, "not a feed event; left for the DLQ");
            return fail();
        }
    };
    // when to see the message again, if it is kept
    let mut again: Option<i64> = None;
    for w in work {
        let span = tracing::info_span!("ingest", message_id = %message_id, work = ?short(&w));
        let retry = match deps
            .ingest
            .run(w, deadline, last_delivery)
            .instrument(span.clone())
            .await
        {
            Ok(outcome) => span.in_scope(|| match &outcome {
                Outcome::Skipped(why) => {
                    tracing::info!(skipped = why, "nothing to do");
                    None
                }
                Outcome::Finished(i) => {
                    tracing::info!(status = i.status.as_str(), import_id = %i.import_id, "finished");
                    None
                }
                Outcome::HandedOver(i) => {
                    tracing::info!(import_id = %i.import_id, "handed over");
                    None
                }
                // not dropped: if the holder was this message's own earlier
                // run (its lease not released), nothing else would finish
                // the import; in the DLQ it is alarmed and can be redriven
                Outcome::Busy(_) if last_delivery => {
                    tracing::warn!("another run still holds the import at the last delivery; left for the DLQ");
                    Some(backoff(receives))
                }
                Outcome::Busy(until) => {
                    tracing::info!(%until, "another run holds the import; kept until its lease ends");
                    Some((*until - deps.ingest.clock.now()).num_seconds() + 5)
                }
            }),
            Err(e) => {
                span.in_scope(|| tracing::warn!(error = %e, "not finished; back to the queue"));
                Some(backoff(receives))
            }
        };
        again = again.max(retry);
    }
    // nothing to see again: done with it
    let wait = again?;
    // rather than after the queue's visibility timeout (six whole invocations)
    if let Some(handle) = record.receipt_handle.as_deref() {
        let changed = deps
            .sqs
            .change_message_visibility()
            .queue_url(&deps.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(wait.clamp(1, MAX_VISIBILITY) as i32)
            .send()
            .await;
        if let Err(e) = changed {
            let e = aws_sdk_sqs::error::DisplayErrorContext(e);
            tracing::warn!(message_id = %message_id, error = %e, "the retry could not be brought forward");
        }
    }
    fail()
}

/// SQS's longest visibility timeout, in seconds.
const MAX_VISIBILITY: i64 = 12 * 60 * 60;

/// Seconds before a failed message is tried again: one minute, doubling
/// with each delivery, at most 15. With the queue's eight deliveries an
/// outage of about an hour is outlived before an import is marked failed.
pub fn backoff(receives: u32) -> i64 {
    (60i64 << receives.clamp(1, 8).saturating_sub(1)).min(900)
}

fn short(w: &Work) -> String {
    match w {
        Work::Object(o) => format!("{}/{}", o.bucket, o.key),
        Work::Continue { import_id, run } => format!("continue {import_id} after run {run}"),
    }
}
