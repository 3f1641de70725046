//! Payments: the provider's webhook signature, the provider client, the
//! circuit breaker in front of it, and the events the provider sends.

pub mod breaker;
pub mod provider;
pub mod signature;
