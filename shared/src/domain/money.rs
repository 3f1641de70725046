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

/// Why a decimal price string is not a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("must be an ISO 4217 currency code such as EUR or USD")]
    UnknownCurrency,
    #[error("must be a decimal number such as 12.99, with no sign, spaces or separators")]
    NotANumber,
    #[error("has more decimals than the currency's {0}")]
    TooManyDecimals(u32),
    #[error("must be greater than 0")]
    NotPositive,
    #[error("is larger than any price accepted")]
    TooLarge,
}

impl Money {
    /// Converts a decimal string (`12.99`, `5`, `0.50`) exactly to minor
    /// units for `currency`'s exponent (2 for EUR, 0 for JPY, 3 for KWD),
    /// never through floats: digits, optionally a point and at most the
    /// exponent's count of digits. A positive price up to [`MAX_AMOUNT`].
    pub fn parse_decimal(text: &str, currency: &str) -> Result<Money, DecimalError> {
        let exponent = Currency::from_code(currency)
            .and_then(|c| c.exponent())
            .ok_or(DecimalError::UnknownCurrency)?;
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(DecimalError::NotANumber);
        }
        let fraction = fraction.unwrap_or("");
        let decimals = u32::try_from(fraction.len())
            .map_err(|_| DecimalError::TooManyDecimals(u32::from(exponent)))?;
        if decimals > u32::from(exponent) {
            return Err(DecimalError::TooManyDecimals(u32::from(exponent)));
        }
        // whole * 10^exponent + fraction * 10^(exponent - decimals), checked
        let mut amount: i64 = 0;
        let scale = 10i64.pow(u32::from(exponent) - decimals);
        for b in whole.bytes().chain(fraction.bytes()) {
            amount = amount
                .checked_mul(10)
                .and_then(|a| a.checked_add(i64::from(b - b'0')))
                .filter(|a| *a <= MAX_AMOUNT * 10)
                .ok_or(DecimalError::TooLarge)?;
        }
        let amount = amount.checked_mul(scale).ok_or(DecimalError::TooLarge)?;
        if amount == 0 {
            return Err(DecimalError::NotPositive);
        }
        if amount > MAX_AMOUNT {
            return Err(DecimalError::TooLarge);
        }
        Ok(Money {
            amount,
            currency: currency.to_owned(),
        })
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

    #[test]
    fn decimal_prices_convert_exactly_for_each_currencys_exponent() {
        let ok = |t: &str, c: &str| Money::parse_decimal(t, c).map(|m| m.amount);
        assert_eq!(ok("12.99", "EUR"), Ok(1299));
        assert_eq!(ok("12.9", "EUR"), Ok(1290));
        assert_eq!(ok("12", "EUR"), Ok(1200));
        assert_eq!(ok("0.01", "EUR"), Ok(1));
        assert_eq!(ok("007.50", "USD"), Ok(750));
        assert_eq!(ok("1500", "JPY"), Ok(1500));
        assert_eq!(ok("1.234", "KWD"), Ok(1234));
        // 0.1 + 0.2 is not 0.30000000000000004 here
        assert_eq!(ok("0.3", "EUR"), Ok(30));
        assert_eq!(ok("100000000", "EUR"), Ok(MAX_AMOUNT));
    }

    #[test]
    fn anything_but_a_plain_positive_decimal_is_refused() {
        let err = |t: &str, c: &str| Money::parse_decimal(t, c).unwrap_err();
        for bad in [
            "", ".", "12.", ".5", "-1", "+1", " 1", "1 ", "1,50", "1e3", "1.2.3", "0x10", "١٢",
            "NaN", "12.99€",
        ] {
            assert_eq!(err(bad, "EUR"), DecimalError::NotANumber, "{bad:?}");
        }
        assert_eq!(err("12.999", "EUR"), DecimalError::TooManyDecimals(2));
        assert_eq!(err("12.990", "EUR"), DecimalError::TooManyDecimals(2));
        assert_eq!(err("1.5", "JPY"), DecimalError::TooManyDecimals(0));
        assert_eq!(err("0", "EUR"), DecimalError::NotPositive);
        assert_eq!(err("0.00", "EUR"), DecimalError::NotPositive);
        assert_eq!(err("100000000.01", "EUR"), DecimalError::TooLarge);
        assert_eq!(err(&"9".repeat(40), "EUR"), DecimalError::TooLarge);
        assert_eq!(err("12.99", "XAU"), DecimalError::UnknownCurrency);
        assert_eq!(err("12.99", "eur"), DecimalError::UnknownCurrency);
    }

    /// Every amount written as a decimal for its currency reads back as itself.
    #[test]
    fn formatting_then_parsing_is_the_identity() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (currency, exponent) in [("EUR", 2u32), ("JPY", 0), ("KWD", 3)] {
            for _ in 0..20_000 {
                let amount = rng.i64(1..=MAX_AMOUNT);
                let scale = 10i64.pow(exponent);
                let text = if exponent == 0 {
                    amount.to_string()
                } else {
                    format!(
                        "{}.{:0width$}",
                        amount / scale,
                        amount % scale,
                        width = exponent as usize
                    )
                };
                assert_eq!(
                    Money::parse_decimal(&text, currency).map(|m| m.amount),
                    Ok(amount),
                    "{text} {currency}"
                );
            }
        }
    }

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
