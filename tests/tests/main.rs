//! The integration tests: one binary, so the SDK, axum and the functions link
//! once. Each test deploys its own copy of template.yaml on the emulator that
//! `make test` starts, and removes it when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod admin;
mod breaker;
mod callback;
mod checkout;
mod common;
mod feed_fixtures;
mod feeds;
mod fetch;
mod flash;
mod gateway;
mod malformed;
mod mfa_gate;
mod partner;
mod payments;
mod pollers;
mod storefront;
mod stores;
mod sweeper;
