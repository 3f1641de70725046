//! Catalog products: what an admin may write, and what a shopper sees.

use super::money::Money;
use super::text::{check_id, check_text};
use super::{Invalid, ts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_SKU: usize = 64;
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_CATEGORY: usize = 64;
/// Stock above a billion units is a typo, not a warehouse.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A product as stored and as served. Readers are tolerant: attributes added
/// later default, attributes they do not know are ignored (scenario M3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: Money,
    pub category: String,
    pub stock: i64,
    /// The partner that owns it; `None` for products the shop itself manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
}

/// The body of `PUT /admin/products/{sku}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: Money,
    pub category: String,
    pub stock: i64,
}

/// SKUs the shop creates itself. Partner SKUs are `<partner_id>:<sku>` and are
/// made only by feeds, so `:` is refused here.
pub fn check_sku(sku: &str) -> Result<(), Invalid> {
    check_id("sku", sku, MAX_SKU)
}

pub fn check_category(field: &str, category: &str) -> Result<(), Invalid> {
    check_id(field, category, MAX_CATEGORY)
}

impl ProductInput {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, MAX_NAME, false)?;
        check_text("description", &self.description, MAX_DESCRIPTION, true)?;
        self.price.check_price("price")?;
        check_category("category", &self.category)?;
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return Err(Invalid::new(
                "stock",
                format!("must be a whole number from 0 to {MAX_STOCK}"),
            ));
        }
        Ok(())
    }

    /// The product this input describes; `created_at` is kept from an earlier
    /// version when there is one.
    pub fn into_product(
        self,
        sku: String,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Product {
        Product {
            sku,
            name: self.name.trim().to_owned(),
            description: self.description,
            price: self.price,
            category: self.category,
            stock: self.stock,
            owner: None,
            created_at,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProductInput {
        ProductInput {
            name: "Blue mug".into(),
            description: "Holds tea.".into(),
            price: Money {
                amount: 1299,
                currency: "EUR".into(),
            },
            category: "kitchen".into(),
            stock: 10,
        }
    }

    fn field_of(i: ProductInput) -> String {
        i.validate().unwrap_err().field
    }

    #[test]
    fn a_complete_product_is_valid() {
        assert!(input().validate().is_ok());
        assert!(
            ProductInput {
                stock: 0,
                ..input()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(
            field_of(ProductInput {
                name: " ".into(),
                ..input()
            }),
            "name"
        );
        assert_eq!(
            field_of(ProductInput {
                name: "x".repeat(201),
                ..input()
            }),
            "name"
        );
        assert_eq!(
            field_of(ProductInput {
                description: "\u{1b}[31m".into(),
                ..input()
            }),
            "description"
        );
        assert_eq!(
            field_of(ProductInput {
                price: Money {
                    amount: -1,
                    currency: "EUR".into()
                },
                ..input()
            }),
            "price.amount"
        );
        assert_eq!(
            field_of(ProductInput {
                price: Money {
                    amount: 1,
                    currency: "EU".into()
                },
                ..input()
            }),
            "price.currency"
        );
        assert_eq!(
            field_of(ProductInput {
                category: "".into(),
                ..input()
            }),
            "category"
        );
        assert_eq!(
            field_of(ProductInput {
                stock: -1,
                ..input()
            }),
            "stock"
        );
        assert_eq!(
            field_of(ProductInput {
                stock: MAX_STOCK + 1,
                ..input()
            }),
            "stock"
        );
    }

    #[test]
    fn partner_namespaced_skus_are_not_for_admins() {
        assert!(check_sku("MUG-1").is_ok());
        assert!(check_sku("p1:MUG-1").is_err());
    }

    #[test]
    fn unknown_fields_in_input_are_refused() {
        let r: Result<ProductInput, _> = serde_json::from_str(
            r#"{"name":"a","price":{"amount":1,"currency":"EUR"},"category":"c","stock":1,"prise":3}"#,
        );
        assert!(r.is_err());
    }

    #[test]
    fn stored_products_read_with_fields_added_or_missing() {
        // an item written before `description` existed, with an attribute from the future
        let old: Product = serde_json::from_str(
            r#"{"sku":"A","name":"a","price":{"amount":1,"currency":"EUR"},"category":"c","stock":1,
                "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","brand":"new"}"#,
        )
        .unwrap();
        assert_eq!(old.description, "");
        assert_eq!(old.owner, None);
    }
}
