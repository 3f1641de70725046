//! A feed's rows into the catalog (ADR 0022): up to 100 products per
//! TransactWriteItems, each an UpdateItem with two conditions, so the rules
//! hold per item without a lock and a batch costs one request:
//!
//! - owner: the product does not exist, or `owner` is the feed's partner;
//! - newer wins: the product has no `feed_stamp`, or a lower one
//!   ([`crate::feeds::import::stamp`]).
//!
//! A transaction fails whole, so when some items fail their condition the
//! others are sent again without them (their reasons, with the old item,
//! say which rule failed). Stock is set from the feed; flash-sale shards are
//! another table and never named here.

use super::keys::{PK, catalog as keys};
use super::transaction::{RETRY, Transaction};
use super::{Item, StoreError, item_with_keys, string_attr};
use crate::domain::product::Product;
use crate::feeds::import::stamp_import;
use crate::feeds::{Dimensions, FeedProduct};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most items of one TransactWriteItems.
pub const MAX_ITEMS: usize = 100;
/// A transaction carries at most 4 MB; chunks stay under this estimate.
pub const MAX_BYTES: usize = 3 << 20;
/// Rounds of a chunk cancelled by something other than its conditions
/// (conflicts with checkouts, throttling) before the import gives up for now.
const ROUNDS: u32 = 6;

pub const STAMP: &str = "feed_stamp";

/// What became of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// This import had written it already (a retry or a continuation).
    AlreadyWritten,
    /// A newer feed had changed the product.
    Newer,
    /// The product belongs to someone else.
    NotOwner,
}

/// One row ready to write.
#[derive(Debug, Clone)]
pub struct FeedWrite {
    pub stamp: String,
    pub product: FeedProduct,
}

impl FeedWrite {
    /// What it weighs in a transaction, roughly (attribute names included).
    pub fn size(&self) -> usize {
        let p = &self.product;
        400 + p.sku.len() * 2
            + p.name.len()
            + p.description.len()
            + p.category.len()
            + p.extra
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
    }
}

/// The stored product: the catalog's product and what only feeds carry.
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(flatten)]
    product: Product,
    #[serde(skip_serializing_if = "Option::is_none")]
    brand: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manufacturer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gtin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<&'a Dimensions>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: &'a BTreeMap<String, String>,
    feed_stamp: &'a str,
}

/// Attributes a feed may leave out: removed when the newest row lacks them.
const OPTIONAL: [&str; 5] = ["brand", "manufacturer", "gtin", "dimensions", "extra"];

#[derive(Clone, Debug)]
pub struct FeedWriter {
    client: Client,
    table: String,
}

impl FeedWriter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes `rows` (at most [`MAX_ITEMS`], each SKU once) for `partner_id`;
    /// one answer per row, in order.
    pub async fn apply(
        &self,
        partner_id: &str,
        rows: &[FeedWrite],
        now: DateTime<Utc>,
    ) -> Result<Vec<Applied>, StoreError> {
        let updates = rows
            .iter()
            .map(|r| self.update(partner_id, r, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut answers: Vec<Option<Applied>> = vec![None; rows.len()];
        let mut rounds = 0;
        loop {
            let pending: Vec<usize> = (0..rows.len()).filter(|&i| answers[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let mut tx = Transaction::new();
            for &i in &pending {
                tx.push(i, updates[i].clone());
            }
            let cancelled = match tx.commit(&self.client).await? {
                Ok(()) => {
                    for i in pending {
                        answers[i] = Some(Applied::Written);
                    }
                    break;
                }
                Err(c) => c,
            };
            let mut decided = false;
            for (i, old) in cancelled.condition_failures() {
                answers[i] = Some(classify(partner_id, &rows[i].stamp, old));
                decided = true;
            }
            if !decided {
                rounds += 1;
                if rounds >= ROUNDS {
                    return Err(StoreError::Dynamo {
                        op: "TransactWriteItems",
                        message: format!(
                            "a feed chunk was cancelled {ROUNDS} times: {cancelled:?}"
                        ),
                    });
                }
                RETRY.wait(rounds).await;
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Applied::Written))
            .collect())
    }

    fn update(
        &self,
        partner_id: &str,
        row: &FeedWrite,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let p = &row.product;
        let stored = Stored {
            product: Product {
                sku: p.sku.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                price: p.price.clone(),
                category: p.category.clone(),
                stock: p.stock,
                owner: Some(partner_id.to_owned()),
                created_at: now,
                updated_at: now,
            },
            brand: p.brand.as_deref(),
            manufacturer: p.manufacturer.as_deref(),
            gtin: p.gtin.as_deref(),
            dimensions: p.dimensions.as_ref(),
            extra: &p.extra,
            feed_stamp: &row.stamp,
        };
        let mut item = item_with_keys(&stored, keys::product_keys(&p.sku, &p.category))?;
        item.remove(PK);
        item.remove(super::keys::SK);
        let mut names = HashMap::from([
            ("#pk".to_owned(), PK.to_owned()),
            ("#owner".to_owned(), "owner".to_owned()),
            ("#stamp".to_owned(), STAMP.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":owner".to_owned(), string_attr(partner_id)),
            (":stamp".to_owned(), string_attr(&row.stamp)),
        ]);
        let mut sets = Vec::new();
        for (i, (name, value)) in item.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name.clone());
            values.insert(format!(":v{i}"), value);
            sets.push(if name == "created_at" {
                format!("#a{i} = if_not_exists(#a{i}, :v{i})")
            } else {
                format!("#a{i} = :v{i}")
            });
        }
        let mut removes = Vec::new();
        for (i, name) in OPTIONAL.iter().enumerate() {
            if !names.values().any(|n| n == name) {
                names.insert(format!("#r{i}"), (*name).to_owned());
                removes.push(format!("#r{i}"));
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::product(&p.sku)))
            .update_expression(expression)
            .condition_expression(
                "(attribute_not_exists(#pk) OR #owner = :owner) \
                 AND (attribute_not_exists(#stamp) OR #stamp < :stamp)",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Why an item failed its condition, from the item as it was.
fn classify(partner_id: &str, stamp: &str, old: Option<&Item>) -> Applied {
    let attr = |name: &str| old.and_then(|o| o.get(name)).and_then(|v| v.as_s().ok());
    if attr("owner").map(String::as_str) != Some(partner_id) {
        return Applied::NotOwner;
    }
    match attr(STAMP) {
        Some(theirs) if stamp_import(theirs) == stamp_import(stamp) => Applied::AlreadyWritten,
        _ => Applied::Newer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(owner: Option<&str>, stamp: Option<&str>) -> Item {
        let mut i = Item::new();
        if let Some(o) = owner {
            i.insert("owner".into(), AttributeValue::S(o.into()));
        }
        if let Some(s) = stamp {
            i.insert(STAMP.into(), AttributeValue::S(s.into()));
        }
        i
    }

    #[test]
    fn a_failed_condition_says_which_rule() {
        let mine = "2026-11-22T10:00:00.000Z#abc#000000000007";
        assert_eq!(
            classify("p1", mine, Some(&item(None, None))),
            Applied::NotOwner
        );
        assert_eq!(
            classify("p1", mine, Some(&item(Some("p2"), Some(mine)))),
            Applied::NotOwner
        );
        assert_eq!(
            classify(
                "p1",
                mine,
                Some(&item(
                    Some("p1"),
                    Some("2026-11-22T10:00:00.000Z#abc#000000000009")
                ))
            ),
            Applied::AlreadyWritten
        );
        assert_eq!(
            classify(
                "p1",
                mine,
                Some(&item(
                    Some("p1"),
                    Some("2026-11-22T11:00:00.000Z#def#000000000001")
                ))
            ),
            Applied::Newer
        );
    }
}
