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
    /// `before`, at most `limit` from each index partition (one Query per
    /// partition of the status, a few at a time): what the sweeper walks.
    pub async fn due(
        &self,
        status: OrderStatus,
        before: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<String>, StoreError> {
        let before = ts::format(&before);
        let queries = keys::status_partitions(status)
            .into_iter()
            .map(|partition| {
                self.client
                    .query()
                    .table_name(&self.table)
                    .index_name(keys::BY_STATUS)
                    .key_condition_expression("#p = :p AND #s <= :before")
                    .expression_attribute_names("#p", GSI1PK)
                    .expression_attribute_names("#s", GSI1SK)
                    .expression_attribute_values(":p", string_attr(partition))
                    .expression_attribute_values(":before", string_attr(before.clone()))
                    .limit(limit)
                    .send()
            });
        let pages: Vec<_> = futures_util::stream::iter(queries)
            .buffer_unordered(PARTITIONS_AT_ONCE)
            .collect()
            .await;
        let mut ids = Vec::new();
        for page in pages {
            let page = page.map_err(|e| StoreError::dynamo("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                let id = item
                    .get(PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| keys::order_id_of(pk))
                    .ok_or_else(|| StoreError::Corrupt("an order index entry".into()))?;
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }
}
