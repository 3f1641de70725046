//! The partners table: partners and their API keys (hash only).

use super::keys::partners as keys;
use super::transaction::Transaction;
use super::{StoreError, item_with_keys, put_new};
use crate::domain::ts;
use aws_sdk_dynamodb::Client;
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
}
