//! The requests table: idempotency records and throttle windows, both removed
//! by TTL.

use super::{Item, StoreError, n, s};
use crate::keys::{PK, SK, requests::*};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

/// Records live a day: long enough for any client's retries.
const RECORD_TTL_SECS: i64 = 24 * 3600;
/// An in-progress claim older than this belongs to an invocation that died
/// (checkouts time out after 10 s); the key may then be claimed again.
const CLAIM_LOCK_SECS: i64 = 30;

/// What a claim on an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the work, complete the claim in its transaction.
    Acquired(ClaimToken),
    /// The same request already succeeded: answer this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Reused,
    /// The same request is being processed right now.
    InFlight,
}

/// Proof of a claim: what completes or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    pk: String,
    fingerprint: String,
}

/// Whether a throttle window still has room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    /// Seconds until the window ends (at least 1).
    Throttled {
        retry_after: u64,
    },
}

#[derive(Clone, Debug)]
pub struct RequestStore {
    client: Client,
    table: String,
}

fn key(pk: String, sk: &str) -> Item {
    [(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))].into()
}

impl RequestStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims `key` for the request with `fingerprint`, or says why not.
    pub async fn claim(
        &self,
        user: &str,
        key_value: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let pk = idempotency_pk(user, key_value);
        let epoch = now.timestamp();
        let mut item = key(pk.clone(), IDEMPOTENCY_SK);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s("in_progress"));
        item.insert("lock_until".into(), n(epoch + CLAIM_LOCK_SECS));
        item.insert(TTL.into(), n(epoch + RECORD_TTL_SECS));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR (#state = :busy AND #lock < :now)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lock", "lock_until")
            .expression_attribute_values(":busy", s("in_progress"))
            .expression_attribute_values(":now", n(epoch))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(Claim::Acquired(ClaimToken { pk, fingerprint: fingerprint.to_owned() })),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_conditional_check_failed_exception() => match &se {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                },
                _ => return Err(StoreError::dynamo("PutItem", &e)),
            },
        };
        let existing = match existing {
            Some(item) => Some(item),
            None => self.get(&pk).await?, // emulators may not return the item
        };
        Ok(Self::classify(existing.as_ref(), fingerprint))
    }

    /// What a completed (or in-flight) record for `key` says, without claiming:
    /// the cheap path used when the answer is otherwise known (sold out).
    pub async fn lookup(
        &self,
        user: &str,
        key_value: &str,
        fingerprint: &str,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self
            .get(&idempotency_pk(user, key_value))
            .await?
            .map(|item| Self::classify(Some(&item), fingerprint)))
    }

    async fn get(&self, pk: &str) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), IDEMPOTENCY_SK)))
            .consistent_read(true)
            .send()
            .await
            .map(|o| o.item)
            .map_err(|e| StoreError::dynamo("GetItem", &e))
    }

    fn classify(item: Option<&Item>, fingerprint: &str) -> Claim {
        let Some(item) = item else {
            return Claim::InFlight;
        };
        let text = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        if text("fingerprint") != fingerprint {
            return Claim::Reused;
        }
        match text("state").as_str() {
            "completed" => Claim::Replay {
                status: item
                    .get("response_status")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200),
                body: text("response_body"),
            },
            _ => Claim::InFlight,
        }
    }

    /// The transaction item that completes a claim with the response to replay.
    pub fn complete(
        &self,
        token: &ClaimToken,
        status: u16,
        body: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(token.pk.clone(), IDEMPOTENCY_SK)))
            .update_expression("SET #state = :done, response_status = :status, response_body = :body REMOVE lock_until")
            .condition_expression("#state = :busy AND fingerprint = :fp")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("completed"))
            .expression_attribute_values(":busy", s("in_progress"))
            .expression_attribute_values(":fp", s(&token.fingerprint))
            .expression_attribute_values(":status", n(status))
            .expression_attribute_values(":body", s(body))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Gives a claim back after the request failed, so the client may retry
    /// with the same key. Best effort: an unreleased claim frees itself after
    /// its lock expires.
    pub async fn release(&self, token: &ClaimToken) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(token.pk.clone(), IDEMPOTENCY_SK)))
            .condition_expression("#state = :busy AND fingerprint = :fp")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":busy", s("in_progress"))
            .expression_attribute_values(":fp", s(&token.fingerprint))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %StoreError::dynamo("DeleteItem", &e), "idempotency claim not released; it expires by itself");
        }
    }

    /// Counts one request of `user` on `sku` in the current fixed window of
    /// `window_secs`; refuses once `burst` have been counted.
    pub async fn hit(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
        burst: u32,
        window_secs: i64,
    ) -> Result<Throttle, StoreError> {
        let epoch = now.timestamp();
        let window_start = epoch - epoch.rem_euclid(window_secs);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(throttle_pk(user, sku, window_start), THROTTLE_SK)))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :burst")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":burst", n(burst))
            .expression_attribute_values(":ttl", n(window_start + window_secs + 60))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Throttle::Allowed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Throttle::Throttled {
                    retry_after: (window_start + window_secs - epoch).max(1) as u64,
                })
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e)),
        }
    }

    /// Writes an in-progress claim as another invocation would (tests).
    pub async fn put_in_flight(
        &self,
        user: &str,
        key_value: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self.claim(user, key_value, fingerprint, now).await? {
            Claim::Acquired(_) => Ok(()),
            other => Err(StoreError::Corrupt(format!("key already used: {other:?}"))),
        }
    }
}
