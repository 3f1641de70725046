//! feed-fetcher: every 5 minutes (EventBridge schedule), the partners' feeds
//! that are due, fetched from their own URLs into `incoming/` (ADR 0025):
//! SSRF-checked and pinned, secrets read from Secrets Manager at fetch time,
//! each fetch claimed so two runs at once fetch it once. The S3 notification
//! then starts the ingest, as for any drop. The work is
//! `shared::fetch::run`; this crate wires it.

use shared::clock::{SharedClock, system};
use shared::config::{ConfigError, FetcherConfig, Source};
use shared::fetch::client::Limits;
use shared::fetch::run::{Fetcher, Summary};
use shared::fetch::secrets::SecretStore;
use shared::objects::Objects;
use shared::store::audit::AuditStore;
use shared::store::fetch_profiles::FetchProfileStore;

pub const FUNCTION: &str = "feed-fetcher";

pub struct Deps {
    fetcher: Fetcher,
    clock: SharedClock,
}

impl Deps {
    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let config = FetcherConfig::from_source(src)?;
        let dynamo = shared::aws::dynamodb(sdk);
        Ok(Self {
            fetcher: Fetcher {
                profiles: FetchProfileStore::new(dynamo.clone(), &config.tables.partners),
                secrets: SecretStore::new(
                    shared::aws::secrets_manager(sdk),
                    config.fetch.secrets_prefix.clone(),
                ),
                objects: Objects::new(shared::aws::s3(sdk)),
                audit: AuditStore::new(dynamo, &config.tables.audit),
                bucket: config.feeds_bucket.clone(),
                limits: Limits {
                    max_bytes: config.max_bytes,
                    timeout: config.fetch_timeout,
                    max_redirects: 3,
                    allow: config.fetch.allow.clone(),
                },
                budget: config.run_budget,
            },
            clock: system(),
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// One scheduled run: what was due, and what became of it.
pub async fn handle(
    deps: &Deps,
    _event: serde_json::Value,
) -> Result<Summary, lambda_runtime::Error> {
    let clock = deps.clock.clone();
    // a claim's owner: unique, so a late end of an expired claim can never
    // pass for a newer claim's
    let run_id = format!("run-{}", uuid::Uuid::new_v4().simple());
    let summary = deps
        .fetcher
        .run(move || clock.now(), &run_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "fetch run failed");
            lambda_runtime::Error::from(e.to_string())
        })?;
    tracing::info!(
        due = summary.due,
        fetched = summary.fetched,
        unchanged = summary.unchanged,
        refused = summary.refused,
        failed = summary.failed,
        skipped = summary.skipped,
        "fetch run"
    );
    Ok(summary)
}
