//! The flash-sales table: sales, their stock shards, per-buyer counters.

use super::{Item, StoreError, get_n, item_with_keys, n, s};
use crate::domain::flash_sale::{FlashSale, split};
use crate::domain::product::Product;
use crate::domain::ts;
use crate::keys::{PK, SK, flash_sales::*};
use crate::store::catalog::CatalogStore;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

#[derive(Debug, thiserror::Error)]
pub enum CreateSaleError {
    #[error("product {0} does not exist")]
    ProductNotFound(String),
    #[error("product {sku} has {available} in stock")]
    InsufficientStock { sku: String, available: i64 },
    #[error("the sale's currency differs from the product's ({product_currency})")]
    CurrencyMismatch { product_currency: String },
    #[error("sale {0} already exists")]
    AlreadyExists(String),
    #[error("another write to the same items was in progress")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A sale and the units left in all its shards.
#[derive(Debug, Clone)]
pub struct SaleView {
    pub sale: FlashSale,
    pub remaining: u64,
}

impl SaleView {
    /// The sale as shoppers and admins see it, with its state at `now`.
    pub fn to_body(&self, now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
        let s = &self.sale;
        serde_json::json!({
            "sale_id": s.sale_id,
            "sku": s.sku,
            "price": s.price,
            "quantity": s.quantity,
            "remaining": self.remaining,
            "starts_at": ts::format(&s.starts_at),
            "ends_at": ts::format(&s.ends_at),
            "per_user_limit": s.per_user_limit,
            "shards": s.shards,
            "state": crate::domain::flash_sale::state(s.starts_at, s.ends_at, self.remaining, now),
        })
    }
}

#[derive(Clone, Debug)]
pub struct FlashSaleStore {
    client: Client,
    table: String,
    catalog: CatalogStore,
}

impl FlashSaleStore {
    pub fn new(client: Client, table: impl Into<String>, catalog: CatalogStore) -> Self {
        Self {
            client,
            table: table.into(),
            catalog,
        }
    }

    fn key(pk: String, sk: &str) -> Item {
        [(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))].into()
    }

    /// Moves the sale's quantity out of the product's stock and into K shards,
    /// all in one transaction: either the sale exists with all its stock, or
    /// nothing changed.
    pub async fn create(&self, sale: &FlashSale) -> Result<(), CreateSaleError> {
        let take_stock = Update::builder()
            .table_name(self.catalog.table())
            .set_key(Some(CatalogStore::key(&sale.sku)))
            .update_expression("SET #stock = #stock - :q, #updated = :now")
            .condition_expression("attribute_exists(#pk) AND #stock >= :q AND #price.#cur = :cur")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#stock", "stock")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#price", "price")
            .expression_attribute_names("#cur", "currency")
            .expression_attribute_values(":q", n(sale.quantity))
            .expression_attribute_values(":now", s(ts::format(&sale.created_at)))
            .expression_attribute_values(":cur", s(&sale.price.currency))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sale_item = item_with_keys(
            sale,
            &[(PK, sale_pk(&sale.sale_id)), (SK, SALE_SK.to_owned())],
        )?;
        let put_sale = Put::builder()
            .table_name(&self.table)
            .set_item(Some(sale_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut writes = vec![
            TransactWriteItem::builder().update(take_stock).build(),
            TransactWriteItem::builder().put(put_sale).build(),
        ];
        for (i, units) in split(sale.quantity, sale.shards).into_iter().enumerate() {
            let mut item = Self::key(shard_pk(&sale.sale_id, i as u32), SHARD_SK);
            item.insert("sale_id".into(), s(&sale.sale_id));
            item.insert("remaining".into(), n(units));
            item.insert("allocated".into(), n(units));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        // DynamoDB cancels a transaction that races another on the same item
        // (TransactionConflict); the SDK does not retry that, so retry here a
        // few times with jitter before calling it a conflict.
        let mut attempt = 0;
        let (err, reasons) = loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => return Err(StoreError::dynamo("TransactWriteItems", &err).into()),
            };
            if !reasons
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"))
            {
                break (err, reasons);
            }
            attempt += 1;
            if attempt == 3 {
                return Err(CreateSaleError::Conflict);
            }
            tokio::time::sleep(std::time::Duration::from_millis(
                fastrand::u64(10..50) << attempt,
            ))
            .await;
        };
        let failed =
            |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(0) {
            // DynamoDB returns the product as it was; emulators may not, so read it.
            let product: Option<Product> = match reasons.first().and_then(|r| r.item()) {
                Some(item) => {
                    Some(serde_dynamo::from_item(item.clone()).map_err(StoreError::from)?)
                }
                None => self.catalog.get(&sale.sku).await?,
            };
            return Err(match product {
                None => CreateSaleError::ProductNotFound(sale.sku.clone()),
                Some(p) if p.price.currency != sale.price.currency => {
                    CreateSaleError::CurrencyMismatch {
                        product_currency: p.price.currency,
                    }
                }
                Some(p) => CreateSaleError::InsufficientStock {
                    sku: p.sku,
                    available: p.stock,
                },
            });
        }
        if failed(1) {
            return Err(CreateSaleError::AlreadyExists(sale.sale_id.clone()));
        }
        Err(StoreError::dynamo("TransactWriteItems", &err).into())
    }

    /// The sale without its stock (one GetItem), for checkout, which caches it.
    pub async fn get_sale(&self, sale_id: &str) -> Result<Option<FlashSale>, StoreError> {
        super::get_item(
            &self.client,
            &self.table,
            Self::key(sale_pk(sale_id), SALE_SK),
        )
        .await
    }

    /// The sale and the units left in its shards.
    pub async fn get(&self, sale_id: &str) -> Result<Option<SaleView>, StoreError> {
        let Some(sale) = self.get_sale(sale_id).await? else {
            return Ok(None);
        };
        let remaining = self.remaining(&sale).await?;
        Ok(Some(SaleView { sale, remaining }))
    }

    /// Units left over all shards, read in one batch (at most 50 keys).
    pub async fn remaining(&self, sale: &FlashSale) -> Result<u64, StoreError> {
        let keys: Vec<Item> = (0..sale.shards)
            .map(|i| Self::key(shard_pk(&sale.sale_id, i), SHARD_SK))
            .collect();
        super::batch_get(&self.client, &self.table, keys, false)
            .await?
            .iter()
            .map(|item| get_n::<u64>(item, "remaining"))
            .sum()
    }
}
