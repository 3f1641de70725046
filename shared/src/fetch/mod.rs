//! Scheduled feed fetches from partners' own URLs (issue 12). So far: the
//! rules of what a fetch may reach ([`ssrf`], ADR 0025).

pub mod client;
pub mod run;
pub mod secrets;
pub mod ssrf;
