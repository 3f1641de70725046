//! What a container remembers for a short while so it can answer again without
//! DynamoDB: a sale, "sold out", "this shard is empty", "throttled until",
//! its own recent answers. One bounded cache type for all of them.
//!
//! quick_cache evicts by its S3-FIFO policy once full, so memory stays bounded
//! whatever the traffic; forgetting early only costs a DynamoDB call. Entries
//! expire on the caller's clock (`now` is passed in), so tests that move time
//! move this memory too.

use chrono::{DateTime, Duration, Utc};
use quick_cache::sync::Cache;

pub struct Memory<V: Clone> {
    entries: Cache<String, (V, DateTime<Utc>)>,
}

impl<V: Clone> Memory<V> {
    /// Holds at most about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
        }
    }

    /// Remembers `value` under `key` until `until`.
    pub fn remember(&self, key: String, value: V, until: DateTime<Utc>) {
        self.entries.insert(key, (value, until));
    }

    /// The value under `key`, if it is still remembered at `now`.
    pub fn recall(&self, key: &str, now: DateTime<Utc>) -> Option<V> {
        self.recall_for(key, now).map(|(v, _)| v)
    }

    /// The value under `key` and how long it is still remembered at `now`.
    pub fn recall_for(&self, key: &str, now: DateTime<Utc>) -> Option<(V, Duration)> {
        // An expired entry is left for eviction: removing it here could
        // remove a fresh one another request wrote in between.
        let (value, until) = self.entries.get(key)?;
        (until > now).then(|| (value, until - now))
    }
}

impl<V: Clone> std::fmt::Debug for Memory<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("len", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_on_the_callers_clock() {
        let m = Memory::new(10);
        let now = Utc::now();
        m.remember("a".into(), 1, now + Duration::seconds(5));
        assert_eq!(m.recall("a", now), Some(1));
        let (_, left) = m.recall_for("a", now + Duration::seconds(2)).unwrap();
        assert_eq!(left, Duration::seconds(3));
        assert_eq!(m.recall("a", now + Duration::seconds(5)), None);
        assert_eq!(m.recall("b", now), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let m = Memory::new(100);
        let later = Utc::now() + Duration::hours(1);
        for i in 0..10_000 {
            m.remember(format!("k{i}"), i, later);
        }
        assert!(m.entries.len() <= 200, "{}", m.entries.len());
    }
}
