//! checkout: `POST /checkout`. Validates the cart, then one DynamoDB
//! transaction takes every line's stock (never below 0), writes the order as
//! `pending_payment` with a reservation expiry, and writes the idempotency
//! record; the order id goes to the finalization queue; 202.

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use shared::ApiError;
use shared::aws::SdkConfig;
use shared::checkout::{Checkout, answer};
use shared::config::{ConfigError, Source};
use shared::domain::order::{CartRule, CheckoutRequest, Order, price_cart};
use shared::http::RequestInfo;
use shared::store::checkout::PlaceError;
use std::time::Instant;

pub const FUNCTION: &str = "checkout";

pub struct Deps {
    checkout: Checkout,
}

impl Deps {
    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            checkout: Checkout::from_source(src, sdk)?,
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = Instant::now();
    let info = RequestInfo::of(&req);
    let result = checkout(deps, &req, &info, Utc::now()).await;
    Ok(answer(FUNCTION, &info, result, started))
}

async fn checkout(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    let c = &deps.checkout;
    let begun = c.begin::<CheckoutRequest>(req, info)?;
    begun.body.validate()?;
    let user = begun.caller.sub.as_str();
    for line in &begun.body.items {
        c.throttled_recently(user, &line.sku)?;
    }

    let cart = &begun.body;
    let skus: Vec<&str> = cart.items.iter().map(|l| l.sku.as_str()).collect();
    let products = c.catalog.get_many(&skus).await?;
    let (lines, total) = match price_cart(&cart.items, &products) {
        Ok(priced) => priced,
        Err(rule) => return c.refuse(&begun, cart_rule(rule)).await,
    };
    let order = Order::new(user, lines, total, cart.payment_token.clone(), None, now);
    let throttles = skus
        .iter()
        .map(|sku| c.throttle_count(user, sku, now))
        .collect::<Result<Vec<_>, _>>()?;
    match c
        .store
        .place_order(&order, c.record(&begun, &order, now)?, throttles)
        .await
    {
        Ok(()) => Ok(c.accept(&begun, &order).await),
        Err(PlaceError::Duplicate) => c.earlier(&begun).await,
        Err(PlaceError::Throttled { sku }) => Err(c.refuse_throttled(user, &sku, now)),
        Err(e) => {
            futures_util::future::join_all(
                skus.iter()
                    .map(|sku| c.count_failed_attempt(user, sku, now)),
            )
            .await;
            Err(e.into())
        }
    }
}

fn cart_rule(rule: CartRule) -> ApiError {
    match rule {
        CartRule::UnknownSku { sku, line } => {
            ApiError::rule_violation("unknown_sku", format!("There is no product '{sku}'. Remove it from the cart."))
                .with_detail("sku", sku)
                .with_detail("field", format!("items[{line}].sku"))
        }
        CartRule::MixedCurrency { sku, currency, cart_currency } => ApiError::rule_violation(
            "single_currency",
            format!("'{sku}' is priced in {currency} but the cart is in {cart_currency}; check out each currency separately."),
        )
        .with_detail("sku", sku),
        CartRule::TotalTooLarge => ApiError::rule_violation("total_too_large", "The order total is too large. Split the order."),
    }
}
