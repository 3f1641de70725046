//! The requests table: idempotency records and throttle counters, both removed
//! by TTL.

use super::keys::requests as keys;
use super::{Item, StoreError, number_attr, read_number, string_attr};
use crate::domain::throttle::Throttle;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};

/// Records live a day: long enough for any client's retries (Stripe keeps its
/// keys 24 h too).
const RECORD_TTL_SECS: i64 = 24 * 3600;
/// Counters outlive their window by a minute, then TTL removes them.
const COUNTER_GRACE_SECS: i64 = 60;

/// Which request an idempotency record belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub user: &'a str,
    pub key: &'a str,
    /// What the request asked for (see `domain::idempotency::fingerprint`).
    pub fingerprint: &'a str,
}

/// What an earlier request with the same idempotency key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// The same request succeeded: answer this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Reused,
}

/// Whether a throttle window still had room for one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Allowed,
    Full,
}

#[derive(Clone, Debug)]
pub struct RequestStore {
    client: Client,
    table: String,
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
    pub(crate) fn record_item(
        &self,
        request: &RequestKey<'_>,
        status: u16,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = keys::idempotency(request.user, request.key);
        item.insert("fingerprint".into(), string_attr(request.fingerprint));
        item.insert("response_status".into(), number_attr(status));
        item.insert("response_body".into(), string_attr(body));
        item.insert(
            keys::TTL.into(),
            number_attr(now.timestamp() + RECORD_TTL_SECS),
        );
        super::put_new(&self.table, item)
    }

    /// What an earlier request with this key left, if anything (one strongly
    /// consistent read).
    pub async fn lookup(&self, request: &RequestKey<'_>) -> Result<Option<Earlier>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::idempotency(request.user, request.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", &e))?;
        Ok(out.item.map(|item| earlier(&item, request.fingerprint)))
    }

    /// The update that counts one attempt of `user` on `sku` in the current
    /// window, refused once the window holds `burst`.
    fn count_update(
        &self,
        user: &str,
        sku: &str,
        throttle: &Throttle,
        now: DateTime<Utc>,
    ) -> Result<Update, StoreError> {
        let start = throttle.window_start(now);
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::throttle(user, sku, start)))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :burst")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":one", number_attr(1))
            .expression_attribute_values(":burst", number_attr(throttle.burst))
            .expression_attribute_values(
                ":ttl",
                number_attr(start + throttle.window_secs + COUNTER_GRACE_SECS),
            )
            .build()?)
    }

    /// The count as a transaction item, so a checkout's own transaction counts
    /// it: an accepted checkout is one DynamoDB round trip.
    pub(crate) fn count_item(
        &self,
        user: &str,
        sku: &str,
        throttle: &Throttle,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.count_update(user, sku, throttle, now)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// How many attempts of `user` on `sku` the current window holds (a
    /// consistent read; 0 for none).
    pub async fn peek(
        &self,
        user: &str,
        sku: &str,
        throttle: &Throttle,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::throttle(user, sku, throttle.window_start(now))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", &e))?;
        Ok(out
            .item
            .and_then(|item| read_number(&item, "count"))
            .unwrap_or(0))
    }

    /// Counts one attempt on its own (an attempt whose transaction failed).
    pub async fn count(
        &self,
        user: &str,
        sku: &str,
        throttle: &Throttle,
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        let u = self.count_update(user, sku, throttle, now)?;
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
            Ok(_) => Ok(Counted::Allowed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Counted::Full)
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e)),
        }
    }
}

fn earlier(item: &Item, fingerprint: &str) -> Earlier {
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
        status: read_number(item, "response_status").unwrap_or(202),
        body: text("response_body"),
    }
}
