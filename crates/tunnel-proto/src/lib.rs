//! The tunnel wire format, shared by the edge worker and the `ttf` forwarder.
//!
//! One definition of every message that crosses the control WebSocket
//! (see `docs/TUNNEL_PROTOCOL.md`). No IO: callers hand in text frames and get
//! typed messages back, or build messages and serialize them.

pub mod v1;

pub use v1::{ErrorCode, Headers, Message, ProtocolError};
