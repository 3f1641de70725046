//! The orders table.

use super::keys::orders as keys;
use super::{StoreError, item_with_keys};
use crate::domain::order::Order;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::TransactWriteItem;

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
}
