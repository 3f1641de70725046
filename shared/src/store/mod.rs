//! DynamoDB access. A failed condition becomes a domain outcome here
//! (`SoldOut`, `AlreadyExists`, ...); callers never see an SDK type or error.
//!
//! - [`keys`]: every key, built in one place.
//! - [`transaction`]: the one way a TransactWriteItems is run and read.
//! - one module per table, and [`reservations`]: the checkout transactions,
//!   which span the catalog, flash-sale, orders and requests tables.

pub mod audit;
pub mod breaker;
pub mod catalog;
pub mod feed_writes;
pub mod fetch_profiles;
pub mod flash_sales;
pub mod imports;
pub mod keys;
pub mod orders;
pub mod partners;
pub mod payments;
pub mod requests;
pub mod reservations;
pub(crate) mod transaction;
pub mod webhooks;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;

/// An item, or a key, as DynamoDB holds it.
pub type Item = HashMap<String, AttributeValue>;

/// Anything unexpected from DynamoDB; mapped to a 500 whose cause is logged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {op} failed: {message}")]
    Dynamo { op: &'static str, message: String },
    #[error("a stored item could not be read: {0}")]
    Corrupt(String),
    #[error("a request could not be built: {0}")]
    Request(String),
}

impl StoreError {
    pub(crate) fn dynamo<E, R>(op: &'static str, e: &SdkError<E, R>) -> Self
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

impl From<aws_sdk_dynamodb::error::BuildError> for StoreError {
    fn from(e: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError::Request(e.to_string())
    }
}

/// Why a page of a listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Cursor(#[from] crate::cursor::CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub(crate) fn string_attr(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn number_attr(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A whole-number attribute of `item`, if it is there and is one.
pub(crate) fn read_number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The item at `key`, read as `T`, if there is one.
pub(crate) async fn get_item<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
    consistent: bool,
) -> Result<Option<T>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(consistent)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem", &e))?;
    out.item
        .map(serde_dynamo::from_item)
        .transpose()
        .map_err(StoreError::from)
}

/// How often unprocessed keys of a BatchGetItem are asked for again.
const BATCH_ATTEMPTS: u32 = 5;

/// Every item of `keys` that exists (one BatchGetItem of at most 100 keys),
/// asking again for unprocessed keys a bounded number of times.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    batch_get_only(client, table, keys, consistent, &[]).await
}

/// The same, reading only the attributes named in `only` (all when empty).
pub(crate) async fn batch_get_only(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
    only: &[&str],
) -> Result<Vec<Item>, StoreError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(found);
    }
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(consistent);
    if !only.is_empty() {
        let names: Vec<String> = (0..only.len()).map(|i| format!("#p{i}")).collect();
        request = request.projection_expression(names.join(", "));
        for (name, attribute) in names.into_iter().zip(only) {
            request = request.expression_attribute_names(name, *attribute);
        }
    }
    let request = request.build()?;
    let mut request = HashMap::from([(table.to_owned(), request)]);
    // Unprocessed keys come back under throttling: back off and ask again.
    for attempt in 0..BATCH_ATTEMPTS {
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
        if attempt + 1 < BATCH_ATTEMPTS {
            transaction::RETRY.wait(attempt).await;
        }
    }
    Err(StoreError::Dynamo {
        op: "BatchGetItem",
        message: format!("{table}: keys still unprocessed after {BATCH_ATTEMPTS} attempts"),
    })
}

/// The transaction item that puts `item` only where nothing is yet.
pub(crate) fn put_new(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", keys::PK)
        .build()?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Whether a write's error is its condition failing (an outcome, not a fault).
pub(crate) fn conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// What a conditional UpdateItem asked for `ALL_NEW` left: the item as it
/// now is, or `None` when its condition did not hold.
pub(crate) fn updated<T: serde::de::DeserializeOwned>(
    result: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
    >,
) -> Result<Option<T>, StoreError> {
    match result {
        Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
        Err(e) if e.as_service_error().is_some_and(conditional) => Ok(None),
        Err(e) => Err(StoreError::dynamo("UpdateItem", &e)),
    }
}

/// Puts `item` only where nothing is yet: `false` if something was.
pub(crate) async fn put_if_absent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
) -> Result<bool, StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", keys::PK)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo("PutItem", &e)),
    }
}

/// `value` serialised, with its key attributes added.
pub(crate) fn item_with_keys<T: serde::Serialize>(
    value: &T,
    keys: Item,
) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value)?;
    item.extend(keys);
    Ok(item)
}
