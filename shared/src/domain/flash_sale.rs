//! Flash sales: a quantity taken out of a product's stock for a time window,
//! kept in K shards so no single DynamoDB item takes every write.

use super::money::Money;
use super::order::OrderLine;
use super::text::check_id;
use super::{Invalid, ts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_SALE_ID: usize = 64;
pub const MAX_QUANTITY: u32 = 1_000_000;
/// One DynamoDB item takes about 1,000 writes/s; 8 shards carry a sale at a few
/// thousand checkouts/s with room to spare.
pub const DEFAULT_SHARDS: u32 = 8;
/// Creating a sale writes every shard in one transaction with the product and
/// the sale (100 items at most per transaction), and reading its state reads
/// every shard: 50 keeps both cheap.
pub const MAX_SHARDS: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Active,
    SoldOut,
    Ended,
}

/// Where `now` falls in a sale's window: `[starts_at, ends_at)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Upcoming,
    Open,
    Ended,
}

pub fn window(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> Window {
    if now >= ends_at {
        Window::Ended
    } else if now < starts_at {
        Window::Upcoming
    } else {
        Window::Open
    }
}

/// The state a shopper sees: the window decides first, then the stock left.
pub fn state(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    remaining: u64,
    now: DateTime<Utc>,
) -> SaleState {
    match window(starts_at, ends_at, now) {
        Window::Upcoming => SaleState::Upcoming,
        Window::Ended => SaleState::Ended,
        Window::Open if remaining == 0 => SaleState::SoldOut,
        Window::Open => SaleState::Active,
    }
}

/// Why a sale refuses a purchase before any stock is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleRule {
    #[error("the sale is not running (from {starts_at} to {ends_at})")]
    NotActive {
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    #[error("at most {limit} per customer")]
    OverLimit { limit: u32 },
}

/// A sale as stored (its shards are separate items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashSale {
    pub sale_id: String,
    pub sku: String,
    pub price: Money,
    pub quantity: u32,
    #[serde(with = "ts")]
    pub starts_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: u32,
    pub shards: u32,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
}

impl FlashSale {
    pub fn window(&self, now: DateTime<Utc>) -> Window {
        window(self.starts_at, self.ends_at, now)
    }

    /// The order line of buying `quantity` at `now`, priced at the sale price,
    /// and its total; or the rule that refuses it. Stock and what the buyer
    /// bought before are the store's to check.
    pub fn buy(&self, quantity: u32, now: DateTime<Utc>) -> Result<(OrderLine, Money), SaleRule> {
        if self.window(now) != Window::Open {
            return Err(SaleRule::NotActive {
                starts_at: self.starts_at,
                ends_at: self.ends_at,
            });
        }
        if quantity > self.per_user_limit {
            return Err(SaleRule::OverLimit {
                limit: self.per_user_limit,
            });
        }
        // price <= MAX_AMOUNT (10^10) and quantity <= MAX_QUANTITY (10^6): no overflow
        let total = Money {
            amount: self.price.amount * i64::from(quantity),
            currency: self.price.currency.clone(),
        };
        let line = OrderLine {
            sku: self.sku.clone(),
            quantity,
            unit_price: self.price.clone(),
        };
        Ok((line, total))
    }
}

/// The body of `POST /admin/flash-sales`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFlashSale {
    #[serde(default)]
    pub sale_id: Option<String>,
    pub sku: String,
    pub price: Money,
    pub quantity: u32,
    #[serde(with = "ts")]
    pub starts_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: u32,
    #[serde(default)]
    pub shards: Option<u32>,
}

impl NewFlashSale {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), Invalid> {
        if let Some(id) = &self.sale_id {
            check_id("sale_id", id, MAX_SALE_ID)?;
        }
        // the SKU is looked up, not created: any stored SKU, partner ones included
        if self.sku.is_empty() || self.sku.len() > 200 {
            return Err(Invalid::new("sku", "must name an existing product"));
        }
        self.price.check_price("price")?;
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(Invalid::new(
                "quantity",
                format!("must be from 1 to {MAX_QUANTITY}"),
            ));
        }
        if self.ends_at <= self.starts_at {
            return Err(Invalid::new("ends_at", "must be after starts_at"));
        }
        if self.ends_at <= now {
            return Err(Invalid::new("ends_at", "must be in the future"));
        }
        if !(1..=self.quantity).contains(&self.per_user_limit) {
            return Err(Invalid::new(
                "per_user_limit",
                "must be from 1 to the sale's quantity",
            ));
        }
        let shards = self.shard_count();
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(Invalid::new(
                "shards",
                format!("must be from 1 to {MAX_SHARDS}"),
            ));
        }
        if shards > self.quantity {
            return Err(Invalid::new(
                "shards",
                "must not exceed quantity (every shard holds at least one unit)",
            ));
        }
        Ok(())
    }

    pub fn shard_count(&self) -> u32 {
        self.shards.unwrap_or(DEFAULT_SHARDS)
    }

    pub fn into_sale(self, sale_id: String, now: DateTime<Utc>) -> FlashSale {
        let shards = self.shard_count();
        FlashSale {
            sale_id,
            sku: self.sku,
            price: self.price,
            quantity: self.quantity,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            per_user_limit: self.per_user_limit,
            shards,
            created_at: now,
        }
    }
}

/// Splits `quantity` over `shards` as evenly as possible: the first
/// `quantity % shards` shards hold one more.
pub fn split(quantity: u32, shards: u32) -> Vec<u32> {
    let shards = shards.max(1);
    let (base, extra) = (quantity / shards, quantity % shards);
    (0..shards).map(|i| base + u32::from(i < extra)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, h, 0, 0).unwrap()
    }

    fn sale() -> NewFlashSale {
        NewFlashSale {
            sale_id: None,
            sku: "MUG-1".into(),
            price: Money {
                amount: 500,
                currency: "EUR".into(),
            },
            quantity: 100,
            starts_at: t(10),
            ends_at: t(12),
            per_user_limit: 2,
            shards: Some(8),
        }
    }

    #[test]
    fn state_follows_window_then_stock() {
        assert_eq!(state(t(10), t(12), 5, t(9)), SaleState::Upcoming);
        assert_eq!(state(t(10), t(12), 5, t(10)), SaleState::Active);
        assert_eq!(state(t(10), t(12), 0, t(11)), SaleState::SoldOut);
        assert_eq!(state(t(10), t(12), 0, t(12)), SaleState::Ended);
        assert_eq!(state(t(10), t(12), 5, t(13)), SaleState::Ended);
        assert_eq!(state(t(10), t(12), 0, t(9)), SaleState::Upcoming);
    }

    fn stored(quantity: u32) -> FlashSale {
        sale().into_sale("s1".into(), t(8)).with_quantity(quantity)
    }

    impl FlashSale {
        fn with_quantity(mut self, quantity: u32) -> Self {
            self.quantity = quantity;
            self
        }
    }

    #[test]
    fn a_sale_sells_only_inside_its_window_and_within_the_limit() {
        let s = stored(100);
        assert!(matches!(s.buy(1, t(9)), Err(SaleRule::NotActive { .. })));
        assert!(matches!(s.buy(1, t(12)), Err(SaleRule::NotActive { .. })));
        assert_eq!(s.buy(3, t(10)), Err(SaleRule::OverLimit { limit: 2 }));
        let (line, total) = s.buy(2, t(10)).unwrap();
        assert_eq!((line.quantity, line.unit_price.amount), (2, 500));
        assert_eq!(total.amount, 1000);
        assert_eq!(total.currency, "EUR");
    }

    #[test]
    fn split_is_exact_and_even() {
        for (q, k) in [(500, 8), (7, 3), (1, 1), (3, 3), (1_000_000, 50), (10, 1)] {
            let parts = split(q, k);
            assert_eq!(parts.len(), k as usize);
            assert_eq!(parts.iter().sum::<u32>(), q);
            let (min, max) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            assert!(max - min <= 1, "{q}/{k}: {parts:?}");
        }
    }

    #[test]
    fn a_sale_that_ends_before_it_starts_is_refused() {
        let s = NewFlashSale {
            ends_at: t(9),
            ..sale()
        };
        assert_eq!(s.validate(t(8)).unwrap_err().field, "ends_at");
        let s = NewFlashSale {
            ends_at: t(10),
            ..sale()
        };
        assert_eq!(s.validate(t(8)).unwrap_err().field, "ends_at");
    }

    #[test]
    fn sale_rules_name_their_field() {
        let now = t(8);
        assert!(sale().validate(now).is_ok());
        assert!(
            NewFlashSale {
                shards: None,
                ..sale()
            }
            .validate(now)
            .is_ok()
        );
        let cases = [
            (
                NewFlashSale {
                    quantity: 0,
                    ..sale()
                },
                "quantity",
            ),
            (
                NewFlashSale {
                    quantity: MAX_QUANTITY + 1,
                    ..sale()
                },
                "quantity",
            ),
            (
                NewFlashSale {
                    per_user_limit: 0,
                    ..sale()
                },
                "per_user_limit",
            ),
            (
                NewFlashSale {
                    per_user_limit: 101,
                    ..sale()
                },
                "per_user_limit",
            ),
            (
                NewFlashSale {
                    shards: Some(0),
                    ..sale()
                },
                "shards",
            ),
            (
                NewFlashSale {
                    shards: Some(MAX_SHARDS + 1),
                    ..sale()
                },
                "shards",
            ),
            (
                NewFlashSale {
                    quantity: 4,
                    per_user_limit: 1,
                    shards: Some(5),
                    ..sale()
                },
                "shards",
            ),
            (
                NewFlashSale {
                    sale_id: Some("bad id".into()),
                    ..sale()
                },
                "sale_id",
            ),
            (
                NewFlashSale {
                    sku: "".into(),
                    ..sale()
                },
                "sku",
            ),
            (
                NewFlashSale {
                    price: Money {
                        amount: 0,
                        currency: "EUR".into(),
                    },
                    ..sale()
                },
                "price.amount",
            ),
        ];
        for (s, field) in cases {
            assert_eq!(s.validate(now).unwrap_err().field, field);
        }
        assert_eq!(sale().validate(t(13)).unwrap_err().field, "ends_at");
    }
}
