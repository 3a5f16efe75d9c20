//! Exactly-once execution over at-least-once delivery (IO-free).
//!
//! A QoS 1 request may reach the server twice (a lost PUBACK, a reconnect
//! that resends unacknowledged PUBLISHes with DUP set). [`Dedup`] remembers
//! the answers of the writes (create, update, delete, subscribe,
//! unsubscribe) by `(client id, request id)`, so a duplicate gets the first
//! answer again instead of running a second time. Reads are not kept:
//! running one twice changes nothing.
//!
//! Bounded three ways: per client (the newest [`Limits::per_client`]
//! answers), in total (entries and bytes) and in time ([`Limits::ttl`]).
//! It outlives connections on purpose: the resent duplicate arrives after
//! the reconnect. Time is passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds of the window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Answers kept per client.
    pub per_client: usize,
    /// Answers kept in total.
    pub entries: usize,
    /// Bytes of answers kept in total.
    pub bytes: usize,
    /// How long an answer is kept.
    pub ttl: Duration,
}

impl Default for Limits {
    /// 256 per client, 100,000 and 64 MiB in total, 10 minutes.
    fn default() -> Self {
        Limits {
            per_client: 256,
            entries: 100_000,
            bytes: 64 << 20,
            ttl: Duration::from_secs(600),
        }
    }
}

type Key = (Arc<str>, String);

struct Entry {
    key: Key,
    at: Instant,
    answer: Arc<[u8]>,
}

/// The answers of recent writes, by `(client id, request id)`.
pub struct Dedup {
    limits: Limits,
    /// Oldest first.
    order: VecDeque<Entry>,
    index: HashMap<Key, Arc<[u8]>>,
    per_client: HashMap<Arc<str>, usize>,
    bytes: usize,
}

impl Dedup {
    /// An empty window.
    pub fn new(limits: Limits) -> Self {
        Dedup {
            limits,
            order: VecDeque::new(),
            index: HashMap::new(),
            per_client: HashMap::new(),
            bytes: 0,
        }
    }

    /// The answer already given to `request_id` of `client_id`, if kept.
    pub fn answered(
        &mut self,
        client_id: &str,
        request_id: &str,
        now: Instant,
    ) -> Option<Arc<[u8]>> {
        self.expire(now);
        self.index
            .get(&(Arc::from(client_id), request_id.to_string()))
            .cloned()
    }

    /// Keep `answer` of `request_id` of `client_id`.
    pub fn record(&mut self, client_id: &str, request_id: &str, answer: Arc<[u8]>, now: Instant) {
        if answer.len() > self.limits.bytes {
            return;
        }
        let client: Arc<str> = Arc::from(client_id);
        let key = (Arc::clone(&client), request_id.to_string());
        if self.index.contains_key(&key) {
            return;
        }
        if self.per_client.get(&client).copied().unwrap_or(0) >= self.limits.per_client {
            self.evict_oldest_of(&client);
        }
        self.bytes += answer.len();
        *self.per_client.entry(client).or_insert(0) += 1;
        self.index.insert(key.clone(), Arc::clone(&answer));
        self.order.push_back(Entry {
            key,
            at: now,
            answer,
        });
        while self.order.len() > self.limits.entries || self.bytes > self.limits.bytes {
            self.pop_oldest();
        }
        self.expire(now);
    }

    /// Number of answers kept.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Bytes of answers kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > self.limits.ttl)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(entry) = self.order.pop_front() {
            self.forget(&entry);
        }
    }

    fn evict_oldest_of(&mut self, client: &Arc<str>) {
        if let Some(at) = self.order.iter().position(|e| &e.key.0 == client) {
            if let Some(entry) = self.order.remove(at) {
                self.forget(&entry);
            }
        }
    }

    fn forget(&mut self, entry: &Entry) {
        self.index.remove(&entry.key);
        self.bytes -= entry.answer.len();
        if let Some(n) = self.per_client.get_mut(&entry.key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&entry.key.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn answer(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn a_duplicate_gets_the_first_answer() {
        let now = Instant::now();
        let mut d = Dedup::new(Limits::default());
        assert!(d.answered("a", "r1", now).is_none());
        d.record("a", "r1", answer("first"), now);
        d.record("a", "r1", answer("second"), now);
        assert_eq!(&*d.answered("a", "r1", now).unwrap(), b"first");
        assert!(d.answered("b", "r1", now).is_none(), "ids are per client");
    }

    #[test]
    fn answers_expire() {
        let t0 = Instant::now();
        let limits = Limits {
            ttl: Duration::from_secs(60),
            ..Limits::default()
        };
        let mut d = Dedup::new(limits);
        d.record("a", "r1", answer("x"), t0);
        assert!(d
            .answered("a", "r1", t0 + Duration::from_secs(59))
            .is_some());
        assert!(d
            .answered("a", "r1", t0 + Duration::from_secs(61))
            .is_none());
        assert!(d.is_empty());
        assert_eq!(d.bytes(), 0);
    }

    #[test]
    fn one_client_cannot_push_out_another() {
        let now = Instant::now();
        let limits = Limits {
            per_client: 3,
            ..Limits::default()
        };
        let mut d = Dedup::new(limits);
        d.record("quiet", "q", answer("q"), now);
        for i in 0..100 {
            d.record("loud", &i.to_string(), answer("l"), now);
        }
        assert!(d.answered("quiet", "q", now).is_some());
        assert_eq!(d.len(), 4);
        assert!(d.answered("loud", "99", now).is_some());
        assert!(d.answered("loud", "96", now).is_none());
    }

    proptest! {
        /// Whatever is recorded, the totals stay within the limits and agree
        /// with what is kept.
        #[test]
        fn bounds_hold(ops in proptest::collection::vec((0u8..4, 0u16..50, 0usize..300, 0u64..30), 1..300)) {
            let t0 = Instant::now();
            let limits = Limits { per_client: 7, entries: 40, bytes: 2_000, ttl: Duration::from_secs(20) };
            let mut d = Dedup::new(limits);
            for (client, id, size, secs) in ops {
                let now = t0 + Duration::from_secs(secs);
                d.record(&client.to_string(), &id.to_string(), Arc::from(vec![0u8; size]), now);
                prop_assert!(d.len() <= limits.entries);
                prop_assert!(d.bytes() <= limits.bytes);
                prop_assert_eq!(d.bytes(), d.order.iter().map(|e| e.answer.len()).sum::<usize>());
                prop_assert_eq!(d.index.len(), d.order.len());
                prop_assert!(d.per_client.values().all(|n| *n <= limits.per_client));
            }
        }
    }
}
