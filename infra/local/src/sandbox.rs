//! The sandbox payment provider: a real HTTP peer on 127.0.0.1:3001 (`make
//! run`) or a free port (tests), speaking the provider API of
//! `shared::payments::provider` (ADR 0017).
//!
//! Test tokens in the style of card test numbers: `tok_ok` succeeds,
//! `tok_declined` declines, `tok_flaky` answers 503 to every other call for
//! the same key (the first included: half the calls, deterministically, so a
//! test of retries cannot flake; `failure_rate` is the random kind),
//! `tok_slow` answers after 10 s; any other token is declined as unknown. The
//! `Idempotency-Key` is honoured as a provider does: the same key returns the
//! first decided result and never charges twice; while the first request with
//! a key is in flight, another with it gets 409. A 503 is the front door
//! failing before the charge logic runs, so it is neither recorded nor
//! charged. After each decision it posts a signed webhook to the configured
//! callback URL.
//!
//! For tests and benchmarks: `GET /charges` is the ledger (every charge made,
//! so charges per order can be counted); `POST /_sandbox/mode` switches the
//! whole provider down, or to a failure rate for every call;
//! `POST /v1/refunds {payment_id}` refunds a charge (webhook `charge.refunded`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::config::{ExposeSecret, Secret};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_PORT: u16 = 3001;
/// The sandbox's API key, and the webhook secret it signs with, unless set.
pub const DEFAULT_API_KEY: &str = "sk_test_flashcart_local";
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_flashcart_local_only";
pub const DECLINED_REASON: &str = "Your card was declined. Try another card or payment method.";
pub const UNKNOWN_TOKEN_REASON: &str =
    "This payment method was not recognised. Check it or use another one.";
/// How long `tok_slow` takes.
pub const SLOW: Duration = Duration::from_secs(10);

/// One charge the sandbox made, as the ledger shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub order_id: String,
    pub idempotency_key: String,
    pub source: String,
    pub amount: i64,
    pub currency: String,
    /// `succeeded`, `declined` or `refunded`.
    pub status: String,
    /// A decline's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Failure injection: the whole provider down, or failing a share of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    #[serde(default)]
    pub down: bool,
    /// 0.0 to 1.0: the share of calls answered 503 before anything happens.
    #[serde(default)]
    pub failure_rate: f64,
}

enum Keyed {
    InFlight,
    Done(u16, Value),
}

pub struct Sandbox {
    api_key: Secret,
    webhook_secret: Secret,
    webhook_url: Mutex<Option<String>>,
    mode: Mutex<Mode>,
    keys: Mutex<HashMap<String, (Value, Keyed)>>,
    /// `tok_flaky` calls per key, to fail every other one.
    flaky_calls: Mutex<HashMap<String, u32>>,
    ledger: Mutex<Vec<Charge>>,
    http: reqwest::Client,
}

impl Sandbox {
    pub fn new(api_key: Secret, webhook_secret: Secret, webhook_url: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            api_key,
            webhook_secret,
            webhook_url: Mutex::new(webhook_url),
            mode: Mutex::new(Mode::default()),
            keys: Mutex::new(HashMap::new()),
            flaky_calls: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Vec::new()),
            http: reqwest::Client::new(),
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        if let Ok(mut w) = self.webhook_url.lock() {
            *w = url;
        }
    }

    pub fn ledger(&self) -> Vec<Charge> {
        self.ledger.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Charges made (successful or refunded) for one order.
    pub fn charges_for(&self, order_id: &str) -> usize {
        self.ledger()
            .iter()
            .filter(|c| c.order_id == order_id && c.status != "declined")
            .count()
    }

    fn mode(&self) -> Mode {
        self.mode.lock().map(|m| *m).unwrap_or_default()
    }
}

pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/v1/charges", post(charge).get(list_charges))
        .route("/v1/refunds", post(refund))
        .route("/charges", get(ledger))
        .route("/_sandbox/mode", post(set_mode).get(get_mode))
        .with_state(sandbox)
}

/// Serves the sandbox on `listener` until the task is dropped.
pub async fn serve(sandbox: Arc<Sandbox>, listener: tokio::net::TcpListener) {
    if let Err(e) = axum::serve(listener, router(sandbox)).await {
        tracing::warn!(error = %e, "the sandbox provider stopped");
    }
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "code": code, "message": message}})),
    )
        .into_response()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "unavailable",
        "The sandbox is unavailable; try again.",
    )
}

#[derive(Deserialize)]
struct ChargeBody {
    amount: i64,
    currency: String,
    source: String,
    order_id: String,
}

async fn charge(
    State(s): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mode = s.mode();
    if mode.down || (mode.failure_rate > 0.0 && fastrand::f64() < mode.failure_rate) {
        return unavailable();
    }
    if !authorized(&s, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key.",
        );
    }
    let Ok(req) = serde_json::from_slice::<ChargeBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_body",
            "The body is not a charge.",
        );
    };
    if req.amount <= 0 || req.currency.len() != 3 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_amount",
            "Amount or currency is invalid.",
        );
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "idempotency_key_missing",
            "Idempotency-Key is required.",
        );
    };
    // tok_flaky fails at the front door every other call, as a load balancer
    // would: before the charge logic, so neither charged nor remembered
    if req.source == "tok_flaky" {
        let call = s.flaky_calls.lock().map(|mut calls| {
            let n = calls.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        });
        if call.unwrap_or(1) % 2 == 1 {
            return unavailable();
        }
    }
    let fingerprint: Value = json!([req.amount, req.currency, req.source, req.order_id]);
    {
        let Ok(mut keys) = s.keys.lock() else {
            return unavailable();
        };
        match keys.get(&key) {
            Some((seen, _)) if *seen != fingerprint => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    "idempotency_key_reused",
                    "This key was used with other parameters.",
                );
            }
            Some((_, Keyed::InFlight)) => {
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "request_in_progress",
                    "A request with this key is in progress.",
                );
            }
            Some((_, Keyed::Done(status, body))) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                return (
                    status,
                    [("idempotent-replayed", "true")],
                    Json(body.clone()),
                )
                    .into_response();
            }
            None => {
                keys.insert(key.clone(), (fingerprint.clone(), Keyed::InFlight));
            }
        }
    }
    // the charge runs in a task of its own: a client that gives up (its call
    // timeout) drops this handler, and must not leave the key in flight
    let decided = tokio::spawn(decide(s.clone(), req, key)).await;
    match decided {
        Ok((status, answer)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, Json(answer)).into_response()
        }
        Err(_) => unavailable(),
    }
}

/// Makes (or declines) the charge, records it under its key and in the
/// ledger, and sends the webhook.
async fn decide(s: Arc<Sandbox>, req: ChargeBody, key: String) -> (u16, Value) {
    let fingerprint: Value = json!([req.amount, req.currency, req.source, req.order_id]);
    if req.source == "tok_slow" {
        tokio::time::sleep(SLOW).await;
    }
    let payment_id = format!("ch_{}", uuid::Uuid::new_v4().simple());
    let (status, answer, event) = match req.source.as_str() {
        "tok_ok" | "tok_flaky" | "tok_slow" => (
            200,
            json!({"id": payment_id, "status": "succeeded", "amount": req.amount, "currency": req.currency}),
            ("payment.succeeded", None),
        ),
        "tok_declined" => (
            402,
            json!({"error": {"type": "card_error", "code": "card_declined", "message": DECLINED_REASON}}),
            ("payment.failed", Some(("card_declined", DECLINED_REASON))),
        ),
        _ => (
            402,
            json!({"error": {"type": "card_error", "code": "unknown_token", "message": UNKNOWN_TOKEN_REASON}}),
            (
                "payment.failed",
                Some(("unknown_token", UNKNOWN_TOKEN_REASON)),
            ),
        ),
    };
    let charge = Charge {
        id: payment_id.clone(),
        order_id: req.order_id.clone(),
        idempotency_key: key.clone(),
        source: req.source.clone(),
        amount: req.amount,
        currency: req.currency.clone(),
        status: if status == 200 {
            "succeeded"
        } else {
            "declined"
        }
        .into(),
        code: event.1.map(|(code, _)| code.to_owned()),
    };
    if let Ok(mut ledger) = s.ledger.lock() {
        ledger.push(charge.clone());
    }
    if let Ok(mut keys) = s.keys.lock() {
        keys.insert(key, (fingerprint, Keyed::Done(status, answer.clone())));
    }
    webhook(&s, event.0, &charge, event.1);
    (status, answer)
}

#[derive(Deserialize)]
struct RefundBody {
    payment_id: String,
}

async fn refund(State(s): State<Arc<Sandbox>>, Json(req): Json<RefundBody>) -> Response {
    let refunded = s.ledger.lock().ok().and_then(|mut ledger| {
        let c = ledger
            .iter_mut()
            .find(|c| c.id == req.payment_id && c.status == "succeeded")?;
        c.status = "refunded".into();
        Some(c.clone())
    });
    match refunded {
        Some(c) => {
            webhook(&s, "charge.refunded", &c, None);
            (
                StatusCode::OK,
                Json(json!({"id": c.id, "status": "refunded"})),
            )
                .into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no_such_charge",
            "No succeeded charge has this id.",
        ),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: String,
}

/// `GET /v1/charges?order_id=`: what a provider's charge search answers.
async fn list_charges(
    State(s): State<Arc<Sandbox>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    if s.mode().down {
        return unavailable();
    }
    if !authorized(&s, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key.",
        );
    }
    let mut data: Vec<Value> = s
        .ledger()
        .into_iter()
        .filter(|c| c.order_id == q.order_id)
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    // a charge still being decided is listed as such, as a provider lists it
    if let Ok(keys) = s.keys.lock() {
        for (fingerprint, keyed) in keys.values() {
            if matches!(keyed, Keyed::InFlight) && fingerprint[3] == json!(q.order_id) {
                data.push(
                    json!({"id": "ch_in_flight", "order_id": q.order_id, "status": "processing"}),
                );
            }
        }
    }
    Json(json!({ "data": data })).into_response()
}

fn authorized(s: &Sandbox, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == s.api_key.expose_secret())
}

async fn ledger(State(s): State<Arc<Sandbox>>) -> Json<Value> {
    Json(json!({"items": s.ledger()}))
}

async fn set_mode(State(s): State<Arc<Sandbox>>, Json(mode): Json<Mode>) -> Json<Mode> {
    s.set_mode(mode);
    Json(mode)
}

async fn get_mode(State(s): State<Arc<Sandbox>>) -> Json<Mode> {
    Json(s.mode())
}

/// The event body the provider posts (DESIGN.md, "Payment provider"), with
/// a failure's code and reason.
pub fn event_body(
    kind: &str,
    charge: &Charge,
    failure: Option<(&str, &str)>,
    created: i64,
) -> Value {
    let mut data = json!({
        "order_id": charge.order_id,
        "payment_id": charge.id,
        "amount": charge.amount,
        "currency": charge.currency,
    });
    if let Some((code, reason)) = failure {
        data["code"] = json!(code);
        data["reason"] = json!(reason);
    }
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": kind,
        "created": created,
        "data": data,
    })
}

/// Posts the signed event to the callback, in the background, once (a
/// provider retries; this sandbox need not: the finalizer decides too).
fn webhook(s: &Arc<Sandbox>, kind: &str, charge: &Charge, failure: Option<(&str, &str)>) {
    let Some(url) = s.webhook_url.lock().ok().and_then(|u| u.clone()) else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    let body = event_body(kind, charge, failure, now).to_string();
    let signature = shared::payments::signature::sign(
        s.webhook_secret.expose_secret().as_bytes(),
        now,
        body.as_bytes(),
    );
    let http = s.http.clone();
    tokio::spawn(async move {
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .header("payment-signature", signature)
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::info!(error = %e.without_url(), "sandbox webhook not delivered");
        }
    });
}
