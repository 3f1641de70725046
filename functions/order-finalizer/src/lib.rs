//! order-finalizer: consumes `order-finalization` (`{"order_id"}` per
//! message) and settles each order's payment (ADR 0018).
//!
//! For each order: record the attempt on the order (a conditional write that
//! refuses once the order is settled, expired without an attempt, or more
//! than 10 minutes past its expiry after one), charge with `Idempotency-Key: <order_id>`, then
//! apply the outcome as a payment fact: success -> `paid` -> `confirmed`;
//! decline -> `payment_failed` with the stock released in the same
//! transaction. A provider that does not decide fails the message back to SQS
//! (a partial batch response), which redelivers it after the visibility
//! timeout and, after maxReceiveCount, moves it to the DLQ; the reservation's
//! expiry bounds what it holds meanwhile. Every call goes through the
//! circuit breaker shared by every container (ADR 0020).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use serde::Deserialize;
use shared::clock::{SharedClock, system};
use shared::config::{ConfigError, PaymentConfig, Source};
use shared::domain::order::OrderStatus;
use shared::domain::payment::Fact;
use shared::payments::breaker::{Breaker, Permit};
use shared::payments::provider::{ChargeOutcome, ChargeRequest, Provider, ProviderError};
use shared::store::payments::{Begin, PaymentStore};
use tracing::Instrument;

pub const FUNCTION: &str = "order-finalizer";
/// Orders of one batch charged at once.
const CONCURRENCY: usize = 10;

pub struct Deps {
    payments: PaymentStore,
    provider: Provider,
    breaker: Breaker,
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
        Ok(Self {
            breaker,
            payments: PaymentStore::new(dynamo, &config.tables),
            provider,
            clock: system(),
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.breaker = self.breaker.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    pub fn payments(&self) -> &PaymentStore {
        &self.payments
    }
}

#[derive(Deserialize)]
struct Message {
    order_id: String,
}

/// What became of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalized {
    /// The order is in this state now (or was already).
    Settled(OrderStatus),
    /// No charge may be sent; the sweeper or the webhook settles it.
    Closed,
    /// No such order.
    Missing,
}

/// Why a message goes back to the queue.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error("the payment provider: {0}")]
    Provider(#[from] shared::payments::provider::ProviderError),
    #[error("the order store: {0}")]
    Store(#[from] shared::store::StoreError),
    /// The breaker is open: no call now (ADR 0020).
    #[error("the payment provider's circuit is open; retry after {retry_after} s")]
    CircuitOpen { retry_after: u64 },
}

pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let failures: Vec<BatchItemFailure> = futures_util::stream::iter(event.records)
        .map(|record| async move { process(deps, record).await })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

/// One message: `None` when done with it (deleted), or its failure.
async fn process(deps: &Deps, record: SqsMessage) -> Option<BatchItemFailure> {
    let Some(message_id) = record.message_id.filter(|id| !id.is_empty()) else {
        // SQS always sends one; a failure must name it, so this cannot be retried
        tracing::error!("a message without a message id was dropped");
        return None;
    };
    let fail = || {
        let mut f = BatchItemFailure::default();
        f.item_identifier = message_id.clone();
        Some(f)
    };
    let order_id = match serde_json::from_str::<Message>(record.body.as_deref().unwrap_or("")) {
        Ok(m) => m.order_id,
        Err(e) => {
            // never settles by retrying: to the DLQ after maxReceiveCount, kept
            tracing::error!(message_id = %message_id, error = %e, "not an order message");
            return fail();
        }
    };
    let span = tracing::info_span!("finalize", order_id = %order_id, message_id = %message_id);
    match finalize(deps, &order_id).instrument(span.clone()).await {
        Ok(done) => {
            span.in_scope(|| tracing::info!(outcome = ?done, "finalized"));
            None
        }
        Err(e) => {
            span.in_scope(|| tracing::warn!(error = %e, "not finalized; back to the queue"));
            fail()
        }
    }
}

/// Settles one order's payment, or says why it must be tried again.
pub async fn finalize(deps: &Deps, order_id: &str) -> Result<Finalized, Retry> {
    // before the attempt is recorded: while the circuit is open no attempt is
    // made, so an order whose reservation runs out meanwhile simply expires
    let permit = deps.breaker.permit().await;
    if let Permit::Refuse { retry_after } = permit {
        return Err(Retry::CircuitOpen { retry_after });
    }
    let mut sent = false;
    let charged = charge(deps, order_id, permit, &mut sent).await;
    if !sent {
        // an elected probe that found nothing to send goes back at once
        deps.breaker.release(permit).await;
    }
    match charged? {
        Charged::Sent(done) | Charged::NotSent(done) => Ok(done),
    }
}

/// Whether a charge went out for this message.
enum Charged {
    Sent(Finalized),
    NotSent(Finalized),
}

/// Sets `sent` once the provider was called (and the breaker told how it
/// went), whatever happens after.
async fn charge(
    deps: &Deps,
    order_id: &str,
    permit: Permit,
    sent: &mut bool,
) -> Result<Charged, Retry> {
    let now = deps.clock.now();
    let order = match deps.payments.begin_charge(order_id, now).await? {
        Begin::Missing => return Ok(Charged::NotSent(Finalized::Missing)),
        Begin::Closed(_) => return Ok(Charged::NotSent(Finalized::Closed)),
        Begin::Settled(order) => {
            // a crash between paid and confirmed: finish it
            if let (OrderStatus::Paid, Some(payment_id)) = (order.status, order.payment_id.clone())
            {
                let applied = deps
                    .payments
                    .apply(order, &Fact::Succeeded { payment_id }, now)
                    .await?;
                return Ok(Charged::NotSent(Finalized::Settled(applied.after)));
            }
            return Ok(Charged::NotSent(Finalized::Settled(order.status)));
        }
        Begin::Charge(order) => order,
    };
    let result = deps
        .provider
        .charge(&ChargeRequest {
            order_id,
            amount: &order.total,
            source: &order.payment_token,
        })
        .await;
    // the provider answered (a decision, or a refusal of our request) or not
    let answered = !matches!(result, Err(ProviderError::Unavailable { .. }));
    deps.breaker.record(permit, answered).await;
    *sent = true;
    let fact = match result {
        Ok(ChargeOutcome::Succeeded { payment_id }) => Fact::Succeeded { payment_id },
        Ok(ChargeOutcome::Declined { code, .. }) => Fact::Failed { code },
        Err(e) => return Err(e.into()),
    };
    let applied = deps.payments.apply(order, &fact, deps.clock.now()).await?;
    if let Some(why) = applied.unchanged {
        tracing::warn!(
            ?why,
            status = applied.after.as_str(),
            "the charge's outcome did not move the order"
        );
    }
    Ok(Charged::Sent(Finalized::Settled(applied.after)))
}
