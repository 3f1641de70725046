//! flash-checkout: `POST /flash-sales/{sale_id}/checkout`. Takes units from a
//! random stock shard of the sale (the others on failure) and counts them
//! against the buyer's limit in the same transaction. Once this container has
//! seen the sale sold out it answers `sold_out` from memory for a few seconds.

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use shared::ApiError;
use shared::aws::SdkConfig;
use shared::checkout::{Checkout, answer};
use shared::config::{ConfigError, Source};
use shared::domain::flash_sale::{FlashSale, SaleState, state};
use shared::domain::money::Money;
use shared::domain::order::{FlashCheckoutRequest, Order, OrderLine};
use shared::domain::ts;
use shared::http::{RequestInfo, sale_id, sale_not_found};
use shared::memory::Expiring;
use shared::store::checkout::{EmptyShards, PlaceError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FUNCTION: &str = "flash-checkout";
/// How long a container trusts "sold out" without asking DynamoDB again.
/// Stock comes back only when a reservation expires or a payment fails, which
/// is minutes later; 5 s keeps the hot path off DynamoDB during the rush.
const SOLD_OUT_MEMORY: Duration = Duration::from_secs(5);
/// Sales do not change after creation; re-read them now and then anyway.
const SALE_CACHE: Duration = Duration::from_secs(30);

pub struct Deps {
    checkout: Checkout,
    sold_out: Expiring,
    /// Shards this container found empty: skipped for the same few seconds.
    empty_shards: Expiring,
    sales: Mutex<HashMap<String, (FlashSale, Instant)>>,
}

impl Deps {
    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            checkout: Checkout::from_source(src, sdk)?,
            sold_out: Expiring::new(10_000),
            empty_shards: Expiring::new(100_000),
            sales: Mutex::new(HashMap::new()),
        })
    }

    async fn sale(&self, sale_id: &str) -> Result<Option<FlashSale>, ApiError> {
        let cached = self.sales.lock().ok().and_then(|m| m.get(sale_id).cloned());
        if let Some((sale, _)) = cached.filter(|(_, at)| at.elapsed() < SALE_CACHE) {
            return Ok(Some(sale));
        }
        let sale = self.checkout.sales.get_sale(sale_id).await?;
        if let (Some(s), Ok(mut m)) = (&sale, self.sales.lock()) {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(sale_id.to_owned(), (s.clone(), Instant::now()));
        }
        Ok(sale)
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = Instant::now();
    let info = RequestInfo::of(&req);
    let result = flash_checkout(deps, &req, &info, Utc::now()).await;
    Ok(answer(FUNCTION, &info, result, started))
}

/// This container's memory of a sale's empty shards.
struct SaleShards<'a> {
    memory: &'a Expiring,
    sale_id: &'a str,
}

impl EmptyShards for SaleShards<'_> {
    fn known_empty(&self, shard: u32) -> bool {
        self.memory
            .remaining(&format!("{}#{shard}", self.sale_id), Instant::now())
            .is_some()
    }

    fn found_empty(&self, shard: u32) {
        self.memory.set(
            &format!("{}#{shard}", self.sale_id),
            Instant::now() + SOLD_OUT_MEMORY,
        );
    }
}

fn sold_out() -> ApiError {
    PlaceError::SoldOut.into()
}

async fn flash_checkout(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    let c = &deps.checkout;
    let begun = c.begin::<FlashCheckoutRequest>(req, info)?;
    begun.body.validate()?;
    let sale_id = sale_id(req)?;
    let sale = deps
        .sale(&sale_id)
        .await?
        .ok_or_else(|| sale_not_found(&sale_id))?;
    match state(sale.starts_at, sale.ends_at, 1, now) {
        SaleState::Upcoming | SaleState::Ended => {
            let refusal = ApiError::conflict(
                "sale_not_active",
                "This flash sale is not running now. See starts_at and ends_at.",
            )
            .with_detail("starts_at", ts::format(&sale.starts_at))
            .with_detail("ends_at", ts::format(&sale.ends_at));
            return c.refuse(&begun, refusal).await;
        }
        SaleState::Active | SaleState::SoldOut => {}
    }
    let quantity = begun.body.quantity;
    if quantity > sale.per_user_limit {
        return Err(ApiError::conflict(
            "purchase_limit_reached",
            format!(
                "This sale allows at most {} per customer.",
                sale.per_user_limit
            ),
        )
        .with_detail("limit", sale.per_user_limit));
    }
    if deps.sold_out.remaining(&sale_id, Instant::now()).is_some() {
        // From memory, without DynamoDB: this container's own earlier answer
        // to the same request, else sold out (ADR 0005 weighs the one case
        // this cannot see: a retry of a success another container answered).
        return c.remembered(&begun).ok_or_else(sold_out);
    }
    let user = begun.caller.sub.as_str();
    c.throttled_recently(user, &sale.sku)?;
    let line = OrderLine {
        sku: sale.sku.clone(),
        quantity,
        unit_price: sale.price.clone(),
    };
    let total = Money {
        amount: sale.price.amount * i64::from(quantity),
        currency: sale.price.currency.clone(),
    };
    let order = Order::new(
        user,
        vec![line],
        total,
        begun.body.payment_token.clone(),
        Some(sale.sale_id.clone()),
        now,
    );
    let shards = SaleShards {
        memory: &deps.empty_shards,
        sale_id: &sale_id,
    };
    let record = c.record(&begun, &order, now)?;
    let throttle = c.throttle_count(user, &sale.sku, now)?;
    match c
        .store
        .place_flash_order(&order, &sale, quantity, record, throttle, &shards)
        .await
    {
        Ok(()) => Ok(c.accept(&begun, &order).await),
        Err(PlaceError::Duplicate) => c.earlier(&begun).await,
        Err(PlaceError::Throttled { sku }) => Err(c.refuse_throttled(user, &sku, now)),
        Err(PlaceError::LimitReached) => {
            c.count_failed_attempt(user, &sale.sku, now).await;
            Err(PlaceError::LimitReached.into())
        }
        Err(PlaceError::SoldOut) => {
            deps.sold_out
                .set(&sale_id, Instant::now() + SOLD_OUT_MEMORY);
            // every shard known empty skips the transaction, and with it the
            // duplicate check: answer this container's own earlier answer
            c.remembered(&begun).ok_or_else(sold_out)
        }
        Err(e) => Err(e.into()),
    }
}
