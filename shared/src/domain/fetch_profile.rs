//! A partner's fetch profile, its rules pure (issue 12): when the next fetch
//! is due, how failures back off and when they pause the profile, and what an
//! authentication may name. No I/O, no clock: callers pass `now`.

use super::Invalid;
use chrono::{DateTime, Duration, NaiveTime, Utc};

/// Longest period between two scheduled fetches: a week.
pub const MAX_EVERY_HOURS: u32 = 168;
/// Failures in a row after which the profile pauses until the partner or an
/// admin saves it again.
pub const PAUSE_AFTER_FAILURES: u32 = 6;
/// The first retry after a failure; each next one doubles, up to the
/// schedule's own period.
pub const FIRST_RETRY_MINUTES: i64 = 5;

/// When a profile is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `n` hours (1 to 168) from the last fetch.
    EveryHours(u32),
    /// Once a day at this UTC time.
    DailyAt(NaiveTime),
}

impl Schedule {
    /// `{"every_hours": n}` or `{"daily_at": "HH:MM"}`, one of them.
    pub fn new(every_hours: Option<u32>, daily_at: Option<&str>) -> Result<Self, Invalid> {
        match (every_hours, daily_at) {
            (Some(n), None) if (1..=MAX_EVERY_HOURS).contains(&n) => Ok(Self::EveryHours(n)),
            (Some(_), None) => Err(Invalid::new(
                "schedule.every_hours",
                format!("must be a whole number from 1 to {MAX_EVERY_HOURS}"),
            )),
            (None, Some(t)) => {
                let ok = t.len() == 5 && t.as_bytes()[2] == b':';
                NaiveTime::parse_from_str(t, "%H:%M")
                    .ok()
                    .filter(|_| ok)
                    .map(Self::DailyAt)
                    .ok_or_else(|| {
                        Invalid::new(
                            "schedule.daily_at",
                            "must be a UTC time HH:MM, such as 06:30",
                        )
                    })
            }
            _ => Err(Invalid::new(
                "schedule",
                "must hold either every_hours or daily_at, not both",
            )),
        }
    }

    /// The schedule's period.
    pub fn period(&self) -> Duration {
        match self {
            Self::EveryHours(n) => Duration::hours(i64::from(*n)),
            Self::DailyAt(_) => Duration::days(1),
        }
    }

    /// When the fetch after one at `last` is due (`last` is when that fetch
    /// was due, so a late run does not push every later one back).
    pub fn next_after(&self, last: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::EveryHours(n) => last + Duration::hours(i64::from(*n)),
            Self::DailyAt(at) => {
                let today = last.date_naive().and_time(*at).and_utc();
                if today > last {
                    today
                } else {
                    today + Duration::days(1)
                }
            }
        }
    }

    /// The first fetch of a profile saved at `now`: at once for a period,
    /// the next time of day for a daily one.
    pub fn first(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::EveryHours(_) => now,
            Self::DailyAt(_) => self.next_after(now),
        }
    }

    /// The next due time after a fetch that was due at `due` and ran at
    /// `now`: never in the past (fetches missed while the fetcher was down
    /// are one fetch, not a burst).
    pub fn after_success(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut next = self.next_after(due);
        while next <= now {
            next = self.next_after(next);
        }
        next
    }
}

/// What a failed fetch does to its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    /// Too many in a row: no fetch until the profile is saved again.
    Pause,
}

/// The `failures`-th failure in a row (1 for the first), at `now`: a retry
/// 5, 10, 20, ... minutes later, never later than the schedule's period, or
/// the pause. A failure that waiting cannot fix (a refused address, a file
/// too large) counts the same: the partner is told on its profile.
pub fn after_failure(schedule: &Schedule, failures: u32, now: DateTime<Utc>) -> AfterFailure {
    if failures >= PAUSE_AFTER_FAILURES {
        return AfterFailure::Pause;
    }
    let doubling = 1i64 << failures.saturating_sub(1).min(20);
    let wait =
        Duration::minutes(FIRST_RETRY_MINUTES.saturating_mul(doubling)).min(schedule.period());
    AfterFailure::RetryAt(now + wait)
}

/// Headers a custom authentication may not name: they belong to the request
/// itself, or would let a profile steer the connection.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "keep-alive",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-range",
    "if-unmodified-since",
    "range",
    "expect",
    "accept-encoding",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "cookie",
];

/// A custom authentication header's name: an HTTP token of at most 64
/// characters that is not one of the request's own.
pub fn check_header_name(name: &str) -> Result<(), Invalid> {
    let token = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(Invalid::new(
            "auth.header_name",
            "must be 1 to 64 letters, digits or - (an HTTP header name)",
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(Invalid::new(
            "auth.header_name",
            "names a header the fetch sets itself; use another",
        ));
    }
    Ok(())
}

/// A secret sent in a header: printable, without line breaks (which would
/// start another header), at most 4 KiB.
pub fn check_secret(secret: &str) -> Result<(), Invalid> {
    let ok = !secret.is_empty()
        && secret.len() <= 4096
        && secret.bytes().all(|b| (0x20..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "auth.secret",
            "must be 1 to 4096 printable ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedules_are_one_of_two_shapes() {
        assert_eq!(
            Schedule::new(Some(6), None).unwrap(),
            Schedule::EveryHours(6)
        );
        assert!(Schedule::new(Some(0), None).is_err());
        assert!(Schedule::new(Some(169), None).is_err());
        assert_eq!(
            Schedule::new(None, Some("06:30")).unwrap(),
            Schedule::DailyAt(NaiveTime::from_hms_opt(6, 30, 0).unwrap())
        );
        for bad in ["6:30", "24:00", "06:60", "06:30:00", "0630", "", "ab:cd"] {
            assert!(Schedule::new(None, Some(bad)).is_err(), "{bad}");
        }
        assert!(Schedule::new(Some(1), Some("06:30")).is_err());
        assert!(Schedule::new(None, None).is_err());
    }

    #[test]
    fn the_next_fetch_is_after_the_last_and_within_one_period() {
        let mut rng = fastrand::Rng::with_seed(3);
        let base = at("2026-12-06T00:00:00Z");
        for _ in 0..10_000 {
            let last = base + Duration::seconds(rng.i64(0..400 * 86_400));
            let schedule = if rng.bool() {
                Schedule::EveryHours(rng.u32(1..=MAX_EVERY_HOURS))
            } else {
                Schedule::DailyAt(
                    NaiveTime::from_hms_opt(rng.u32(0..24), rng.u32(0..60), 0).unwrap(),
                )
            };
            let next = schedule.next_after(last);
            assert!(
                next > last && next <= last + schedule.period(),
                "{schedule:?} {last} {next}"
            );
            if let Schedule::DailyAt(t) = schedule {
                assert_eq!(next.time(), t);
            }
            let now = last + Duration::seconds(rng.i64(0..30 * 86_400));
            let after = schedule.after_success(last, now);
            assert!(
                after > now && after <= now + schedule.period(),
                "{schedule:?} {now} {after}"
            );
        }
    }

    #[test]
    fn daily_fetches_fall_on_their_time_today_or_tomorrow() {
        let s = Schedule::new(None, Some("06:30")).unwrap();
        assert_eq!(
            s.first(at("2026-12-06T05:00:00Z")),
            at("2026-12-06T06:30:00Z")
        );
        assert_eq!(
            s.first(at("2026-12-06T06:30:00Z")),
            at("2026-12-07T06:30:00Z")
        );
        assert_eq!(
            s.first(at("2026-12-06T23:59:00Z")),
            at("2026-12-07T06:30:00Z")
        );
        let hourly = Schedule::EveryHours(4);
        let now = at("2026-12-06T05:00:00Z");
        assert_eq!(hourly.first(now), now);
        // missed runs are one fetch, not a burst
        assert_eq!(
            hourly.after_success(at("2026-12-05T00:00:00Z"), now),
            at("2026-12-06T08:00:00Z")
        );
    }

    #[test]
    fn failures_back_off_up_to_the_period_then_pause() {
        let now = at("2026-12-06T05:00:00Z");
        let hourly = Schedule::EveryHours(1);
        let waits: Vec<i64> = (1..PAUSE_AFTER_FAILURES)
            .map(|n| match after_failure(&Schedule::EveryHours(24), n, now) {
                AfterFailure::RetryAt(t) => (t - now).num_minutes(),
                AfterFailure::Pause => -1,
            })
            .collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80]);
        assert_eq!(
            after_failure(&hourly, 5, now),
            AfterFailure::RetryAt(now + Duration::hours(1))
        );
        assert_eq!(
            after_failure(&hourly, PAUSE_AFTER_FAILURES, now),
            AfterFailure::Pause
        );
    }

    #[test]
    fn custom_headers_and_secrets_cannot_steer_the_request() {
        assert!(check_header_name("X-Feed-Token").is_ok());
        for bad in [
            "",
            "Host",
            "content-length",
            "Transfer-Encoding",
            "X Token",
            "X-Token\r\nHost",
            "x:y",
            &"a".repeat(65),
        ] {
            assert!(check_header_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_secret("s3cr3t token/+=").is_ok());
        for bad in ["", "line\r\nX-Evil: 1", "tab\there", "é", &"a".repeat(4097)] {
            assert!(check_secret(bad).is_err(), "{bad:?}");
        }
    }
}
