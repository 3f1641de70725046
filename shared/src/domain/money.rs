//! Money is integer minor units with an ISO 4217 currency, everywhere. No floats.

use super::Invalid;
use iso_currency::Currency;
use serde::{Deserialize, Serialize};

/// The largest price accepted: 10^10 minor units (100 million in a two-decimal
/// currency). Keeps totals of any cart far from i64 overflow.
pub const MAX_AMOUNT: i64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

impl Money {
    /// A price: positive, bounded, in a real ISO 4217 currency.
    pub fn check_price(&self, field: &str) -> Result<(), Invalid> {
        check_currency(&format!("{field}.currency"), &self.currency)?;
        if self.amount <= 0 {
            return Err(Invalid::new(
                format!("{field}.amount"),
                "must be greater than 0 (minor units)",
            ));
        }
        if self.amount > MAX_AMOUNT {
            return Err(Invalid::new(
                format!("{field}.amount"),
                format!("must be at most {MAX_AMOUNT} minor units"),
            ));
        }
        Ok(())
    }
}

/// A three-letter ISO 4217 code of a currency with minor units (not gold, not
/// testing codes).
pub fn check_currency(field: &str, code: &str) -> Result<(), Invalid> {
    match Currency::from_code(code).and_then(|c| c.exponent()) {
        Some(_) => Ok(()),
        None => Err(Invalid::new(
            field,
            "must be an ISO 4217 currency code such as EUR or USD",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(amount: i64, currency: &str) -> Money {
        Money {
            amount,
            currency: currency.into(),
        }
    }

    #[test]
    fn prices_must_be_positive_bounded_and_in_a_real_currency() {
        assert!(m(1299, "EUR").check_price("price").is_ok());
        assert!(m(1, "JPY").check_price("price").is_ok());
        assert!(m(MAX_AMOUNT, "USD").check_price("price").is_ok());
        assert_eq!(
            m(0, "EUR").check_price("price").unwrap_err().field,
            "price.amount"
        );
        assert_eq!(
            m(-5, "EUR").check_price("price").unwrap_err().field,
            "price.amount"
        );
        assert!(m(MAX_AMOUNT + 1, "EUR").check_price("price").is_err());
        for bad in ["eur", "EURO", "XXX", "XAU", "", "ZZZ"] {
            assert_eq!(
                m(100, bad).check_price("price").unwrap_err().field,
                "price.currency",
                "{bad}"
            );
        }
    }
}
