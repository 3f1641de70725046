//! Orders and the rules of a cart: what may be bought together, what it costs,
//! and which status may follow which.

use super::money::{MAX_AMOUNT, Money};
use super::product::Product;
use super::text::check_text;
use super::{Invalid, ts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Lines per cart: a checkout transaction holds one item per line plus the
/// order and the idempotency record, far below DynamoDB's 100.
pub const MAX_LINES: usize = 20;
/// Units of one SKU per line.
pub const MAX_QUANTITY_PER_LINE: u32 = 10;
/// How long stock stays reserved for an unpaid order.
pub const RESERVATION_MINUTES: i64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Confirmed,
    PaymentFailed,
    Expired,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Confirmed => "confirmed",
            Self::PaymentFailed => "payment_failed",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    /// The only transitions there are (DESIGN.md, "Order states").
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (PendingPayment, Paid)
                | (Paid, Confirmed)
                | (PendingPayment, PaymentFailed)
                | (PendingPayment, Expired)
                | (Paid, Refunded)
                | (Confirmed, Refunded)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    /// The buyer's JWT subject.
    pub user: String,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total: Money,
    /// The provider's token for the buyer's payment method (never card data).
    pub payment_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<String>,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
    /// Stock is held until then; unpaid after it, the order expires.
    #[serde(with = "ts")]
    pub expires_at: DateTime<Utc>,
    /// The flash-sale shard its units came from: where a release returns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_shard: Option<u32>,
    /// Charges sent (the same idempotency key each time), recorded before
    /// each call, so our state, not the provider's memory of keys, decides
    /// whether another may be sent (ADR 0018).
    #[serde(default)]
    pub charge_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts::option")]
    pub charge_started_at: Option<DateTime<Utc>>,
    /// The provider's charge, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Why the payment failed, as the provider coded it (`card_declined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    /// A refund reported before its charge's success: the success then ends
    /// the order `refunded` (events arrive in any order, ADR 0018).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_seen: Option<String>,
    /// When the provider first said it had no charge for this attempted
    /// order (the sweeper expires it on a second such answer, ADR 0018).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts::option")]
    pub nothing_found_at: Option<DateTime<Utc>>,
}

/// What a buyer is told of an order's payment (scenario U2: a reason a
/// person can act on, under 30 words).
pub fn payment_view(order: &Order) -> serde_json::Value {
    use OrderStatus::*;
    let (status, reason) = match order.status {
        PendingPayment if order.charge_attempts == 0 => ("pending", None),
        PendingPayment => ("processing", None),
        Paid | Confirmed => ("paid", None),
        Refunded => (
            "refunded",
            Some("The payment was refunded to your payment method."),
        ),
        Expired => (
            "expired",
            Some(
                "The payment did not complete within 15 minutes, so the items were released. Place the order again to buy them.",
            ),
        ),
        PaymentFailed => (
            "failed",
            Some(failure_reason(order.failure_code.as_deref())),
        ),
    };
    let mut view = serde_json::json!({ "status": status });
    if let Some(r) = reason {
        view["reason"] = serde_json::json!(r);
    }
    view
}

/// Our sentence for a provider's failure code (never the provider's text).
pub fn failure_reason(code: Option<&str>) -> &'static str {
    match code {
        Some("card_declined") => {
            "Your card was declined. Try another card or payment method, or ask your bank why."
        }
        Some("unknown_token") => {
            "Your payment method was not recognised. Check its details or use another one."
        }
        Some("expired_card") => "Your card has expired. Use another card or payment method.",
        Some("insufficient_funds") => {
            "Your card has insufficient funds. Use another card or payment method."
        }
        _ => "Your payment was not accepted. Try another payment method or contact your bank.",
    }
}

impl Order {
    pub fn new(
        user: &str,
        items: Vec<OrderLine>,
        total: Money,
        payment_token: String,
        sale_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id: format!("ord-{}", uuid::Uuid::new_v4().simple()),
            user: user.to_owned(),
            status: OrderStatus::PendingPayment,
            items,
            total,
            payment_token,
            sale_id,
            created_at: now,
            updated_at: now,
            expires_at: now + chrono::Duration::minutes(RESERVATION_MINUTES),
            sale_shard: None,
            charge_attempts: 0,
            charge_started_at: None,
            payment_id: None,
            failure_code: None,
            refund_seen: None,
            nothing_found_at: None,
        }
    }

    /// The 202 body of a checkout (and of its replays).
    pub fn accepted_body(&self) -> serde_json::Value {
        serde_json::json!({
            "order_id": self.order_id,
            "status": self.status,
            "total": self.total,
            "expires_at": ts::format(&self.expires_at),
        })
    }

    /// What `GET /orders/{id}` shows: everything but the payment token.
    pub fn public_body(&self) -> serde_json::Value {
        serde_json::json!({
            "order_id": self.order_id,
            "status": self.status,
            "items": self.items,
            "total": self.total,
            "sale_id": self.sale_id,
            "payment": payment_view(self),
            "created_at": ts::format(&self.created_at),
            "updated_at": ts::format(&self.updated_at),
            "expires_at": ts::format(&self.expires_at),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    pub sku: String,
    pub quantity: u32,
}

/// The body of `POST /checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub items: Vec<CartLine>,
    pub payment_token: String,
}

/// The body of `POST /flash-sales/{sale_id}/checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCheckoutRequest {
    #[serde(default = "one")]
    pub quantity: u32,
    pub payment_token: String,
}

fn one() -> u32 {
    1
}

/// Payment tokens are the provider's opaque ids (`tok_...`), never card data.
pub fn check_payment_token(token: &str) -> Result<(), Invalid> {
    check_text("payment_token", token, 200, false)?;
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Invalid::new(
            "payment_token",
            "must be a payment provider token such as tok_ok",
        ));
    }
    Ok(())
}

pub fn check_quantity(field: &str, quantity: u32) -> Result<(), Invalid> {
    if (1..=MAX_QUANTITY_PER_LINE).contains(&quantity) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("must be from 1 to {MAX_QUANTITY_PER_LINE}"),
        ))
    }
}

impl CheckoutRequest {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.items.is_empty() {
            return Err(Invalid::new("items", "must hold at least one line"));
        }
        if self.items.len() > MAX_LINES {
            return Err(Invalid::new(
                "items",
                format!("must hold at most {MAX_LINES} lines"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, line) in self.items.iter().enumerate() {
            if line.sku.is_empty() || line.sku.len() > 200 {
                return Err(Invalid::new(
                    format!("items[{i}].sku"),
                    "must name a product",
                ));
            }
            if !seen.insert(line.sku.as_str()) {
                return Err(Invalid::new(
                    format!("items[{i}].sku"),
                    "appears in two lines; put the whole quantity in one line",
                ));
            }
            check_quantity(&format!("items[{i}].quantity"), line.quantity)?;
        }
        check_payment_token(&self.payment_token)
    }
}

impl FlashCheckoutRequest {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_quantity("quantity", self.quantity)?;
        check_payment_token(&self.payment_token)
    }
}

/// A cart rule that the products, not the request's shape, break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartRule {
    #[error("no product {sku}")]
    UnknownSku { sku: String, line: usize },
    #[error("{sku} is priced in {currency}, the rest of the cart in {cart_currency}")]
    MixedCurrency {
        sku: String,
        currency: String,
        cart_currency: String,
    },
    #[error("the total is too large")]
    TotalTooLarge,
}

/// Prices every line at the product's current price and totals the cart in
/// one currency.
pub fn price_cart(
    lines: &[CartLine],
    products: &HashMap<String, Product>,
) -> Result<(Vec<OrderLine>, Money), CartRule> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    let mut currency: Option<&str> = None;
    for (i, line) in lines.iter().enumerate() {
        let product = products
            .get(&line.sku)
            .ok_or_else(|| CartRule::UnknownSku {
                sku: line.sku.clone(),
                line: i,
            })?;
        match currency {
            None => currency = Some(&product.price.currency),
            Some(c) if c != product.price.currency => {
                return Err(CartRule::MixedCurrency {
                    sku: line.sku.clone(),
                    currency: product.price.currency.clone(),
                    cart_currency: c.to_owned(),
                });
            }
            Some(_) => {}
        }
        total = product
            .price
            .amount
            .checked_mul(i64::from(line.quantity))
            .and_then(|v| total.checked_add(v))
            .filter(|t| *t <= MAX_AMOUNT * i64::from(MAX_QUANTITY_PER_LINE) * MAX_LINES as i64)
            .ok_or(CartRule::TotalTooLarge)?;
        priced.push(OrderLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price: product.price.clone(),
        });
    }
    let currency = currency.unwrap_or_default().to_owned();
    Ok((
        priced,
        Money {
            amount: total,
            currency,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    const ALL: [OrderStatus; 6] = [
        PendingPayment,
        Paid,
        Confirmed,
        PaymentFailed,
        Expired,
        Refunded,
    ];

    #[test]
    fn only_the_documented_transitions_exist() {
        let allowed = [
            (PendingPayment, Paid),
            (Paid, Confirmed),
            (PendingPayment, PaymentFailed),
            (PendingPayment, Expired),
            (Paid, Refunded),
            (Confirmed, Refunded),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    fn product(sku: &str, amount: i64, currency: &str) -> Product {
        let t = Utc::now();
        Product {
            sku: sku.into(),
            name: sku.into(),
            description: String::new(),
            price: Money {
                amount,
                currency: currency.into(),
            },
            category: "c".into(),
            stock: 5,
            owner: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn line(sku: &str, quantity: u32) -> CartLine {
        CartLine {
            sku: sku.into(),
            quantity,
        }
    }

    fn request(items: Vec<CartLine>) -> CheckoutRequest {
        CheckoutRequest {
            items,
            payment_token: "tok_ok".into(),
        }
    }

    #[test]
    fn carts_are_priced_in_integer_minor_units() {
        let products = HashMap::from([
            ("A".to_owned(), product("A", 1299, "EUR")),
            ("B".to_owned(), product("B", 1, "EUR")),
        ]);
        let (lines, total) = price_cart(&[line("A", 3), line("B", 2)], &products).unwrap();
        assert_eq!(
            total,
            Money {
                amount: 3899,
                currency: "EUR".into()
            }
        );
        assert_eq!(lines[0].unit_price.amount, 1299);
    }

    #[test]
    fn cart_rules_name_the_sku() {
        let products = HashMap::from([
            ("A".to_owned(), product("A", 100, "EUR")),
            ("U".to_owned(), product("U", 100, "USD")),
        ]);
        assert_eq!(
            price_cart(&[line("A", 1), line("Z", 1)], &products),
            Err(CartRule::UnknownSku {
                sku: "Z".into(),
                line: 1
            })
        );
        assert!(
            matches!(price_cart(&[line("A", 1), line("U", 1)], &products), Err(CartRule::MixedCurrency { sku, .. }) if sku == "U")
        );
        let big = HashMap::from([("X".to_owned(), product("X", i64::MAX / 2, "EUR"))]);
        assert_eq!(
            price_cart(&[line("X", 10)], &big),
            Err(CartRule::TotalTooLarge)
        );
    }

    #[test]
    fn cart_shapes_are_checked_with_the_field_named() {
        assert!(request(vec![line("A", 1)]).validate().is_ok());
        let field = |r: CheckoutRequest| r.validate().unwrap_err().field;
        assert_eq!(field(request(vec![])), "items");
        assert_eq!(
            field(request(
                (0..=MAX_LINES).map(|i| line(&format!("S{i}"), 1)).collect()
            )),
            "items"
        );
        assert_eq!(field(request(vec![line("A", 0)])), "items[0].quantity");
        assert_eq!(
            field(request(vec![line("A", MAX_QUANTITY_PER_LINE + 1)])),
            "items[0].quantity"
        );
        assert_eq!(
            field(request(vec![line("A", 1), line("A", 2)])),
            "items[1].sku"
        );
        assert_eq!(field(request(vec![line("", 1)])), "items[0].sku");
        assert_eq!(
            field(CheckoutRequest {
                items: vec![line("A", 1)],
                payment_token: "".into()
            }),
            "payment_token"
        );
        assert_eq!(
            field(CheckoutRequest {
                items: vec![line("A", 1)],
                payment_token: "4111 1111".into()
            }),
            "payment_token"
        );
    }

    #[test]
    fn flash_quantity_defaults_to_one() {
        let r: FlashCheckoutRequest =
            serde_json::from_str(r#"{"payment_token":"tok_ok"}"#).unwrap();
        assert_eq!(r.quantity, 1);
        assert!(r.validate().is_ok());
        let neg: Result<FlashCheckoutRequest, _> =
            serde_json::from_str(r#"{"quantity":-1,"payment_token":"tok_ok"}"#);
        assert!(neg.is_err());
    }

    #[test]
    fn a_new_order_holds_its_stock_for_the_reservation() {
        let now = Utc::now();
        let o = Order::new(
            "alice",
            vec![],
            Money {
                amount: 1,
                currency: "EUR".into(),
            },
            "tok_ok".into(),
            None,
            now,
        );
        assert_eq!(o.status, PendingPayment);
        assert_eq!(
            o.expires_at - o.created_at,
            chrono::Duration::minutes(RESERVATION_MINUTES)
        );
        assert!(o.public_body().get("payment_token").is_none());
    }
}
