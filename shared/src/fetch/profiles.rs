//! Saving, showing and deleting a partner's fetch profile (issue 12, ADR
//! 0025): one path for the partner's own key (`/partner/fetch-profile`) and
//! for an admin (`/admin/partners/{partner_id}/fetch-profile`).
//!
//! A save checks everything before it writes anything: the schedule, the
//! format, the authentication, and the URL as the fetcher will judge it (a
//! scheme, a port or a literal address it would refuse is `url_not_allowed`
//! now, not a failed fetch later; a name is checked on every fetch, when it
//! is resolved). The secret goes to Secrets Manager and nowhere else; the
//! profile keeps only when it changed. A save starts the profile afresh:
//! due at once (or at its next time of day), its failures and any pause
//! cleared.

use super::secrets::{SecretError, SecretStore};
use super::ssrf::{self, Allowance, Refused};
use crate::config::Secret;
use crate::domain::Invalid;
use crate::domain::fetch_profile::{Schedule, check_header_name, check_secret};
use crate::domain::ts;
use crate::feeds::contract::{FORMATS, VERSIONS};
use crate::feeds::import::Validation;
use crate::store::StoreError;
use crate::store::fetch_profiles::{FetchProfile, FetchProfileStore, FetchRecord};
use crate::store::partners::Partner;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The longest URL a profile may hold.
pub const MAX_URL: usize = 2048;
/// The longest user name of a basic authentication.
pub const MAX_USERNAME: usize = 256;

/// What a partner or an admin sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    pub url: String,
    pub schedule: ScheduleInput,
    pub format: String,
    /// The partner's own default when absent.
    #[serde(default)]
    pub feed_version: Option<u8>,
    #[serde(default)]
    pub validation: Option<Validation>,
    /// No authentication when absent.
    #[serde(default)]
    pub auth: Option<AuthInput>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    /// `none`, `basic`, `bearer` or `header`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub header_name: Option<String>,
    /// Write-only. Absent: the secret already set is kept.
    #[serde(default, deserialize_with = "secret")]
    pub secret: Option<Secret>,
}

/// Straight into a [`Secret`]: the text never sits in a plain `String`
/// that a `Debug` could print.
fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::from))
}

/// A profile as its owner and the admin see it: never the secret.
#[derive(Debug, Serialize)]
pub struct ProfileView {
    pub partner_id: String,
    pub url: String,
    pub schedule: ScheduleInput,
    pub format: String,
    pub feed_version: u8,
    pub validation: Validation,
    pub auth: AuthView,
    pub secret_set: bool,
    #[serde(with = "ts::option")]
    pub secret_changed_at: Option<DateTime<Utc>>,
    /// `active`, or `paused` (too many failures in a row; saving the
    /// profile again resumes it).
    pub status: &'static str,
    pub paused_reason: Option<String>,
    /// Failed fetches in a row.
    pub failures: u32,
    /// When the next fetch is due; none while paused.
    #[serde(with = "ts::option")]
    pub next_fetch_at: Option<DateTime<Utc>>,
    #[serde(with = "ts")]
    pub updated_at: DateTime<Utc>,
    /// The newest fetch, if there was one.
    pub last_fetch: Option<FetchRecord>,
}

#[derive(Debug, Serialize)]
pub struct AuthView {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
}

impl ProfileView {
    pub fn of(p: FetchProfile, last_fetch: Option<FetchRecord>) -> Self {
        let paused = p.paused_reason.is_some();
        Self {
            secret_set: p.secret_changed_at.is_some(),
            status: if paused { "paused" } else { "active" },
            next_fetch_at: (!paused).then_some(p.next_fetch_at),
            partner_id: p.partner_id,
            url: p.url,
            schedule: ScheduleInput {
                every_hours: p.every_hours,
                daily_at: p.daily_at,
            },
            format: p.format,
            feed_version: p.feed_version,
            validation: p.validation,
            auth: AuthView {
                kind: p.auth_type,
                username: p.username,
                header_name: p.header_name,
            },
            secret_changed_at: p.secret_changed_at,
            paused_reason: p.paused_reason,
            failures: p.failures,
            updated_at: p.updated_at,
            last_fetch,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: {}", .0.field, .0.reason)]
    Invalid(Invalid),
    /// The URL can never be fetched.
    #[error("the URL is not allowed: {0}")]
    UrlNotAllowed(Refused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl From<Invalid> for ProfileError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e)
    }
}

/// The checked input: what is stored, and the secret to store apart.
struct Checked {
    url: String,
    schedule: Schedule,
    input_schedule: ScheduleInput,
    format: String,
    feed_version: u8,
    validation: Validation,
    kind: String,
    username: Option<String>,
    header_name: Option<String>,
    secret: Option<Secret>,
}

/// The URL as the fetcher will judge it, before any name is resolved.
pub fn check_url(raw: &str, allow: &Allowance) -> Result<reqwest::Url, ProfileError> {
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(Invalid::new("url", format!("must be 1 to {MAX_URL} characters")).into());
    }
    let url = reqwest::Url::parse(raw).map_err(|_| {
        Invalid::new(
            "url",
            "must be an absolute URL, such as https://example.com/feed.csv",
        )
    })?;
    ssrf::check_url(&url, allow).map_err(ProfileError::UrlNotAllowed)?;
    Ok(url)
}

fn check(
    input: ProfileInput,
    partner: &Partner,
    allow: &Allowance,
) -> Result<Checked, ProfileError> {
    let url = check_url(input.url.trim(), allow)?;
    let schedule = Schedule::new(
        input.schedule.every_hours,
        input.schedule.daily_at.as_deref(),
    )?;
    let format = FORMATS
        .into_iter()
        .find(|f| *f == input.format)
        .ok_or_else(|| Invalid::new("format", "must be csv, json or xml"))?;
    let feed_version = input.feed_version.unwrap_or(partner.feed_version);
    if !VERSIONS.contains(&feed_version) {
        return Err(Invalid::new("feed_version", "must be 1 or 2").into());
    }
    let auth = input.auth.unwrap_or(AuthInput {
        kind: "none".into(),
        username: None,
        header_name: None,
        secret: None,
    });
    let unexpected = |field: &str, what: &str| {
        Invalid::new(
            format!("auth.{field}"),
            format!("is not used by auth type {what}"),
        )
    };
    match auth.kind.as_str() {
        "none" => {
            for (field, given) in [
                ("username", auth.username.is_some()),
                ("header_name", auth.header_name.is_some()),
                ("secret", auth.secret.is_some()),
            ] {
                if given {
                    return Err(unexpected(field, "none").into());
                }
            }
        }
        "basic" => {
            let ok = auth.username.as_deref().is_some_and(|u| {
                !u.is_empty()
                    && u.len() <= MAX_USERNAME
                    && !u.contains(':')
                    && u.bytes().all(|b| (0x20..0x7f).contains(&b))
            });
            if !ok {
                return Err(Invalid::new(
                    "auth.username",
                    format!("basic needs a user name: 1 to {MAX_USERNAME} printable ASCII characters, no ':'"),
                )
                .into());
            }
            if auth.header_name.is_some() {
                return Err(unexpected("header_name", "basic").into());
            }
        }
        "bearer" => {
            if auth.username.is_some() {
                return Err(unexpected("username", "bearer").into());
            }
            if auth.header_name.is_some() {
                return Err(unexpected("header_name", "bearer").into());
            }
        }
        "header" => {
            let name = auth.header_name.as_deref().ok_or_else(|| {
                Invalid::new("auth.header_name", "header needs the header's name")
            })?;
            check_header_name(name)?;
            if auth.username.is_some() {
                return Err(unexpected("username", "header").into());
            }
        }
        _ => {
            return Err(Invalid::new("auth.type", "must be none, basic, bearer or header").into());
        }
    }
    if let Some(s) = &auth.secret {
        use crate::config::ExposeSecret;
        check_secret(s.expose_secret())?;
    }
    Ok(Checked {
        url: url.to_string(),
        schedule,
        input_schedule: input.schedule,
        format: format.to_owned(),
        feed_version,
        validation: input.validation.unwrap_or(partner.validation),
        kind: auth.kind,
        username: auth.username,
        header_name: auth.header_name,
        secret: auth.secret,
    })
}

/// Profiles saved, shown and deleted, with their secrets.
#[derive(Clone, Debug)]
pub struct ProfileService {
    pub profiles: FetchProfileStore,
    pub secrets: SecretStore,
    pub allow: Allowance,
}

impl ProfileService {
    /// Saves `partner`'s profile from `input`; `true` if it is new.
    pub async fn save(
        &self,
        partner: &Partner,
        input: ProfileInput,
        now: DateTime<Utc>,
    ) -> Result<(ProfileView, bool), ProfileError> {
        let c = check(input, partner, &self.allow)?;
        let id = &partner.partner_id;
        let previous = self.profiles.get(id).await?;
        let secret_changed_at = match (&c.secret, c.kind.as_str()) {
            (_, "none") => None,
            (Some(secret), _) => {
                // first the secret, then the profile that uses it: a save
                // that fails between the two leaves no profile without one
                self.secrets.put(id, secret).await?;
                Some(now)
            }
            (None, _) => match previous.as_ref().and_then(|p| p.secret_changed_at) {
                Some(at) => Some(at),
                None => {
                    return Err(Invalid::new(
                        "auth.secret",
                        format!(
                            "is required: auth type {} needs one and none is set yet",
                            c.kind
                        ),
                    )
                    .into());
                }
            },
        };
        // the last file's validators hold for the same file only
        let same_file = previous
            .as_ref()
            .filter(|p| p.url == c.url && p.format == c.format);
        let profile = FetchProfile {
            partner_id: id.clone(),
            url: c.url,
            every_hours: c.input_schedule.every_hours,
            daily_at: c.input_schedule.daily_at,
            format: c.format,
            feed_version: c.feed_version,
            validation: c.validation,
            auth_type: c.kind,
            username: c.username,
            header_name: c.header_name,
            secret_changed_at,
            next_fetch_at: c.schedule.first(now),
            failures: 0,
            paused_reason: None,
            etag: same_file.and_then(|p| p.etag.clone()),
            last_modified: same_file.and_then(|p| p.last_modified.clone()),
            claimed_by: None,
            claimed_due: None,
            updated_at: now,
        };
        self.profiles.put(&profile).await?;
        if profile.secret_changed_at.is_none() {
            // no authentication: no credential kept (also one a failed
            // earlier save left behind)
            self.secrets.delete(id).await?;
        }
        let last = self.last_fetch(id).await?;
        Ok((ProfileView::of(profile, last), previous.is_none()))
    }

    pub async fn view(&self, partner_id: &str) -> Result<Option<ProfileView>, ProfileError> {
        let Some(profile) = self.profiles.get(partner_id).await? else {
            return Ok(None);
        };
        let last = self.last_fetch(partner_id).await?;
        Ok(Some(ProfileView::of(profile, last)))
    }

    /// Deletes the profile, then its secret: no fetch starts after this
    /// (the next claim finds no profile), and the credential is gone at
    /// once. Deleting what is not there is not an error.
    pub async fn delete(&self, partner_id: &str) -> Result<(), ProfileError> {
        self.profiles.delete(partner_id).await?;
        self.secrets.delete(partner_id).await?;
        Ok(())
    }

    async fn last_fetch(&self, partner_id: &str) -> Result<Option<FetchRecord>, ProfileError> {
        Ok(self
            .profiles
            .fetches(partner_id, 1)
            .await?
            .into_iter()
            .next())
    }
}
