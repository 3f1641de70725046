//! Time as a port: handlers ask their clock, so tests move time instead of
//! sleeping through it (a sale window, a throttle window, a reservation).

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// What every function uses outside tests.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock the caller moves (tests, benchmarks): it stands still, or ticks a
/// fixed step per reading so that events still happen in order (the audit
/// trail sorts by time), and jumps when told.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    step: chrono::Duration,
}

impl ManualClock {
    /// Stands still at `at` until moved.
    pub fn new(at: DateTime<Utc>) -> Arc<Self> {
        Self::ticking(at, chrono::Duration::zero())
    }

    /// Starts at `at` and moves `step` forward after every reading.
    pub fn ticking(at: DateTime<Utc>, step: chrono::Duration) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(at),
            step,
        })
    }

    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.now.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let mut t = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let now = *t;
        *t += self.step;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Utc::now();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(chrono::Duration::seconds(90));
        assert_eq!(c.now(), start + chrono::Duration::seconds(90));
        let t = ManualClock::ticking(start, chrono::Duration::milliseconds(1));
        assert!(t.now() < t.now());
    }
}
