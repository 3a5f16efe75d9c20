//! The IO-free half of the MQTTSpec client (`SpecClient` in `mqttspec-wasm`).
//!
//! - [`request`]: builds request and subscription messages.
//! - [`correlate`]: matches responses to requests by `id`, holds requests
//!   made while offline, and expires them after their timeout.
//! - [`subscriptions`]: local subscription handles and their server ids,
//!   re-established after a reconnect that lost the session.
//! - [`live`]: a sorted, filtered, limited result set kept current by
//!   notifications (what a live table widget shows).
//! - [`lifecycle`]: a whole client's state machine over the above:
//!   re-subscribes and re-reads after reconnects, retries with backoff,
//!   live queries from subscribe to close; the browser driver performs its
//!   effects.
//!
//! Time is passed in as milliseconds; nothing here reads a clock or a socket.

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

pub mod correlate;
pub mod lifecycle;
pub mod live;
pub mod request;
pub mod subscriptions;

pub use correlate::{Completion, Correlator, SpecError};
pub use lifecycle::{Answer, Effect, Lifecycle, LiveId, RetryOf, Routed};
pub use live::{LiveChange, LiveQuery};
pub use request::EntityRef;
pub use subscriptions::Subscriptions;
