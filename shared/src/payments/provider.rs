//! The payment provider's HTTP client: one charge, retried inside a deadline.
//!
//! The provider's API (the sandbox of the local stack speaks it; ADR 0017):
//! `POST {base}/v1/charges` with `Authorization: Bearer <key>`,
//! `Idempotency-Key: <order_id>` and `{amount, currency, source, order_id}`;
//! 200 `{id, status: "succeeded"}`; 402 `{error: {code, message}}` for a
//! decline; 409 while a request with the same key is in flight. And
//! `GET {base}/v1/charges?order_id=<id>`: the charges the provider made for an
//! order, which settles an attempt whose outcome we never learnt.
//!
//! Every call has a timeout. 5xx, 429, 409, timeouts and connection errors
//! are retried with exponential backoff and full jitter until the deadline:
//! the same key on every try, so a retry of a charge that did happen returns
//! that charge, never a second one. A timeout means "outcome unknown", never
//! "declined": only the provider's 402 declines.

use crate::backoff::Backoff;
use crate::config::{ExposeSecret, Secret};
use crate::domain::money::Money;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub base_url: String,
    pub api_key: Secret,
    /// One HTTP call, connection included.
    pub call_timeout: Duration,
    /// All tries of one charge together.
    pub deadline: Duration,
    pub backoff: Backoff,
}

impl ProviderConfig {
    /// 3 s a call, 20 s a charge (the finalizer's timeout is 30 s), waits of
    /// up to 0.1, 0.2, 0.4, ... 2 s between tries: the deadline, not the
    /// count, ends the tries (a provider still deciding answers 409 at once).
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            call_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(20),
            backoff: Backoff {
                attempts: 30,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(2),
            },
        }
    }
}

/// What to charge.
#[derive(Debug, Clone, Copy)]
pub struct ChargeRequest<'a> {
    /// Also the idempotency key: one order, at most one charge.
    pub order_id: &'a str,
    pub amount: &'a Money,
    /// The provider's token for the buyer's payment method.
    pub source: &'a str,
}

/// What the provider decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        payment_id: String,
    },
    /// `code` is the provider's (`card_declined`, `unknown_token`, ...);
    /// `reason` a sentence for the buyer.
    Declined {
        code: String,
        reason: String,
    },
}

/// What the provider's own record says of an order (`Provider::find`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Succeeded {
        payment_id: String,
    },
    /// Succeeded, and refunded since.
    Refunded {
        payment_id: String,
    },
    Declined {
        code: String,
    },
    /// No charge for the order at all (yet: a search may lag).
    Nothing,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// No answer that decides within the deadline (5xx, 429, 409, timeouts,
    /// connection errors). If any try timed out, the charge may have
    /// happened: retry later with the same key.
    #[error("the payment provider did not decide after {tries} tries: {last}")]
    Unavailable { tries: u32, last: String },
    /// A 4xx other than a decline: our request or our credentials are wrong,
    /// and trying again will not help.
    #[error("the payment provider refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

#[derive(Debug, Clone)]
pub struct Provider {
    http: reqwest::Client,
    config: ProviderConfig,
}

#[derive(Deserialize)]
struct Charged {
    id: String,
}

#[derive(Deserialize)]
struct ChargeList {
    data: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    id: String,
    status: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// One try's result: decided, or worth another try.
enum Try {
    Decided(Result<ChargeOutcome, ProviderError>),
    Again(String),
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.call_timeout)
            .connect_timeout(config.call_timeout)
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Charges once, however many tries it takes.
    pub async fn charge(&self, req: &ChargeRequest<'_>) -> Result<ChargeOutcome, ProviderError> {
        let started = Instant::now();
        let mut last = String::new();
        let mut tries = 0;
        for attempt in 0..self.config.backoff.attempts {
            tries = attempt + 1;
            match self.try_once(req).await {
                Try::Decided(result) => return result,
                Try::Again(why) => {
                    tracing::info!(order_id = req.order_id, attempt = tries, reason = %why, "charge not decided; retrying");
                    last = why;
                }
            }
            let wait = self.config.backoff.delay(attempt);
            if started.elapsed() + wait + self.config.call_timeout > self.config.deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        Err(ProviderError::Unavailable { tries, last })
    }

    /// What the provider did for `order_id`: a succeeded charge (or one since
    /// refunded), else an explicit decline, else nothing at all. A charge in
    /// any other state (still processing) is not an answer: `Unavailable`,
    /// and the sweeper asks again next run. One call.
    pub async fn find(&self, order_id: &str) -> Result<Found, ProviderError> {
        let unavailable = |last: String| ProviderError::Unavailable { tries: 1, last };
        let response = self
            .http
            .get(format!("{}/v1/charges", self.config.base_url))
            .query(&[("order_id", order_id)])
            .bearer_auth(self.config.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| unavailable(without_url(e)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(
                if (400..500).contains(&status) && status != 409 && status != 429 {
                    ProviderError::Refused {
                        status,
                        message: "listing charges".into(),
                    }
                } else {
                    unavailable(format!("status {status}"))
                },
            );
        }
        let list: ChargeList = response
            .json()
            .await
            .map_err(|e| unavailable(format!("an unreadable list: {}", without_url(e))))?;
        if let Some(c) = list.data.iter().find(|c| c.status == "refunded") {
            return Ok(Found::Refunded {
                payment_id: c.id.clone(),
            });
        }
        if let Some(c) = list.data.iter().find(|c| c.status == "succeeded") {
            return Ok(Found::Succeeded {
                payment_id: c.id.clone(),
            });
        }
        if let Some(c) = list
            .data
            .iter()
            .find(|c| c.status != "declined" && c.status != "failed")
        {
            return Err(unavailable(format!("a charge still {}", c.status)));
        }
        Ok(match list.data.into_iter().next() {
            Some(declined) => Found::Declined {
                code: declined.code.unwrap_or_else(|| "declined".into()),
            },
            None => Found::Nothing,
        })
    }

    async fn try_once(&self, req: &ChargeRequest<'_>) -> Try {
        let body = serde_json::json!({
            "amount": req.amount.amount,
            "currency": req.amount.currency,
            "source": req.source,
            "order_id": req.order_id,
        });
        let sent = self
            .http
            .post(format!("{}/v1/charges", self.config.base_url))
            .bearer_auth(self.config.api_key.expose_secret())
            .header("Idempotency-Key", req.order_id)
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Try::Again("timed out (outcome unknown)".into()),
            Err(e) => return Try::Again(format!("no answer: {}", without_url(e))),
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                return Try::Again("timed out reading the answer (outcome unknown)".into());
            }
            Err(e) => return Try::Again(format!("answer cut short: {}", without_url(e))),
        };
        match status {
            200 | 201 => match serde_json::from_str::<Charged>(&text) {
                Ok(c) => Try::Decided(Ok(ChargeOutcome::Succeeded { payment_id: c.id })),
                // a success we cannot read is not a decision: ask again, same key
                Err(_) => Try::Again(format!("{status} with an unreadable body")),
            },
            402 => {
                let detail = serde_json::from_str::<ErrorBody>(&text)
                    .map(|b| b.error)
                    .ok();
                let (code, reason) = detail.map(|d| (d.code, d.message)).unwrap_or_default();
                Try::Decided(Ok(ChargeOutcome::Declined {
                    code: if code.is_empty() {
                        "declined".into()
                    } else {
                        code
                    },
                    reason: if reason.is_empty() {
                        "The payment was declined.".into()
                    } else {
                        reason
                    },
                }))
            }
            409 | 429 | 500..=599 => Try::Again(format!("status {status}")),
            _ => {
                let message = serde_json::from_str::<ErrorBody>(&text)
                    .map(|b| b.error.message)
                    .unwrap_or_default();
                Try::Decided(Err(ProviderError::Refused { status, message }))
            }
        }
    }
}

/// reqwest's errors name the URL; ours is configuration, not a secret, but
/// the message is clearer without it.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
