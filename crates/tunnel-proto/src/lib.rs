//! The tunnel wire format and edge rules, shared by the edge worker and the
//! `ttf` forwarder.
//!
//! One definition of every message that crosses the control WebSocket
//! (see `docs/TUNNEL.md` and the shared protocol doc), plus the pure rules
//! around it: routing, header handling, the in-flight request table,
//! path-prefix rewriting and who may hold a requested name. No IO: callers hand in text frames,
//! headers and times and get typed results back.

// Nothing fed by the network may panic: no slicing or indexing that can be
// out of range or off a char boundary, no unwrap/expect/panic (tests exempt).
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod headers;
pub mod heads;
pub mod inflight;
pub mod names;
pub mod outbox;
pub mod policy;
pub mod rewrite;
pub mod route;
pub mod stream;
pub mod table;
pub mod v1;
pub mod v2;

pub use v1::{ErrorCode, Headers, Message, ProtocolError};
