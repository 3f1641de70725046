//! The flash-sales table: sales, their stock shards, per-buyer counters.

use super::keys::{PK, catalog, flash_sales as keys};
use super::transaction::Transaction;
use super::{StoreError, item_with_keys, number_attr, read_number, string_attr};
use crate::domain::flash_sale::{FlashSale, split};
use crate::domain::product::Product;
use crate::domain::ts;
use crate::store::catalog::CatalogStore;
use aws_sdk_dynamodb::Client;
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

/// The parts of a sale's creating transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Creating {
    ProductStock,
    Sale,
    Shard,
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

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Moves the sale's quantity out of the product's stock and into K shards,
    /// all in one transaction: either the sale exists with all its stock, or
    /// nothing changed.
    pub async fn create(&self, sale: &FlashSale) -> Result<(), CreateSaleError> {
        let take_stock = Update::builder()
            .table_name(self.catalog.table())
            .set_key(Some(catalog::product(&sale.sku)))
            .update_expression("SET #stock = #stock - :q, #updated = :now")
            .condition_expression("attribute_exists(#pk) AND #stock >= :q AND #price.#cur = :cur")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#stock", "stock")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#price", "price")
            .expression_attribute_names("#cur", "currency")
            .expression_attribute_values(":q", number_attr(sale.quantity))
            .expression_attribute_values(":now", string_attr(ts::format(&sale.created_at)))
            .expression_attribute_values(":cur", string_attr(&sale.price.currency))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::from)?;
        let put_sale = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item_with_keys(sale, keys::sale(&sale.sale_id))?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(StoreError::from)?;
        let mut tx = Transaction::new();
        tx.push(
            Creating::ProductStock,
            TransactWriteItem::builder().update(take_stock).build(),
        );
        tx.push(
            Creating::Sale,
            TransactWriteItem::builder().put(put_sale).build(),
        );
        for (i, units) in split(sale.quantity, sale.shards).into_iter().enumerate() {
            let mut item = keys::shard(&sale.sale_id, i as u32);
            item.insert("sale_id".into(), string_attr(&sale.sale_id));
            item.insert("remaining".into(), number_attr(units));
            item.insert("allocated".into(), number_attr(units));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(StoreError::from)?;
            tx.push(
                Creating::Shard,
                TransactWriteItem::builder().put(put).build(),
            );
        }
        let cancelled = match tx.commit(&self.client).await? {
            Ok(()) => return Ok(()),
            Err(c) => c,
        };
        if let Some((_, old)) = cancelled.first_failed(|r| r == Creating::ProductStock) {
            // DynamoDB returns the product as it was; emulators may not, so read it.
            let product: Option<Product> = match old {
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
        if cancelled.failed(Creating::Sale) {
            return Err(CreateSaleError::AlreadyExists(sale.sale_id.clone()));
        }
        // conflicts outlasted the retries (or a reason DynamoDB has not documented)
        Err(CreateSaleError::Conflict)
    }

    /// The sale without its stock (one GetItem), for checkout, which caches it.
    pub async fn get_sale(&self, sale_id: &str) -> Result<Option<FlashSale>, StoreError> {
        super::get_item(&self.client, &self.table, keys::sale(sale_id), false).await
    }

    /// The sale and the units left in its shards.
    pub async fn get(&self, sale_id: &str) -> Result<Option<SaleView>, StoreError> {
        let Some(sale) = self.get_sale(sale_id).await? else {
            return Ok(None);
        };
        let remaining = self.shard_remaining(&sale, false).await?.iter().sum();
        Ok(Some(SaleView { sale, remaining }))
    }

    /// The units left in each shard, by shard number, in one BatchGetItem
    /// (`MAX_SHARDS` = 50 keys at most; the call takes 100). `consistent` when a decision rests on it.
    pub async fn shard_remaining(
        &self,
        sale: &FlashSale,
        consistent: bool,
    ) -> Result<Vec<u64>, StoreError> {
        let wanted: Vec<_> = (0..sale.shards)
            .map(|i| keys::shard(&sale.sale_id, i))
            .collect();
        let mut left = vec![0; wanted.len()];
        let found = super::batch_get(&self.client, &self.table, wanted.clone(), consistent).await?;
        for item in found {
            let shard = wanted
                .iter()
                .position(|k| k.get(PK) == item.get(PK))
                .ok_or_else(|| StoreError::Corrupt(format!("a shard of sale {}", sale.sale_id)))?;
            left[shard] = read_number(&item, "remaining").ok_or_else(|| {
                StoreError::Corrupt(format!("remaining of shard {shard} of {}", sale.sale_id))
            })?;
        }
        Ok(left)
    }
}
