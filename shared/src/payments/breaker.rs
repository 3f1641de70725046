//! The circuit breaker in front of the payment provider, its state shared by
//! every container through one DynamoDB item (ADR 0020), after Powertools'
//! DynamoDB breaker:
//!
//! - Failures are counted in memory, per container: a charge that failed
//!   after all its retries (`ProviderError::Unavailable`) is one failure; a
//!   decided charge resets the count. No DynamoDB write while healthy.
//! - Only state changes are written, each with a condition on the version it
//!   read: closed -> open (after [`Settings::failures_to_open`] failures in a
//!   row), open -> half-open (exactly one caller, elected by that write, sends
//!   the probe), half-open -> closed (the probe was decided) or -> open again.
//! - The state is read at most once per [`Settings::cache_for`] per container
//!   and answered from memory in between, so a checkout learns "open" without
//!   a call, in microseconds.
//! - If the state cannot be read, calls go through: an unreadable breaker must
//!   not stop payments the provider would take; the provider's own errors
//!   still count, in memory.

use crate::clock::SharedClock;
use crate::store::StoreError;
use crate::store::breaker::{BreakerStore, Stored};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

/// The breaker in front of the payment provider.
pub const PAYMENTS: &str = "payments";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Charges failed after their retries, in a row, that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open before one probe is let through.
    pub open_for: Duration,
    /// How long an elected probe may take before another caller may probe.
    pub probe_timeout: Duration,
    /// How long a container trusts the state it read.
    pub cache_for: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::seconds(5),
            probe_timeout: Duration::seconds(30),
            cache_for: Duration::milliseconds(1500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// The shared state as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shared {
    state: State,
    /// Bumped by every write; each write is conditional on the one it read.
    version: u64,
    /// When it opened (Open), or when the probe was elected (HalfOpen).
    since: DateTime<Utc>,
}

const CLOSED: Shared = Shared {
    state: State::Closed,
    version: 0,
    since: DateTime::<Utc>::MIN_UTC,
};

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: call.
    Call,
    /// Elected to send the one half-open probe: call, then report.
    Probe { version: u64 },
    /// Open (or another caller is probing): do not call; try again after
    /// this many whole seconds (1 to 5).
    Refuse { retry_after: u64 },
}

struct Local {
    cached: Option<(Shared, DateTime<Utc>)>,
    failures: u32,
}

pub struct Breaker {
    store: BreakerStore,
    name: String,
    settings: Settings,
    clock: SharedClock,
    local: Mutex<Local>,
}

impl Breaker {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        name: &str,
        settings: Settings,
        clock: SharedClock,
    ) -> Self {
        Self {
            store: BreakerStore::new(client, table),
            name: name.to_owned(),
            settings,
            clock,
            local: Mutex::new(Local {
                cached: None,
                failures: 0,
            }),
        }
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The state, from memory when read less than `cache_for` ago.
    async fn shared(&self, now: DateTime<Utc>) -> Shared {
        let cached = self.lock().cached;
        if let Some((s, at)) = cached
            && now - at < self.settings.cache_for
        {
            return s;
        }
        let read = match self.read().await {
            Ok(s) => s,
            Err(e) => {
                // unreadable: let calls through (ADR 0020), and ask again next time
                tracing::warn!(error = %e, "circuit breaker state unreadable; calls go through");
                return CLOSED;
            }
        };
        self.remember(read, now);
        read
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, s: Shared, now: DateTime<Utc>) {
        self.lock().cached = Some((s, now));
    }

    /// Whether a checkout may reserve stock for a payment now: refused while
    /// open or probing (a read-only question, never an election).
    pub async fn accepting(&self) -> Result<(), u64> {
        let now = self.clock.now();
        let s = self.shared(now).await;
        match s.state {
            State::Closed => Ok(()),
            _ => Err(self.retry_after(s, now)),
        }
    }

    /// Whether the finalizer may call the provider now.
    pub async fn permit(&self) -> Permit {
        let now = self.clock.now();
        let s = self.shared(now).await;
        let retry_after = self.retry_after(s, now);
        let electable = match s.state {
            State::Closed => return Permit::Call,
            State::Open => now - s.since >= self.settings.open_for,
            // the elected prober died or hangs: another may probe
            State::HalfOpen => now - s.since >= self.settings.probe_timeout,
        };
        if !electable {
            return Permit::Refuse { retry_after };
        }
        let elected = Shared {
            state: State::HalfOpen,
            version: s.version + 1,
            since: now,
        };
        match self.write(s.version, elected).await {
            Ok(true) => {
                tracing::info!(breaker = %self.name, "circuit half-open: this call is the probe");
                Permit::Probe {
                    version: elected.version,
                }
            }
            Ok(false) | Err(_) => {
                // another container won the election (or the store is down)
                self.lock().cached = None;
                Permit::Refuse { retry_after }
            }
        }
    }

    /// Reports how a permitted call ended: `true` if the provider decided
    /// (succeeded or declined), `false` if it did not after every retry.
    pub async fn record(&self, permit: Permit, decided: bool) {
        let now = self.clock.now();
        match permit {
            Permit::Refuse { .. } => {}
            Permit::Probe { version } => {
                let next = if decided { State::Closed } else { State::Open };
                let s = Shared {
                    state: next,
                    version: version + 1,
                    since: now,
                };
                match self.write(version, s).await {
                    Ok(true) => {
                        tracing::warn!(breaker = %self.name, state = next.as_str(), "circuit breaker after the probe");
                        self.remember(s, now);
                        self.lock().failures = 0;
                    }
                    Ok(false) => self.lock().cached = None,
                    Err(e) => tracing::warn!(error = %e, "circuit breaker state not written"),
                }
            }
            Permit::Call if decided => self.lock().failures = 0,
            Permit::Call => {
                let open = {
                    let mut local = self.lock();
                    local.failures += 1;
                    local.failures >= self.settings.failures_to_open
                };
                if open {
                    self.open(now).await;
                }
            }
        }
    }

    /// Gives back a probe that was not sent (the caller found nothing to
    /// charge): open again with its period already over, so the next caller
    /// is elected at once instead of everyone waiting out `probe_timeout`.
    pub async fn release(&self, permit: Permit) {
        let Permit::Probe { version } = permit else {
            return;
        };
        let now = self.clock.now();
        let s = Shared {
            state: State::Open,
            version: version + 1,
            since: now - self.settings.open_for,
        };
        match self.write(version, s).await {
            Ok(true) => self.remember(s, now),
            Ok(false) => self.lock().cached = None,
            Err(e) => tracing::warn!(error = %e, "circuit breaker probe not given back"),
        }
    }

    /// closed -> open, unless another container changed it first.
    async fn open(&self, now: DateTime<Utc>) {
        let read = self.shared(now).await;
        if read.state != State::Closed {
            return;
        }
        let s = Shared {
            state: State::Open,
            version: read.version + 1,
            since: now,
        };
        match self.write(read.version, s).await {
            Ok(true) => {
                tracing::warn!(breaker = %self.name, failures = self.settings.failures_to_open, "circuit breaker opened");
                self.remember(s, now);
                self.lock().failures = 0;
            }
            Ok(false) => self.lock().cached = None,
            Err(e) => tracing::warn!(error = %e, "circuit breaker state not written"),
        }
    }

    /// Whole seconds until the breaker may let a probe through, 1 to 5.
    fn retry_after(&self, s: Shared, now: DateTime<Utc>) -> u64 {
        let left = (s.since + self.settings.open_for - now).num_seconds();
        left.clamp(1, 5) as u64
    }

    async fn read(&self) -> Result<Shared, StoreError> {
        Ok(match self.store.read(&self.name).await? {
            None => CLOSED,
            Some(stored) => Shared {
                state: State::parse(&stored.state),
                version: stored.version,
                since: DateTime::<Utc>::from_timestamp_millis(stored.since_ms)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            },
        })
    }

    /// Writes `next` if the stored version is still `expected` (or, for 0,
    /// if there is no item yet). `Ok(false)` when another writer was first.
    async fn write(&self, expected: u64, next: Shared) -> Result<bool, StoreError> {
        let stored = Stored {
            state: next.state.as_str().to_owned(),
            version: next.version,
            since_ms: next.since.timestamp_millis(),
        };
        self.store.write(&self.name, expected, &stored).await
    }
}
