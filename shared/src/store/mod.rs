//! DynamoDB stores. A failed condition becomes a domain outcome here
//! (`SoldOut`, `AlreadyExists`, ...); callers never inspect SDK errors.

pub mod audit;
pub mod catalog;
pub mod checkout;
pub mod flash_sales;
pub mod orders;
pub mod partners;
pub mod requests;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// Anything unexpected from DynamoDB; mapped to a 500 whose cause is logged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {op} failed: {message}")]
    Dynamo { op: &'static str, message: String },
    #[error("a stored item could not be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn dynamo<E, R>(op: &'static str, e: &SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Dynamo {
            op,
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads a whole number attribute.
pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} is missing or not a number")))
}

/// The item at `key`, read as `T`, if there is one.
pub(crate) async fn get_item<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<T>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem", &e))?;
    out.item
        .map(serde_dynamo::from_item)
        .transpose()
        .map_err(StoreError::from)
}

/// Every item of `keys` that exists (one BatchGetItem of at most 100 keys),
/// retrying unprocessed keys a bounded number of times.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(found);
    }
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(consistent)
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut request = HashMap::from([(table.to_owned(), request)]);
    // Unprocessed keys come back under throttling; back off and ask again.
    for attempt in 0..5 {
        let out = client
            .batch_get_item()
            .set_request_items(Some(request))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("BatchGetItem", &e))?;
        found.extend(
            out.responses
                .unwrap_or_default()
                .remove(table)
                .unwrap_or_default(),
        );
        match out.unprocessed_keys.filter(|u| !u.is_empty()) {
            None => return Ok(found),
            Some(rest) => request = rest,
        }
        tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
    }
    Err(StoreError::Corrupt(format!(
        "{table}: keys still unprocessed after 5 attempts"
    )))
}

/// The transaction item that puts `item` only where nothing is yet.
pub(crate) fn put_new(
    table: &str,
    item: Item,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", crate::keys::PK)
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .put(put)
        .build())
}

/// Serialises `value` and adds the key attributes to it.
pub(crate) fn item_with_keys<T: serde::Serialize>(
    value: &T,
    keys: &[(&str, String)],
) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value)?;
    for (name, v) in keys {
        item.insert((*name).to_owned(), s(v.clone()));
    }
    Ok(item)
}
