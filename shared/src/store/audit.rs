//! The audit trail: an append-only table (functions may only PutItem into it,
//! with a condition that never overwrites), read newest first by admins.

use super::keys::{PK, SK, audit as keys};
use super::{ListError, StoreError, item_with_keys, number_attr, string_attr};
use crate::cursor::{self, CursorError};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Who did what, when, from where, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: String,
    #[serde(with = "ts")]
    pub at: DateTime<Utc>,
    /// The JWT subject, a partner key id, or `anonymous`.
    pub actor: String,
    /// The route, e.g. `PUT /admin/products/{sku}`.
    pub action: String,
    /// The resource acted on, e.g. the SKU.
    #[serde(default)]
    pub target: String,
    pub source_ip: String,
    /// `allowed`, `denied`, or the error code the request ended with.
    pub outcome: String,
    pub request_id: String,
}

/// How far back one read walks through empty days before it hands back a cursor.
const DAYS_PER_READ: i64 = 7;
/// The audit trail is kept (and read) for 400 days: each record carries its
/// end (`expires_at_epoch`), and the table's TTL removes it then.
const RETENTION_DAYS: i64 = 400;

#[derive(Clone, Debug)]
pub struct AuditStore {
    client: Client,
    table: String,
}

/// Where a newest-first read resumes: a day, and a key inside it.
#[derive(Serialize, Deserialize)]
struct Resume {
    day: NaiveDate,
    sk: Option<String>,
}

impl AuditStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Appends `event`; `Ok(false)` when a record with its key is there already
    /// (a window's summary, written once by whichever container comes first).
    pub async fn record(&self, event: &AuditEvent) -> Result<bool, StoreError> {
        let mut item = item_with_keys(event, keys::event(&event.at, &event.event_id))?;
        let expires = event.at + Duration::days(RETENTION_DAYS);
        item.insert(keys::TTL.into(), number_attr(expires.timestamp()));
        super::put_if_absent(&self.client, &self.table, item).await
    }

    /// Up to `limit` events, newest first, walking back day by day.
    pub async fn list(
        &self,
        limit: usize,
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<AuditEvent>, Option<String>), ListError> {
        let today = now.date_naive();
        let mut at = match cursor {
            Some(c) => {
                let key = cursor::decode_position(c, &["day", "sk"])?;
                let day = key["day"]
                    .as_s()
                    .ok()
                    .and_then(|d| d.parse::<NaiveDate>().ok());
                let sk = key["sk"].as_s().ok().cloned().filter(|s| !s.is_empty());
                Resume {
                    day: day.ok_or(CursorError)?,
                    sk,
                }
            }
            None => Resume {
                day: today,
                sk: None,
            },
        };
        let oldest = today - Duration::days(RETENTION_DAYS);
        let mut events = Vec::new();
        let mut days_read = 0;
        while events.len() < limit && at.day >= oldest && days_read < DAYS_PER_READ {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", string_attr(keys::day_pk(at.day)))
                .scan_index_forward(false)
                .limit((limit - events.len()) as i32);
            if let Some(sk) = &at.sk {
                query = query.set_exclusive_start_key(Some(keys::resume_at(at.day, sk)));
            }
            let out = query
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                events.push(serde_dynamo::from_item(item).map_err(StoreError::from)?);
            }
            match out
                .last_evaluated_key
                .and_then(|k| k.get(SK).and_then(|v| v.as_s().ok()).cloned())
            {
                Some(sk) => at.sk = Some(sk),
                None => {
                    at = Resume {
                        day: at.day - Duration::days(1),
                        sk: None,
                    };
                    days_read += 1;
                }
            }
        }
        let next = (at.day >= oldest).then(|| {
            let key = [
                ("day".to_owned(), string_attr(at.day.to_string())),
                ("sk".to_owned(), string_attr(at.sk.unwrap_or_default())),
            ]
            .into();
            cursor::encode(&key)
        });
        Ok((events, next.flatten()))
    }
}
