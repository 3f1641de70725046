//! The checkout transactions: stock out, order in, idempotency record
//! written, all or nothing. Failed conditions become checkout outcomes here.

use super::{Item, StoreError, n, s};
use crate::domain::flash_sale::FlashSale;
use crate::domain::order::Order;
use crate::domain::ts;
use crate::keys::{PK, SK, flash_sales::*};
use crate::store::catalog::CatalogStore;
use crate::store::orders::OrderStore;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("not enough stock of {sku}")]
    InsufficientStock { sku: String, available: Option<i64> },
    #[error("the sale is sold out")]
    SoldOut,
    #[error("the buyer's limit for this sale is reached")]
    LimitReached,
    #[error("another write to the same items was in progress")]
    Conflict,
    /// The buyer's throttle window for this SKU is full.
    #[error("throttled on {sku}")]
    Throttled { sku: String },
    /// The idempotency key already has a record: the caller looks it up.
    #[error("the idempotency key was used before")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the caller knows about a sale's empty shards: it skips them, and is
/// told each one found empty, to skip next time.
pub trait EmptyShards: Sync {
    fn known_empty(&self, shard: u32) -> bool;
    fn found_empty(&self, shard: u32);
}

/// How often a transaction cancelled by `TransactionConflict` is tried again
/// (the SDK does not retry those).
const CONFLICT_RETRIES: u32 = 3;

#[derive(Clone, Debug)]
pub struct CheckoutStore {
    client: Client,
    catalog: CatalogStore,
    sales_table: String,
    orders: OrderStore,
}

enum Outcome {
    Done,
    Cancelled(Vec<CancellationReason>),
}

fn failed(reasons: &[CancellationReason], i: usize) -> bool {
    reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

fn conflicted(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
}

impl CheckoutStore {
    pub fn new(
        client: Client,
        catalog: CatalogStore,
        sales_table: impl Into<String>,
        orders: OrderStore,
    ) -> Self {
        Self {
            client,
            catalog,
            sales_table: sales_table.into(),
            orders,
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Outcome, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Ok(Outcome::Cancelled(c.cancellation_reasons().to_vec()))
                }
                _ => Err(StoreError::dynamo("TransactWriteItems", &e)),
            },
        }
    }

    /// A normal order: every line's stock decremented if it stays >= 0;
    /// `record` is the idempotency record, written with the order.
    /// `throttles` count the attempt against each line's throttle window.
    pub async fn place_order(
        &self,
        order: &Order,
        record: TransactWriteItem,
        throttles: Vec<TransactWriteItem>,
    ) -> Result<(), PlaceError> {
        let now = s(ts::format(&order.created_at));
        let mut items = Vec::with_capacity(order.items.len() + 2);
        for line in &order.items {
            let update = Update::builder()
                .table_name(self.catalog.table())
                .set_key(Some(CatalogStore::key(&line.sku)))
                .update_expression("SET #stock = #stock - :q, #updated = :now")
                .condition_expression("attribute_exists(#pk) AND #stock >= :q")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#stock", "stock")
                .expression_attribute_names("#updated", "updated_at")
                .expression_attribute_values(":q", n(line.quantity))
                .expression_attribute_values(":now", now.clone())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let lines = order.items.len();
        items.extend(throttles);
        items.push(self.orders.put_new(order)?);
        items.push(record);
        for attempt in 1..=CONFLICT_RETRIES {
            let reasons = match self.transact(items.clone()).await? {
                Outcome::Done => return Ok(()),
                Outcome::Cancelled(r) => r,
            };
            if failed(&reasons, items.len() - 1) {
                return Err(PlaceError::Duplicate);
            }
            if let Some(i) = (lines..items.len() - 2).find(|i| failed(&reasons, *i)) {
                return Err(PlaceError::Throttled {
                    sku: order.items[i - lines].sku.clone(),
                });
            }
            if let Some(i) = (0..order.items.len()).find(|i| failed(&reasons, *i)) {
                let sku = order.items[i].sku.clone();
                let available = reasons[i]
                    .item()
                    .and_then(|item| item.get("stock"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok());
                return Err(PlaceError::InsufficientStock { sku, available });
            }
            if !conflicted(&reasons) || attempt == CONFLICT_RETRIES {
                return Err(PlaceError::Conflict);
            }
            backoff(attempt).await;
        }
        Err(PlaceError::Conflict)
    }

    /// A flash-sale order: `quantity` from one shard (tried in a random
    /// order), and the buyer's counter kept within the sale's limit, in
    /// the same transaction.
    ///
    /// Shards `shards` knows empty are skipped: a sale whose shards are all
    /// known empty is sold out without a DynamoDB call.
    pub async fn place_flash_order(
        &self,
        order: &Order,
        sale: &FlashSale,
        quantity: u32,
        record: TransactWriteItem,
        throttle: TransactWriteItem,
        shards: &dyn EmptyShards,
    ) -> Result<(), PlaceError> {
        let buyer = self.buyer_update(sale, &order.user, quantity)?;
        let order_put = self.orders.put_new(order)?;
        // A random order, not a random start: buyers who find a shard empty
        // at the same moment spread over the others instead of all moving on
        // to the next one and emptying it together.
        let mut order: Vec<u32> = (0..sale.shards).collect();
        fastrand::shuffle(&mut order);
        // Sold out only when every shard is known or found empty; shards that
        // hold some units, but fewer than asked, make it "not that many".
        let mut some_left = false;
        for shard in order {
            if shards.known_empty(shard) {
                continue;
            }
            let items = vec![
                self.shard_update(sale, shard, quantity)?,
                buyer.clone(),
                throttle.clone(),
                order_put.clone(),
                record.clone(),
            ];
            let mut attempt = 0;
            loop {
                attempt += 1;
                let reasons = match self.transact(items.clone()).await? {
                    Outcome::Done => return Ok(()),
                    Outcome::Cancelled(r) => r,
                };
                if failed(&reasons, 4) {
                    return Err(PlaceError::Duplicate);
                }
                if failed(&reasons, 2) {
                    return Err(PlaceError::Throttled {
                        sku: sale.sku.clone(),
                    });
                }
                if failed(&reasons, 1) {
                    return Err(PlaceError::LimitReached);
                }
                if failed(&reasons, 0) {
                    let left = reasons[0]
                        .item()
                        .and_then(|i| i.get("remaining"))
                        .and_then(|v| v.as_n().ok());
                    // Without the old item (emulators), a shard that could not
                    // give one unit holds none; for more, we cannot tell.
                    if left.map_or(quantity == 1, |l| l == "0") {
                        shards.found_empty(shard);
                    } else {
                        some_left = true;
                    }
                    break; // try the next shard
                }
                // Anything else is contention on these items: retry a few
                // times, then tell the buyer to retry (never "sold out").
                if !conflicted(&reasons) || attempt == CONFLICT_RETRIES {
                    return Err(PlaceError::Conflict);
                }
                backoff(attempt).await;
            }
        }
        if some_left {
            Err(PlaceError::InsufficientStock {
                sku: sale.sku.clone(),
                available: None,
            })
        } else {
            Err(PlaceError::SoldOut)
        }
    }

    fn shard_update(
        &self,
        sale: &FlashSale,
        shard: u32,
        quantity: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let key: Item = [
            (PK.to_owned(), s(shard_pk(&sale.sale_id, shard))),
            (SK.to_owned(), s(SHARD_SK)),
        ]
        .into();
        let update = Update::builder()
            .table_name(&self.sales_table)
            .set_key(Some(key))
            .update_expression("SET #left = #left - :q")
            .condition_expression("#left >= :q")
            .expression_attribute_names("#left", "remaining")
            .expression_attribute_values(":q", n(quantity))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn buyer_update(
        &self,
        sale: &FlashSale,
        user: &str,
        quantity: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let key: Item = [
            (PK.to_owned(), s(purchases_pk(&sale.sale_id, user))),
            (SK.to_owned(), s(PURCHASES_SK)),
        ]
        .into();
        // bought + quantity <= limit, written as bought <= limit - quantity
        let headroom = sale.per_user_limit.saturating_sub(quantity);
        let update = Update::builder()
            .table_name(&self.sales_table)
            .set_key(Some(key))
            .update_expression("ADD #bought :q")
            .condition_expression("attribute_not_exists(#bought) OR #bought <= :max")
            .expression_attribute_names("#bought", "bought")
            .expression_attribute_values(":q", n(quantity))
            .expression_attribute_values(":max", n(headroom))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

async fn backoff(attempt: u32) {
    // full jitter, 5..40 ms doubling
    let cap = 5u64 << attempt.min(3);
    tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(
        1..=cap.max(2),
    )))
    .await;
}
