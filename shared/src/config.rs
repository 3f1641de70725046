//! Typed configuration read once at cold start. A missing variable is an init
//! error that names it; secrets are wrapped so they never reach `Debug` or logs.

pub use secrecy::{ExposeSecret, SecretString as Secret};

use crate::domain::throttle::Throttle;

/// Where configuration values come from: the process environment on Lambda, the
/// resolved template environment in the local gateway, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub(crate) fn required(src: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    match src.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// The DynamoDB tables of the whole design. Every function gets every name
/// (template Globals); what it may do with them is decided by its IAM policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub catalog: String,
    pub flash_sales: String,
    pub orders: String,
    pub requests: String,
    pub partners: String,
    pub audit: String,
}

impl Tables {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            catalog: required(src, "CATALOG_TABLE")?,
            flash_sales: required(src, "FLASH_SALES_TABLE")?,
            orders: required(src, "ORDERS_TABLE")?,
            requests: required(src, "REQUESTS_TABLE")?,
            partners: required(src, "PARTNERS_TABLE")?,
            audit: required(src, "AUDIT_TABLE")?,
        })
    }
}

/// Configuration of the HTTP functions.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub tables: Tables,
    /// Origins allowed to make state-changing requests (CSRF defence in depth).
    pub allowed_origins: Vec<String>,
}

impl HttpConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let allowed_origins = required(src, "ALLOWED_ORIGINS")?
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        Ok(Self {
            tables: Tables::from_source(src)?,
            allowed_origins,
        })
    }
}

/// Configuration of the two checkout functions.
#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    pub http: HttpConfig,
    pub order_queue_url: String,
    /// Attempts one user may make on one SKU per window before 429.
    pub throttle: Throttle,
    pub breaker: crate::payments::breaker::Settings,
}

fn number<T: std::str::FromStr>(
    src: &dyn Source,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match src.get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("{v:?} is not a number"),
        }),
    }
}

impl CheckoutConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let positive = |name: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: "must be a whole number above 0".into(),
                })
            }
        };
        let burst: u32 = number(src, "THROTTLE_BURST", 5)?;
        positive("THROTTLE_BURST", burst > 0)?;
        let window_secs: i64 = number(src, "THROTTLE_WINDOW_SECONDS", 10)?;
        positive("THROTTLE_WINDOW_SECONDS", window_secs > 0)?;
        Ok(Self {
            http: HttpConfig::from_source(src)?,
            order_queue_url: required(src, "ORDER_QUEUE_URL")?,
            throttle: Throttle { burst, window_secs },
            breaker: breaker_settings(src)?,
        })
    }
}

/// The payment breaker's settings (ADR 0020): `BREAKER_FAILURES` charges
/// failed in a row open it, for `BREAKER_OPEN_SECONDS`; every function that
/// reads it must use the same values (template Globals).
fn breaker_settings(src: &dyn Source) -> Result<crate::payments::breaker::Settings, ConfigError> {
    let mut s = crate::payments::breaker::Settings::default();
    let failures: u32 = number(src, "BREAKER_FAILURES", s.failures_to_open)?;
    let open_secs: i64 = number(src, "BREAKER_OPEN_SECONDS", s.open_for.num_seconds())?;
    if failures == 0 || !(1..=300).contains(&open_secs) {
        return Err(ConfigError::Invalid {
            name: "BREAKER_FAILURES",
            reason: "failures must be above 0 and BREAKER_OPEN_SECONDS from 1 to 300".into(),
        });
    }
    s.failures_to_open = failures;
    s.open_for = chrono::Duration::seconds(open_secs);
    Ok(s)
}

/// The payment provider, for the functions that call it.
#[derive(Debug, Clone)]
pub struct PaymentConfig {
    pub tables: Tables,
    pub provider: crate::payments::provider::ProviderConfig,
    pub breaker: crate::payments::breaker::Settings,
}

impl PaymentConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let url = required(src, "PAYMENT_PROVIDER_URL")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "PAYMENT_PROVIDER_URL",
                reason: "must be an http(s) URL".into(),
            });
        }
        let key = Secret::from(required(src, "PAYMENT_PROVIDER_API_KEY")?);
        let mut provider = crate::payments::provider::ProviderConfig::new(url, key);
        let call_ms: u64 = number(
            src,
            "PAYMENT_CALL_TIMEOUT_MS",
            provider.call_timeout.as_millis() as u64,
        )?;
        let deadline_ms: u64 = number(
            src,
            "PAYMENT_DEADLINE_MS",
            provider.deadline.as_millis() as u64,
        )?;
        if call_ms == 0 || deadline_ms < call_ms {
            return Err(ConfigError::Invalid {
                name: "PAYMENT_DEADLINE_MS",
                reason: "the deadline must hold at least one call (PAYMENT_CALL_TIMEOUT_MS > 0)"
                    .into(),
            });
        }
        provider.call_timeout = std::time::Duration::from_millis(call_ms);
        provider.deadline = std::time::Duration::from_millis(deadline_ms);
        Ok(Self {
            tables: Tables::from_source(src)?,
            provider,
            breaker: breaker_settings(src)?,
        })
    }
}

/// The webhook receiver: the secrets a signature may be made with (two
/// while one is rotated out).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub tables: Tables,
    pub secrets: Vec<Secret>,
}

impl WebhookConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let secrets: Vec<Secret> = required(src, "PAYMENT_WEBHOOK_SECRETS")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::from)
            .collect();
        if secrets.is_empty() || secrets.iter().any(|s| s.expose_secret().len() < 16) {
            return Err(ConfigError::Invalid {
                name: "PAYMENT_WEBHOOK_SECRETS",
                reason: "each secret must be at least 16 characters".into(),
            });
        }
        Ok(Self {
            tables: Tables::from_source(src)?,
            secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn a_missing_variable_is_named() {
        let src = source(&[("CATALOG_TABLE", "c")]);
        assert_eq!(
            Tables::from_source(&src),
            Err(ConfigError::Missing("FLASH_SALES_TABLE"))
        );
    }

    const TABLES: [(&str, &str); 6] = [
        ("CATALOG_TABLE", "c"),
        ("FLASH_SALES_TABLE", "f"),
        ("ORDERS_TABLE", "o"),
        ("REQUESTS_TABLE", "r"),
        ("PARTNERS_TABLE", "p"),
        ("AUDIT_TABLE", "a"),
    ];

    #[test]
    fn allowed_origins_are_trimmed_and_split() {
        let mut pairs = TABLES.to_vec();
        pairs.push((
            "ALLOWED_ORIGINS",
            " https://shop.example/ ,http://localhost:5173,",
        ));
        let src = source(&pairs);
        let cfg = HttpConfig::from_source(&src).unwrap();
        assert_eq!(
            cfg.allowed_origins,
            vec!["https://shop.example", "http://localhost:5173"]
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::from("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose_secret(), "hunter2");
    }

    #[test]
    fn an_invalid_throttle_setting_names_itself() {
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = TABLES.to_vec();
            pairs.push(("ALLOWED_ORIGINS", "https://shop.example"));
            pairs.push(("ORDER_QUEUE_URL", "q"));
            pairs.push(extra);
            CheckoutConfig::from_source(&source(&pairs))
        };
        let name = |r: Result<CheckoutConfig, ConfigError>| match r {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(with(("THROTTLE_WINDOW_SECONDS", "0"))),
            "THROTTLE_WINDOW_SECONDS"
        );
        assert_eq!(
            name(with(("THROTTLE_WINDOW_SECONDS", "x"))),
            "THROTTLE_WINDOW_SECONDS"
        );
        assert_eq!(name(with(("THROTTLE_BURST", "0"))), "THROTTLE_BURST");
        let ok = with(("THROTTLE_BURST", "7")).unwrap();
        assert_eq!(
            ok.throttle,
            Throttle {
                burst: 7,
                window_secs: 10
            }
        );
    }
}

/// feed-ingest: its queue (for hand-overs), its limits and its time.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub tables: Tables,
    /// The feed-events queue: where an import hands its rest over.
    pub queue_url: String,
    pub ingest: crate::feeds::ingest::Settings,
    /// The queue's maxReceiveCount: the delivery that marks an import failed.
    pub max_receives: u32,
}

impl FeedConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let d = crate::feeds::ingest::Settings::default();
        let ms = std::time::Duration::from_millis;
        let ingest = crate::feeds::ingest::Settings {
            max_object_bytes: number(src, "FEED_MAX_BYTES", d.max_object_bytes)?,
            max_decoded_bytes: number(src, "FEED_MAX_DECODED_BYTES", d.max_decoded_bytes)?,
            concurrency: number(src, "FEED_WRITE_CONCURRENCY", d.concurrency)?,
            reserve: ms(number(
                src,
                "FEED_DEADLINE_RESERVE_MS",
                d.reserve.as_millis() as u64,
            )?),
            budget: match number(src, "FEED_TIME_BUDGET_MS", 0u64)? {
                0 => None,
                n => Some(ms(n)),
            },
        };
        if ingest.concurrency == 0 || ingest.concurrency > 64 {
            return Err(ConfigError::Invalid {
                name: "FEED_WRITE_CONCURRENCY",
                reason: "must be from 1 to 64".into(),
            });
        }
        Ok(Self {
            tables: Tables::from_source(src)?,
            queue_url: required(src, "FEED_EVENTS_QUEUE_URL")?,
            ingest,
            max_receives: number(src, "FEED_MAX_RECEIVES", 8)?,
        })
    }
}

/// partner-api: its limits, the feeds bucket it signs uploads into.
#[derive(Debug, Clone)]
pub struct PartnerConfig {
    pub tables: Tables,
    pub feeds_bucket: String,
    /// Requests one key may make per minute.
    pub per_key: Throttle,
    /// Failed key attempts one source address may make per window; the
    /// next blocks it until the window ends.
    pub failures: Throttle,
    /// How long an upload URL works (at most 15 minutes).
    pub upload_expires_secs: u64,
    /// The largest body a dry run reads.
    pub max_validate_bytes: usize,
    /// The most a gzipped dry-run body may inflate to.
    pub max_validate_decoded_bytes: u64,
    /// Fetch profiles a partner saves: their secrets, their URLs' allowance.
    pub fetch: FetchSettings,
}

impl PartnerConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let positive = |name: &'static str, v: u64, max: u64| {
            if v == 0 || v > max {
                Err(ConfigError::Invalid {
                    name,
                    reason: format!("must be from 1 to {max}"),
                })
            } else {
                Ok(v)
            }
        };
        let per_minute = positive(
            "PARTNER_REQUESTS_PER_MINUTE",
            number(src, "PARTNER_REQUESTS_PER_MINUTE", 60)?,
            100_000,
        )?;
        let failed = positive(
            "PARTNER_FAILED_ATTEMPTS",
            number(src, "PARTNER_FAILED_ATTEMPTS", 20)?,
            100_000,
        )?;
        let failure_window = positive(
            "PARTNER_FAILURE_WINDOW_SECONDS",
            number(src, "PARTNER_FAILURE_WINDOW_SECONDS", 900)?,
            86_400,
        )?;
        // Lambda takes 6 MB of request, and API Gateway base64-encodes a
        // binary body (4/3): 4 MiB is the most that can arrive
        let max_validate_bytes = positive(
            "PARTNER_VALIDATE_MAX_BYTES",
            number(src, "PARTNER_VALIDATE_MAX_BYTES", 3 << 20)?,
            4 << 20,
        )?;
        Ok(Self {
            tables: Tables::from_source(src)?,
            feeds_bucket: required(src, "FEEDS_BUCKET")?,
            per_key: Throttle {
                burst: per_minute as u32,
                window_secs: 60,
            },
            failures: Throttle {
                burst: failed as u32,
                window_secs: failure_window as i64,
            },
            upload_expires_secs: positive(
                "PARTNER_UPLOAD_EXPIRES_SECONDS",
                number(src, "PARTNER_UPLOAD_EXPIRES_SECONDS", 900)?,
                900,
            )?,
            max_validate_bytes: max_validate_bytes as usize,
            // a gzipped CSV shrinks 5 to 10 times; a bomb stops here, and
            // the scan of this much stays within a second or so
            max_validate_decoded_bytes: 4 * max_validate_bytes,
            fetch: FetchSettings::from_source(src)?,
        })
    }
}

/// Where partners' fetch secrets live and what a fetch may reach beyond the
/// SSRF rules (nothing, deployed; the sandbox feed server, locally): read
/// alike by the fetcher and by the APIs that save profiles, so a URL saved
/// is judged as it will be fetched.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// `flashcart/partners/<stack>/`
    pub secrets_prefix: String,
    pub allow: crate::fetch::ssrf::Allowance,
}

impl FetchSettings {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.into(),
        };
        let prefix = required(src, "SECRETS_PREFIX")?;
        if !prefix.starts_with("flashcart/partners/") || !prefix.ends_with('/') {
            return Err(invalid(
                "SECRETS_PREFIX",
                "must be under flashcart/partners/ and end in /",
            ));
        }
        let mut allow = crate::fetch::ssrf::Allowance {
            http: number(src, "FETCH_ALLOW_HTTP", 0u8)? == 1,
            ..Default::default()
        };
        for addr in src
            .get("FETCH_ALLOWED_ADDRESSES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
                invalid(
                    "FETCH_ALLOWED_ADDRESSES",
                    "must be ip:port, comma-separated",
                )
            })?;
            allow.ports.push(addr.port());
            allow.exceptions.push(addr);
        }
        Ok(Self {
            secrets_prefix: prefix,
            allow,
        })
    }
}

/// feed-fetcher: where fetched feeds go, the limits of one fetch and of one
/// run, and the [`FetchSettings`].
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    pub tables: Tables,
    pub feeds_bucket: String,
    pub max_bytes: u64,
    pub fetch_timeout: std::time::Duration,
    /// A run takes no new profile after this long (the function's timeout
    /// less one fetch and a margin).
    pub run_budget: std::time::Duration,
    pub fetch: FetchSettings,
}

impl FetcherConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let secs = std::time::Duration::from_secs;
        Ok(Self {
            tables: Tables::from_source(src)?,
            feeds_bucket: required(src, "FEEDS_BUCKET")?,
            max_bytes: number(src, "FETCH_MAX_BYTES", 256u64 << 20)?,
            fetch_timeout: secs(number(src, "FETCH_TIMEOUT_SECONDS", 60u64)?),
            run_budget: secs(number(src, "FETCH_RUN_SECONDS", 780u64)?),
            fetch: FetchSettings::from_source(src)?,
        })
    }
}
