//! A feed's rows into the catalog (ADR 0022): up to 100 products per
//! TransactWriteItems, each a PutItem with two conditions, so the rules hold
//! per item without a lock and a chunk costs one request:
//!
//! - owner: the product does not exist, or `owner` is the feed's partner;
//! - newer wins: the product has no `feed_stamp`, or a lower one
//!   ([`crate::feeds::import::stamp`]).
//!
//! One consistent BatchGetItem first reads what the chunk names: it keeps
//! each product's `created_at`, and leaves out the rows the conditions would
//! refuse anyway. A transaction fails whole, so when some items still fail
//! their condition (a write in between) the others are sent again without
//! them (their reasons, with the old item, say which rule failed). The
//! feed states the whole product, so a Put replaces it: stock from the feed,
//! v2's attributes as the newest row gives them. Flash-sale shards are
//! another table and never named here.

use super::keys::{PK, catalog as keys};
use super::transaction::{RETRY, Transaction};
use super::{Item, StoreError, batch_get_only, item_with_keys, string_attr};
use crate::domain::product::Product;
use crate::feeds::import::stamp_import;
use crate::feeds::{Dimensions, FeedProduct};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
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

/// The two rules, as every write of an existing product carries them.
const RULES: &str = "(attribute_not_exists(#pk) OR #owner = :owner) \
                     AND (attribute_not_exists(#stamp) OR #stamp < :stamp)";
/// A product that does not exist yet meets both rules.
const NEW: &str = "attribute_not_exists(#pk)";

/// How a chunk finds what its products hold: write them as new (one request
/// when they are; the cancellation returns those that exist), or read first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    AssumeNew,
    Read,
}

/// A chunk's answers, and whether none of its products existed (so the
/// next chunk may assume the same).
#[derive(Debug)]
pub struct Written {
    pub answers: Vec<Applied>,
    pub all_new: bool,
}

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

    /// Writes `rows` (at most [`MAX_ITEMS`], each SKU once) for `partner_id`:
    /// one answer per row, in order, and whether every product was new.
    pub async fn apply(
        &self,
        partner_id: &str,
        rows: &[FeedWrite],
        now: DateTime<Utc>,
        probe: Probe,
    ) -> Result<Written, StoreError> {
        let mut stored = None;
        if probe == Probe::AssumeNew {
            // all new: one request; any that exists comes back, as it is,
            // with the cancellation, and the chunk goes the long way
            let mut tx = Transaction::new();
            for (i, row) in rows.iter().enumerate() {
                tx.push(i, self.put(partner_id, row, now, now, NEW)?);
            }
            match tx.commit(&self.client).await? {
                Ok(()) => {
                    return Ok(Written {
                        answers: vec![Applied::Written; rows.len()],
                        all_new: true,
                    });
                }
                // every product that exists came back: no need to read
                Err(cancelled) if cancelled.conditions_only() => {
                    stored = Some(
                        cancelled
                            .condition_failures()
                            .filter_map(|(_, old)| Some((attr(old?, PK)?.to_owned(), old?.clone())))
                            .collect(),
                    );
                }
                // a conflict (or a throttle) left some unexamined: read them all
                Err(_) => {}
            }
        }
        let stored = match stored {
            Some(s) => s,
            None => self.read(rows.iter()).await?,
        };
        let all_new = stored.is_empty();
        let mut answers: Vec<Option<Applied>> = Vec::with_capacity(rows.len());
        let mut puts = Vec::with_capacity(rows.len());
        for row in rows {
            let old = stored.get(&pk(row));
            // what the conditions would refuse is not sent
            answers.push(refused(partner_id, &row.stamp, old));
            puts.push(self.put(partner_id, row, created_at(old, now), now, RULES)?);
        }
        let mut rounds = 0;
        loop {
            let pending: Vec<usize> = (0..rows.len()).filter(|&i| answers[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let mut tx = Transaction::new();
            for &i in &pending {
                tx.push(i, puts[i].clone());
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
            let mut unexplained = Vec::new();
            for (i, old) in cancelled.condition_failures() {
                match old {
                    Some(old) => answers[i] = Some(classify(partner_id, &rows[i].stamp, old)),
                    None => unexplained.push(i),
                }
            }
            // DynamoDB returns the item with every failed condition; were
            // one missing, the product is read rather than guessed at
            if !unexplained.is_empty() {
                let found = self.read(unexplained.iter().map(|&i| &rows[i])).await?;
                for i in unexplained {
                    let old = found.get(&pk(&rows[i]));
                    answers[i] = refused(partner_id, &rows[i].stamp, old);
                    puts[i] = self.put(partner_id, &rows[i], created_at(old, now), now, RULES)?;
                }
            }
            let still = (0..rows.len()).filter(|&i| answers[i].is_none()).count();
            if still == pending.len() {
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
        Ok(Written {
            answers: answers
                .into_iter()
                .map(|a| a.unwrap_or(Applied::Written))
                .collect(),
            all_new,
        })
    }

    /// What the rules and `created_at` need of the products `rows` name,
    /// read consistently, by partition key.
    async fn read<'a>(
        &self,
        rows: impl Iterator<Item = &'a FeedWrite>,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let keys = rows.map(|r| keys::product(&r.product.sku)).collect();
        let only = [PK, "owner", STAMP, "created_at"];
        Ok(batch_get_only(&self.client, &self.table, keys, true, &only)
            .await?
            .into_iter()
            .filter_map(|item| Some((attr(&item, PK)?.to_owned(), item)))
            .collect())
    }

    fn put(
        &self,
        partner_id: &str,
        row: &FeedWrite,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        condition: &str,
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
                created_at,
                updated_at: now,
            },
            brand: p.brand.as_deref(),
            manufacturer: p.manufacturer.as_deref(),
            gtin: p.gtin.as_deref(),
            dimensions: p.dimensions.as_ref(),
            extra: &p.extra,
            feed_stamp: &row.stamp,
        };
        let item = item_with_keys(&stored, keys::product_keys(&p.sku, &p.category))?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if condition == RULES {
            put = put
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_names("#stamp", STAMP)
                .expression_attribute_values(":owner", string_attr(partner_id))
                .expression_attribute_values(":stamp", string_attr(&row.stamp));
        }
        let put = put.build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The partition key of the product a row names.
fn pk(row: &FeedWrite) -> String {
    keys::product(&row.product.sku)
        .get(PK)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// When the product was first created: kept across a feed's writes.
fn created_at(old: Option<&Item>, now: DateTime<Utc>) -> DateTime<Utc> {
    old.and_then(|o| attr(o, "created_at"))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// What the rules say of a write over `old`: `None` when they allow it.
fn refused(partner_id: &str, stamp: &str, old: Option<&Item>) -> Option<Applied> {
    let old = old?;
    let allowed = attr(old, "owner") == Some(partner_id)
        && attr(old, STAMP).is_none_or(|theirs| theirs < stamp);
    (!allowed).then(|| classify(partner_id, stamp, old))
}

/// Why an item failed its condition, from the item as it was.
fn classify(partner_id: &str, stamp: &str, old: &Item) -> Applied {
    let attr = |name: &str| attr(old, name);
    if attr("owner") != Some(partner_id) {
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
    fn the_rules_allow_a_new_product_or_an_older_one_of_the_same_partner() {
        let mine = "2026-11-22T10:00:00.000Z#abc#000000000007";
        let older = "2026-11-22T09:00:00.000Z#zzz#000000000001";
        assert_eq!(refused("p1", mine, None), None);
        assert_eq!(refused("p1", mine, Some(&item(Some("p1"), None))), None);
        assert_eq!(
            refused("p1", mine, Some(&item(Some("p1"), Some(older)))),
            None
        );
        assert_eq!(
            refused("p1", older, Some(&item(Some("p1"), Some(mine)))),
            Some(Applied::Newer)
        );
        // an admin's product (no owner) and another partner's are not the feed's
        assert_eq!(
            refused("p1", mine, Some(&item(None, None))),
            Some(Applied::NotOwner)
        );
        assert_eq!(
            refused("p1", mine, Some(&item(Some("p2"), Some(older)))),
            Some(Applied::NotOwner)
        );
    }

    #[test]
    fn a_failed_condition_says_which_rule() {
        let mine = "2026-11-22T10:00:00.000Z#abc#000000000007";
        assert_eq!(classify("p1", mine, &item(None, None)), Applied::NotOwner);
        assert_eq!(
            classify("p1", mine, &item(Some("p2"), Some(mine))),
            Applied::NotOwner
        );
        assert_eq!(
            classify(
                "p1",
                mine,
                &item(
                    Some("p1"),
                    Some("2026-11-22T10:00:00.000Z#abc#000000000009")
                )
            ),
            Applied::AlreadyWritten
        );
        assert_eq!(
            classify(
                "p1",
                mine,
                &item(
                    Some("p1"),
                    Some("2026-11-22T11:00:00.000Z#def#000000000001")
                )
            ),
            Applied::Newer
        );
    }
}
