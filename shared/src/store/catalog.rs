//! The catalog table: products and their stock.

use super::keys::{GSI1PK, GSI1SK, PK, SK, catalog as keys};
use super::{Item, ListError, Page, StoreError, item_with_keys, string_attr};
use crate::cursor;
use crate::domain::product::Product;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

#[derive(Debug, thiserror::Error)]
pub enum PutProductError {
    #[error("product {0} belongs to a partner")]
    OwnedByPartner(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct CatalogStore {
    client: Client,
    table: String,
}

impl CatalogStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    fn item(product: &Product) -> Result<Item, StoreError> {
        item_with_keys(product, keys::product_keys(&product.sku, &product.category))
    }

    /// Creates or replaces a shop-owned product in one write and returns the
    /// previous version, if any, so the caller can answer 200 or 201. The
    /// original `created_at` survives a replace.
    pub async fn put(&self, product: &Product) -> Result<Option<Product>, PutProductError> {
        let mut item = Self::item(product)?;
        item.remove(PK);
        item.remove(SK);
        let mut names = Vec::new();
        let mut sets = Vec::new();
        let mut values = std::collections::HashMap::new();
        for (i, (name, value)) in item.into_iter().enumerate() {
            names.push((format!("#a{i}"), name.clone()));
            if name == "created_at" {
                sets.push(format!("#a{i} = if_not_exists(#a{i}, :v{i})"));
            } else {
                sets.push(format!("#a{i} = :v{i}"));
            }
            values.insert(format!(":v{i}"), value);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::product(&product.sku)))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_not_exists(#owner)")
            .set_expression_attribute_names(Some(
                names
                    .into_iter()
                    .chain([("#owner".to_owned(), "owner".to_owned())])
                    .collect(),
            ))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes {
                Some(old) if !old.is_empty() => Ok(Some(
                    serde_dynamo::from_item(old).map_err(StoreError::from)?,
                )),
                _ => Ok(None),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(PutProductError::OwnedByPartner(product.sku.clone()))
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e).into()),
        }
    }

    pub async fn get(&self, sku: &str) -> Result<Option<Product>, StoreError> {
        super::get_item(&self.client, &self.table, keys::product(sku), false).await
    }

    /// A page of products, by category (index query) or all (table scan; the
    /// table holds products only). Order is by SKU within a category and
    /// unspecified across the whole catalog.
    pub async fn list(
        &self,
        category: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Product>, ListError> {
        let (items, last) = match category {
            Some(category) => {
                let start = cursor
                    .map(|c| cursor::decode(c, &[PK, SK, GSI1PK, GSI1SK]))
                    .transpose()?;
                // another category's cursor would start outside the partition
                // queried, which DynamoDB refuses: the caller's 400, not a 500
                let partition = string_attr(keys::category_pk(category));
                if start
                    .as_ref()
                    .is_some_and(|s| s.get(GSI1PK) != Some(&partition))
                {
                    return Err(cursor::CursorError.into());
                }
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(keys::BY_CATEGORY)
                    .key_condition_expression("#p = :p")
                    .expression_attribute_names("#p", GSI1PK)
                    .expression_attribute_values(":p", partition)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("Query", &e))?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
            None => {
                let start = cursor.map(|c| cursor::decode(c, &[PK, SK])).transpose()?;
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("Scan", &e))?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
        };
        let items = items
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<Vec<Product>, _>>()
            .map_err(StoreError::from)?;
        Ok(Page {
            items,
            next_cursor: last
                .filter(|k| !k.is_empty())
                .and_then(|k| cursor::encode(&k)),
        })
    }

    /// The products among `skus` that exist, by SKU (one BatchGetItem; at most
    /// 100 keys, a cart has at most 20).
    pub async fn get_many(
        &self,
        skus: &[&str],
    ) -> Result<std::collections::HashMap<String, Product>, StoreError> {
        let wanted = skus.iter().map(|sku| keys::product(sku)).collect();
        super::batch_get(&self.client, &self.table, wanted, true)
            .await?
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item::<_, Product>(item)
                    .map(|p| (p.sku.clone(), p))
                    .map_err(StoreError::from)
            })
            .collect()
    }
}
