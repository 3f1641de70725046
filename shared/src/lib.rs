//! Flashcart's shared library: everything two functions need.
//!
//! Dependencies point one way (no cycles): `domain` needs nothing; `store`
//! needs `domain` (and `cursor`, `config`); the use case `checkout` needs both; `error` maps all their
//! errors to the HTTP shape; `http` reads requests and writes the checkout
//! answer; the handlers in `functions/*` sit on top.
//!
//! - [`domain`]: business rules, pure (no I/O, no clock).
//! - [`store`]: DynamoDB access; conditional failures become domain outcomes.
//! - [`checkout`]: the checkout use case, one entry per checkout kind.
//! - [`error`]: the error shape and every mapping into it.
//! - [`http`], [`response`], [`cursor`], [`routes`]: the HTTP contract.
//! - [`feeds`]: partner feeds: adapters, row rules, the import and its ingest.
//! - [`objects`]: the feeds bucket (a feed read, a report written, as streams).
//! - [`payments`]: webhook signatures, the provider client and its breaker.
//! - [`memory`], [`queue`], [`metrics`]: container memory, the order queue, EMF.
//! - [`config`], [`aws`], [`clock`], [`logging`]: what a function wires at cold start.

pub mod aws;
pub mod backoff;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod error;
pub mod feeds;
pub mod fetch;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod objects;
pub mod payments;
pub mod queue;
pub mod response;
pub mod routes;
pub mod store;

pub use error::ApiError;
