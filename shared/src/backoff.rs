//! Retry waits: one policy shape for every retry loop (transaction
//! conflicts, the payment provider).

use std::time::Duration;

/// Exponential backoff with full jitter: attempt `n` waits a uniformly random
/// time in `[0, min(cap, base * 2^n)]`, which spreads retrying writers apart
/// instead of letting them collide again in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest wait after attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap)
    }

    /// A wait drawn uniformly from `[0, ceiling(attempt)]`: full jitter,
    /// not the "equal" jitter of `ceiling/2 + random(ceiling/2)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(fastrand::u64(0..=ceiling))
    }

    pub async fn wait(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        attempts: 6,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let ms = |n| B.ceiling(n).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(4), ms(5), ms(40)],
            [100, 200, 400, 1600, 2000, 2000]
        );
    }

    #[test]
    fn delays_cover_the_whole_range_from_zero() {
        let draws: Vec<Duration> = (0..2000).map(|_| B.delay(3)).collect();
        let ceiling = B.ceiling(3);
        assert!(draws.iter().all(|d| *d <= ceiling));
        // full jitter: a fair share in the lower half, some near zero
        let low = draws.iter().filter(|d| **d < ceiling / 2).count();
        assert!((800..1200).contains(&low), "{low} of 2000 below half");
        assert!(draws.iter().any(|d| *d < ceiling / 20));
    }
}
