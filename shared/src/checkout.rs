//! The steps both checkouts share, in the order they run:
//! caller (the authorizer's claims) -> Origin allow-list -> Idempotency-Key ->
//! body -> throttle per user+SKU -> (the function's own transaction, which
//! writes the idempotency record with the order, only if the key is new) ->
//! queue -> 202. A key used before is looked up after the transaction refused
//! it: the earlier answer again, or 422 for a different request.

use crate::config::{CheckoutConfig, ConfigError, Source};
use crate::domain::idempotency;
use crate::domain::order::Order;
use crate::error::ApiError;
use crate::http::{Caller, MAX_JSON_BODY, RequestInfo, check_origin, json_value, typed};
use crate::memory::{Expiring, Recent};
use crate::queue::OrderQueue;
use crate::store::StoreError;
use crate::store::catalog::CatalogStore;
use crate::store::checkout::CheckoutStore;
use crate::store::flash_sales::FlashSaleStore;
use crate::store::orders::OrderStore;
use crate::store::requests::{Earlier, RequestStore, Throttle};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::TransactWriteItem;
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
    pub requests: RequestStore,
    pub store: CheckoutStore,
    pub queue: OrderQueue,
    /// user+SKU pairs this container saw throttled, until their window ends:
    /// a hammering client is answered from memory.
    throttled: Expiring,
    /// Answers this container gave lately, by user and key, to replay where
    /// DynamoDB is not asked at all (sold out).
    answered: Recent,
}

/// A request that passed the shared checks.
pub struct Begun<T> {
    pub caller: Caller,
    pub key: String,
    pub body: T,
    pub fingerprint: String,
}

impl Checkout {
    pub fn new(config: CheckoutConfig, sdk: &SdkConfig) -> Self {
        let dynamo = crate::aws::dynamodb(sdk);
        let tables = &config.http.tables;
        let catalog = CatalogStore::new(dynamo.clone(), &tables.catalog);
        let orders = OrderStore::new(dynamo.clone(), &tables.orders);
        // the order store is the checkout store's: orders are only ever written in its transactions
        Self {
            sales: FlashSaleStore::new(dynamo.clone(), &tables.flash_sales, catalog.clone()),
            requests: RequestStore::new(dynamo.clone(), &tables.requests),
            store: CheckoutStore::new(dynamo, catalog.clone(), &tables.flash_sales, orders.clone()),
            queue: OrderQueue::new(crate::aws::sqs(sdk), &config.order_queue_url),
            throttled: Expiring::new(100_000),
            answered: Recent::new(50_000),
            catalog,
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
        // one parse: the typed body and the fingerprint come from the same value
        let value = json_value(req, MAX_JSON_BODY)?;
        let body: T = typed(&value)?;
        let fingerprint = idempotency::fingerprint(&info.route_key, &info.path, &value);
        Ok(Begun {
            caller,
            key,
            body,
            fingerprint,
        })
    }

    /// 429 from memory if this container saw `user` throttled on `sku` in
    /// the current window: a hammering client costs no DynamoDB call.
    pub fn throttled_recently(&self, user: &str, sku: &str) -> Result<(), ApiError> {
        match self
            .throttled
            .remaining(&throttle_key(user, sku), Instant::now())
        {
            Some(left) => Err(throttled(left.as_secs().max(1))),
            None => Ok(()),
        }
    }

    /// The transaction item that counts this attempt in `user`'s window for `sku`.
    pub fn throttle_count(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let c = &self.config;
        self.requests
            .count_item(user, sku, now, c.throttle_burst, c.throttle_window_secs)
    }

    /// The transaction refused the attempt on the throttle: remember it until
    /// the window ends and answer 429.
    pub fn refuse_throttled(&self, user: &str, sku: &str, now: DateTime<Utc>) -> ApiError {
        let retry = crate::store::requests::retry_after(now, self.config.throttle_window_secs);
        self.throttled.set(
            &throttle_key(user, sku),
            Instant::now() + Duration::from_secs(retry),
        );
        throttled(retry)
    }

    /// Counts an attempt whose transaction failed for another reason, so
    /// failing attempts spend the budget too (best effort: a failed count is logged).
    pub async fn count_failed_attempt(&self, user: &str, sku: &str, now: DateTime<Utc>) {
        let c = &self.config;
        match self
            .requests
            .hit(user, sku, now, c.throttle_burst, c.throttle_window_secs)
            .await
        {
            Ok(Throttle::Allowed) => {}
            Ok(Throttle::Throttled { retry_after }) => {
                self.throttled.set(
                    &throttle_key(user, sku),
                    Instant::now() + Duration::from_secs(retry_after),
                );
            }
            Err(e) => tracing::warn!(error = %e, "throttle count of a failed attempt not written"),
        }
    }

    /// The idempotency record of `order`'s 202, for the checkout transaction.
    pub fn record<T>(
        &self,
        begun: &Begun<T>,
        order: &Order,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let body = order.accepted_body().to_string();
        self.requests.record(
            &begun.caller.sub,
            &begun.key,
            &begun.fingerprint,
            202,
            &body,
            now,
        )
    }

    /// The answer to a request whose key the transaction found used: the
    /// earlier answer, 422 for a different request, or 409 while a concurrent
    /// duplicate is still being written.
    pub async fn earlier<T>(&self, begun: &Begun<T>) -> Result<Response<Body>, ApiError> {
        match self
            .requests
            .lookup(&begun.caller.sub, &begun.key, &begun.fingerprint)
            .await?
        {
            Some(Earlier::Replay { status, body }) => Ok(accepted(status, &body)),
            Some(Earlier::Reused) => Err(key_reused()),
            None => Err(in_progress()),
        }
    }

    /// A refusal decided by the rules before any write (sale window, cart
    /// rules): unless this very request already succeeded, in which case its
    /// answer again. A retry of an order placed just before a sale closed, or
    /// before a product was withdrawn, must get its order, not a refusal.
    /// Costs one read, on refusal paths only.
    pub async fn refuse<T>(
        &self,
        begun: &Begun<T>,
        refusal: ApiError,
    ) -> Result<Response<Body>, ApiError> {
        match self
            .requests
            .lookup(&begun.caller.sub, &begun.key, &begun.fingerprint)
            .await
        {
            Ok(Some(Earlier::Replay { status, body })) => Ok(accepted(status, &body)),
            Ok(Some(Earlier::Reused)) => Err(key_reused()),
            Ok(None) => Err(refusal),
            Err(e) => {
                tracing::warn!(error = %e, "idempotency lookup failed on a refusal path");
                Err(refusal)
            }
        }
    }

    /// This container's own earlier answer to the same request, if it gave one.
    pub fn remembered<T>(&self, begun: &Begun<T>) -> Option<Response<Body>> {
        self.answered
            .get(&memory_key(begun), &begun.fingerprint)
            .map(|body| accepted(202, &body))
    }

    /// After the order is written: hand it to finalization and answer 202.
    /// A failed send loses nothing: the order is stored as `pending_payment`,
    /// the sweeper re-drives it, and its reservation expiry bounds it.
    pub async fn accept<T>(&self, begun: &Begun<T>, order: &Order) -> Response<Body> {
        if let Err(e) = self.queue.send(&order.order_id).await {
            tracing::error!(order_id = %order.order_id, error = %e, "order stored but not queued; the sweeper re-drives it");
        }
        let body = order.accepted_body().to_string();
        self.answered
            .put(&memory_key(begun), &begun.fingerprint, &body);
        accepted(202, &body)
    }
}

fn throttle_key(user: &str, sku: &str) -> String {
    format!("{user}\u{0}{sku}")
}

fn memory_key<T>(begun: &Begun<T>) -> String {
    format!("{}\u{0}{}", begun.caller.sub, begun.key)
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request. Use a new key for a new request.",
    )
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "request_in_progress",
        "The same request is still being processed. Retry after a second to get its answer.",
    )
    .with_header(header::RETRY_AFTER, "1")
    .with_detail("retry_after", 1)
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
            // both mean "a concurrent write won; ask again in a second"
            Conflict | Duplicate => in_progress(),
            // callers answer this with the window's Retry-After; 1 s is the floor
            Throttled { .. } => throttled(1),
            Store(e) => e.into(),
        }
    }
}

/// The response for a checkout's result, with its metrics recorded.
pub fn answer(
    function: &str,
    info: &RequestInfo,
    result: Result<Response<Body>, ApiError>,
    started: Instant,
) -> Response<Body> {
    let outcome = match &result {
        Ok(r) if r.status() == StatusCode::ACCEPTED => "accepted",
        Ok(_) => "replayed",
        Err(e) => e.code(),
    };
    record_metrics(function, outcome, started);
    result.unwrap_or_else(|e| e.into_response(&info.request_id))
}

/// Counters and latency for one checkout answer, as EMF.
fn record_metrics(function: &str, outcome: &str, started: Instant) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::checkout::PlaceError;

    /// On DynamoDB a concurrent duplicate shows as a TransactionConflict on the
    /// same idempotency record; the emulator serialises, so it is tested here.
    #[test]
    fn a_duplicate_still_in_flight_is_409_with_retry_after() {
        for e in [PlaceError::Conflict, PlaceError::Duplicate] {
            let r = ApiError::from(e).into_response("r");
            assert_eq!(r.status(), 409);
            assert_eq!(r.headers()["retry-after"], "1");
            let body: serde_json::Value = serde_json::from_slice(r.body().as_ref()).unwrap();
            assert_eq!(body["error"], "request_in_progress");
            assert_eq!(body["details"]["retry_after"], 1);
        }
    }

    #[test]
    fn accepted_answers_point_at_the_order() {
        let r = accepted(202, r#"{"order_id":"ord-1","status":"pending_payment"}"#);
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["location"], "/orders/ord-1");
    }
}
