//! Sans-IO MQTT client machinery: bytes and events in, bytes, events and
//! deadlines out. Drivers (web-sys in the browser, tokio natively) own the
//! sockets and timers.
//!
//! - [`framing`]: whole packets from arbitrary chunks;
//! - [`codec`]: MQTT 3.1.1/5 encoding and decoding of the client side
//!   (`mqttbytes`' MQTT 5 types as the data model);
//! - [`session`]: the client state machine (QoS flows, keep alive, resend);
//! - [`topic`]: topic validation and filter matching.

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

pub mod codec;
pub mod error;
pub mod framing;
pub mod ids;
pub mod session;
pub mod topic;

pub use codec::DecodeError;
pub use error::Error;
pub use framing::{FrameError, Framer};
pub use mqttbytes::v5::{LastWill, PublishProperties, SubscribeFilter, WillProperties};
pub use mqttbytes::{v5, Protocol, QoS};
pub use session::{Event, Message, Options, Session};
