//! payment-callback: `POST /payments/callback`, the provider's webhooks
//! (ADR 0019).
//!
//! 1. The body is at most 64 KiB (413), and its `Payment-Signature` must
//!    verify over the raw bytes under one of our secrets, within 300 s of
//!    now (401 `invalid_signature`), before the body is parsed at all.
//! 2. The event must be DESIGN.md's shape (400 `invalid_request`).
//! 3. Its id is claimed with a conditional put: a duplicate of an applied
//!    event answers 200 and changes nothing.
//! 4. Its fact is applied to the order as the conditional steps of ADR 0018,
//!    so any order and any number of deliveries end in the same state. An
//!    unknown type, an unknown order, an amount or charge that does not match
//!    the order, a contradiction: recorded and audited, nothing moved, 200 so
//!    the provider stops retrying.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ApiError;
use shared::clock::{SharedClock, system};
use shared::config::{ConfigError, ExposeSecret, Secret, Source, WebhookConfig};
use shared::domain::order::Order;
use shared::domain::payment::{Fact, Unchanged};
use shared::domain::text::{check_id, printable};
use shared::http::{MAX_JSON_BODY, RequestInfo, typed};
use shared::payments::signature;
use shared::response::json;
use shared::store::audit::{AuditEvent, AuditStore};
use shared::store::payments::PaymentStore;
use shared::store::webhooks::{Seen, WebhookStore};
use tracing::Instrument;

pub const FUNCTION: &str = "payment-callback";
pub const SIGNATURE_HEADER: &str = "payment-signature";
/// The provider's event and order ids are short; longer is not theirs.
const MAX_ID: usize = 255;

pub struct Deps {
    secrets: Vec<Secret>,
    payments: PaymentStore,
    webhooks: WebhookStore,
    audit: AuditStore,
    clock: SharedClock,
}

impl Deps {
    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let config = WebhookConfig::from_source(src)?;
        let dynamo = shared::aws::dynamodb(sdk);
        Ok(Self {
            secrets: config.secrets,
            payments: PaymentStore::new(dynamo.clone(), &config.tables),
            webhooks: WebhookStore::new(dynamo.clone(), &config.tables.requests),
            audit: AuditStore::new(dynamo, &config.tables.audit),
            clock: system(),
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// DESIGN.md's event: `{id, type, created, data: {order_id, payment_id,
/// amount, currency, reason?}}` (`code` is the provider's failure code).
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    order_id: String,
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "the provider's words; our reason comes from the code"
    )]
    reason: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let info = RequestInfo::of(&req);
    let span = info.span();
    async {
        Ok(receive(deps, &req, &info)
            .await
            .unwrap_or_else(|e| e.into_response(&info.request_id)))
    }
    .instrument(span)
    .await
}

async fn receive(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
) -> Result<Response<Body>, ApiError> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_JSON_BODY {
        return Err(ApiError::payload_too_large(MAX_JSON_BODY));
    }
    let now = deps.clock.now();
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    let secrets: Vec<&[u8]> = deps
        .secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    if let Err(e) = signature::verify(header, body, &secrets, now.timestamp()) {
        tracing::warn!(reason = %e, source_ip = %info.source_ip, "webhook signature refused");
        return Err(e.into());
    }
    let event: Event = typed(&shared::http::json_value(req, MAX_JSON_BODY)?)?;
    check_id("id", &event.id, MAX_ID)?;
    check_id("data.order_id", &event.data.order_id, MAX_ID)?;
    tracing::Span::current().record("order_id", event.data.order_id.as_str());

    match deps
        .webhooks
        .claim(&event.id, &printable(&event.kind, 64), now)
        .await?
    {
        Seen::Applied => {
            tracing::info!(event_id = %event.id, "duplicate webhook event; already applied");
            return Ok(received());
        }
        Seen::New | Seen::Unfinished => {}
    }
    let outcome = apply(deps, &event, info).await?;
    deps.webhooks.applied(&event.id, &outcome).await?;
    tracing::info!(event_id = %event.id, kind = %event.kind, created = event.created, outcome = %outcome, "webhook event applied");
    Ok(received())
}

fn received() -> Response<Body> {
    json(StatusCode::OK, &json!({"received": true}))
}

/// Applies the event; returns what it did, in a word or two.
async fn apply(deps: &Deps, event: &Event, info: &RequestInfo) -> Result<String, ApiError> {
    let now = deps.clock.now();
    let data = &event.data;
    let audit = |outcome: &'static str| audit(deps, event, info, outcome);
    let Some(order) = deps.payments.get(&data.order_id).await? else {
        return audit("unknown_order").await;
    };
    let fact = match event.kind.as_str() {
        "payment.succeeded" => {
            if let Some(mismatch) = mismatch(&order, data) {
                return audit(mismatch).await;
            }
            match &data.payment_id {
                Some(p) => Fact::Succeeded {
                    payment_id: p.clone(),
                },
                None => return audit("no_payment_id").await,
            }
        }
        "payment.failed" => Fact::Failed {
            code: data
                .code
                .as_deref()
                .map(|c| printable(c, 64))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "declined".into()),
        },
        "charge.refunded" => match &data.payment_id {
            Some(p) if order.payment_id.as_deref().is_none_or(|mine| mine == p) => Fact::Refunded {
                payment_id: p.clone(),
            },
            _ => return audit("refund_of_another_charge").await,
        },
        _ => return audit("ignored_event_type").await,
    };
    let applied = deps.payments.apply(order, &fact, now).await?;
    match applied.unchanged {
        Some(Unchanged::Contradicts) => audit("contradiction").await,
        Some(Unchanged::AlreadyApplied) => Ok("already_applied".into()),
        None => Ok(format!(
            "{}->{}",
            applied.before.as_str(),
            applied.after.as_str()
        )),
    }
}

/// A success that is not this order's: another amount or currency, or
/// another charge than the one the order recorded.
fn mismatch(order: &Order, data: &EventData) -> Option<&'static str> {
    if data.amount != Some(order.total.amount)
        || data.currency.as_deref() != Some(&order.total.currency)
    {
        return Some("amount_mismatch");
    }
    match (&order.payment_id, &data.payment_id) {
        (Some(mine), Some(theirs)) if mine != theirs => Some("another_charge"),
        _ => None,
    }
}

/// Records an event that moved nothing for a person to look at.
async fn audit(
    deps: &Deps,
    event: &Event,
    info: &RequestInfo,
    outcome: &str,
) -> Result<String, ApiError> {
    tracing::warn!(event_id = %event.id, kind = %event.kind, outcome, "webhook event recorded, order unchanged");
    let record = AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        at: deps.clock.now(),
        actor: "payment-provider".into(),
        action: "POST /payments/callback".into(),
        target: printable(
            &format!(
                "event {} ({}) for order {}",
                event.id, event.kind, event.data.order_id
            ),
            200,
        ),
        source_ip: info.source_ip.clone(),
        outcome: outcome.to_owned(),
        request_id: info.request_id.clone(),
    };
    deps.audit.record(&record).await?;
    Ok(outcome.to_owned())
}
