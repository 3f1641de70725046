//! The local event source mappings: long-poll a queue, hand each batch to its
//! function as a real SQS event, delete only what the function did not report
//! as failed (partial batch responses), and let the rest reappear after the
//! visibility timeout, as Lambda does. And the schedule: a tick per rate.

use crate::bootstrap::Queue;
use crate::functions::{ScheduleFn, SqsFn};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Clone)]
pub struct QueuePoller {
    pub sqs: aws_sdk_sqs::Client,
    pub queue: Queue,
    pub region: String,
    pub batch_size: i32,
    pub handler: SqsFn,
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PollError(String);

impl QueuePoller {
    /// Receives one batch (waiting up to `wait` for it), invokes the function,
    /// deletes what succeeded. Tests call this to process queued work
    /// synchronously instead of sleeping.
    pub async fn poll_once(&self, wait: Duration) -> Result<Polled, PollError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| PollError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Polled::default());
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "md5OfBody": m.md5_of_body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue.arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))
            .map_err(|e| PollError(format!("SQS event did not build: {e}")))?;
        let failed: HashSet<String> = match tokio::spawn((self.handler)(event)).await {
            Ok(Ok(resp)) => resp
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            // The whole invocation failed: every message goes back to the queue.
            Ok(Err(e)) => {
                tracing::warn!(queue = %self.queue.name, error = %e, "function failed; batch returns to the queue");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue.name, error = %e, "function panicked; batch returns to the queue");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        let deleted = done.len();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue.url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| PollError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        }
        Ok(Polled {
            received: messages.len(),
            deleted,
            failed: messages.len() - deleted,
        })
    }

    /// Polls until the task is dropped.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.poll_once(Duration::from_secs(20)).await {
                tracing::warn!(queue = %self.queue.name, error = %e, "poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An EventBridge scheduled event, as Lambda receives it.
pub fn scheduled_event(region: &str, account: &str, rule: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": shared::domain::ts::format(&chrono::Utc::now()),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{account}:rule/{rule}")],
        "detail": {},
    })
}

/// Fires `handler` every `every`, the first time after one period.
pub async fn tick(
    every: Duration,
    handler: ScheduleFn,
    region: String,
    account: String,
    rule: String,
) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(e) = handler(scheduled_event(&region, &account, &rule)).await {
            tracing::warn!(rule, error = %e, "scheduled invocation failed");
        }
    }
}
