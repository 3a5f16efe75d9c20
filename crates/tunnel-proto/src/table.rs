//! The v2 stream table both drivers keep: which stream ids are live on one
//! control socket and what each has attached (a waiter for the answer to a
//! WebSocket open, the sink of window grants for a body this side sends,
//! the sink and receive window of a body this side receives, the queue of
//! a relayed WebSocket's messages), id allocation and validation, the
//! END/ABORT rules of body frames, and the bound on how many streams a
//! peer can make this side hold.
//!
//! Generic over the driver's types ([`Slots`]), the way
//! [`crate::inflight::Inflight`] is over its waiter: the Durable Object
//! keeps oneshot senders and channels in it, `ttf` its tokio channels and
//! stream queues, and the table never does IO. Before issue 17 each driver
//! had its own maps (`opening/credits/bodies` in the DO, `inputs/credits/
//! uploads` in `ttf`), tested only end to end.
//!
//! # Call order (the driver's contract)
//! 1. A stream starts with [`StreamTable::allocate`] (the side that picks
//!    ids: the edge) or [`StreamTable::insert`] (the other side, or a
//!    second part of a live stream); both refuse beyond the table's limit,
//!    and `insert` refuses a part that is already attached (an id reused
//!    by the peer).
//! 2. Frames and control messages for a stream go through
//!    [`StreamTable::on_body`], [`StreamTable::grants`],
//!    [`StreamTable::input`] / [`StreamTable::take_open`]; none of them
//!    creates a stream, so a peer naming unknown ids grows nothing.
//! 3. Every chunk the reader of a received body takes is reported with
//!    [`StreamTable::consumed`] (and acknowledged to the peer with a
//!    `window` message by the driver), so the receive window reopens.
//! 4. A part ends with `take_*`/`detach`; the stream is forgotten when its
//!    last part is gone, or at once with [`StreamTable::close`].
//!    [`StreamTable::drain`] ends every stream (the control socket is gone).

use std::collections::HashMap;

use crate::v2::{Frame, Unacked};

/// Default bound on live streams per control socket.
pub const MAX_STREAMS: usize = 4096;

/// The driver's types for the parts of a stream.
pub trait Slots {
    /// Waiter for the answer to a WebSocket open (`ws_opened`/`ws_refused`).
    type Open;
    /// Where `window` grants for a body this side sends go.
    type Grants;
    /// Where the chunks of a body this side receives go.
    type Body;
    /// Where a relayed WebSocket's messages go.
    type Input;
}

/// One part of a stream, to attach.
pub enum Part<S: Slots> {
    Open(S::Open),
    Grants(S::Grants),
    Body(S::Body),
    Input(S::Input),
}

impl<S: Slots> Part<S> {
    fn name(&self) -> &'static str {
        match self {
            Part::Open(_) => "open",
            Part::Grants(_) => "grants",
            Part::Body(_) => "body",
            Part::Input(_) => "input",
        }
    }
}

/// Which part of a stream (for [`StreamTable::detach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Open,
    Grants,
    Body,
    Input,
}

/// Why a stream or part was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many streams on this tunnel (limit {0})")]
    Full(usize),
    #[error("stream {0} already has its {1} part: the id was reused")]
    Reused(u32, &'static str),
}

/// The parts of one live stream.
pub struct Entry<S: Slots> {
    /// See [`Slots::Open`].
    pub open: Option<S::Open>,
    /// See [`Slots::Grants`].
    pub grants: Option<S::Grants>,
    /// See [`Slots::Body`].
    pub body: Option<S::Body>,
    /// See [`Slots::Input`].
    pub input: Option<S::Input>,
    /// Received body bytes not consumed yet.
    unacked: Unacked,
}

impl<S: Slots> Entry<S> {
    fn empty() -> Self {
        Self {
            open: None,
            grants: None,
            body: None,
            input: None,
            unacked: Unacked::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.open.is_none() && self.grants.is_none() && self.body.is_none() && self.input.is_none()
    }

    /// Put `part` in its slot; `Err` gives it back when the slot is taken.
    fn attach(&mut self, part: Part<S>) -> Result<(), Part<S>> {
        fn put<T>(slot: &mut Option<T>, value: T) -> Result<(), T> {
            match slot {
                Some(_) => Err(value),
                None => {
                    *slot = Some(value);
                    Ok(())
                }
            }
        }
        match part {
            Part::Open(v) => put(&mut self.open, v).map_err(Part::Open),
            Part::Grants(v) => put(&mut self.grants, v).map_err(Part::Grants),
            Part::Body(v) => put(&mut self.body, v).map_err(Part::Body),
            Part::Input(v) => put(&mut self.input, v).map_err(Part::Input),
        }
    }
}

/// What a body frame carried to the receiver of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Body bytes (never empty).
    Data(&'a [u8]),
    /// The body failed: the peer aborted it, or sent beyond its window.
    Failed(String),
}

/// What the driver does after a body frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyVerdict {
    /// Delivered (or nothing to deliver); the body goes on.
    Open,
    /// The body ended (END, or the peer's ABORT): its sink is dropped.
    Ended,
    /// Nobody reads this stream's body (unknown stream, the reader is
    /// gone, or the peer overran its window): tell the peer to stop
    /// (an ABORT body frame), if this side does that.
    Cancel,
}

/// The live streams of one control socket. See the module header for the
/// call order.
pub struct StreamTable<S: Slots> {
    streams: HashMap<u32, Entry<S>>,
    next: u32,
    limit: usize,
}

impl<S: Slots> StreamTable<S> {
    /// An empty table allocating ids from `first_id` on (random per
    /// instance, so ids of an earlier incarnation are unlikely to match),
    /// holding at most `limit` streams.
    pub fn new(first_id: u32, limit: usize) -> Self {
        Self {
            streams: HashMap::new(),
            next: first_id,
            limit,
        }
    }

    /// Number of live streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is live.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Whether stream `id` is live.
    pub fn contains(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// Start a stream with `part` under a fresh id: one not live here and
    /// for which `taken` (ids the driver tracks elsewhere, e.g. relayed
    /// sockets that outlived a restart) is false.
    pub fn allocate(&mut self, part: Part<S>, taken: impl Fn(u32) -> bool) -> Result<u32, Refusal> {
        if self.streams.len() >= self.limit {
            return Err(Refusal::Full(self.limit));
        }
        // At most `limit` ids are live, so a free one is found within
        // `limit + 1` tries unless `taken` claims the rest; give up then.
        for _ in 0..=self.limit.saturating_mul(2).max(16) {
            let id = self.next;
            self.next = id.wrapping_add(1);
            if !self.streams.contains_key(&id) && !taken(id) {
                let mut entry = Entry::empty();
                // An empty entry has every slot free.
                let _ = entry.attach(part);
                self.streams.insert(id, entry);
                return Ok(id);
            }
        }
        Err(Refusal::Full(self.limit))
    }

    /// Attach `part` to stream `id`, starting the stream if it is not live
    /// (within the limit). Refused when that part is attached already.
    pub fn insert(&mut self, id: u32, part: Part<S>) -> Result<(), Refusal> {
        let full = self.streams.len() >= self.limit;
        let entry = match self.streams.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => {
                return Err(Refusal::Full(self.limit))
            }
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Entry::empty()),
        };
        entry
            .attach(part)
            .map_err(|part| Refusal::Reused(id, part.name()))
    }

    /// Take the open waiter of stream `id` (its answer arrived).
    pub fn take_open(&mut self, id: u32) -> Option<S::Open> {
        self.take(id, |e| e.open.take())
    }

    /// The grant sink of stream `id`, to pass a `window` message on.
    pub fn grants(&mut self, id: u32) -> Option<&mut S::Grants> {
        self.streams.get_mut(&id)?.grants.as_mut()
    }

    /// The message queue of stream `id`.
    pub fn input(&mut self, id: u32) -> Option<&mut S::Input> {
        self.streams.get_mut(&id)?.input.as_mut()
    }

    /// The receiver of stream `id`'s body.
    pub fn body(&mut self, id: u32) -> Option<&mut S::Body> {
        self.streams.get_mut(&id)?.body.as_mut()
    }

    /// Remove one part of stream `id` (dropping it); the stream ends with
    /// its last part. Whether the part was there.
    pub fn detach(&mut self, id: u32, kind: PartKind) -> bool {
        self.take(id, |e| match kind {
            PartKind::Open => e.open.take().map(drop),
            PartKind::Grants => e.grants.take().map(drop),
            PartKind::Body => {
                e.unacked = Unacked::default();
                e.body.take().map(drop)
            }
            PartKind::Input => e.input.take().map(drop),
        })
        .is_some()
    }

    fn take<T>(&mut self, id: u32, f: impl FnOnce(&mut Entry<S>) -> Option<T>) -> Option<T> {
        let entry = self.streams.get_mut(&id)?;
        let taken = f(entry);
        if entry.is_empty() {
            self.streams.remove(&id);
        }
        taken
    }

    /// A body frame for this side. `deliver` hands one [`Chunk`] to the
    /// body's receiver and says whether it was taken (`false`: the reader
    /// is gone). An ABORT ends the stream's bodies both ways (the received
    /// one fails, the grants of the one sent go: the peer stops reading
    /// it); END ends the received body after its last bytes; bytes beyond
    /// the receive window ([`crate::v2::WINDOW`] unconsumed) fail the body.
    pub fn on_body(
        &mut self,
        frame: &Frame<'_>,
        deliver: impl FnOnce(&mut S::Body, Chunk<'_>) -> bool,
    ) -> BodyVerdict {
        let id = frame.stream_id;
        let Some(entry) = self.streams.get_mut(&id) else {
            return Self::unknown(frame);
        };
        if frame.is_abort() {
            entry.grants = None;
        }
        let Some(body) = entry.body.as_mut() else {
            if entry.is_empty() {
                self.streams.remove(&id);
            }
            return Self::unknown(frame);
        };
        let (chunk, verdict) = if frame.is_abort() {
            let reason = "the peer aborted the body midway".to_string();
            (Some(Chunk::Failed(reason)), BodyVerdict::Ended)
        } else if let Err(reason) = entry.unacked.received(frame.payload.len()) {
            (Some(Chunk::Failed(reason)), BodyVerdict::Cancel)
        } else if frame.payload.is_empty() {
            let end = if frame.is_end() {
                BodyVerdict::Ended
            } else {
                BodyVerdict::Open
            };
            (None, end)
        } else {
            let end = if frame.is_end() {
                BodyVerdict::Ended
            } else {
                BodyVerdict::Open
            };
            (Some(Chunk::Data(frame.payload)), end)
        };
        let taken = match chunk {
            Some(chunk) => deliver(body, chunk),
            None => true,
        };
        let verdict = if taken { verdict } else { BodyVerdict::Cancel };
        if verdict != BodyVerdict::Open {
            entry.body = None;
            entry.unacked = Unacked::default();
            if entry.is_empty() {
                self.streams.remove(&id);
            }
        }
        verdict
    }

    /// A body frame for no body: a data frame asks the peer to stop, its
    /// last frame (END or ABORT) needs nothing.
    fn unknown(frame: &Frame<'_>) -> BodyVerdict {
        if frame.is_end() || frame.is_abort() {
            BodyVerdict::Ended
        } else {
            BodyVerdict::Cancel
        }
    }

    /// The reader of stream `id`'s body took `n` bytes. Whether the body
    /// is still being received (so the driver acknowledges the bytes with
    /// `window`; after its END nothing more will come).
    pub fn consumed(&mut self, id: u32, n: usize) -> bool {
        match self.streams.get_mut(&id) {
            Some(entry) if entry.body.is_some() => {
                entry.unacked.consumed(n);
                true
            }
            _ => false,
        }
    }

    /// End stream `id` at once; its parts are given back to drop or tell.
    pub fn close(&mut self, id: u32) -> Option<Entry<S>> {
        self.streams.remove(&id)
    }

    /// End every stream (the control socket is gone).
    pub fn drain(&mut self) -> Vec<(u32, Entry<S>)> {
        self.streams.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::{FLAG_ABORT, FLAG_END, MAX_CHUNK, WINDOW};
    use proptest::prelude::*;

    /// Parts as plain values the tests can look at.
    struct T;
    impl Slots for T {
        type Open = &'static str;
        type Grants = Vec<u32>;
        type Body = Vec<Vec<u8>>;
        type Input = u8;
    }

    fn table(limit: usize) -> StreamTable<T> {
        StreamTable::new(u32::MAX - 1, limit)
    }

    fn push(body: &mut Vec<Vec<u8>>, chunk: Chunk<'_>) -> bool {
        if let Chunk::Data(d) = chunk {
            body.push(d.to_vec());
        }
        true
    }

    #[test]
    fn allocation_skips_live_and_taken_ids_and_wraps() {
        let mut t = table(8);
        assert_eq!(t.allocate(Part::Open("a"), |_| false), Ok(u32::MAX - 1));
        // u32::MAX is taken elsewhere: skipped, the counter wraps to 0.
        assert_eq!(t.allocate(Part::Open("b"), |id| id == u32::MAX), Ok(0));
        assert_eq!(t.take_open(u32::MAX - 1), Some("a"));
        assert!(
            !t.contains(u32::MAX - 1),
            "a stream ends with its last part"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_limit_holds_for_both_sides() {
        let mut t = table(2);
        t.insert(5, Part::Input(1)).unwrap();
        t.allocate(Part::Open("x"), |_| false).unwrap();
        assert_eq!(t.insert(6, Part::Input(1)), Err(Refusal::Full(2)));
        assert_eq!(
            t.allocate(Part::Open("y"), |_| false),
            Err(Refusal::Full(2))
        );
        // A second part of a live stream is not a new stream.
        t.insert(5, Part::Grants(vec![])).unwrap();
        assert_eq!(
            t.insert(5, Part::Input(2)),
            Err(Refusal::Reused(5, "input"))
        );
        // Everything taken elsewhere: allocation gives up instead of looping.
        let mut t = table(4);
        assert_eq!(t.allocate(Part::Open("z"), |_| true), Err(Refusal::Full(4)));
    }

    #[test]
    fn body_frames_deliver_then_end() {
        let mut t = table(8);
        t.insert(3, Part::Body(vec![])).unwrap();
        let v = t.on_body(&Frame::body(3, 0, b"ab"), push);
        assert_eq!(v, BodyVerdict::Open);
        assert_eq!(t.on_body(&Frame::body(3, 0, b""), push), BodyVerdict::Open);
        assert_eq!(t.body(3).unwrap(), &vec![b"ab".to_vec()]);
        let v = t.on_body(&Frame::body(3, FLAG_END, b"c"), |b, c| {
            assert_eq!(c, Chunk::Data(b"c"));
            push(b, c)
        });
        assert_eq!(v, BodyVerdict::Ended);
        assert!(t.is_empty());
        // Late frames: a data frame asks the peer to stop, END needs nothing.
        assert_eq!(
            t.on_body(&Frame::body(3, 0, b"x"), |_, _| unreachable!()),
            BodyVerdict::Cancel
        );
        assert_eq!(
            t.on_body(&Frame::body(3, FLAG_END, b""), |_, _| unreachable!()),
            BodyVerdict::Ended
        );
        assert!(t.is_empty(), "unknown ids grow nothing");
    }

    #[test]
    fn abort_ends_both_bodies_and_a_gone_reader_cancels() {
        let mut t = table(8);
        t.insert(1, Part::Body(vec![])).unwrap();
        t.insert(1, Part::Grants(vec![])).unwrap();
        t.insert(1, Part::Input(0)).unwrap();
        let mut failed = None;
        let v = t.on_body(&Frame::body(1, FLAG_ABORT, b""), |_, c| {
            if let Chunk::Failed(r) = c {
                failed = Some(r);
            }
            true
        });
        assert_eq!(v, BodyVerdict::Ended);
        assert!(failed.is_some_and(|r| r.contains("aborted")));
        assert!(t.grants(1).is_none() && t.body(1).is_none());
        assert!(t.input(1).is_some(), "the relayed socket stays");
        // Only grants: an ABORT stops sending (the peer does not read).
        t.insert(2, Part::Grants(vec![])).unwrap();
        t.on_body(&Frame::body(2, FLAG_ABORT, b""), |_, _| unreachable!());
        assert!(!t.contains(2));
        t.insert(4, Part::Body(vec![])).unwrap();
        assert_eq!(
            t.on_body(&Frame::body(4, 0, b"x"), |_, _| false),
            BodyVerdict::Cancel
        );
        assert!(!t.contains(4));
    }

    #[test]
    fn a_peer_past_its_window_fails_the_body() {
        let mut t = table(8);
        t.insert(9, Part::Body(vec![])).unwrap();
        let chunk = vec![0u8; MAX_CHUNK];
        for _ in 0..(WINDOW as usize / MAX_CHUNK) {
            assert_eq!(
                t.on_body(&Frame::body(9, 0, &chunk), |_, _| true),
                BodyVerdict::Open
            );
        }
        assert!(t.consumed(9, 10));
        assert_eq!(
            t.on_body(&Frame::body(9, 0, &[0; 10]), |_, _| true),
            BodyVerdict::Open
        );
        let mut reason = String::new();
        let v = t.on_body(&Frame::body(9, 0, b"y"), |_, c| {
            if let Chunk::Failed(r) = c {
                reason = r;
            }
            true
        });
        assert_eq!(v, BodyVerdict::Cancel);
        assert!(reason.contains("window"), "{reason}");
        assert!(!t.contains(9));
    }

    #[test]
    fn close_and_drain_give_the_parts_back() {
        let mut t = table(8);
        t.insert(1, Part::Open("o")).unwrap();
        t.insert(2, Part::Grants(vec![7])).unwrap();
        assert_eq!(t.close(1).and_then(|e| e.open), Some("o"));
        assert!(t.close(1).is_none());
        t.grants(2).unwrap().push(8);
        let drained = t.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].1.grants.as_deref(), Some(&[7, 8][..]));
        assert!(t.is_empty());
        assert!(!t.detach(3, PartKind::Body));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        Insert(u8, u8),
        Body(u8, u8, usize),
        Consumed(u8, usize),
        Detach(u8, u8),
        Close(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Allocate),
            (0u8..24, 0u8..4).prop_map(|(i, p)| Op::Insert(i, p)),
            (0u8..24, 0u8..8, 0usize..(2 * MAX_CHUNK)).prop_map(|(i, f, n)| Op::Body(i, f, n)),
            (0u8..24, 0usize..(2 * MAX_CHUNK)).prop_map(|(i, n)| Op::Consumed(i, n)),
            (0u8..24, 0u8..4).prop_map(|(i, p)| Op::Detach(i, p)),
            (0u8..24).prop_map(Op::Close),
        ]
    }

    fn part(p: u8) -> Part<T> {
        match p {
            0 => Part::Open("o"),
            1 => Part::Grants(vec![]),
            2 => Part::Body(vec![]),
            _ => Part::Input(0),
        }
    }

    fn kind(p: u8) -> PartKind {
        match p {
            0 => PartKind::Open,
            1 => PartKind::Grants,
            2 => PartKind::Body,
            _ => PartKind::Input,
        }
    }

    proptest! {
        /// Whatever a peer sends: the table never holds more than its
        /// limit, never an empty stream, never more than the window of
        /// undelivered-and-unconsumed bytes per body, and allocation never
        /// hands out a live id.
        #[test]
        fn invariants_hold(ops in proptest::collection::vec(op(), 1..200), limit in 1usize..12) {
            let mut t = table(limit);
            let payload = vec![1u8; 2 * MAX_CHUNK];
            for op in ops {
                match op {
                    Op::Allocate => {
                        let before = t.len();
                        match t.allocate(Part::Input(1), |id| id % 7 == 3) {
                            Ok(id) => {
                                prop_assert_eq!(t.len(), before + 1);
                                prop_assert!(id % 7 != 3);
                            }
                            Err(Refusal::Full(_)) => prop_assert_eq!(before, limit),
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Insert(i, p) => {
                        let live = t.contains(u32::from(i));
                        let r = t.insert(u32::from(i), part(p));
                        if r == Err(Refusal::Full(limit)) {
                            prop_assert!(!live && t.len() == limit);
                        }
                    }
                    Op::Body(i, f, n) => {
                        let id = u32::from(i);
                        let had = t.body(id).is_some();
                        let frame = Frame::body(id, f, &payload[..n]);
                        let mut delivered = 0;
                        let v = t.on_body(&frame, |b, c| {
                            if let Chunk::Data(d) = c {
                                delivered = d.len();
                                b.push(d.to_vec());
                            }
                            true
                        });
                        if !had {
                            prop_assert_eq!(delivered, 0);
                        }
                        if v != BodyVerdict::Open {
                            prop_assert!(t.body(id).is_none());
                        }
                    }
                    Op::Consumed(i, n) => {
                        let live = t.body(u32::from(i)).is_some();
                        prop_assert_eq!(t.consumed(u32::from(i), n), live);
                    }
                    Op::Detach(i, p) => { t.detach(u32::from(i), kind(p)); }
                    Op::Close(i) => { t.close(u32::from(i)); }
                }
                prop_assert!(t.len() <= limit);
                for entry in t.streams.values() {
                    prop_assert!(!entry.is_empty());
                    prop_assert!(entry.unacked.get() <= u64::from(WINDOW));
                }
            }
        }
    }
}
