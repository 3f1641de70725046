//! The circuit breakers' shared state (ADR 0020): one item per breaker in
//! the Requests table, read consistently and changed only with a condition
//! on the version its writer read. The rules of the breaker are
//! `payments::breaker`'s; this module only stores.

use super::keys::{PK, requests as keys};
use super::{StoreError, number_attr, read_number, string_attr};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

/// A breaker's item as stored: its state's name, the version every write
/// bumps, and since when (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub state: String,
    pub version: u64,
    pub since_ms: i64,
}

#[derive(Clone, Debug)]
pub struct BreakerStore {
    client: Client,
    table: String,
}

impl BreakerStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The breaker's item, `None` before its first change.
    pub async fn read(&self, name: &str) -> Result<Option<Stored>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::breaker(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", &e))?;
        Ok(out.item.map(|item| Stored {
            state: item
                .get("state")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            version: read_number(&item, "version").unwrap_or(0),
            since_ms: read_number(&item, "since_ms").unwrap_or(i64::MIN),
        }))
    }

    /// Writes `next` if the stored version is still `expected` (or there is
    /// no item yet). `Ok(false)` when another writer was first.
    pub async fn write(
        &self,
        name: &str,
        expected: u64,
        next: &Stored,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::breaker(name)))
            .update_expression("SET #state = :state, #version = :next, #since = :since")
            .condition_expression("attribute_not_exists(#pk) OR #version = :expected")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#since", "since_ms")
            .expression_attribute_values(":state", string_attr(next.state.clone()))
            .expression_attribute_values(":next", number_attr(next.version))
            .expression_attribute_values(":expected", number_attr(expected))
            .expression_attribute_values(":since", number_attr(next.since_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(StoreError::dynamo("UpdateItem", &e)),
            },
        }
    }
}
