//! Coalescing of binary frames toward a busy peer (issue 17): the edge's
//! sends to a v3 forwarder.
//!
//! Every public WebSocket message is its own Durable Object event, so the
//! edge cannot gather them the way `ttf` gathers what is queued when it
//! writes. Instead: a frame offered while the outbox is idle leaves at
//! once (no added latency for a lone message) and arms a flush; frames
//! offered until the flush runs (a zero-delay timer in the driver, which
//! fires after the events already waiting) are queued and leave together
//! as batches (kind 3, at most [`MAX_BATCH`] bytes each), in order.
//!
//! Sans-IO: the driver sends what [`Outbox::offer`] hands back and arms
//! its timer then, sends what [`Outbox::flush`] returns when the timer
//! fires, and sends what [`Outbox::take`] returns before any message that
//! does not go through the outbox, so frames leave in the order they were
//! made.
//!
//! [`MAX_BATCH`]: crate::heads::MAX_BATCH

use crate::heads::pack;

/// The frames waiting for the next flush.
#[derive(Debug, Default)]
pub struct Outbox {
    armed: bool,
    queued: Vec<Vec<u8>>,
}

/// What to do with an offered frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Send this frame now and arm the flush timer.
    SendAndArm(Vec<u8>),
    /// Queued for the flush that is already armed.
    Queued,
}

impl Outbox {
    /// An idle outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offer one encoded frame (kind 1, 2, 4 or 5).
    pub fn offer(&mut self, frame: Vec<u8>) -> Offer {
        if self.armed {
            self.queued.push(frame);
            Offer::Queued
        } else {
            self.armed = true;
            Offer::SendAndArm(frame)
        }
    }

    /// The flush timer fired: the queued frames as messages to send (in
    /// order), and the outbox is idle again.
    pub fn flush(&mut self) -> Vec<Vec<u8>> {
        self.armed = false;
        self.take()
    }

    /// The queued frames as messages to send now, before a message that
    /// bypasses the outbox; a flush stays armed.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        pack(self.queued.drain(..))
    }

    /// The peer is gone: its queued frames are dropped (a flush already
    /// armed finds nothing).
    pub fn clear(&mut self) {
        self.queued.clear();
    }

    /// Number of frames waiting for the flush.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::{unbatch, MAX_BATCH};
    use crate::stream::WsData;
    use crate::v2::{Frame, FrameKind};

    fn message(stream: u32, text: &str) -> Vec<u8> {
        WsData::Text(text).encode(stream)
    }

    /// The frames a sent message carries: a batch's, or itself.
    fn frames(sent: &[u8]) -> Vec<Vec<u8>> {
        let frame = Frame::decode(sent).unwrap();
        if frame.kind != FrameKind::Batch {
            return vec![sent.to_vec()];
        }
        unbatch(&frame).map(|f| f.unwrap().encode()).collect()
    }

    #[test]
    fn a_lone_frame_leaves_at_once_and_the_flush_finds_nothing() {
        let mut outbox = Outbox::new();
        let frame = message(1, "hello");
        assert_eq!(outbox.offer(frame.clone()), Offer::SendAndArm(frame));
        assert!(outbox.flush().is_empty());
        // Idle again: the next one leaves at once too.
        assert!(matches!(
            outbox.offer(message(1, "again")),
            Offer::SendAndArm(_)
        ));
    }

    #[test]
    fn frames_offered_while_armed_leave_as_one_batch_in_order() {
        let mut outbox = Outbox::new();
        assert!(matches!(
            outbox.offer(message(1, "first")),
            Offer::SendAndArm(_)
        ));
        let queued: Vec<Vec<u8>> = (0..5).map(|i| message(i % 2, &format!("m{i}"))).collect();
        for frame in &queued {
            assert_eq!(outbox.offer(frame.clone()), Offer::Queued);
        }
        assert_eq!(outbox.len(), 5);
        let sent = outbox.flush();
        assert_eq!(sent.len(), 1);
        assert_eq!(frames(&sent[0]), queued);
        assert!(outbox.is_empty());
        assert!(matches!(
            outbox.offer(message(1, "idle")),
            Offer::SendAndArm(_)
        ));
    }

    #[test]
    fn a_single_queued_frame_leaves_as_itself() {
        let mut outbox = Outbox::new();
        outbox.offer(message(1, "first"));
        let second = message(1, "second");
        outbox.offer(second.clone());
        assert_eq!(outbox.flush(), vec![second]);
    }

    #[test]
    fn batches_stay_under_their_bound() {
        let mut outbox = Outbox::new();
        outbox.offer(message(1, "first"));
        let big = "x".repeat(20 * 1024);
        let queued: Vec<Vec<u8>> = (0..7).map(|i| message(i, &big)).collect();
        for frame in &queued {
            outbox.offer(frame.clone());
        }
        let sent = outbox.flush();
        assert!(sent.len() > 1);
        assert!(sent.iter().all(|m| m.len() <= MAX_BATCH));
        let relayed: Vec<Vec<u8>> = sent.iter().flat_map(|m| frames(m)).collect();
        assert_eq!(relayed, queued);
    }

    #[test]
    fn take_empties_the_queue_but_keeps_the_flush_armed() {
        let mut outbox = Outbox::new();
        outbox.offer(message(1, "first"));
        let queued = message(1, "queued");
        outbox.offer(queued.clone());
        // A close of stream 1 bypasses the outbox: the queued message
        // leaves before it.
        assert_eq!(outbox.take(), vec![queued]);
        assert_eq!(outbox.offer(message(1, "later")), Offer::Queued);
        assert_eq!(outbox.flush().len(), 1);
    }

    #[test]
    fn clear_drops_what_was_queued_for_a_peer_that_left() {
        let mut outbox = Outbox::new();
        outbox.offer(message(1, "first"));
        outbox.offer(message(1, "queued"));
        outbox.clear();
        assert!(outbox.flush().is_empty());
    }
}
