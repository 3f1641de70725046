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

/// `{"every_hours": n}` or `{"daily_at": "HH:MM"}`: exactly one key, as
/// the wire says it (the enum's own shape, so two keys or none do not parse).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleInput {
    EveryHours(u32),
    DailyAt(String),
}

/// The authentication, by its `type`; each type takes its own fields and
/// no other.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthInput {
    /// A struct variant, so that `deny_unknown_fields` holds for it too (a
    /// unit variant would take `{"type": "none", "secret": ...}` silently).
    None {},
    Basic {
        username: String,
        /// Write-only. Absent or null: the secret already set is kept.
        #[serde(default, deserialize_with = "secret")]
        secret: Option<Secret>,
    },
    Bearer {
        #[serde(default, deserialize_with = "secret")]
        secret: Option<Secret>,
    },
    Header {
        header_name: String,
        #[serde(default, deserialize_with = "secret")]
        secret: Option<Secret>,
    },
}

/// Straight into a [`Secret`]: the text never sits in a plain `String`
/// that a `Debug` could print.
/// A value that is not a string is refused with a fixed message: serde's
/// own ("invalid type: integer `12345678`") would echo it into the answer.
fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    use serde::de::Error;
    Option::<String>::deserialize(d)
        .map(|s| s.map(Secret::from))
        .map_err(|_| D::Error::custom("must be a string or null"))
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
            schedule: match (p.every_hours, p.daily_at) {
                (Some(n), _) => ScheduleInput::EveryHours(n),
                (None, at) => ScheduleInput::DailyAt(at.unwrap_or_default()),
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
    every_hours: Option<u32>,
    daily_at: Option<String>,
    format: String,
    feed_version: u8,
    validation: Validation,
    kind: String,
    username: Option<String>,
    header_name: Option<String>,
    secret: Option<Secret>,
}

/// The URL as the fetcher will judge it, before any name is resolved:
/// printable ASCII (a name in punycode, the rest percent-encoded), a URL
/// that parses, and nothing [`ssrf::check_url`] refuses.
pub fn check_url(raw: &str, allow: &Allowance) -> Result<reqwest::Url, ProfileError> {
    let ascii = raw.bytes().all(|b| (0x21..0x7f).contains(&b));
    if raw.is_empty() || raw.len() > MAX_URL || !ascii {
        return Err(Invalid::new(
            "url",
            format!("must be 1 to {MAX_URL} printable ASCII characters without spaces (punycode and percent-encoding for the rest)"),
        )
        .into());
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

/// A basic authentication's user name: printable ASCII without ':' (which
/// would end it).
fn check_username(u: &str) -> Result<(), Invalid> {
    let ok = !u.is_empty()
        && u.len() <= MAX_USERNAME
        && u.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b':');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "auth.username",
            format!("must be 1 to {MAX_USERNAME} printable ASCII characters, no ':'"),
        ))
    }
}

fn check(
    input: ProfileInput,
    partner: &Partner,
    allow: &Allowance,
) -> Result<Checked, ProfileError> {
    let url = check_url(&input.url, allow)?;
    let schedule = match &input.schedule {
        ScheduleInput::EveryHours(n) => Schedule::new(Some(*n), None),
        ScheduleInput::DailyAt(at) => Schedule::new(None, Some(at)),
    }?;
    let format = FORMATS
        .into_iter()
        .find(|f| *f == input.format)
        .ok_or_else(|| Invalid::new("format", "must be csv, json or xml"))?;
    let feed_version = input.feed_version.unwrap_or(partner.feed_version);
    if !VERSIONS.contains(&feed_version) {
        return Err(Invalid::new("feed_version", "must be 1 or 2").into());
    }
    let (kind, username, header_name, secret) = match input.auth.unwrap_or(AuthInput::None {}) {
        AuthInput::None {} => ("none", None, None, None),
        AuthInput::Basic { username, secret } => {
            check_username(&username)?;
            ("basic", Some(username), None, secret)
        }
        AuthInput::Bearer { secret } => ("bearer", None, None, secret),
        AuthInput::Header {
            header_name,
            secret,
        } => {
            check_header_name(&header_name)?;
            ("header", None, Some(header_name), secret)
        }
    };
    if let Some(s) = &secret {
        use crate::config::ExposeSecret;
        check_secret(s.expose_secret())?;
    }
    let (every_hours, daily_at) = match input.schedule {
        ScheduleInput::EveryHours(n) => (Some(n), None),
        ScheduleInput::DailyAt(at) => (None, Some(at)),
    };
    Ok(Checked {
        url: url.to_string(),
        schedule,
        every_hours,
        daily_at,
        format: format.to_owned(),
        feed_version,
        validation: input.validation.unwrap_or(partner.validation),
        kind: kind.to_owned(),
        username,
        header_name,
        secret,
    })
}

/// Whether a stored secret may serve the profile as now saved: the same
/// origin (scheme, host, port), the same type of authentication, the same
/// user name and header.
fn same_credential(previous: &FetchProfile, c: &Checked) -> bool {
    let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
    origin(&previous.url).is_some()
        && origin(&previous.url) == origin(&c.url)
        && previous.auth_type == c.kind
        && previous.username == c.username
        && previous.header_name == c.header_name
}

/// Profiles saved, shown and deleted, with their secrets.
#[derive(Clone, Debug)]
pub struct ProfileService {
    pub profiles: FetchProfileStore,
    pub secrets: SecretStore,
    pub allow: Allowance,
}

impl ProfileService {
    /// The service on the Partners table `table` and the secrets under the
    /// settings' prefix, judging URLs by the settings' allowance.
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        table: &str,
        secrets: aws_sdk_secretsmanager::Client,
        settings: &crate::config::FetchSettings,
    ) -> Self {
        Self {
            profiles: FetchProfileStore::new(dynamo, table),
            secrets: SecretStore::new(secrets, settings.secrets_prefix.clone()),
            allow: settings.allow.clone(),
        }
    }

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
            (None, _) => match previous.as_ref() {
                Some(p) if p.secret_changed_at.is_some() && same_credential(p, &c) => {
                    p.secret_changed_at
                }
                Some(p) if p.secret_changed_at.is_some() => {
                    // whoever holds the key could otherwise point the profile
                    // at a server of theirs and have the stored secret sent
                    // there: a secret set for one origin and one use goes to
                    // no other
                    return Err(Invalid::new(
                        "auth.secret",
                        "is required: the URL's origin or the authentication changed, and the secret set for the old one is not sent to the new one",
                    )
                    .into());
                }
                _ => {
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
        // a save during a fetch in flight waits for that fetch's lease, so
        // the two never overlap
        let in_flight = previous
            .as_ref()
            .filter(|p| p.claimed_by.is_some())
            .map(|p| p.next_fetch_at);
        let next_fetch_at = c.schedule.first(now).max(in_flight.unwrap_or(now));
        // the last file's validators hold for the same file only
        let same_file = previous
            .as_ref()
            .filter(|p| p.url == c.url && p.format == c.format);
        let profile = FetchProfile {
            partner_id: id.clone(),
            url: c.url,
            every_hours: c.every_hours,
            daily_at: c.daily_at,
            format: c.format,
            feed_version: c.feed_version,
            validation: c.validation,
            auth_type: c.kind,
            username: c.username,
            header_name: c.header_name,
            secret_changed_at,
            next_fetch_at,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(body: serde_json::Value) -> String {
        let e = crate::http::typed::<ProfileInput>(&body).unwrap_err();
        e.body("r")["details"]["field"].as_str().unwrap().to_owned()
    }

    fn base() -> serde_json::Value {
        json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 6}, "format": "csv"})
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut b = base();
        b[key] = value;
        b
    }

    #[test]
    fn the_wire_shape_is_exact_and_errors_name_the_field() {
        assert!(crate::http::typed::<ProfileInput>(&base()).is_ok());
        for (body, expected) in [
            (with("schedule", json!({})), "schedule"),
            (
                with("schedule", json!({"every_hours": 1, "daily_at": "06:00"})),
                "schedule",
            ),
            (
                with("schedule", json!({"every_hours": null})),
                "schedule.every_hours",
            ),
            (with("schedule", json!({"weekly": 1})), "schedule"),
            (
                with("auth", json!({"type": "basic", "secret": "pw"})),
                "auth.username",
            ),
            (
                with("auth", json!({"type": "header", "secret": "pw"})),
                "auth.header_name",
            ),
            (
                with("auth", json!({"type": "none", "secret": "pw"})),
                "auth",
            ),
            (
                with("auth", json!({"type": "bearer", "username": "u"})),
                "auth",
            ),
            (with("auth", json!({"type": "digest"})), "auth.type"),
            (with("surprise", json!(1)), "surprise"),
        ] {
            assert_eq!(field(body.clone()), expected, "{body}");
        }
        // a secret that is not a string is refused without being echoed
        let e = crate::http::typed::<ProfileInput>(&with(
            "auth",
            json!({"type": "bearer", "secret": 12345678}),
        ))
        .unwrap_err();
        assert!(
            !e.body("r").to_string().contains("12345678"),
            "{:?}",
            e.body("r")
        );
        let kept = with("auth", json!({"type": "bearer", "secret": null}));
        let input: ProfileInput = crate::http::typed(&kept).unwrap();
        assert!(matches!(
            input.auth,
            Some(AuthInput::Bearer { secret: None })
        ));
    }

    #[test]
    fn a_secret_never_reaches_debug_output() {
        let body = with(
            "auth",
            json!({"type": "bearer", "secret": "hunter2-secret"}),
        );
        let input: ProfileInput = crate::http::typed(&body).unwrap();
        assert!(!format!("{input:?}").contains("hunter2"));
    }

    #[test]
    fn urls_are_ascii_parse_and_pass_the_ssrf_rules() {
        let allow = Allowance::default();
        let invalid = |u: &str| matches!(check_url(u, &allow), Err(ProfileError::Invalid(_)));
        let refused = |u: &str| match check_url(u, &allow) {
            Err(ProfileError::UrlNotAllowed(r)) => r.code(),
            _ => "",
        };
        assert!(check_url("https://feeds.example.com/a.csv?x=1", &allow).is_ok());
        assert!(invalid(" https://feeds.example.com/"));
        assert!(invalid("https://bücher.example/"));
        assert!(invalid("feeds.example.com/a.csv"));
        assert!(invalid(&format!(
            "https://a.example/{}",
            "a".repeat(MAX_URL)
        )));
        assert_eq!(refused("http://feeds.example.com/"), "scheme_not_allowed");
        assert_eq!(refused("https://169.254.169.254/"), "address_not_allowed");
        assert_eq!(
            refused("https://feeds.example.com:444/"),
            "port_not_allowed"
        );
        let local = Allowance {
            http: true,
            ..Allowance::default()
        };
        assert!(check_url("http://feeds.example.com/", &local).is_ok());
    }
}
