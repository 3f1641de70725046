//! The per-user+SKU throttle: at most `burst` checkout attempts in each fixed
//! window of `window_secs`. Fixed windows need one counter per window and no
//! clock agreement between containers beyond the epoch second.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Attempts one user may make on one SKU per window before 429.
    pub burst: u32,
    pub window_secs: i64,
}

impl Throttle {
    /// The epoch second the window holding `now` started.
    pub fn window_start(&self, now: DateTime<Utc>) -> i64 {
        let epoch = now.timestamp();
        epoch - epoch.rem_euclid(self.window_secs)
    }

    /// The instant the window holding `now` ends.
    pub fn window_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::from_timestamp(self.window_start(now) + self.window_secs, 0).unwrap_or(now)
    }

    /// Whole seconds until the window holding `now` ends (at least 1), for
    /// `Retry-After`.
    pub fn retry_after(&self, now: DateTime<Utc>) -> u64 {
        let epoch = now.timestamp();
        (self.window_secs - epoch.rem_euclid(self.window_secs)).max(1) as u64
    }
}

/// A partner request refused by a limit (429 `rate_limited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: u64,
    pub scope: LimitScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The key's requests per minute.
    Key { per_minute: u32 },
    /// Failed key attempts from one source address: it is blocked.
    Address,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key { .. } => "key",
            Self::Address => "address",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_are_fixed_and_retry_after_counts_down_to_one() {
        let t = Throttle {
            burst: 5,
            window_secs: 10,
        };
        let at = |s| Utc.timestamp_opt(s, 0).unwrap();
        assert_eq!(t.window_start(at(1_000_000_003)), 1_000_000_000);
        assert_eq!(t.retry_after(at(1_000_000_000)), 10);
        assert_eq!(t.retry_after(at(1_000_000_003)), 7);
        assert_eq!(t.retry_after(at(1_000_000_009)), 1);
        assert_eq!(t.window_start(at(1_000_000_010)), 1_000_000_010);
        let later = Utc.timestamp_opt(1_000_000_003, 700_000_000).unwrap();
        assert_eq!(t.window_end(later), at(1_000_000_010));
        assert_eq!(t.retry_after(later), 7, "rounded up from 6.3 s");
    }
}
