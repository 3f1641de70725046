//! Flashcart's shared library: everything two functions need.
//!
//! - [`domain`]: business rules, pure (no I/O, no clock).
//! - [`store`]: DynamoDB access; conditional failures become domain outcomes.
//! - [`keys`]: every partition and sort key.
//! - [`http`], [`error`], [`cursor`]: the HTTP contract of DESIGN.md.
//! - [`config`], [`aws`], [`logging`]: what a function wires at cold start.

pub mod aws;
pub mod checkout;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod error;
pub mod http;
pub mod keys;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod queue;
pub mod routes;
pub mod store;

pub use error::ApiError;
