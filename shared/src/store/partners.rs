//! The partners table: partners and their API keys (hash only).

use super::{StoreError, item_with_keys};
use crate::domain::ts;
use crate::keys::{PK, SK, partners::*};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub partner_id: String,
    pub name: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
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

    /// Writes a partner and its first key together; an existing partner id is
    /// left untouched (`Ok(false)`).
    pub async fn create(&self, partner: &Partner, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let put = |item, what: &str| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()
                .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        };
        let p = item_with_keys(
            partner,
            &[
                (PK, partner_pk(&partner.partner_id)),
                (SK, PROFILE_SK.to_owned()),
            ],
        )?;
        let k = item_with_keys(
            key,
            &[(PK, api_key_pk(&key.key_id)), (SK, KEY_SK.to_owned())],
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put(p, "partner")?).build())
            .transact_items(TransactWriteItem::builder().put(put(k, "key")?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_transaction_canceled_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", &e)),
        }
    }
}
