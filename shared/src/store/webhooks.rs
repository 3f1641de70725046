//! The provider's webhook events, deduplicated by id (ADR 0019): a record per
//! event id, written with a condition before the event is applied and marked
//! once it was, so a duplicate of an applied event changes nothing and a
//! delivery that died halfway is applied again by the next (every step is
//! idempotent, ADR 0018).

use super::keys::{PK, requests as keys};
use super::{StoreError, number_attr, string_attr};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Duration, Utc};

/// Longer than any provider retries a delivery (Stripe: 3 days).
pub const RETENTION: Duration = Duration::days(30);

/// What the record of an event id said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First delivery: apply it.
    New,
    /// Delivered before, not marked applied (the earlier delivery died
    /// halfway): apply it again.
    Unfinished,
    /// Delivered and applied before.
    Applied,
}

#[derive(Clone, Debug)]
pub struct WebhookStore {
    client: Client,
    table: String,
}

impl WebhookStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Records `event_id` unless it is there; says what was there.
    pub async fn claim(
        &self,
        event_id: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Seen, StoreError> {
        let mut item = keys::webhook(event_id);
        item.insert("type".into(), string_attr(kind));
        item.insert(
            "received_at".into(),
            string_attr(crate::domain::ts::format(&now)),
        );
        item.insert(keys::TTL.into(), number_attr((now + RETENTION).timestamp()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Seen::New),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    let applied = c.item().and_then(|i| i.get("outcome")).is_some();
                    Ok(if applied {
                        Seen::Applied
                    } else {
                        Seen::Unfinished
                    })
                }
                _ => Err(StoreError::dynamo("PutItem", &e)),
            },
        }
    }

    /// Marks `event_id` applied, with what it did.
    pub async fn applied(&self, event_id: &str, outcome: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook(event_id)))
            .update_expression("SET #o = :o")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#o", "outcome")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":o", string_attr(outcome))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo("UpdateItem", &e))
    }
}
