//! reservation-sweeper: every minute (EventBridge schedule), the orders that
//! the normal path left behind (ADR 0018):
//!
//! - pending, never attempted, reservation run out: `expired`, the stock
//!   released in the same conditional transaction as the status, so two
//!   sweepers at once (or a sweeper and a late finalizer) release it once;
//! - pending with an attempt whose outcome we never learnt (a timeout, a
//!   finalizer that died, a lost webhook), once no charge may be sent or be
//!   in flight: the provider is asked what it did for the order, and the
//!   order settles by its answer (paid -> confirmed, declined ->
//!   payment_failed, nothing -> expired with its stock back);
//! - pending, still chargeable, and untouched for [`STUCK`] (written without
//!   its queue message, its message lost or in the DLQ): its id is sent to
//!   the finalizer again, which decides by the order's state;
//! - `paid` and untouched for [`STUCK`] (a crash between `paid` and
//!   `confirmed`): confirmed.
//!
//! Orders are found through the `by_status` index (64 partitions per status,
//! by reservation expiry), never by a scan.

use futures_util::StreamExt;
use serde::Serialize;
use shared::clock::{SharedClock, system};
use shared::config::{ConfigError, PaymentConfig, Source};
use shared::domain::order::{Order, OrderStatus, RESERVATION_MINUTES};
use shared::domain::payment::Fact;
use shared::payments::breaker::Breaker;
use shared::payments::provider::{Found, Provider, ProviderError};
use shared::queue::OrderQueue;
use shared::store::StoreError;
use shared::store::orders::OrderStore;
use shared::store::payments::{PaymentStore, chargeable, reconcilable};

pub const FUNCTION: &str = "reservation-sweeper";
/// An order nothing moved for this long is re-driven (or confirmed): longer
/// than the queue's visibility timeout (180 s), so a message that is only
/// waiting to be retried is not doubled.
pub const STUCK: chrono::Duration = chrono::Duration::minutes(4);
/// Orders read per index partition per run (64 partitions: up to 19,200
/// orders of one status a minute); the rest wait for the next run.
const PER_PARTITION: usize = 300;
/// Orders handled at once.
const CONCURRENCY: usize = 8;

pub struct Deps {
    orders: OrderStore,
    payments: PaymentStore,
    provider: Provider,
    /// Read only: while the provider is failing, orders are neither re-driven
    /// (the finalizer would refuse them) nor reconciled (the provider cannot
    /// answer), and expiries go on.
    breaker: Breaker,
    queue: OrderQueue,
    clock: SharedClock,
}

impl Deps {
    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let config = PaymentConfig::from_source(src)?;
        let dynamo = shared::aws::dynamodb(sdk);
        let (provider, breaker) = shared::payments::provider_and_breaker(&config, dynamo.clone())?;
        let tables = config.tables;
        let queue_url = src
            .get("ORDER_QUEUE_URL")
            .filter(|u| !u.trim().is_empty())
            .ok_or(ConfigError::Missing("ORDER_QUEUE_URL"))?;
        Ok(Self {
            breaker,
            orders: OrderStore::new(dynamo.clone(), &tables.orders),
            payments: PaymentStore::new(dynamo, &tables),
            provider,
            queue: OrderQueue::new(shared::aws::sqs(sdk), queue_url),
            clock: system(),
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.breaker = self.breaker.with_clock(clock.clone());
        self.clock = clock;
        self
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub expired: usize,
    pub redriven: usize,
    pub confirmed: usize,
    /// Attempted orders settled by asking the provider.
    pub reconciled: usize,
    /// Orders that failed this run (logged); the next run tries again.
    pub errors: usize,
}

/// Why one order was not swept this run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] shared::queue::QueueError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

enum Done {
    Expired,
    Redriven,
    Confirmed,
    Reconciled,
    Nothing,
}

pub async fn handle(
    deps: &Deps,
    _scheduled: serde_json::Value,
) -> Result<Swept, lambda_runtime::Error> {
    let swept = sweep(deps).await?;
    tracing::info!(
        expired = swept.expired,
        redriven = swept.redriven,
        confirmed = swept.confirmed,
        errors = swept.errors,
        "swept"
    );
    Ok(swept)
}

/// One run over the index.
pub async fn sweep(deps: &Deps) -> Result<Swept, StoreError> {
    let now = deps.clock.now();
    // pending orders created STUCK ago or earlier: expiry = creation + 15 min
    let pending_before = now - STUCK + chrono::Duration::minutes(RESERVATION_MINUTES);
    let pending = deps
        .orders
        .due(OrderStatus::PendingPayment, pending_before, PER_PARTITION)
        .await?;
    // paid is momentary: any paid order, whatever its expiry
    let paid = deps
        .orders
        .due(
            OrderStatus::Paid,
            now + chrono::Duration::days(1),
            PER_PARTITION,
        )
        .await?;
    let provider_up = deps.breaker.accepting().await.is_ok();
    let results: Vec<Result<Done, SweepError>> =
        futures_util::stream::iter(pending.into_iter().chain(paid))
            .map(|id| async move { settle(deps, &id, now, provider_up).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let mut swept = Swept::default();
    for r in results {
        match r {
            Ok(Done::Expired) => swept.expired += 1,
            Ok(Done::Redriven) => swept.redriven += 1,
            Ok(Done::Confirmed) => swept.confirmed += 1,
            Ok(Done::Reconciled) => swept.reconciled += 1,
            Ok(Done::Nothing) => {}
            Err(e) => {
                tracing::warn!(error = %e, "an order was not swept; the next run tries again");
                swept.errors += 1;
            }
        }
    }
    Ok(swept)
}

async fn settle(
    deps: &Deps,
    order_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    provider_up: bool,
) -> Result<Done, SweepError> {
    // the index is eventually consistent: decide on the order itself
    let Some(order) = deps.payments.get(order_id).await? else {
        return Ok(Done::Nothing);
    };
    let untouched = now - order.updated_at >= STUCK;
    match order.status {
        OrderStatus::PendingPayment
            if order.charge_started_at.is_none() && order.expires_at <= now =>
        {
            if deps.payments.expire(&order, now).await? {
                tracing::info!(order_id, "reservation expired; stock released");
                Ok(Done::Expired)
            } else {
                // a finalizer's attempt won the race: it decides
                Ok(Done::Nothing)
            }
        }
        OrderStatus::PendingPayment if reconcilable(&order, now) && provider_up => {
            reconcile(deps, order, now).await
        }
        OrderStatus::PendingPayment if untouched && chargeable(&order, now) && provider_up => {
            redrive(deps, &order).await
        }
        OrderStatus::Paid if untouched => {
            let Some(payment_id) = order.payment_id.clone() else {
                return Ok(Done::Nothing);
            };
            let applied = deps
                .payments
                .apply(order, &Fact::Succeeded { payment_id }, now)
                .await?;
            Ok(if applied.after == OrderStatus::Confirmed {
                Done::Confirmed
            } else {
                Done::Nothing
            })
        }
        _ => Ok(Done::Nothing),
    }
}

/// An attempted order no charge can be sent for any more: the provider's
/// own record decides it. "No charge" must be its answer twice,
/// `NOTHING_TWICE` apart (a search may lag), before the order expires.
async fn reconcile(
    deps: &Deps,
    order: Order,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Done, SweepError> {
    let order_id = order.order_id.clone();
    let facts = match deps.provider.find(&order_id).await? {
        Found::Succeeded { payment_id } => vec![Fact::Succeeded { payment_id }],
        Found::Refunded { payment_id } => vec![
            Fact::Succeeded {
                payment_id: payment_id.clone(),
            },
            Fact::Refunded { payment_id },
        ],
        Found::Declined { code } => vec![Fact::Failed { code }],
        Found::Nothing if order.nothing_found_at.is_none() => {
            deps.payments.note_nothing_found(&order, now).await?;
            tracing::info!(
                order_id,
                "no charge found at the provider; asking again before expiring"
            );
            return Ok(Done::Nothing);
        }
        Found::Nothing => {
            if deps.payments.expire_unsent(&order, now).await? {
                tracing::warn!(
                    order_id,
                    "no charge reached the provider, asked twice: expired, stock released"
                );
                return Ok(Done::Reconciled);
            }
            return Ok(Done::Nothing);
        }
    };
    let mut current = order;
    for fact in &facts {
        let applied = deps.payments.apply(current, fact, now).await?;
        tracing::warn!(
            order_id,
            status = applied.after.as_str(),
            "an attempt's outcome learnt from the provider"
        );
        current = deps
            .payments
            .get(&order_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("order {order_id} vanished")))?;
    }
    Ok(Done::Reconciled)
}

async fn redrive(deps: &Deps, order: &Order) -> Result<Done, SweepError> {
    deps.queue.send(&order.order_id).await?;
    tracing::info!(order_id = %order.order_id, attempts = order.charge_attempts, "stuck order sent to the finalizer again");
    Ok(Done::Redriven)
}
