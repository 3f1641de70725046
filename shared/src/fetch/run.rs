//! One run of the scheduled fetcher (issue 12, ADR 0025): the profiles due
//! now, each claimed (so two runs at once fetch it once), its secret read
//! from Secrets Manager at that moment (a rotation or a deletion counts from
//! the next fetch), fetched into `incoming/<partner_id>/<fetch_id>.<format>`
//! with the profile's version, validation and the fetch's id as metadata
//! (the S3 notification then starts the ingest, whose import names the
//! fetch), recorded, audited, and the profile's next fetch set: the schedule
//! after a success or a 304, a back-off after a failure, a pause after too
//! many.

use super::client::{self, Auth, FetchError, Fetched, Limits, Request};
use super::secrets::SecretStore;
use crate::domain::fetch_profile::{AfterFailure, Schedule, after_failure};
use crate::objects::Objects;
use crate::store::StoreError;
use crate::store::audit::{AuditEvent, AuditStore};
use crate::store::fetch_profiles::{Ended, FetchProfile, FetchProfileStore, FetchRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Profiles one run takes at most (the rest are due at the next run).
pub const BATCH: i32 = 25;

pub struct Fetcher {
    pub profiles: FetchProfileStore,
    pub secrets: SecretStore,
    pub objects: Objects,
    pub audit: AuditStore,
    pub bucket: String,
    pub limits: Limits,
    /// A run takes no new profile once this much of it has passed.
    pub budget: std::time::Duration,
}

/// What one run did, by outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub due: usize,
    pub fetched: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub failed: usize,
    /// Claimed by another run, or changed since read.
    pub skipped: usize,
}

impl Fetcher {
    /// Fetches what is due at `now`, one profile after another.
    pub async fn run(
        &self,
        now: impl Fn() -> DateTime<Utc>,
        run_id: &str,
    ) -> Result<Summary, StoreError> {
        let due = self.profiles.due(now(), BATCH).await?;
        let mut summary = Summary {
            due: due.len(),
            ..Summary::default()
        };
        let started = std::time::Instant::now();
        for profile in due {
            if started.elapsed() >= self.budget {
                // the rest stay due: the next run takes them
                summary.skipped += 1;
                continue;
            }
            let lease = now()
                + chrono::Duration::from_std(self.limits.timeout).unwrap_or_default()
                + chrono::Duration::minutes(1);
            let Some(claimed) = self.profiles.claim(&profile, run_id, lease).await? else {
                summary.skipped += 1;
                continue;
            };
            let outcome = self
                .fetch_one(&claimed, profile.next_fetch_at, run_id, &now)
                .await?;
            match outcome {
                "fetched" => summary.fetched += 1,
                "unchanged" => summary.unchanged += 1,
                "refused" => summary.refused += 1,
                _ => summary.failed += 1,
            }
        }
        Ok(summary)
    }

    async fn fetch_one(
        &self,
        claimed: &FetchProfile,
        due: DateTime<Utc>,
        run_id: &str,
        now: &impl Fn() -> DateTime<Utc>,
    ) -> Result<&'static str, StoreError> {
        let started = now();
        let fetch_id = format!(
            "fx-{}-{}",
            started.format("%Y%m%dT%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let key = format!(
            "{}{}/{fetch_id}.{}",
            crate::feeds::scan::INCOMING,
            claimed.partner_id,
            claimed.format
        );
        let result = self.attempt(claimed, &fetch_id, &key).await;
        let ended_at = now();
        let host = reqwest::Url::parse(&claimed.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let schedule = schedule_of(claimed);
        let (status, http_status, bytes, feed_id, reason, ended) = match &result {
            Ok(Fetched::Stored {
                bytes,
                etag,
                last_modified,
            }) => (
                "fetched",
                Some(200),
                *bytes,
                Some(fetch_id.clone()),
                None,
                Ended::Succeeded {
                    next_fetch_at: schedule.after_success(due, ended_at),
                    etag: etag.clone(),
                    last_modified: last_modified.clone(),
                },
            ),
            Ok(Fetched::Unchanged) => (
                "unchanged",
                Some(304),
                0,
                None,
                None,
                Ended::Succeeded {
                    next_fetch_at: schedule.after_success(due, ended_at),
                    etag: None,
                    last_modified: None,
                },
            ),
            Err(e) => {
                let reason = format!("{}: {e}", e.code());
                let retry_at = match after_failure(&schedule, claimed.failures + 1, ended_at) {
                    AfterFailure::RetryAt(t) => Some(t),
                    AfterFailure::Pause => None,
                };
                let status = if matches!(e, FetchError::Refused(_)) && !e.is_transient() {
                    "refused"
                } else {
                    "failed"
                };
                let http = match e {
                    FetchError::Status(s) => Some(*s),
                    _ => None,
                };
                (
                    status,
                    http,
                    0,
                    None,
                    Some(reason.clone()),
                    Ended::Failed { retry_at, reason },
                )
            }
        };
        let duration_ms = (ended_at - started).num_milliseconds().max(0) as u64;
        let record = FetchRecord {
            fetch_id: fetch_id.clone(),
            partner_id: claimed.partner_id.clone(),
            started_at: started,
            status: status.to_owned(),
            http_status,
            bytes,
            feed_id,
            reason: reason.clone(),
            host: host.clone(),
            duration_ms,
        };
        tracing::info!(
            partner_id = %claimed.partner_id,
            fetch_id = %fetch_id,
            host = %host,
            status,
            bytes,
            duration_ms,
            reason = reason.as_deref().unwrap_or(""),
            "fetch ended"
        );
        self.profiles.record(&record).await?;
        if !self.profiles.end(claimed, run_id, &ended, ended_at).await? {
            tracing::info!(partner_id = %claimed.partner_id, "the profile changed during its fetch; its new state stands");
        }
        let event = AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            at: ended_at,
            actor: "feed-fetcher".into(),
            action: "feed fetch".into(),
            target: format!("{}/{fetch_id}", claimed.partner_id),
            source_ip: host,
            // the partner is the target, the host the source; the rest here
            outcome: match &reason {
                Some(r) => crate::domain::text::printable(
                    &format!("{status} in {duration_ms} ms: {r}"),
                    160,
                ),
                None => format!("{status} ({bytes} bytes in {duration_ms} ms)"),
            },
            request_id: fetch_id,
        };
        if let Err(e) = self.audit.record(&event).await {
            tracing::error!(error = %e, audit = ?event, "audit record not written");
        }
        Ok(status)
    }

    async fn attempt(
        &self,
        profile: &FetchProfile,
        fetch_id: &str,
        key: &str,
    ) -> Result<Fetched, FetchError> {
        let url = reqwest::Url::parse(&profile.url)
            .map_err(|_| FetchError::Transport("the profile's URL does not parse".into()))?;
        let auth = match profile.auth_type.as_str() {
            "none" => None,
            kind => {
                let secret = self
                    .secrets
                    .get(&profile.partner_id)
                    .await
                    .map_err(|e| FetchError::Transport(e.to_string()))?
                    .ok_or_else(|| {
                        FetchError::Transport("the profile's secret is not set".into())
                    })?;
                Some(match kind {
                    "basic" => Auth::Basic {
                        username: profile.username.clone().unwrap_or_default(),
                        password: secret,
                    },
                    "bearer" => Auth::Bearer(secret),
                    _ => Auth::Header {
                        name: profile.header_name.clone().unwrap_or_default(),
                        value: secret,
                    },
                })
            }
        };
        let validation = match profile.validation {
            crate::feeds::import::Validation::Strict => "strict",
            crate::feeds::import::Validation::Lenient => "lenient",
        };
        let content_type = match profile.format.as_str() {
            "json" => "application/json",
            "xml" => "application/xml",
            _ => "text/csv",
        };
        let writer = self.objects.writer(
            &self.bucket,
            key,
            content_type,
            &[
                ("feed-version", profile.feed_version.to_string()),
                ("validation", validation.to_owned()),
                ("fetch-id", fetch_id.to_owned()),
            ],
        );
        let request = Request {
            url,
            auth,
            etag: profile.etag.clone(),
            last_modified: profile.last_modified.clone(),
        };
        client::fetch(&request, &self.limits, writer).await
    }
}

/// The profile's schedule; a stored profile always has one, a damaged one
/// is fetched daily rather than never.
fn schedule_of(p: &FetchProfile) -> Schedule {
    Schedule::new(p.every_hours, p.daily_at.as_deref()).unwrap_or(Schedule::EveryHours(24))
}
