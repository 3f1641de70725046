//! The order-finalization queue: checkout sends `{"order_id"}`, order-finalizer
//! consumes it.

use aws_sdk_sqs::error::DisplayErrorContext;

#[derive(Debug, thiserror::Error)]
#[error("SQS SendMessage failed: {0}")]
pub struct QueueError(String);

#[derive(Clone, Debug)]
pub struct OrderQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl OrderQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub async fn send(&self, order_id: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::json!({ "order_id": order_id }).to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(DisplayErrorContext(e).to_string()))
    }
}
