//! The local event source mappings: long-poll a queue, hand each batch to its
//! function as a real SQS event, delete only what the function did not report
//! as failed (partial batch responses), and let the rest reappear after the
//! visibility timeout, as Lambda does. The queue functions of DESIGN.md
//! (order-finalizer, feed-ingest) are wired to it when they land; tests drive
//! it with a function of their own.

use crate::bootstrap::Queue;
use crate::functions::SqsFn;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
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
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record(m)).collect();
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

    /// A received message as the SQS event source mapping hands it to Lambda.
    fn record(&self, m: &aws_sdk_sqs::types::Message) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = m.message_id().map(str::to_owned);
        r.receipt_handle = m.receipt_handle().map(str::to_owned);
        r.body = m.body().map(str::to_owned);
        r.md5_of_body = m.md5_of_body().map(str::to_owned);
        r.attributes = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        r.event_source = Some("aws:sqs".into());
        r.event_source_arn = Some(self.queue.arn.clone());
        r.aws_region = Some(self.region.clone());
        r
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
