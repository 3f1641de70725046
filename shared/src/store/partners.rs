//! The partners table: partners and their API keys (hash only).

use super::keys::partners as keys;
use super::transaction::Transaction;
use super::{StoreError, item_with_keys, put_new};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub partner_id: String,
    pub name: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    /// The feed version of a drop whose object names none (1 or 2).
    #[serde(default = "first_version")]
    pub feed_version: u8,
    /// The validation of a drop whose object names none.
    #[serde(default)]
    pub validation: crate::feeds::import::Validation,
}

fn first_version() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub partner_id: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Why a partner was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreatePartnerError {
    #[error("partner {0} already exists")]
    AlreadyExists(String),
    /// The key id is taken (ids are random: a retry with a new key succeeds).
    #[error("key id {0} already exists")]
    KeyIdTaken(String),
    #[error("another write to the same items was in progress")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a key was not added or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No such partner, or (revoking) no such key of that partner.
    #[error("not found")]
    NotFound,
    /// The key id is taken (ids are random: a retry with a new key succeeds).
    #[error("key id {0} already exists")]
    KeyIdTaken(String),
    #[error("another write to the same items was in progress")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The parts of adding a key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Adding {
    Partner,
    Key,
}

/// The parts of a partner's creating transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Creating {
    Partner,
    Key,
}

#[derive(Clone, Debug)]
pub struct PartnerStore {
    client: Client,
    table: String,
}

impl PartnerStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub async fn get(&self, partner_id: &str) -> Result<Option<Partner>, StoreError> {
        super::get_item(&self.client, &self.table, keys::partner(partner_id), false).await
    }

    /// Writes a partner and its first key together, neither over an existing item.
    pub async fn create(
        &self,
        partner: &Partner,
        key: &ApiKeyRecord,
    ) -> Result<(), CreatePartnerError> {
        let mut tx = Transaction::new();
        tx.push(
            Creating::Partner,
            put_new(
                &self.table,
                item_with_keys(partner, keys::partner(&partner.partner_id))?,
            )?,
        );
        tx.push(
            Creating::Key,
            put_new(
                &self.table,
                item_with_keys(key, keys::api_key(&key.key_id))?,
            )?,
        );
        let cancelled = match tx.commit(&self.client).await? {
            Ok(()) => return Ok(()),
            Err(c) => c,
        };
        Err(if cancelled.failed(Creating::Partner) {
            CreatePartnerError::AlreadyExists(partner.partner_id.clone())
        } else if cancelled.failed(Creating::Key) {
            CreatePartnerError::KeyIdTaken(key.key_id.clone())
        } else {
            CreatePartnerError::Conflict
        })
    }

    /// A key's record, found by its id (the partner it belongs to is in it).
    pub async fn key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        super::get_item(&self.client, &self.table, keys::api_key(key_id), true).await
    }

    /// Adds a key to an existing partner (rotation: its other keys stay valid).
    pub async fn add_key(&self, key: &ApiKeyRecord) -> Result<(), KeyError> {
        let mut tx = Transaction::new();
        let partner = keys::partner(&key.partner_id);
        tx.push(
            Adding::Partner,
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(partner))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .map_err(StoreError::from)?,
                )
                .build(),
        );
        tx.push(
            Adding::Key,
            put_new(
                &self.table,
                item_with_keys(key, keys::api_key(&key.key_id))?,
            )?,
        );
        let cancelled = match tx.commit(&self.client).await? {
            Ok(()) => return Ok(()),
            Err(c) => c,
        };
        Err(if cancelled.failed(Adding::Partner) {
            KeyError::NotFound
        } else if cancelled.failed(Adding::Key) {
            KeyError::KeyIdTaken(key.key_id.clone())
        } else {
            KeyError::Conflict
        })
    }

    /// Revokes `partner_id`'s key `key_id` at `now`; revoking it again
    /// changes nothing. Another partner's key is [`KeyError::NotFound`].
    pub async fn revoke_key(
        &self,
        partner_id: &str,
        key_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), KeyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::api_key(key_id)))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
            .condition_expression("attribute_exists(pk) AND partner_id = :p")
            .expression_attribute_values(":now", super::string_attr(ts::format(&now)))
            .expression_attribute_values(":p", super::string_attr(partner_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(KeyError::NotFound)
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e).into()),
        }
    }
}
