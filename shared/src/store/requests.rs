//! The requests table: idempotency records and throttle windows, both removed
//! by TTL.

use super::{Item, StoreError, n, s};
use crate::keys::{PK, SK, requests::*};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};

/// Records live a day: long enough for any client's retries.
const RECORD_TTL_SECS: i64 = 24 * 3600;

/// What an earlier request with the same idempotency key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// The same request succeeded: answer this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Reused,
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

/// Seconds until the current fixed window of `window_secs` ends (at least 1).
pub fn retry_after(now: DateTime<Utc>, window_secs: i64) -> u64 {
    let epoch = now.timestamp();
    (window_secs - epoch.rem_euclid(window_secs)).max(1) as u64
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

    /// The transaction item that records a request's answer under its key,
    /// only if the key is new: a checkout's own transaction carries it, so the
    /// order and its idempotency record exist together or not at all.
    pub fn record(
        &self,
        user: &str,
        key_value: &str,
        fingerprint: &str,
        status: u16,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(idempotency_pk(user, key_value), IDEMPOTENCY_SK);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("response_status".into(), n(status));
        item.insert("response_body".into(), s(body));
        item.insert(TTL.into(), n(now.timestamp() + RECORD_TTL_SECS));
        super::put_new(&self.table, item)
    }

    /// What an earlier request with this key left, if anything (one strongly
    /// consistent read).
    pub async fn lookup(
        &self,
        user: &str,
        key_value: &str,
        fingerprint: &str,
    ) -> Result<Option<Earlier>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(idempotency_pk(user, key_value), IDEMPOTENCY_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", &e))?;
        Ok(out.item.map(|item| {
            let text = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            if text("fingerprint") != fingerprint {
                return Earlier::Reused;
            }
            Earlier::Replay {
                status: item
                    .get("response_status")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(202),
                body: text("response_body"),
            }
        }))
    }

    /// The update that counts one request of `user` on `sku` in the current
    /// fixed window of `window_secs`, refused once `burst` have been counted.
    fn count(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
        burst: u32,
        window_secs: i64,
    ) -> Result<Update, StoreError> {
        let epoch = now.timestamp();
        let window_start = epoch - epoch.rem_euclid(window_secs);
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(throttle_pk(user, sku, window_start), THROTTLE_SK)))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :burst")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":burst", n(burst))
            .expression_attribute_values(":ttl", n(window_start + window_secs + 60))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The throttle count as a transaction item, so a checkout's own transaction
    /// counts it: an accepted checkout is one DynamoDB round trip.
    pub fn count_item(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
        burst: u32,
        window_secs: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.count(user, sku, now, burst, window_secs)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Counts one request on its own (an attempt whose transaction failed).
    pub async fn hit(
        &self,
        user: &str,
        sku: &str,
        now: DateTime<Utc>,
        burst: u32,
        window_secs: i64,
    ) -> Result<Throttle, StoreError> {
        let u = self.count(user, sku, now, burst, window_secs)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Throttle::Allowed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Throttle::Throttled {
                    retry_after: retry_after(now, window_secs),
                })
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e)),
        }
    }
}
