//! The one error shape every HTTP answer uses,
//! `{"error", "message", "details", "request_id"}`, and the one mapping into
//! it. Domain rules, stores, cursors and use cases return their own typed
//! errors; every `From<...> for ApiError` lives in this file, and each error
//! code is built by exactly one function here, so a code carries the same
//! status and details wherever it is answered (ADR 0009).

use crate::checkout::CheckoutError;
use crate::cursor::CursorError;
use crate::domain::Invalid;
use crate::domain::api_key::KeyRefusal;
use crate::domain::flash_sale::SaleRule;
use crate::domain::order::CartRule;
use crate::domain::throttle::{LimitScope, RateLimited};
use crate::domain::ts;
use crate::fetch::profiles::ProfileError;
use crate::payments::signature::SignatureError;
use crate::routes::Unmatched;
use crate::store::catalog::PutProductError;
use crate::store::flash_sales::CreateSaleError;
use crate::store::partners::{CreatePartnerError, KeyError};
use crate::store::{ListError, StoreError};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Map<String, Value>,
    headers: Vec<(header::HeaderName, String)>,
    /// Logged with the request id when rendered, never sent.
    cause: Option<Cause>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400 naming the field and what is wrong with it.
    pub fn invalid_request(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Field '{field}' is invalid: {reason}. Fix it and send the request again."),
        )
        .with_detail("field", field)
        .with_detail("reason", reason)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign in and send the request with 'Authorization: Bearer <token>'.",
        )
    }

    pub fn forbidden(role: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("This operation needs the '{role}' role, which your account does not have."),
        )
        .with_detail("required_role", role)
    }

    pub fn forbidden_origin(origin: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "Requests that change state are accepted only from the shop's own origins.",
        )
        .with_detail("origin", origin)
    }

    /// 404 for a `kind` ("Product") whose id, named `field`, is `id`.
    pub fn not_found(kind: &str, field: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} '{id}' was not found. Check the id and try again."),
        )
        .with_detail(field, id)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than {limit} bytes. Send a smaller body."),
        )
        .with_detail("limit_bytes", limit)
    }

    /// 409 with `Retry-After`: a concurrent write to the same items won.
    fn request_in_progress() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "The same request, or another change to the same items, is in progress. Retry in a second.",
        )
        .with_header(header::RETRY_AFTER, "1")
        .with_detail("retry_after", 1)
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    fn throttled(retry_after: u64) -> Self {
        let retry_after = retry_after.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "Too many checkout attempts for this product. Wait {retry_after} s and try again."
            ),
        )
        .with_header(header::RETRY_AFTER, retry_after.to_string())
        .with_detail("retry_after", retry_after)
    }

    fn insufficient_stock(sku: String, available: Option<i64>) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "insufficient_stock",
            format!(
                "Not enough '{sku}' in stock for this quantity. Lower the quantity and try again."
            ),
        )
        .with_detail("sku", sku);
        if let Some(a) = available {
            e = e.with_detail("available", a.max(0));
        }
        e
    }

    fn rule_violation(rule: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation", message)
            .with_detail("rule", rule)
    }

    /// 500: the cause is logged with the request id, the client sees neither.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side. Try again; if it persists, contact support with the request id.",
            )
        }
    }

    pub fn body(&self, request_id: &str) -> Value {
        json!({
            "error": self.code,
            "message": self.message,
            "details": self.details,
            "request_id": request_id,
        })
    }

    pub fn into_response(self, request_id: &str) -> Response<Body> {
        if let Some(cause) = &self.cause {
            tracing::error!(request_id, error = %cause, "request failed");
        }
        let mut response = crate::response::json(self.status, &self.body(request_id));
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().insert(name.clone(), v);
            }
        }
        response
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid_request(&e.field, e.reason)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// A profile that does not check is 400 (`invalid_request`) naming the
/// field; a URL that can never be fetched is 422 `rule_violation` with
/// `details.rule = url_not_allowed` and the refusal's code; the secret store failing is 503 (the save can be
/// repeated as it is: it writes the secret first, then the profile).
impl From<ProfileError> for ApiError {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::Invalid(e) => e.into(),
            ProfileError::UrlNotAllowed(refused) => ApiError::rule_violation(
                "url_not_allowed",
                format!(
                    "This URL can never be fetched: {refused}. Use the URL of a public host, over https on port 443."
                ),
            )
            .with_detail("field", "url")
            .with_detail("reason_code", refused.code()),
            ProfileError::Store(e) => e.into(),
            ProfileError::Secret(e) => {
                tracing::error!(error = %e, "the secret store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secret_store_unavailable",
                    "The credential store did not answer, so the change may be incomplete. Repeat the same request in a few seconds; repeating it is safe.",
                )
                .with_header(header::RETRY_AFTER, "5")
                .with_detail("retry_after", 5)
            }
        }
    }
}

impl From<CursorError> for ApiError {
    fn from(_: CursorError) -> Self {
        ApiError::invalid_request("cursor", "is not a cursor this endpoint returned")
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Cursor(e) => e.into(),
            ListError::Store(e) => e.into(),
        }
    }
}

impl From<Unmatched> for ApiError {
    fn from(e: Unmatched) -> Self {
        if e.allowed.is_empty() {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "There is no such endpoint. See docs/openapi.yaml for the routes.",
            )
            .with_detail("method", e.method)
            .with_detail("path", e.path);
        }
        let allow = e.allowed.join(", ");
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "Method {} is not allowed here; use one of: {allow}.",
                e.method
            ),
        )
        .with_detail("allowed", e.allowed)
        .with_header(header::ALLOW, allow)
    }
}

/// 401 `invalid_signature`: the reason (missing, malformed, stale, future,
/// no match) is named; nothing about the secrets is.
impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            format!("The webhook signature was refused: {e}."),
        )
    }
}

impl From<CartRule> for ApiError {
    fn from(rule: CartRule) -> Self {
        match rule {
            CartRule::UnknownSku { sku, line } => ApiError::rule_violation(
                "unknown_sku",
                format!("There is no product '{sku}'. Remove it from the cart."),
            )
            .with_detail("sku", sku)
            .with_detail("field", format!("items[{line}].sku")),
            CartRule::MixedCurrency {
                sku,
                currency,
                cart_currency,
            } => ApiError::rule_violation(
                "single_currency",
                format!("'{sku}' is priced in {currency} but the cart is in {cart_currency}; check out each currency separately."),
            )
            .with_detail("sku", sku),
            CartRule::TotalTooLarge => ApiError::rule_violation(
                "total_too_large",
                "The order total is too large. Split the order.",
            ),
        }
    }
}

impl From<SaleRule> for ApiError {
    fn from(rule: SaleRule) -> Self {
        match rule {
            SaleRule::NotActive { starts_at, ends_at } => ApiError::new(
                StatusCode::CONFLICT,
                "sale_not_active",
                "This flash sale is not running now. See starts_at and ends_at.",
            )
            .with_detail("starts_at", ts::format(&starts_at))
            .with_detail("ends_at", ts::format(&ends_at)),
            SaleRule::OverLimit { limit } => ApiError::new(
                StatusCode::CONFLICT,
                "purchase_limit_reached",
                format!("This sale allows at most {limit} per customer, counting what you bought before."),
            )
            .with_detail("limit", limit),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::Invalid(e) => e.into(),
            CheckoutError::Cart(rule) => rule.into(),
            CheckoutError::Sale(rule) => rule.into(),
            CheckoutError::LimitReached { limit } => SaleRule::OverLimit { limit }.into(),
            CheckoutError::SaleNotFound(id) => ApiError::not_found("Flash sale", "sale_id", &id),
            CheckoutError::SoldOut => ApiError::new(
                StatusCode::CONFLICT,
                "sold_out",
                "This flash sale is sold out.",
            ),
            CheckoutError::InsufficientStock { sku, available } => {
                ApiError::insufficient_stock(sku, available)
            }
            CheckoutError::Throttled { retry_after } => ApiError::throttled(retry_after),
            CheckoutError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request. Use a new key for a new request.",
            ),
            CheckoutError::InProgress => ApiError::request_in_progress(),
            CheckoutError::PaymentUnavailable { retry_after } => {
                let retry_after = retry_after.clamp(1, 5);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "payment_unavailable",
                    format!("Payments are unavailable right now, so nothing was reserved. Try again in {retry_after} s."),
                )
                .with_header(header::RETRY_AFTER, retry_after.to_string())
                .with_detail("retry_after", retry_after)
            }
            CheckoutError::Store(e) => e.into(),
        }
    }
}

impl From<CreateSaleError> for ApiError {
    fn from(e: CreateSaleError) -> Self {
        match e {
            CreateSaleError::ProductNotFound(sku) => ApiError::not_found("Product", "sku", &sku),
            CreateSaleError::InsufficientStock { sku, available } => {
                ApiError::insufficient_stock(sku, Some(available))
            }
            CreateSaleError::CurrencyMismatch { product_currency } => ApiError::rule_violation(
                "currency_mismatch",
                format!("The sale price must be in the product's currency, {product_currency}."),
            )
            .with_detail("currency", product_currency),
            CreateSaleError::AlreadyExists(id) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!(
                    "A flash sale with id '{id}' already exists. Choose another sale_id or omit it."
                ),
            )
            .with_detail("sale_id", id),
            CreateSaleError::Conflict => ApiError::request_in_progress(),
            CreateSaleError::Store(e) => e.into(),
        }
    }
}

impl From<CreatePartnerError> for ApiError {
    fn from(e: CreatePartnerError) -> Self {
        match e {
            CreatePartnerError::AlreadyExists(id) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!(
                    "A partner with id '{id}' already exists. Choose another partner_id or omit it."
                ),
            )
            .with_detail("partner_id", id),
            // a random 64-bit id met another: the same request again succeeds
            CreatePartnerError::KeyIdTaken(_) | CreatePartnerError::Conflict => {
                ApiError::request_in_progress()
            }
            CreatePartnerError::Store(e) => e.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such partner, or no such key of that partner. Check the ids and try again.",
            ),
            KeyError::KeyIdTaken(_) | KeyError::Conflict => ApiError::request_in_progress(),
            KeyError::Store(e) => e.into(),
        }
    }
}

/// 401 `invalid_api_key`, the same whatever was wrong with the key.
impl From<KeyRefusal> for ApiError {
    fn from(_: KeyRefusal) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Send a valid partner key in the X-Api-Key header: fc_<key_id>_<secret>, as it was shown when created.",
        )
    }
}

/// 429 `rate_limited` with `Retry-After`.
impl From<RateLimited> for ApiError {
    fn from(e: RateLimited) -> Self {
        let retry_after = e.retry_after.max(1);
        let message = match e.scope {
            LimitScope::Key { per_minute } => format!(
                "This key may make {per_minute} requests a minute. Wait {retry_after} s and try again."
            ),
            LimitScope::Address => format!(
                "Too many failed key attempts from your address. Wait {retry_after} s, then send a valid key."
            ),
        };
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_header(header::RETRY_AFTER, retry_after.to_string())
            .with_detail("retry_after", retry_after)
            .with_detail("limit", e.scope.as_str())
    }
}

impl From<PutProductError> for ApiError {
    fn from(e: PutProductError) -> Self {
        match e {
            PutProductError::OwnedByPartner(sku) => ApiError::rule_violation(
                "partner_owned",
                "This product belongs to a partner and changes only through the partner's feeds.",
            )
            .with_detail("sku", sku),
            PutProductError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(r: &Response<Body>) -> Value {
        serde_json::from_slice(r.body().as_ref()).unwrap()
    }

    #[test]
    fn every_error_has_the_documented_shape() {
        let r = ApiError::invalid_request("price.amount", "must be greater than 0")
            .into_response("req-1");
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/json");
        let b = body_of(&r);
        assert_eq!(b["error"], "invalid_request");
        assert_eq!(b["details"]["field"], "price.amount");
        assert_eq!(b["request_id"], "req-1");
        assert!(b["message"].as_str().unwrap().split_whitespace().count() < 50);
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let r =
            ApiError::internal("ResourceNotFoundException: table flashcart-x").into_response("r");
        assert_eq!(r.status(), 500);
        let text = String::from_utf8(r.body().to_vec()).unwrap();
        assert!(!text.contains("ResourceNotFound"));
        assert!(!text.contains("flashcart-x"));
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let r = ApiError::from(Unmatched {
            method: "DELETE".into(),
            path: "/products/A".into(),
            allowed: vec!["GET"],
        })
        .into_response("r");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET");
    }

    /// On DynamoDB a concurrent duplicate shows as a TransactionConflict on
    /// the same idempotency record; the emulator serialises, so it is tested here.
    #[test]
    fn in_progress_is_409_with_retry_after_wherever_it_comes_from() {
        for e in [
            ApiError::from(CheckoutError::InProgress),
            ApiError::from(CreateSaleError::Conflict),
        ] {
            let r = e.into_response("r");
            assert_eq!(r.status(), 409);
            assert_eq!(r.headers()["retry-after"], "1");
            let body = body_of(&r);
            assert_eq!(body["error"], "request_in_progress");
            assert_eq!(body["details"]["retry_after"], 1);
        }
    }

    #[test]
    fn the_purchase_limit_says_the_limit_wherever_it_is_decided() {
        for e in [
            ApiError::from(CheckoutError::LimitReached { limit: 2 }),
            ApiError::from(CheckoutError::Sale(SaleRule::OverLimit { limit: 2 })),
        ] {
            let body = e.body("r");
            assert_eq!(body["error"], "purchase_limit_reached");
            assert_eq!(body["details"]["limit"], 2);
        }
    }

    #[test]
    fn throttled_always_carries_a_retry_after_of_at_least_one_second() {
        let r = ApiError::from(CheckoutError::Throttled { retry_after: 0 }).into_response("r");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(body_of(&r)["details"]["retry_after"], 1);
    }
}
