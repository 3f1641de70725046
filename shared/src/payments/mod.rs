//! Payments: the provider's webhook signature, the provider client, the
//! circuit breaker in front of it, and the events the provider sends.

pub mod breaker;
pub mod provider;
pub mod signature;

use crate::config::{ConfigError, PaymentConfig};

/// What a function that calls the provider builds at cold start: the client
/// and the breaker in front of it (ADR 0020), from one configuration.
pub fn provider_and_breaker(
    config: &PaymentConfig,
    dynamo: aws_sdk_dynamodb::Client,
) -> Result<(provider::Provider, breaker::Breaker), ConfigError> {
    let provider =
        provider::Provider::new(config.provider.clone()).map_err(|e| ConfigError::Invalid {
            name: "PAYMENT_PROVIDER_URL",
            reason: e.to_string(),
        })?;
    let breaker = breaker::Breaker::new(
        dynamo,
        &config.tables.requests,
        breaker::PAYMENTS,
        config.breaker,
        crate::clock::system(),
    );
    Ok((provider, breaker))
}
