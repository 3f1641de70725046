//! The checkout use case: one entry per kind, [`Checkout::cart`] and
//! [`Checkout::flash`], each taking a request that passed the HTTP checks and
//! returning an [`Outcome`] or a [`CheckoutError`]; the handlers only read the
//! request and write the answer.
//!
//! The steps, in order: the body's shape -> (flash: the sale and its rules)
//! -> this container's memory (throttled, sold out) -> the catalog (cart) ->
//! one reservation transaction, which writes the order, the idempotency record
//! and the throttle count with the stock -> the order queue. A key used before
//! is looked up only when the transaction refused it: the earlier answer
//! again, or `KeyReused` for a different request.

use crate::clock::SharedClock;
use crate::config::{CheckoutConfig, ConfigError, Source, Tables};
use crate::domain::Invalid;
use crate::domain::flash_sale::{FlashSale, MAX_SALE_ID, SaleRule, Window};
use crate::domain::order::{CartRule, CheckoutRequest, FlashCheckoutRequest, Order, price_cart};
use crate::memory::Memory;
use crate::payments::breaker::{self, Breaker};
use crate::queue::OrderQueue;
use crate::store::StoreError;
use crate::store::catalog::CatalogStore;
use crate::store::flash_sales::FlashSaleStore;
use crate::store::requests::{Counted, Earlier, RequestKey, RequestStore};
use crate::store::reservations::{Reservation, ReservationStore, ReserveError, ShardMemory};
use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};

/// How long a container trusts "sold out" and "this shard is empty" without
/// asking DynamoDB again. Stock comes back only when a reservation expires or
/// a payment fails, minutes later; 5 s keeps the rush off DynamoDB.
const SOLD_OUT_MEMORY: Duration = Duration::seconds(5);
/// Sales do not change after creation; re-read them now and then anyway.
const SALE_MEMORY: Duration = Duration::seconds(30);
/// "No such sale", remembered briefly so a probe for ids costs one read per
/// id; a sale created meanwhile is sold from this container at most 5 s late.
const NO_SUCH_SALE_MEMORY: Duration = Duration::seconds(5);
/// The throttle window a user's refused requests count in, once per request
/// (whatever the cart held): an unknown SKU, a sale that ended, an unknown
/// sale id. Checked in memory before the first read, so a user repeating
/// refused requests is answered 429 without a DynamoDB call; a SKU-shaped name
/// no SKU can have.
const REFUSED: &str = "\u{0}refused";
/// A container's own answers, replayed when DynamoDB is not asked at all
/// (sold out from memory). Clients retry within seconds.
const ANSWER_MEMORY: Duration = Duration::minutes(10);

/// A checkout request that passed the HTTP checks (caller, Origin, key, JSON).
#[derive(Debug, Clone)]
pub struct Attempt<T> {
    /// The buyer's JWT subject.
    pub user: String,
    pub key: String,
    /// What the request asked for: a retry with the same key must match it.
    pub fingerprint: String,
    pub body: T,
}

impl<T> Attempt<T> {
    fn request_key(&self) -> RequestKey<'_> {
        RequestKey {
            user: &self.user,
            key: &self.key,
            fingerprint: &self.fingerprint,
        }
    }

    fn memory_key(&self) -> String {
        format!("{}\u{0}{}", self.user, self.key)
    }
}

/// A checkout's answer: the order's 202 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new order, reserved and written. `queued` is false when the order
    /// queue refused it: the order stands, the sweeper re-drives it.
    Accepted {
        order_id: String,
        body: String,
        queued: bool,
    },
    /// The same request succeeded before: its answer again.
    Replayed { status: u16, body: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Cart(#[from] CartRule),
    #[error("no flash sale {0}")]
    SaleNotFound(String),
    #[error(transparent)]
    Sale(#[from] SaleRule),
    #[error("the buyer may buy at most {limit} in this sale")]
    LimitReached { limit: u32 },
    #[error("the sale is sold out")]
    SoldOut,
    #[error("not enough stock of {sku}")]
    InsufficientStock { sku: String, available: Option<i64> },
    #[error("too many attempts; retry after {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("the idempotency key was used for another request")]
    KeyReused,
    #[error("the same request is still in progress")]
    InProgress,
    /// The payment provider's circuit breaker is open (ADR 0020).
    #[error("payments are unavailable; retry after {retry_after} s")]
    PaymentUnavailable { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a checkout function needs, built once per container: both
/// checkout functions' `Deps`.
pub struct Checkout {
    config: CheckoutConfig,
    clock: SharedClock,
    catalog: CatalogStore,
    sales: FlashSaleStore,
    requests: RequestStore,
    reservations: ReservationStore,
    queue: OrderQueue,
    /// Read only: while open, nothing is reserved.
    breaker: Breaker,
    memory: Memories,
}

/// What one container remembers (see [`crate::memory`]).
struct Memories {
    /// user+SKU pairs seen throttled, until their window ends.
    throttled: Memory<()>,
    /// This container's answers, by user and key, with their fingerprint.
    answered: Memory<(String, String)>,
    /// A sale, or `None` for an id that names none (briefly).
    sales: Memory<Option<FlashSale>>,
    sold_out: Memory<()>,
    /// `sale_id#shard` of shards found empty.
    empty_shards: Memory<()>,
}

impl Checkout {
    pub fn new(config: CheckoutConfig, sdk: &SdkConfig) -> Self {
        let dynamo = crate::aws::dynamodb(sdk);
        let Tables {
            catalog,
            flash_sales,
            requests,
            ..
        } = &config.http.tables;
        let catalog = CatalogStore::new(dynamo.clone(), catalog);
        let clock = crate::clock::system();
        Self {
            breaker: Breaker::new(
                dynamo.clone(),
                requests,
                breaker::PAYMENTS,
                config.breaker,
                clock.clone(),
            ),
            sales: FlashSaleStore::new(dynamo.clone(), flash_sales, catalog.clone()),
            requests: RequestStore::new(dynamo.clone(), requests),
            reservations: ReservationStore::new(dynamo, &config.http.tables),
            queue: OrderQueue::new(crate::aws::sqs(sdk), &config.order_queue_url),
            memory: Memories {
                throttled: Memory::new(100_000),
                answered: Memory::new(50_000),
                sales: Memory::new(10_000),
                sold_out: Memory::new(10_000),
                empty_shards: Memory::new(100_000),
            },
            catalog,
            config,
            clock,
        }
    }

    /// As a function's `main.rs` builds it.
    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(CheckoutConfig::from_source(src)?, sdk))
    }

    /// The same checkout on another clock (tests move time instead of sleeping).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self {
            breaker: self.breaker.with_clock(clock.clone()),
            clock,
            ..self
        }
    }

    /// While the payment provider's breaker is open nothing is reserved: the
    /// breaker's state comes from memory for all but one request per
    /// container every 1.5 s. A retry of a request that was accepted before
    /// still gets its 202 (this container's memory, else one read of its
    /// idempotency record); anything else is 503 `payment_unavailable`.
    async fn payments_accepted<T>(
        &self,
        attempt: &Attempt<T>,
        now: DateTime<Utc>,
    ) -> Result<Option<Outcome>, CheckoutError> {
        let Err(retry_after) = self.breaker.accepting().await else {
            return Ok(None);
        };
        if let Some(earlier) = self.remembered(attempt, now) {
            return Ok(Some(earlier));
        }
        match self.requests.lookup(&attempt.request_key()).await {
            Ok(Some(earlier)) => return earlier_answer(earlier).map(Some),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "idempotency lookup failed while payments are unavailable")
            }
        }
        Err(CheckoutError::PaymentUnavailable { retry_after })
    }

    /// Now, on this checkout's clock: read once per request.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn config(&self) -> &CheckoutConfig {
        &self.config
    }

    /// `POST /checkout`: the cart priced from the catalog, every line's stock
    /// reserved in one transaction.
    pub async fn cart(
        &self,
        attempt: &Attempt<CheckoutRequest>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CheckoutError> {
        let cart = &attempt.body;
        cart.validate()?;
        self.throttled_recently(&attempt.user, REFUSED, now)?;
        for line in &cart.items {
            self.throttled_recently(&attempt.user, &line.sku, now)?;
        }
        if let Some(earlier) = self.payments_accepted(attempt, now).await? {
            return Ok(earlier);
        }
        let skus: Vec<&str> = cart.items.iter().map(|l| l.sku.as_str()).collect();
        let products = self.catalog.get_many(&skus).await?;
        let (lines, total) = match price_cart(&cart.items, &products) {
            Ok(priced) => priced,
            Err(rule) => return self.refuse(attempt, rule.into(), now).await,
        };
        let order = Order::new(
            &attempt.user,
            lines,
            total,
            cart.payment_token.clone(),
            None,
            now,
        );
        tracing::Span::current().record("order_id", order.order_id.as_str());
        let answer = order.accepted_body().to_string();
        let reservation = self.reservation(attempt, &order, &answer);
        match self.reservations.reserve_cart(&reservation).await {
            Ok(()) => Ok(self.accept(attempt, &order, answer).await),
            Err(e) => {
                if spends_budget(&e) {
                    let counts = skus
                        .iter()
                        .map(|sku| self.count_refused(&attempt.user, sku, now));
                    futures_util::future::join_all(counts).await;
                }
                self.reserve_failed(attempt, e, now).await
            }
        }
    }

    /// `POST /flash-sales/{sale_id}/checkout`: units from one of the sale's
    /// shards, within the buyer's limit.
    pub async fn flash(
        &self,
        sale_id: &str,
        attempt: &Attempt<FlashCheckoutRequest>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CheckoutError> {
        attempt.body.validate()?;
        let Some(sale) = self.sale(&attempt.user, sale_id, now).await? else {
            // a probe for ids spends a budget of its own; the id is not looked
            // up again for a while, and a full window answers from memory
            self.throttled_recently(&attempt.user, REFUSED, now)?;
            self.spend_refusal(&attempt.user, now).await?;
            return Err(CheckoutError::SaleNotFound(sale_id.to_owned()));
        };
        let quantity = attempt.body.quantity;
        let (line, total) = match sale.buy(quantity, now) {
            Ok(priced) => priced,
            // Not open yet: no request can have succeeded, and tapping before
            // the opening must not spend the budget the opening needs, so the
            // answer costs nothing. Ended: a retry of an order placed before the
            // close gets its order.
            Err(rule @ SaleRule::NotActive { .. }) if sale.window(now) == Window::Upcoming => {
                return Err(rule.into());
            }
            Err(rule @ SaleRule::NotActive { .. }) => {
                return self.refuse(attempt, rule.into(), now).await;
            }
            Err(SaleRule::OverLimit { limit }) => {
                return Err(CheckoutError::LimitReached { limit });
            }
        };
        if self.memory.sold_out.recall(&sale.sale_id, now).is_some() {
            // From memory, without DynamoDB: this container's own earlier
            // answer to the same request, else sold out (ADR 0005 weighs the
            // one case this cannot see: a retry of a success another
            // container answered).
            return self.remembered(attempt, now).ok_or(CheckoutError::SoldOut);
        }
        self.throttled_recently(&attempt.user, &sale.sku, now)?;
        if let Some(earlier) = self.payments_accepted(attempt, now).await? {
            return Ok(earlier);
        }
        let order = Order::new(
            &attempt.user,
            vec![line],
            total,
            attempt.body.payment_token.clone(),
            Some(sale.sale_id.clone()),
            now,
        );
        tracing::Span::current().record("order_id", order.order_id.as_str());
        let answer = order.accepted_body().to_string();
        let reservation = self.reservation(attempt, &order, &answer);
        let shards = SaleShards {
            memory: &self.memory.empty_shards,
            sale_id: &sale.sale_id,
            now,
        };
        match self
            .reservations
            .reserve_flash(&reservation, &sale, quantity, &shards)
            .await
        {
            Ok(()) => Ok(self.accept(attempt, &order, answer).await),
            Err(ReserveError::SoldOut) => {
                self.memory
                    .sold_out
                    .remember(sale.sale_id.clone(), (), now + SOLD_OUT_MEMORY);
                // Every shard known empty skips the transaction, and with it
                // the duplicate check: this container's own earlier answer.
                self.remembered(attempt, now).ok_or(CheckoutError::SoldOut)
            }
            Err(e) => {
                if spends_budget(&e) {
                    self.count_refused(&attempt.user, &sale.sku, now).await;
                }
                self.reserve_failed(attempt, e, now).await
            }
        }
    }

    fn reservation<'a, T>(
        &'a self,
        attempt: &'a Attempt<T>,
        order: &'a Order,
        answer: &'a str,
    ) -> Reservation<'a> {
        Reservation {
            order,
            request: attempt.request_key(),
            answer,
            throttle: &self.config.throttle,
        }
    }

    /// The sale, from memory or one GetItem; ids longer than any sale's are
    /// not looked up, nor any id while `user`'s budget for unknown sales is
    /// spent (the read is what a probe would cost).
    async fn sale(
        &self,
        user: &str,
        sale_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<FlashSale>, CheckoutError> {
        if sale_id.len() > MAX_SALE_ID {
            return Ok(None);
        }
        if let Some(sale) = self.memory.sales.recall(sale_id, now) {
            return Ok(sale);
        }
        self.throttled_recently(user, REFUSED, now)?;
        let sale = self.sales.get_sale(sale_id).await?;
        let remember_for = if sale.is_some() {
            SALE_MEMORY
        } else {
            NO_SUCH_SALE_MEMORY
        };
        self.memory
            .sales
            .remember(sale_id.to_owned(), sale.clone(), now + remember_for);
        Ok(sale)
    }

    /// `Throttled` from memory if this container saw `user` throttled on `sku`
    /// in the current window: a hammering client costs no DynamoDB call.
    fn throttled_recently(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CheckoutError> {
        match self
            .memory
            .throttled
            .recall_for(&throttle_key(user, sku), now)
        {
            // whole seconds, rounded up: a client that waits that long is let in
            Some((_, left)) => Err(CheckoutError::Throttled {
                retry_after: (left.num_milliseconds() + 999).div_euclid(1000).max(1) as u64,
            }),
            None => Ok(()),
        }
    }

    /// Remembers `user` throttled on `sku` until the window ends.
    fn throttled_until_window_ends(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
    ) -> CheckoutError {
        let throttle = &self.config.throttle;
        self.memory
            .throttled
            .remember(throttle_key(user, sku), (), throttle.window_end(now));
        CheckoutError::Throttled {
            retry_after: throttle.retry_after(now),
        }
    }

    /// Counts a refused attempt, so refusals spend the budget too; true when
    /// the window was already full (and is now remembered as such). Best
    /// effort: a failed count is logged and the refusal stands.
    async fn count_refused(&self, user: &str, sku: &str, now: DateTime<Utc>) -> bool {
        match self
            .requests
            .count(user, sku, &self.config.throttle, now)
            .await
        {
            Ok(Counted::Allowed) => false,
            Ok(Counted::Full) => {
                self.throttled_until_window_ends(user, sku, now);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "throttle count of a refused attempt not written");
                false
            }
        }
    }

    /// The answer to a reservation that did not happen.
    async fn reserve_failed<T>(
        &self,
        attempt: &Attempt<T>,
        e: ReserveError,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CheckoutError> {
        Err(match e {
            ReserveError::Duplicate => return self.earlier(attempt).await,
            ReserveError::Throttled { sku } => {
                self.throttled_until_window_ends(&attempt.user, &sku, now)
            }
            ReserveError::InsufficientStock { sku, available } => {
                CheckoutError::InsufficientStock { sku, available }
            }
            ReserveError::SoldOut => CheckoutError::SoldOut,
            ReserveError::LimitReached { limit } => CheckoutError::LimitReached { limit },
            // a concurrent write won; ask again in a second
            ReserveError::Conflict => CheckoutError::InProgress,
            ReserveError::Store(e) => CheckoutError::Store(e),
        })
    }

    /// The answer to a request whose key the transaction found used: the
    /// earlier answer, `KeyReused` for a different request, or `InProgress`
    /// while a concurrent duplicate is still being written.
    async fn earlier<T>(&self, attempt: &Attempt<T>) -> Result<Outcome, CheckoutError> {
        match self.requests.lookup(&attempt.request_key()).await? {
            Some(earlier) => earlier_answer(earlier),
            None => Err(CheckoutError::InProgress),
        }
    }

    /// A refusal decided by the rules before any write (a sale that ended,
    /// cart rules): unless this very request already succeeded, in which case
    /// its answer again. A retry of an order placed just before a sale closed,
    /// or before a product was withdrawn, must get its order, not a refusal
    /// (one read, on refusal paths only). A refusal that stands counts once in
    /// the user's [`REFUSED`] window, so repeating it turns into 429 from
    /// memory, with no read at all.
    async fn refuse<T>(
        &self,
        attempt: &Attempt<T>,
        refusal: CheckoutError,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CheckoutError> {
        match self.requests.lookup(&attempt.request_key()).await {
            Ok(Some(earlier)) => return earlier_answer(earlier),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "idempotency lookup failed on a refusal path"),
        }
        self.spend_refusal(&attempt.user, now).await?;
        Err(refusal)
    }

    /// Counts a refused request in `user`'s [`REFUSED`] window: `Throttled`
    /// once the window is full (and remembered until it ends).
    async fn spend_refusal(&self, user: &str, now: DateTime<Utc>) -> Result<(), CheckoutError> {
        if self.count_refused(user, REFUSED, now).await {
            return Err(self.throttled_until_window_ends(user, REFUSED, now));
        }
        Ok(())
    }

    /// This container's own earlier answer to the same request, if it gave one.
    fn remembered<T>(&self, attempt: &Attempt<T>, now: DateTime<Utc>) -> Option<Outcome> {
        let (fingerprint, body) = self.memory.answered.recall(&attempt.memory_key(), now)?;
        (fingerprint == attempt.fingerprint).then_some(Outcome::Replayed { status: 202, body })
    }

    /// After the order is written: hand it to finalization. A failed send
    /// loses nothing: the order is stored as `pending_payment`, the sweeper
    /// re-drives it, and its reservation expiry bounds it (ADR 0007).
    async fn accept<T>(&self, attempt: &Attempt<T>, order: &Order, body: String) -> Outcome {
        let queued = match self.queue.send(&order.order_id).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "order stored but not queued; the sweeper re-drives it");
                false
            }
        };
        self.memory.answered.remember(
            attempt.memory_key(),
            (attempt.fingerprint.clone(), body.clone()),
            order.created_at + ANSWER_MEMORY,
        );
        Outcome::Accepted {
            order_id: order.order_id.clone(),
            body,
            queued,
        }
    }
}

/// What an earlier request with the same key answers now: its own answer
/// again if it was this request, else the key was reused.
fn earlier_answer(earlier: Earlier) -> Result<Outcome, CheckoutError> {
    match earlier {
        Earlier::Replay { status, body } => Ok(Outcome::Replayed { status, body }),
        Earlier::Reused => Err(CheckoutError::KeyReused),
    }
}

/// Whether a refused reservation counts against the buyer's throttle window:
/// every refusal the buyer could repeat does (too little stock, the limit,
/// contention), so hammering a sale that cannot serve the request is
/// throttled like any other. Not counted: an attempt the window already
/// counted (its own transaction did, or it is a replay), our own faults, and
/// `SoldOut` (flash answers it from memory next, with no call at all).
fn spends_budget(e: &ReserveError) -> bool {
    match e {
        ReserveError::InsufficientStock { .. }
        | ReserveError::LimitReached { .. }
        | ReserveError::Conflict => true,
        ReserveError::SoldOut
        | ReserveError::Throttled { .. }
        | ReserveError::Duplicate
        | ReserveError::Store(_) => false,
    }
}

fn throttle_key(user: &str, sku: &str) -> String {
    format!("{user}\u{0}{sku}")
}

/// This container's memory of a sale's empty shards.
struct SaleShards<'a> {
    memory: &'a Memory<()>,
    sale_id: &'a str,
    now: DateTime<Utc>,
}

impl SaleShards<'_> {
    fn key(&self, shard: u32) -> String {
        format!("{}#{shard}", self.sale_id)
    }
}

impl ShardMemory for SaleShards<'_> {
    fn known_empty(&self, shard: u32) -> bool {
        self.memory.recall(&self.key(shard), self.now).is_some()
    }

    fn found_empty(&self, shard: u32) {
        self.memory
            .remember(self.key(shard), (), self.now + SOLD_OUT_MEMORY);
    }
}
