//! Scheduled feed fetches from partners' own URLs (issue 12, ADR 0025):
//! what a fetch may reach ([`ssrf`]), the fetch itself ([`client`]), the
//! credentials ([`secrets`]), the profiles partners and admins save
//! ([`profiles`]) and one scheduled run ([`run`]).

pub mod client;
pub mod profiles;
pub mod run;
pub mod secrets;
pub mod ssrf;
