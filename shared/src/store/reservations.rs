//! The checkout transactions: stock out, order in, idempotency record and
//! throttle count written, all or nothing. Failed conditions become
//! reservation outcomes here, read by the role of the item that failed.

use super::catalog::CatalogStore;
use super::flash_sales::FlashSaleStore;
use super::keys::{PK, catalog, flash_sales};
use super::orders::OrderStore;
use super::requests::{RequestKey, RequestStore};
use super::transaction::{Cancelled, Transaction};
use super::{StoreError, number_attr, read_number, string_attr};
use crate::config::Tables;
use crate::domain::flash_sale::FlashSale;
use crate::domain::order::Order;
use crate::domain::throttle::Throttle;
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("not enough stock of {sku}")]
    InsufficientStock { sku: String, available: Option<i64> },
    #[error("the sale is sold out")]
    SoldOut,
    #[error("the buyer may buy at most {limit} in this sale")]
    LimitReached { limit: u32 },
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

/// What a container knows about a sale's empty shards: the store skips the
/// ones it knows, and tells it each one it finds empty.
pub trait ShardMemory: Sync {
    fn known_empty(&self, shard: u32) -> bool;
    fn found_empty(&self, shard: u32);
}

/// What a reservation writes besides stock: the order, the answer recorded
/// under the request's idempotency key, and the attempt counted in the
/// buyer's throttle window of each SKU.
#[derive(Debug, Clone, Copy)]
pub struct Reservation<'a> {
    pub order: &'a Order,
    pub request: RequestKey<'a>,
    /// The 202 body a replay of this request answers.
    pub answer: &'a str,
    pub throttle: &'a Throttle,
}

/// The parts of a cart's transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cart {
    Line(usize),
    Throttle(usize),
    Order,
    Record,
}

/// The parts of a flash purchase's transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flash {
    Shard,
    Buyer,
    Throttle,
    Order,
    Record,
}

#[derive(Clone, Debug)]
pub struct ReservationStore {
    client: Client,
    catalog: CatalogStore,
    sales: FlashSaleStore,
    orders: OrderStore,
    requests: RequestStore,
}

impl ReservationStore {
    pub fn new(client: Client, tables: &Tables) -> Self {
        let catalog = CatalogStore::new(client.clone(), &tables.catalog);
        Self {
            sales: FlashSaleStore::new(client.clone(), &tables.flash_sales, catalog.clone()),
            orders: OrderStore::new(client.clone(), &tables.orders),
            requests: RequestStore::new(client.clone(), &tables.requests),
            catalog,
            client,
        }
    }

    /// A normal order: every line's stock decremented if it stays >= 0.
    pub async fn reserve_cart(&self, r: &Reservation<'_>) -> Result<(), ReserveError> {
        let order = r.order;
        let now = string_attr(ts::format(&order.created_at));
        let mut tx = Transaction::new();
        for (i, line) in order.items.iter().enumerate() {
            let update = Update::builder()
                .table_name(self.catalog.table())
                .set_key(Some(catalog::product(&line.sku)))
                .update_expression("SET #stock = #stock - :q, #updated = :now")
                .condition_expression("attribute_exists(#pk) AND #stock >= :q")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#stock", "stock")
                .expression_attribute_names("#updated", "updated_at")
                .expression_attribute_values(":q", number_attr(line.quantity))
                .expression_attribute_values(":now", now.clone())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(StoreError::from)?;
            tx.push(
                Cart::Line(i),
                TransactWriteItem::builder().update(update).build(),
            );
        }
        for (i, line) in order.items.iter().enumerate() {
            let count =
                self.requests
                    .count_item(&order.user, &line.sku, r.throttle, order.created_at)?;
            tx.push(Cart::Throttle(i), count);
        }
        tx.push(Cart::Order, self.orders.put_new(order)?);
        tx.push(Cart::Record, self.record(r)?);
        let cancelled = match tx.commit(&self.client).await? {
            Ok(()) => return Ok(()),
            Err(c) => c,
        };
        if cancelled.failed(Cart::Record) {
            return Err(ReserveError::Duplicate);
        }
        let sku = |i: usize| order.items[i].sku.clone();
        if let Some((Cart::Throttle(i), _)) =
            cancelled.first_failed(|r| matches!(r, Cart::Throttle(_)))
        {
            return Err(ReserveError::Throttled { sku: sku(i) });
        }
        if let Some((Cart::Line(i), old)) = cancelled.first_failed(|r| matches!(r, Cart::Line(_))) {
            let available = old.and_then(|item| read_number(item, "stock"));
            return Err(ReserveError::InsufficientStock {
                sku: sku(i),
                available,
            });
        }
        Err(ReserveError::Conflict)
    }

    /// A flash-sale order: `quantity` from one shard, and the buyer's counter
    /// kept within the sale's limit, in the same transaction.
    ///
    /// Shards are tried in a random order, not from a random start: buyers who
    /// find a shard empty at the same moment spread over the others instead of
    /// all moving on to the next one. After the first shard that cannot give
    /// `quantity`, one consistent read of every shard decides: only shards that
    /// hold enough are tried, and none holding any is `SoldOut` at once. So a
    /// buyer arriving as the last units go pays one failed transaction and one
    /// read, not one failed transaction per shard. Shards `shards` knows empty
    /// are skipped: a sale whose shards are all known empty is sold out without
    /// a DynamoDB call.
    pub async fn reserve_flash(
        &self,
        r: &Reservation<'_>,
        sale: &FlashSale,
        quantity: u32,
        shards: &dyn ShardMemory,
    ) -> Result<(), ReserveError> {
        let order = r.order;
        let buyer = self.buyer_update(sale, &order.user, quantity)?;
        let throttle =
            self.requests
                .count_item(&order.user, &sale.sku, r.throttle, order.created_at)?;
        let record = self.record(r)?;
        // the order names its shard, where a failed payment returns the units
        let mut placed = order.clone();

        let mut candidates: Vec<u32> = (0..sale.shards)
            .filter(|s| !shards.known_empty(*s))
            .collect();
        fastrand::shuffle(&mut candidates);
        let mut read_all = false;
        // Sold out only when no shard holds a unit; shards that hold some,
        // but fewer than asked, make it "not that many".
        let mut some_left = false;
        while let Some(shard) = candidates.pop() {
            let mut tx = Transaction::new();
            tx.push(Flash::Shard, self.shard_update(sale, shard, quantity)?);
            tx.push(Flash::Buyer, buyer.clone());
            tx.push(Flash::Throttle, throttle.clone());
            placed.sale_shard = Some(shard);
            tx.push(Flash::Order, self.orders.put_new(&placed)?);
            tx.push(Flash::Record, record.clone());
            let cancelled = match tx.commit(&self.client).await? {
                Ok(()) => return Ok(()),
                Err(c) => c,
            };
            refusal(&cancelled, sale)?;
            if !read_all {
                read_all = true;
                let left = self.sales.shard_remaining(sale, true).await?;
                candidates.clear();
                for (i, units) in (0u32..).zip(left) {
                    if units == 0 {
                        shards.found_empty(i);
                    } else if units < u64::from(quantity) {
                        some_left = true;
                    } else {
                        // the shard just tried too: units may have come back
                        candidates.push(i);
                    }
                }
                fastrand::shuffle(&mut candidates);
                continue;
            }
            // A shard read as holding enough was emptied by others meanwhile.
            // Without the old item (emulators), a shard that could not give
            // one unit holds none; for more, we cannot tell.
            let left = cancelled
                .first_failed(|r| r == Flash::Shard)
                .and_then(|(_, old)| old)
                .and_then(|item| read_number::<u64>(item, "remaining"));
            if left.map_or(quantity == 1, |l| l == 0) {
                shards.found_empty(shard);
            } else {
                some_left = true;
            }
        }
        if some_left {
            Err(ReserveError::InsufficientStock {
                sku: sale.sku.clone(),
                available: None,
            })
        } else {
            Err(ReserveError::SoldOut)
        }
    }

    fn record(&self, r: &Reservation<'_>) -> Result<TransactWriteItem, StoreError> {
        self.requests
            .record_item(&r.request, 202, r.answer, r.order.created_at)
    }

    fn shard_update(
        &self,
        sale: &FlashSale,
        shard: u32,
        quantity: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(self.sales.table())
            .set_key(Some(flash_sales::shard(&sale.sale_id, shard)))
            .update_expression("SET #left = #left - :q")
            .condition_expression("#left >= :q")
            .expression_attribute_names("#left", "remaining")
            .expression_attribute_values(":q", number_attr(quantity))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The buyer's counter: `bought + quantity <= limit`, written as
    /// `bought <= limit - quantity`. A quantity above the limit is refused
    /// here, whatever the caller checked.
    fn buyer_update(
        &self,
        sale: &FlashSale,
        user: &str,
        quantity: u32,
    ) -> Result<TransactWriteItem, ReserveError> {
        let limit = sale.per_user_limit;
        let headroom = limit
            .checked_sub(quantity)
            .ok_or(ReserveError::LimitReached { limit })?;
        let update = Update::builder()
            .table_name(self.sales.table())
            .set_key(Some(flash_sales::purchases(&sale.sale_id, user)))
            .update_expression("ADD #bought :q")
            .condition_expression("attribute_not_exists(#bought) OR #bought <= :max")
            .expression_attribute_names("#bought", "bought")
            .expression_attribute_values(":q", number_attr(quantity))
            .expression_attribute_values(":max", number_attr(headroom))
            .build()
            .map_err(StoreError::from)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// A flash purchase's cancellation that no other shard can change: a used
/// key, a full throttle window, the buyer's limit, or conflicts that outlasted
/// the retries. `Ok` when only the shard could not give the units.
fn refusal(cancelled: &Cancelled<Flash>, sale: &FlashSale) -> Result<(), ReserveError> {
    if cancelled.failed(Flash::Record) {
        Err(ReserveError::Duplicate)
    } else if cancelled.failed(Flash::Throttle) {
        Err(ReserveError::Throttled {
            sku: sale.sku.clone(),
        })
    } else if cancelled.failed(Flash::Buyer) {
        Err(ReserveError::LimitReached {
            limit: sale.per_user_limit,
        })
    } else if cancelled.failed(Flash::Shard) {
        Ok(())
    } else {
        // contention on these items outlasted the retries: the buyer retries
        // (never "sold out")
        Err(ReserveError::Conflict)
    }
}
