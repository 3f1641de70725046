//! Answers a container remembers for a short time, so it can give them again
//! without a DynamoDB call: "sold out", "throttled until".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys that are "on" until an instant. Bounded: past `capacity` entries,
/// expired ones are dropped, and if all are live the map is cleared (the
/// memory is an optimisation; forgetting only costs a DynamoDB call).
#[derive(Debug)]
pub struct Expiring {
    until: Mutex<HashMap<String, Instant>>,
    capacity: usize,
}

impl Expiring {
    pub fn new(capacity: usize) -> Self {
        Self {
            until: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn set(&self, key: &str, until: Instant) {
        let Ok(mut map) = self.until.lock() else {
            return;
        };
        if map.len() >= self.capacity {
            let now = Instant::now();
            map.retain(|_, t| *t > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key.to_owned(), until);
    }

    /// How long `key` stays on, if it is on at `now`.
    pub fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.until.lock().ok()?;
        map.get(key)
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }
}

/// Recent answers by key, each with the fingerprint of the request it
/// answered. Bounded like [`Expiring`]: past capacity it starts over.
#[derive(Debug)]
pub struct Recent {
    answers: Mutex<HashMap<String, (String, String)>>,
    capacity: usize,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Self {
            answers: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn put(&self, key: &str, fingerprint: &str, answer: &str) {
        let Ok(mut map) = self.answers.lock() else {
            return;
        };
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key.to_owned(), (fingerprint.to_owned(), answer.to_owned()));
    }

    /// The answer for `key`, if it answered the same request.
    pub fn get(&self, key: &str, fingerprint: &str) -> Option<String> {
        let map = self.answers.lock().ok()?;
        map.get(key)
            .filter(|(fp, _)| fp == fingerprint)
            .map(|(_, a)| a.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_answers_replay_only_the_same_request() {
        let r = Recent::new(2);
        r.put("alice|k1", "fp1", "o1");
        assert_eq!(r.get("alice|k1", "fp1").as_deref(), Some("o1"));
        assert_eq!(r.get("alice|k1", "other"), None);
        assert_eq!(r.get("bob|k1", "fp1"), None);
        r.put("b", "f", "x");
        r.put("c", "f", "y");
        assert!(r.answers.lock().unwrap().len() <= 2);
    }

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let m = Expiring::new(2);
        let now = Instant::now();
        m.set("a", now + Duration::from_secs(5));
        assert!(m.remaining("a", now).is_some());
        assert!(m.remaining("a", now + Duration::from_secs(6)).is_none());
        assert!(m.remaining("b", now).is_none());
        m.set("b", now + Duration::from_secs(5));
        m.set("c", now + Duration::from_secs(5));
        assert!(m.until.lock().unwrap().len() <= 2);
        assert!(m.remaining("c", now).is_some());
    }
}
