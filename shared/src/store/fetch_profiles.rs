//! Fetch profiles and their fetches (issue 12, ADR 0025), in the Partners
//! table. A profile that may be fetched carries the sparse `by_due` index
//! (`gsi3pk = DUE`, `gsi3sk = <next fetch time>#<partner>`), so the fetcher
//! finds what is due with one Query and no scan; a paused or deleted profile
//! leaves the index. A fetch is claimed by moving the profile's next fetch
//! time from the due time the fetcher read to the end of its lease, on the
//! condition that it is still that due time: of two fetchers at once, one
//! wins, and a fetcher that dies leaves the profile due again when its lease
//! ends. The secret is not here: Secrets Manager holds it (ADR 0025).

use super::keys::{GSI3PK, GSI3SK, PK, partners as keys};
use super::{StoreError, conditional, item_with_keys, number_attr, string_attr};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a fetch record is kept (an hourly profile leaves 24 a day).
pub const FETCH_RETENTION_DAYS: i64 = 90;

/// A partner's fetch profile as stored (the secret excepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchProfile {
    pub partner_id: String,
    pub url: String,
    /// `every_hours` or `daily_at`, as the partner sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_at: Option<String>,
    pub format: String,
    pub feed_version: u8,
    pub validation: crate::feeds::import::Validation,
    /// `none`, `basic`, `bearer` or `header`.
    pub auth_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, with = "ts::option", skip_serializing_if = "Option::is_none")]
    pub secret_changed_at: Option<DateTime<Utc>>,
    /// When the next fetch is due (while claimed: when the claim ends).
    #[serde(with = "ts")]
    pub next_fetch_at: DateTime<Utc>,
    /// Failed fetches in a row.
    #[serde(default)]
    pub failures: u32,
    /// Why the profile no longer fetches (too many failures), if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// The last stored file's validators, for a conditional fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The run holding the profile, and the due time it claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    #[serde(default, with = "ts::option", skip_serializing_if = "Option::is_none")]
    pub claimed_due: Option<DateTime<Utc>>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
}

/// One fetch's record: what the admin's list of a partner's fetches shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecord {
    pub fetch_id: String,
    pub partner_id: String,
    #[serde(with = "ts")]
    pub started_at: DateTime<Utc>,
    /// `fetched`, `unchanged`, `refused` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub bytes: u64,
    /// The feed the file became, when one was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub host: String,
    pub duration_ms: u64,
}

/// How a claimed fetch ended, for its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Fetched or unchanged: the next due time, and the validators to send.
    Succeeded {
        next_fetch_at: DateTime<Utc>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// Failed: retried at `retry_at`, or paused (`None`) with a reason.
    Failed {
        retry_at: Option<DateTime<Utc>>,
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct FetchProfileStore {
    client: Client,
    table: String,
}

fn due_key(at: &DateTime<Utc>, partner_id: &str) -> AttributeValue {
    string_attr(format!("{}#{partner_id}", ts::format(at)))
}

impl FetchProfileStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The profile's item: in the due index unless it is paused.
    fn item(profile: &FetchProfile) -> Result<super::Item, StoreError> {
        let mut item = item_with_keys(profile, keys::fetch_profile(&profile.partner_id))?;
        if profile.paused_reason.is_none() {
            item.insert(GSI3PK.into(), string_attr(keys::DUE));
            item.insert(
                GSI3SK.into(),
                due_key(&profile.next_fetch_at, &profile.partner_id),
            );
        }
        Ok(item)
    }

    /// Saves `profile` whole.
    pub async fn put(&self, profile: &FetchProfile) -> Result<(), StoreError> {
        let item = Self::item(profile)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", &e))?;
        Ok(())
    }

    pub async fn get(&self, partner_id: &str) -> Result<Option<FetchProfile>, StoreError> {
        super::get_item(
            &self.client,
            &self.table,
            keys::fetch_profile(partner_id),
            true,
        )
        .await
    }

    pub async fn delete(&self, partner_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::fetch_profile(partner_id)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", &e))?;
        Ok(())
    }

    /// Up to `limit` profiles due at `now`, earliest first (the `by_due`
    /// index: eventually consistent, so a claim decides).
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<FetchProfile>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::BY_DUE)
            .key_condition_expression("#p = :due AND #s <= :now")
            .expression_attribute_names("#p", GSI3PK)
            .expression_attribute_names("#s", GSI3SK)
            .expression_attribute_values(":due", string_attr(keys::DUE))
            // every partner id sorts before '~'
            .expression_attribute_values(":now", string_attr(format!("{}#~", ts::format(&now))))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", &e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).map_err(StoreError::from))
            .collect()
    }

    /// Claims the fetch of `profile` due at its `next_fetch_at` for `run`
    /// until `lease_until`; `None` if another run claimed it first, or the
    /// profile changed (saved, paused, deleted) since it was read.
    pub async fn claim(
        &self,
        profile: &FetchProfile,
        run: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<FetchProfile>, StoreError> {
        let due = ts::format(&profile.next_fetch_at);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::fetch_profile(&profile.partner_id)))
            .update_expression(
                "SET next_fetch_at = :lease, #s = :lease_key, claimed_by = :run, claimed_due = :due",
            )
            .condition_expression(
                "attribute_exists(#pk) AND next_fetch_at = :due AND updated_at = :updated AND attribute_exists(#s)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#s", GSI3SK)
            .expression_attribute_values(":lease", string_attr(ts::format(&lease_until)))
            .expression_attribute_values(":lease_key", due_key(&lease_until, &profile.partner_id))
            .expression_attribute_values(":run", string_attr(run))
            .expression_attribute_values(":due", string_attr(due))
            .expression_attribute_values(":updated", string_attr(ts::format(&profile.updated_at)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        super::updated(result)
    }

    /// Ends `run`'s claim on `profile` (as claimed): `false` if the profile
    /// was saved or deleted meanwhile (its new state stands).
    pub async fn end(
        &self,
        claimed: &FetchProfile,
        run: &str,
        ended: &Ended,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut profile = claimed.clone();
        profile.claimed_by = None;
        profile.claimed_due = None;
        profile.updated_at = now;
        match ended {
            Ended::Succeeded {
                next_fetch_at,
                etag,
                last_modified,
            } => {
                profile.next_fetch_at = *next_fetch_at;
                profile.failures = 0;
                if etag.is_some() || last_modified.is_some() {
                    profile.etag.clone_from(etag);
                    profile.last_modified.clone_from(last_modified);
                }
            }
            Ended::Failed { retry_at, reason } => {
                profile.failures += 1;
                match retry_at {
                    Some(at) => profile.next_fetch_at = *at,
                    None => profile.paused_reason = Some(reason.clone()),
                }
            }
        }
        let item = Self::item(&profile)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("claimed_by = :run AND updated_at = :updated")
            .expression_attribute_values(":run", string_attr(run))
            .expression_attribute_values(":updated", string_attr(ts::format(&claimed.updated_at)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional) => Ok(false),
            Err(e) => Err(StoreError::dynamo("PutItem", &e)),
        }
    }

    /// Records one fetch (newest first in the partner's list), kept
    /// [`FETCH_RETENTION_DAYS`] (the table's TTL removes it after).
    pub async fn record(&self, fetch: &FetchRecord) -> Result<(), StoreError> {
        let mut item = item_with_keys(
            fetch,
            keys::fetch(
                &fetch.partner_id,
                &ts::format(&fetch.started_at),
                &fetch.fetch_id,
            ),
        )?;
        let expires = fetch.started_at + chrono::Duration::days(FETCH_RETENTION_DAYS);
        item.insert(keys::TTL.into(), number_attr(expires.timestamp()));
        super::put_if_absent(&self.client, &self.table, item).await?;
        Ok(())
    }

    /// The partner's fetches, newest first.
    pub async fn fetches(
        &self,
        partner_id: &str,
        limit: i32,
    ) -> Result<Vec<FetchRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", string_attr(keys::fetches_of(partner_id)))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", &e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).map_err(StoreError::from))
            .collect()
    }
}
