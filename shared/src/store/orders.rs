//! The orders table.

use super::{Item, StoreError, item_with_keys, s};
use crate::domain::order::Order;
use crate::domain::ts;
use crate::keys::{GSI1PK, GSI1SK, PK, SK, orders::*};
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

    fn key(order_id: &str) -> Item {
        [
            (PK.to_owned(), s(order_pk(order_id))),
            (SK.to_owned(), s(ORDER_SK)),
        ]
        .into()
    }

    /// The transaction item that writes a new order (never over another).
    pub fn put_new(&self, order: &Order) -> Result<TransactWriteItem, StoreError> {
        let item = item_with_keys(
            order,
            &[
                (PK, order_pk(&order.order_id)),
                (SK, ORDER_SK.to_owned()),
                (GSI1PK, status_pk(order.status.as_str())),
                (GSI1SK, ts::format(&order.expires_at)),
            ],
        )?;
        super::put_new(&self.table, item)
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        super::get_item(&self.client, &self.table, Self::key(order_id)).await
    }
}
