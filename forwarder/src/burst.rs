//! Answers to requests that came together go back together (v3).
//!
//! Under load the edge hands `ttf` its requests in batches (one socket
//! message holding many requests: ~13 on average at 32 concurrent
//! requests), but the local service answers them one at a time, and an
//! answer sent alone is one more event for the tunnel's Durable Object,
//! where a tunnelled request spends most of its time. [`Burst`] holds the
//! answers while requests of such a batch are still unanswered and lets
//! them go as one message (a kind-3 batch) when the last one is answered,
//! or [`LINGER`] after the first was held, whichever comes first. A
//! request that came alone is not waited for, so an idle tunnel answers
//! at once; a slow request of a batch delays the others' answers by at
//! most [`LINGER`], and then is no longer waited for.
//!
//! Sans-IO; the call-order contract for the relay loop:
//! 1. [`Burst::started`] with the stream ids of the requests an edge
//!    message started;
//! 2. every answer frame (binary) goes to [`Burst::hold`];
//! 3. before sending any other message, send what [`Burst::take`]
//!    returns (nothing overtakes a held frame);
//! 4. [`Burst::ended`] when a request's task is done;
//! 5. after handling what was queued, and when [`Burst::deadline`]
//!    passes, send what [`Burst::due`] returns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tunnel_proto::heads::{pack, MAX_BATCH};

/// How long a held answer waits at most for the rest of its batch.
pub const LINGER: Duration = Duration::from_millis(1);

/// Answers held for the requests they came with.
#[derive(Debug, Default)]
pub struct Burst {
    /// Requests of batches not answered yet.
    open: HashSet<u32>,
    /// Answer frames waiting, in order.
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    /// When the first held frame was held.
    since: Option<Instant>,
}

impl Burst {
    /// One edge message started the requests of stream ids `ids`; when
    /// they are several, their answers are held for each other.
    pub fn started(&mut self, ids: &[u32]) {
        if ids.len() > 1 {
            self.open.extend(ids);
        }
    }

    /// The request of stream `id` is done (its answer was handed over).
    pub fn ended(&mut self, id: u32) {
        self.open.remove(&id);
    }

    /// Hold answer frame `frame` (an encoded binary frame), at `now`.
    pub fn hold(&mut self, frame: Vec<u8>, now: Instant) {
        self.since.get_or_insert(now);
        self.held_bytes += frame.len();
        self.held.push(frame);
    }

    /// When the held frames must leave at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + LINGER)
    }

    /// The messages to send at `now`: everything held once no request of
    /// a batch is unanswered, a full batch is held, or the deadline
    /// passed (the batch's stragglers are then no longer waited for);
    /// else nothing yet.
    pub fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self.deadline().is_some_and(|deadline| now >= deadline) {
            self.open.clear();
        }
        if self.open.is_empty() || self.held_bytes >= MAX_BATCH {
            self.take()
        } else {
            Vec::new()
        }
    }

    /// Everything held, as messages to send now.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        self.since = None;
        self.held_bytes = 0;
        pack(self.held.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunnel_proto::heads::unbatch;
    use tunnel_proto::v2::{Frame, FrameKind};

    fn answer(id: u32) -> Vec<u8> {
        Frame::body(id, 0, format!("answer {id}").as_bytes()).encode()
    }

    /// The frames a sent message carries: a batch's, or itself.
    fn frames(sent: &[Vec<u8>]) -> Vec<Vec<u8>> {
        sent.iter()
            .flat_map(|m| {
                let frame = Frame::decode(m).unwrap();
                if frame.kind == FrameKind::Batch {
                    unbatch(&frame).map(|f| f.unwrap().encode()).collect()
                } else {
                    vec![m.clone()]
                }
            })
            .collect()
    }

    #[test]
    fn a_request_that_came_alone_is_answered_at_once() {
        let mut burst = Burst::default();
        let now = Instant::now();
        burst.started(&[1]);
        burst.hold(answer(1), now);
        assert_eq!(burst.due(now), vec![answer(1)]);
        assert_eq!(burst.deadline(), None);
    }

    #[test]
    fn the_answers_of_a_batch_leave_together_when_the_last_is_done() {
        let mut burst = Burst::default();
        let now = Instant::now();
        burst.started(&[1, 2, 3]);
        for id in [2, 1] {
            burst.hold(answer(id), now);
            burst.ended(id);
            assert!(burst.due(now).is_empty(), "request 3 is unanswered");
        }
        burst.hold(answer(3), now);
        burst.ended(3);
        let sent = burst.due(now);
        assert_eq!(sent.len(), 1, "one message");
        assert_eq!(frames(&sent), [answer(2), answer(1), answer(3)]);
        assert_eq!(burst.deadline(), None);
    }

    #[test]
    fn a_straggler_delays_the_others_by_the_linger_at_most_and_then_no_longer() {
        let mut burst = Burst::default();
        let start = Instant::now();
        burst.started(&[1, 2]);
        burst.hold(answer(1), start);
        burst.ended(1);
        assert_eq!(burst.deadline(), Some(start + LINGER));
        assert!(burst.due(start + LINGER / 2).is_empty());
        assert_eq!(burst.due(start + LINGER), vec![answer(1)]);
        // Request 2 (a long poll, say) is no longer waited for.
        let later = start + LINGER * 5;
        burst.hold(answer(7), later);
        assert_eq!(burst.due(later), vec![answer(7)]);
    }

    #[test]
    fn take_hands_over_what_is_held_before_a_message_that_must_not_overtake_it() {
        let mut burst = Burst::default();
        let now = Instant::now();
        burst.started(&[1, 2]);
        burst.hold(answer(1), now);
        assert_eq!(burst.take(), vec![answer(1)]);
        assert!(burst.take().is_empty());
        assert_eq!(burst.deadline(), None);
        // Request 2 is still waited for by a later answer.
        burst.hold(answer(1), now);
        assert!(burst.due(now).is_empty());
    }

    #[test]
    fn a_full_batch_leaves_without_waiting() {
        let mut burst = Burst::default();
        let now = Instant::now();
        burst.started(&[1, 2, 3]);
        let big = Frame::body(1, 0, &vec![0u8; MAX_BATCH / 2]).encode();
        burst.hold(big.clone(), now);
        assert!(burst.due(now).is_empty());
        burst.hold(big.clone(), now);
        let sent = burst.due(now);
        assert!(sent.iter().all(|m| m.len() <= MAX_BATCH));
        assert_eq!(frames(&sent), [big.clone(), big]);
    }
}
