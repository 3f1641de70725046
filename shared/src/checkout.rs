//! The steps both checkouts share, in the order they run:
//! caller (the authorizer's claims) -> Origin allow-list -> Idempotency-Key ->
//! body -> throttle per user+SKU -> idempotency claim -> (the function's own
//! transaction, which completes the claim) -> queue -> 202.

use crate::config::{CheckoutConfig, ConfigError, Source};
use crate::domain::idempotency;
use crate::domain::order::Order;
use crate::error::ApiError;
use crate::http::{Caller, MAX_JSON_BODY, RequestInfo, check_origin, json_body};
use crate::memory::Expiring;
use crate::queue::OrderQueue;
use crate::store::StoreError;
use crate::store::catalog::CatalogStore;
use crate::store::checkout::CheckoutStore;
use crate::store::flash_sales::FlashSaleStore;
use crate::store::orders::OrderStore;
use crate::store::requests::{Claim, ClaimToken, RequestStore, Throttle};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// Everything a checkout function needs, built once per container.
pub struct Checkout {
    pub config: CheckoutConfig,
    pub catalog: CatalogStore,
    pub sales: FlashSaleStore,
    pub orders: OrderStore,
    pub requests: RequestStore,
    pub store: CheckoutStore,
    pub queue: OrderQueue,
    /// user+SKU pairs this container saw throttled, until their window ends:
    /// a hammering client is answered from memory.
    throttled: Expiring,
}

/// A request that passed the shared checks.
pub struct Begun<T> {
    pub caller: Caller,
    pub key: String,
    pub body: T,
    pub fingerprint: String,
}

/// What claiming the idempotency key gave.
pub enum Claimed {
    Fresh(ClaimToken),
    /// The first answer to this very request, to send again.
    Replay(Response<Body>),
}

impl Checkout {
    pub fn new(config: CheckoutConfig, sdk: &SdkConfig) -> Self {
        let dynamo = crate::aws::dynamodb(sdk);
        let tables = &config.http.tables;
        let catalog = CatalogStore::new(dynamo.clone(), &tables.catalog);
        let orders = OrderStore::new(dynamo.clone(), &tables.orders);
        Self {
            sales: FlashSaleStore::new(dynamo.clone(), &tables.flash_sales, catalog.clone()),
            requests: RequestStore::new(dynamo.clone(), &tables.requests),
            store: CheckoutStore::new(dynamo, catalog.clone(), &tables.flash_sales, orders.clone()),
            queue: OrderQueue::new(crate::aws::sqs(sdk), &config.order_queue_url),
            throttled: Expiring::new(100_000),
            catalog,
            orders,
            config,
        }
    }

    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(CheckoutConfig::from_source(src)?, sdk))
    }

    /// Caller, Origin, Idempotency-Key and body, in that order.
    pub fn begin<T: DeserializeOwned>(
        &self,
        req: &Request,
        info: &RequestInfo,
    ) -> Result<Begun<T>, ApiError> {
        let caller = info.caller()?.clone();
        check_origin(req, &self.config.http.allowed_origins)?;
        let key = req
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let key = idempotency::check_key(key)?.to_owned();
        let body: T = json_body(req, MAX_JSON_BODY)?;
        let value: serde_json::Value =
            serde_json::from_slice(req.body().as_ref()).unwrap_or_default();
        let fingerprint = idempotency::fingerprint(&info.route_key, &info.path, &value);
        Ok(Begun {
            caller,
            key,
            body,
            fingerprint,
        })
    }

    /// One request of `user` on `sku` against the shared per-window budget.
    pub async fn throttle(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let memory_key = format!("{user}\u{0}{sku}");
        if let Some(left) = self.throttled.remaining(&memory_key, Instant::now()) {
            return Err(throttled(left.as_secs().max(1)));
        }
        let c = &self.config;
        match self
            .requests
            .hit(user, sku, now, c.throttle_burst, c.throttle_window_secs)
            .await?
        {
            Throttle::Allowed => Ok(()),
            Throttle::Throttled { retry_after } => {
                self.throttled.set(
                    &memory_key,
                    Instant::now() + Duration::from_secs(retry_after),
                );
                Err(throttled(retry_after))
            }
        }
    }

    pub async fn claim<T>(
        &self,
        begun: &Begun<T>,
        now: DateTime<Utc>,
    ) -> Result<Claimed, ApiError> {
        match self
            .requests
            .claim(&begun.caller.sub, &begun.key, &begun.fingerprint, now)
            .await?
        {
            Claim::Acquired(token) => Ok(Claimed::Fresh(token)),
            other => Err(answer_for(other)).or_else(|r| r.map(Claimed::Replay)),
        }
    }

    /// For answers known without work (sold out): the first answer if this
    /// exact request already succeeded, so a retry never hides a placed order.
    pub async fn earlier_answer<T>(
        &self,
        begun: &Begun<T>,
    ) -> Result<Option<Response<Body>>, ApiError> {
        match self
            .requests
            .lookup(&begun.caller.sub, &begun.key, &begun.fingerprint)
            .await?
        {
            None => Ok(None),
            Some(other) => answer_for(other).map(Some),
        }
    }

    /// The transaction item that completes the claim with the 202 for `order`.
    pub fn completion(
        &self,
        token: &ClaimToken,
        order: &Order,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        self.requests
            .complete(token, 202, &order.accepted_body().to_string())
    }

    /// After the order is written: hand it to finalization and answer 202.
    /// A failed send loses nothing: the order is stored as `pending_payment`,
    /// the sweeper re-drives it, and its reservation expiry bounds it.
    pub async fn accept(&self, order: &Order) -> Response<Body> {
        if let Err(e) = self.queue.send(&order.order_id).await {
            tracing::error!(order_id = %order.order_id, error = %e, "order stored but not queued; the sweeper re-drives it");
        }
        accepted(202, &order.accepted_body().to_string())
    }
}

/// Turns a claim that is not ours into its answer: a replay, 422 or 409.
fn answer_for(claim: Claim) -> Result<Response<Body>, ApiError> {
    match claim {
        Claim::Replay { status, body } => Ok(accepted(status, &body)),
        Claim::Reused => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request. Use a new key for a new request.",
        )),
        Claim::InFlight | Claim::Acquired(_) => Err(ApiError::conflict(
            "request_in_progress",
            "The same request is still being processed. Retry after a second to get its answer.",
        )
        .with_header(header::RETRY_AFTER, "1")
        .with_detail("retry_after", 1)),
    }
}

/// A checkout's answer: the stored body, `Location` of the order.
pub fn accepted(status: u16, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::Text(body.to_owned()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let order_id = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["order_id"].as_str().map(str::to_owned));
    if let Some(v) = order_id.and_then(|id| HeaderValue::from_str(&format!("/orders/{id}")).ok()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub fn throttled(retry_after: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!("Too many checkout attempts for this product. Wait {retry_after} s and try again."),
    )
    .with_header(header::RETRY_AFTER, retry_after.to_string())
    .with_detail("retry_after", retry_after)
}

/// How a refused placement is answered.
impl From<crate::store::checkout::PlaceError> for ApiError {
    fn from(e: crate::store::checkout::PlaceError) -> Self {
        use crate::store::checkout::PlaceError::*;
        match e {
            InsufficientStock { sku, available } => {
                let mut err = ApiError::conflict(
                    "insufficient_stock",
                    format!("Not enough '{sku}' in stock for this quantity. Lower the quantity or remove it."),
                )
                .with_detail("sku", sku);
                if let Some(a) = available {
                    err = err.with_detail("available", a.max(0));
                }
                err
            }
            SoldOut => ApiError::conflict("sold_out", "This flash sale is sold out."),
            LimitReached => ApiError::conflict(
                "purchase_limit_reached",
                "You have bought as many as this sale allows per customer.",
            ),
            Conflict => ApiError::conflict(
                "request_in_progress",
                "Many buyers are checking out this product right now. Retry in a second.",
            )
            .with_header(header::RETRY_AFTER, "1")
            .with_detail("retry_after", 1),
            Store(e) => e.into(),
        }
    }
}

/// Counters and latency for one checkout answer, as EMF.
pub fn record_metrics(function: &str, outcome: &str, started: Instant) {
    let is = |what: &str| if outcome == what { 1.0 } else { 0.0 };
    crate::metrics::emit(
        function,
        &[
            ("CheckoutAccepted", is("accepted"), "Count"),
            ("CheckoutSoldOut", is("sold_out"), "Count"),
            ("CheckoutThrottled", is("throttled"), "Count"),
            (
                "CheckoutLatency",
                started.elapsed().as_secs_f64() * 1000.0,
                "Milliseconds",
            ),
        ],
    );
}
