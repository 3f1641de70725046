//! The orders table.

use super::keys::orders as keys;
use super::keys::{GSI1PK, GSI1SK, PK};
use super::{StoreError, item_with_keys, string_attr};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

/// Index partitions read at once by [`OrderStore::due`].
const PARTITIONS_AT_ONCE: usize = 8;
/// Items per Query page of [`OrderStore::due`].
const PAGE: usize = 100;

#[derive(Clone, Debug)]
pub struct OrderStore {
    client: Client,
    table: String,
}

impl OrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The transaction item that writes a new order (never over another).
    pub(crate) fn put_new(&self, order: &Order) -> Result<TransactWriteItem, StoreError> {
        super::put_new(&self.table, item_with_keys(order, keys::order_keys(order))?)
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        super::get_item(&self.client, &self.table, keys::order(order_id), false).await
    }

    /// Ids of orders in `status` whose reservation expires at or before
    /// `before`, oldest first, at most `limit` from each index partition
    /// (Queries of up to 100 items per page, following `LastEvaluatedKey`; a
    /// few partitions at a time): what the sweeper walks.
    pub async fn due(
        &self,
        status: OrderStatus,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let before = ts::format(&before);
        let reads = keys::status_partitions(status)
            .into_iter()
            .map(|partition| self.due_in(partition, before.clone(), limit));
        let pages: Vec<_> = futures_util::stream::iter(reads)
            .buffer_unordered(PARTITIONS_AT_ONCE)
            .collect()
            .await;
        let mut ids = Vec::new();
        for page in pages {
            ids.extend(page?);
        }
        Ok(ids)
    }

    async fn due_in(
        &self,
        partition: String,
        before: String,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::BY_STATUS)
                .key_condition_expression("#p = :p AND #s <= :before")
                .expression_attribute_names("#p", GSI1PK)
                .expression_attribute_names("#s", GSI1SK)
                .expression_attribute_values(":p", string_attr(partition.clone()))
                .expression_attribute_values(":before", string_attr(before.clone()))
                .limit(i32::try_from((limit - ids.len()).min(PAGE)).unwrap_or(PAGE as i32))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                let id = item
                    .get(PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| keys::order_id_of(pk))
                    .ok_or_else(|| StoreError::Corrupt("an order index entry".into()))?;
                ids.push(id.to_owned());
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || ids.len() >= limit {
                return Ok(ids);
            }
        }
    }
}
