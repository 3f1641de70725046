//! An order's payment, as conditional writes on the order (ADR 0018): the
//! record of a charge attempt before each call, and each payment fact's step
//! (`domain::payment::step`), with the stock released in the same transaction
//! as the status that releases it, so a release happens exactly once.

use super::keys::{self, GSI1PK, PK};
use super::transaction::Transaction;
use super::{Item, StoreError, number_attr, string_attr};
use crate::config::Tables;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::payment::{Fact, Step, Unchanged, after_paid, step};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};

/// How long after its reservation expired an attempted charge may still be
/// sent again with the same key (its outcome unknown): 25 minutes after the
/// order at most, far inside the provider's 24 hours of key retention, so a
/// retry can only ever return the first charge. After it no charge is sent;
/// the sweeper asks the provider what happened ([`reconcilable`]).
pub const CHARGE_GRACE: Duration = Duration::minutes(10);
/// Time for a charge sent at the end of the grace to finish (its deadline is
/// 20 s, the finalizer's timeout 30 s) before the provider is asked.
pub const SETTLE: Duration = Duration::minutes(2);
/// "No charge" must be the provider's answer twice, this far apart, before an
/// attempted order expires: a provider's search may lag its charges.
pub const NOTHING_TWICE: Duration = Duration::minutes(5);

/// Whether an attempted order's outcome can be asked of the provider: no
/// charge can be in flight or sent any more.
pub fn reconcilable(order: &Order, now: DateTime<Utc>) -> bool {
    order.status == OrderStatus::PendingPayment
        && order.charge_started_at.is_some()
        && order.expires_at + CHARGE_GRACE + SETTLE <= now
}

/// Whether the finalizer may still send a charge for the order.
pub fn chargeable(order: &Order, now: DateTime<Utc>) -> bool {
    order.status == OrderStatus::PendingPayment
        && if order.charge_started_at.is_some() {
            order.expires_at + CHARGE_GRACE > now
        } else {
            order.expires_at > now
        }
}

/// Times one fact is re-read and re-tried when another writer moved the order
/// between our read and our write.
const RACES: u32 = 5;

/// Whether a charge may be sent now.
#[derive(Debug)]
pub enum Begin {
    /// Recorded: send it (attempt `order.charge_attempts`).
    Charge(Order),
    /// Settled already (paid, confirmed, failed, expired, refunded).
    Settled(Order),
    /// Still pending, but no charge may be sent: the reservation expired
    /// before any attempt (the sweeper releases it), or more than
    /// [`CHARGE_GRACE`] ago after one (the sweeper asks the provider).
    Closed(Order),
    Missing,
}

/// What a fact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub before: OrderStatus,
    pub after: OrderStatus,
    /// `None` when the order moved; why not, otherwise.
    pub unchanged: Option<Unchanged>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Order,
    Release,
}

#[derive(Clone, Debug)]
pub struct PaymentStore {
    client: Client,
    orders: String,
    catalog: String,
    sales: String,
}

impl PaymentStore {
    pub fn new(client: Client, tables: &Tables) -> Self {
        Self {
            client,
            orders: tables.orders.clone(),
            catalog: tables.catalog.clone(),
            sales: tables.flash_sales.clone(),
        }
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        super::get_item(
            &self.client,
            &self.orders,
            keys::orders::order(order_id),
            true,
        )
        .await
    }

    /// Records an attempt if a charge may be sent ([`chargeable`]): the order
    /// is pending, and either its reservation holds and no attempt was made,
    /// or one was and the reservation expired less than [`CHARGE_GRACE`] ago.
    /// One conditional write decides, so the sweeper's expiry (which requires
    /// no attempt, or the grace and [`SETTLE`] over) and this cannot both win.
    pub async fn begin_charge(
        &self,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, StoreError> {
        let result = self
            .update(order_id)
            .update_expression(
                "SET #attempts = if_not_exists(#attempts, :zero) + :one, \
                 #started = if_not_exists(#started, :now), #updated = :now",
            )
            .condition_expression(
                "#status = :pending AND ((attribute_not_exists(#started) AND #expires > :now) \
                 OR (attribute_exists(#started) AND #expires > :cutoff))",
            )
            .expression_attribute_names("#attempts", "charge_attempts")
            .expression_attribute_names("#started", "charge_started_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_values(":zero", number_attr(0))
            .expression_attribute_values(":one", number_attr(1))
            .expression_attribute_values(":pending", status(OrderStatus::PendingPayment))
            .expression_attribute_values(":cutoff", string_attr(ts::format(&(now - CHARGE_GRACE))))
            .expression_attribute_values(":now", string_attr(ts::format(&now)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Begin::Charge(order_of(out.attributes)?.ok_or_else(
                || StoreError::Corrupt("an updated order came back empty".into()),
            )?)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match order_of(c.item.clone())? {
                        None => Ok(Begin::Missing),
                        Some(o) if o.status != OrderStatus::PendingPayment => Ok(Begin::Settled(o)),
                        Some(o) => Ok(Begin::Closed(o)),
                    }
                }
                _ => Err(StoreError::dynamo("UpdateItem", &e)),
            },
        }
    }

    /// Applies one payment fact to the order, whatever its state, as the one
    /// conditional step `domain::payment::step` gives; a write that loses a
    /// race re-reads the order and decides again.
    pub async fn apply(
        &self,
        mut order: Order,
        fact: &Fact,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let before = order.status;
        for _ in 0..RACES {
            let moved = match step(order.status, fact) {
                Step::Nothing(why) => {
                    return Ok(Applied {
                        before,
                        after: order.status,
                        unchanged: Some(why),
                    });
                }
                Step::Pay => self.pay(&order, fact, now).await?,
                Step::Confirm => self.confirm(&order, now).await?,
                Step::Fail => self.fail(&order, fact, now).await?,
                Step::Refund => self.refund(&order, now).await?,
                Step::RememberRefund => self.remember_refund(&order, fact).await?,
            };
            match moved {
                Ok(after) => {
                    return Ok(Applied {
                        before,
                        after,
                        unchanged: None,
                    });
                }
                // another writer moved it first: decide again on what it is now
                Err(()) => {
                    order = self.get(&order.order_id).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("order {} vanished", order.order_id))
                    })?;
                }
            }
        }
        Err(StoreError::Dynamo {
            op: "UpdateItem",
            message: format!("order {} kept changing under {RACES} tries", order.order_id),
        })
    }

    /// Expires a pending order whose reservation ran out with no charge
    /// attempt, releasing its stock in the same transaction. `false` when the
    /// order no longer qualifies (paid, attempted, already expired).
    pub async fn expire(&self, order: &Order, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let update = self
            .status_update(order, OrderStatus::Expired, now)
            .condition_expression(
                "#status = :from AND attribute_not_exists(#started) AND #expires <= :now",
            )
            .expression_attribute_names("#started", "charge_started_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_values(":from", status(OrderStatus::PendingPayment))
            .build()?;
        self.commit_with_release(order, update).await
    }

    /// Notes that the provider had no charge for the order now (the first of
    /// the two answers [`expire_unsent`](Self::expire_unsent) needs); keeps
    /// the first note. `false` when the order is no longer pending.
    pub async fn note_nothing_found(
        &self,
        order: &Order,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let moved = self
            .moved(
                self.update(&order.order_id)
                    .update_expression("SET #seen = if_not_exists(#seen, :now)")
                    .condition_expression("#status = :from")
                    .expression_attribute_names("#seen", "nothing_found_at")
                    .expression_attribute_values(":now", string_attr(ts::format(&now)))
                    .expression_attribute_values(":from", status(OrderStatus::PendingPayment)),
            )
            .await?;
        Ok(moved.is_ok())
    }

    /// Expires a pending order whose charge attempts the provider says never
    /// reached it, asked twice [`NOTHING_TWICE`] apart, once no charge can be
    /// sent or in flight any more ([`reconcilable`]), releasing its stock in
    /// the same transaction.
    pub async fn expire_unsent(
        &self,
        order: &Order,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = self
            .status_update(order, OrderStatus::Expired, now)
            .condition_expression(
                "#status = :from AND attribute_exists(#started) AND #expires <= :settled \
                 AND #seen <= :seen",
            )
            .expression_attribute_names("#started", "charge_started_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#seen", "nothing_found_at")
            .expression_attribute_values(":from", status(OrderStatus::PendingPayment))
            .expression_attribute_values(
                ":settled",
                string_attr(ts::format(&(now - CHARGE_GRACE - SETTLE))),
            )
            .expression_attribute_values(":seen", string_attr(ts::format(&(now - NOTHING_TWICE))))
            .build()?;
        self.commit_with_release(order, update).await
    }

    // ---------------------------------------------------------------- steps

    async fn pay(
        &self,
        order: &Order,
        fact: &Fact,
        now: DateTime<Utc>,
    ) -> Result<Result<OrderStatus, ()>, StoreError> {
        let Fact::Succeeded { payment_id } = fact else {
            return Err(StoreError::Corrupt("pay without a success".into()));
        };
        let paid = self
            .moved(
                self.transition(order, OrderStatus::PendingPayment, OrderStatus::Paid, now)
                    .update_expression(set_status_and("#pid = :pid"))
                    .expression_attribute_names("#pid", "payment_id")
                    .expression_attribute_values(":pid", string_attr(payment_id.clone()))
                    .return_values(ReturnValue::AllNew),
            )
            .await?;
        let Ok(Some(paid)) = paid else {
            return Ok(Err(()));
        };
        // paid is momentary: confirmed at once, or refunded if that came first
        Ok(match self.confirm(&paid, now).await? {
            Ok(next) => Ok(next),
            // a refund moved it meanwhile: paid -> refunded is its own step
            Err(()) => Ok(OrderStatus::Paid),
        })
    }

    async fn confirm(
        &self,
        paid: &Order,
        now: DateTime<Utc>,
    ) -> Result<Result<OrderStatus, ()>, StoreError> {
        let next = after_paid(paid.refund_seen.is_some());
        let done = self
            .moved(
                self.transition(paid, OrderStatus::Paid, next, now)
                    .update_expression(set_status_and("")),
            )
            .await?;
        Ok(done.map(|_| next))
    }

    async fn refund(
        &self,
        order: &Order,
        now: DateTime<Utc>,
    ) -> Result<Result<OrderStatus, ()>, StoreError> {
        let done = self
            .moved(
                self.transition(order, order.status, OrderStatus::Refunded, now)
                    .update_expression(set_status_and("")),
            )
            .await?;
        Ok(done.map(|_| OrderStatus::Refunded))
    }

    async fn remember_refund(
        &self,
        order: &Order,
        fact: &Fact,
    ) -> Result<Result<OrderStatus, ()>, StoreError> {
        let Fact::Refunded { payment_id } = fact else {
            return Err(StoreError::Corrupt("a refund without its charge".into()));
        };
        let done = self
            .moved(
                self.update(&order.order_id)
                    .update_expression("SET #seen = :pid")
                    .condition_expression("#status = :from")
                    .expression_attribute_names("#seen", "refund_seen")
                    .expression_attribute_values(":pid", string_attr(payment_id.clone()))
                    .expression_attribute_values(":from", status(OrderStatus::PendingPayment)),
            )
            .await?;
        Ok(done.map(|_| OrderStatus::PendingPayment))
    }

    async fn fail(
        &self,
        order: &Order,
        fact: &Fact,
        now: DateTime<Utc>,
    ) -> Result<Result<OrderStatus, ()>, StoreError> {
        let Fact::Failed { code } = fact else {
            return Err(StoreError::Corrupt("fail without a failure".into()));
        };
        let update = self
            .status_update(order, OrderStatus::PaymentFailed, now)
            .update_expression(set_status_and("#code = :code"))
            .condition_expression("#status = :from")
            .expression_attribute_names("#code", "failure_code")
            .expression_attribute_values(":code", string_attr(code.clone()))
            .expression_attribute_values(":from", status(OrderStatus::PendingPayment))
            .build()?;
        Ok(if self.commit_with_release(order, update).await? {
            Ok(OrderStatus::PaymentFailed)
        } else {
            Err(())
        })
    }

    // ---------------------------------------------------------------- writes

    fn update(&self, order_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.orders)
            .set_key(Some(keys::orders::order(order_id)))
            .expression_attribute_names("#status", "status")
    }

    /// `from -> to` as one conditional UpdateItem; the caller adds the
    /// update expression (`set_status_and`).
    fn transition(
        &self,
        order: &Order,
        from: OrderStatus,
        to: OrderStatus,
        now: DateTime<Utc>,
    ) -> UpdateItemFluentBuilder {
        self.update(&order.order_id)
            .condition_expression("#status = :from")
            .expression_attribute_names("#idx", GSI1PK)
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_values(":from", status(from))
            .expression_attribute_values(":to", status(to))
            .expression_attribute_values(
                ":idx",
                string_attr(keys::orders::status_index(&order.order_id, to)),
            )
            .expression_attribute_values(":now", string_attr(ts::format(&now)))
    }

    /// Runs a conditional update: `Ok(Ok(new item))` when it applied,
    /// `Ok(Err(()))` when its condition failed.
    async fn moved(
        &self,
        update: UpdateItemFluentBuilder,
    ) -> Result<Result<Option<Order>, ()>, StoreError> {
        match update.send().await {
            Ok(out) => Ok(Ok(order_of(out.attributes)?)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Err(())),
                _ => Err(StoreError::dynamo("UpdateItem", &e)),
            },
        }
    }

    /// The order's part of a releasing transaction.
    fn status_update(
        &self,
        order: &Order,
        to: OrderStatus,
        now: DateTime<Utc>,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.orders)
            .set_key(Some(keys::orders::order(&order.order_id)))
            .update_expression(set_status_and(""))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#idx", GSI1PK)
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_values(":to", status(to))
            .expression_attribute_values(
                ":idx",
                string_attr(keys::orders::status_index(&order.order_id, to)),
            )
            .expression_attribute_values(":now", string_attr(ts::format(&now)))
    }

    /// The order's status change and its stock's return, together or not at
    /// all. `false` when the order's condition failed.
    async fn commit_with_release(&self, order: &Order, update: Update) -> Result<bool, StoreError> {
        let mut tx = Transaction::new();
        tx.push(
            Part::Order,
            TransactWriteItem::builder().update(update).build(),
        );
        for item in self.release(order)? {
            tx.push(Part::Release, item);
        }
        match tx.commit(&self.client).await? {
            Ok(()) => Ok(true),
            Err(c) if c.failed(Part::Order) => Ok(false),
            Err(_) => Err(StoreError::Dynamo {
                op: "TransactWriteItems",
                message: format!("releasing order {} was cancelled", order.order_id),
            }),
        }
    }

    /// Where the order's units go back: each line's product, or the sale's
    /// shard it came from (shard 0 for orders placed before shards were
    /// recorded), with the buyer's count lowered so they may buy again.
    fn release(&self, order: &Order) -> Result<Vec<TransactWriteItem>, StoreError> {
        let add = |table: &str,
                   key: Item,
                   attr: &str,
                   by: i64|
         -> Result<TransactWriteItem, StoreError> {
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("ADD #n :q")
                .expression_attribute_names("#n", attr)
                .expression_attribute_values(":q", number_attr(by))
                .build()?;
            Ok(TransactWriteItem::builder().update(update).build())
        };
        match &order.sale_id {
            None => order
                .items
                .iter()
                .map(|line| {
                    add(
                        &self.catalog,
                        keys::catalog::product(&line.sku),
                        "stock",
                        i64::from(line.quantity),
                    )
                })
                .collect(),
            Some(sale) => {
                let units: i64 = order.items.iter().map(|l| i64::from(l.quantity)).sum();
                let shard = order.sale_shard.unwrap_or(0);
                Ok(vec![
                    add(
                        &self.sales,
                        keys::flash_sales::shard(sale, shard),
                        "remaining",
                        units,
                    )?,
                    add(
                        &self.sales,
                        keys::flash_sales::purchases(sale, &order.user),
                        "bought",
                        -units,
                    )?,
                ])
            }
        }
    }
}

/// `SET #status = :to, #idx = :idx, #updated = :now[, more]`.
fn set_status_and(more: &str) -> String {
    let base = "SET #status = :to, #idx = :idx, #updated = :now";
    if more.is_empty() {
        base.to_owned()
    } else {
        format!("{base}, {more}")
    }
}

fn status(s: OrderStatus) -> aws_sdk_dynamodb::types::AttributeValue {
    string_attr(s.as_str())
}

fn order_of(item: Option<Item>) -> Result<Option<Order>, StoreError> {
    match item {
        Some(i) if i.contains_key(PK) => serde_dynamo::from_item(i)
            .map(Some)
            .map_err(StoreError::from),
        _ => Ok(None),
    }
}
