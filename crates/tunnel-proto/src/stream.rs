//! The v2 stream core shared by both drivers (the Durable Object and
//! `ttf`): the sender's credit window of a streamed body, sending a body's
//! data as chunks within it, and the conversion between one relayed
//! WebSocket message and its kind-1 frame (text must be UTF-8: 1007).
//!
//! IO-free and runtime-free: the driver supplies how grants arrive
//! ([`Grants`], its channel) and how frames leave (a closure), the way
//! [`crate::inflight::Inflight`] takes the driver's waiter. Before issue 17
//! each driver had its own copy of this logic, tested only end to end.

use std::future::Future;

use crate::v2::{Frame, MAX_CHUNK, WINDOW};

/// Close code for a text message that is not UTF-8 (RFC 6455 7.4.1).
pub const INVALID_TEXT_CODE: u16 = 1007;

/// What a sender may still send of one body before the receiver
/// acknowledges more (`window` messages): starts at [`WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    credit: u64,
}

impl Default for SendWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl SendWindow {
    /// A fresh window of [`WINDOW`] bytes.
    pub fn new() -> Self {
        Self {
            credit: u64::from(WINDOW),
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.credit
    }

    /// The receiver acknowledged `bytes`.
    pub fn grant(&mut self, bytes: u32) {
        self.credit = self.credit.saturating_add(u64::from(bytes));
    }

    /// Take `n` bytes of credit if there is that much.
    pub fn try_spend(&mut self, n: usize) -> bool {
        match self.credit.checked_sub(n as u64) {
            Some(rest) => {
                self.credit = rest;
                true
            }
            None => false,
        }
    }
}

/// Where a sender's window grants come from (the driver's channel of
/// `window` messages for this stream).
pub trait Grants {
    /// The next grant; `None` when there will be none (the receiver
    /// cancelled the stream or the control socket is gone).
    fn next_grant(&mut self) -> impl Future<Output = Option<u32>>;
}

/// Why sending a body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStop {
    /// No more grants will come: the receiver is gone or cancelled.
    Cancelled,
    /// A frame could not be sent (the control socket closed).
    Closed,
}

/// Send `data` of stream `stream_id`'s body as body frames of at most
/// [`MAX_CHUNK`] bytes, never beyond `window`: when it is spent, wait for
/// `grants`. `send` puts one encoded frame on the control socket (`false`:
/// it is closed). END/ABORT frames are the caller's.
pub async fn send_data<G: Grants>(
    stream_id: u32,
    data: &[u8],
    window: &mut SendWindow,
    grants: &mut G,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), SendStop> {
    for chunk in data.chunks(MAX_CHUNK) {
        while !window.try_spend(chunk.len()) {
            match grants.next_grant().await {
                Some(more) => window.grant(more),
                None => return Err(SendStop::Cancelled),
            }
        }
        if !send(Frame::body(stream_id, 0, chunk).encode()) {
            return Err(SendStop::Closed);
        }
    }
    Ok(())
}

/// One relayed WebSocket message, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsData<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> WsData<'a> {
    /// The kind-1 frame carrying this message on `stream_id`.
    pub fn encode(self, stream_id: u32) -> Vec<u8> {
        match self {
            WsData::Text(t) => Frame::ws_message(stream_id, true, t.as_bytes()).encode(),
            WsData::Binary(b) => Frame::ws_message(stream_id, false, b).encode(),
        }
    }

    /// The message a kind-1 frame carries; `Err` (close the stream with
    /// [`INVALID_TEXT_CODE`] and this reason) for text that is not UTF-8.
    pub fn from_frame(frame: &Frame<'a>) -> Result<Self, &'static str> {
        if frame.is_text() {
            std::str::from_utf8(frame.payload)
                .map(WsData::Text)
                .map_err(|_| "a text message is not valid UTF-8")
        } else {
            Ok(WsData::Binary(frame.payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::FrameKind;
    use std::collections::VecDeque;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Run a future that never waits on anything but `Script` grants.
    fn run<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the scripted grants never block"),
        }
    }

    /// Grants handed out in order, then none.
    struct Script(VecDeque<u32>, usize);

    impl Grants for Script {
        async fn next_grant(&mut self) -> Option<u32> {
            self.1 += 1;
            self.0.pop_front()
        }
    }

    #[test]
    fn window_spends_and_grants() {
        let mut w = SendWindow::new();
        assert_eq!(w.available(), u64::from(WINDOW));
        assert!(w.try_spend(WINDOW as usize));
        assert!(!w.try_spend(1));
        w.grant(10);
        assert!(w.try_spend(10));
        assert_eq!(w.available(), 0);
        w.grant(u32::MAX);
        w.grant(u32::MAX);
        assert_eq!(w.available(), 2 * u64::from(u32::MAX));
    }

    #[test]
    fn data_goes_in_chunks_and_waits_for_grants() {
        let data = vec![7u8; 3 * MAX_CHUNK + 5];
        let mut window = SendWindow::new();
        assert!(window.try_spend(WINDOW as usize - MAX_CHUNK));
        let mut grants = Script(
            VecDeque::from([100, MAX_CHUNK as u32, 3 * MAX_CHUNK as u32]),
            0,
        );
        let mut sent = Vec::new();
        run(send_data(9, &data, &mut window, &mut grants, |f| {
            sent.push(f);
            true
        }))
        .unwrap();
        let frames: Vec<_> = sent.iter().map(|f| Frame::decode(f).unwrap()).collect();
        let sizes: Vec<_> = frames.iter().map(|f| f.payload.len()).collect();
        assert_eq!(sizes, [MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, 5]);
        assert!(frames
            .iter()
            .all(|f| f.kind == FrameKind::Body && f.stream_id == 9 && f.flags == 0));
        // The first chunk fit; the second needed two grants, the third one.
        assert_eq!(grants.1, 3);
        assert_eq!(window.available(), 100 + 2 * MAX_CHUNK as u64 - 5);
    }

    #[test]
    fn no_more_grants_cancels_and_a_closed_socket_stops() {
        let mut window = SendWindow::new();
        assert!(window.try_spend(WINDOW as usize));
        let mut none = Script(VecDeque::new(), 0);
        let stop = run(send_data(1, b"x", &mut window, &mut none, |_| true));
        assert_eq!(stop, Err(SendStop::Cancelled));
        let mut window = SendWindow::new();
        let stop = run(send_data(1, b"x", &mut window, &mut none, |_| false));
        assert_eq!(stop, Err(SendStop::Closed));
        assert_eq!(
            run(send_data(1, b"", &mut window, &mut none, |_| false)),
            Ok(())
        );
    }

    #[test]
    fn messages_round_trip_through_frames() {
        for data in [WsData::Text("héllo"), WsData::Binary(&[0, 159, 146, 150])] {
            let bytes = data.encode(42);
            let frame = Frame::decode(&bytes).unwrap();
            assert_eq!((frame.kind, frame.stream_id), (FrameKind::WsMessage, 42));
            assert_eq!(WsData::from_frame(&frame), Ok(data));
        }
        let bad = Frame::ws_message(1, true, &[0xff, 0xfe]);
        assert!(WsData::from_frame(&bad).unwrap_err().contains("UTF-8"));
    }
}
