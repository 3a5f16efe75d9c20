//! The MQTTSpec wire format (see `docs/MQTTSPEC_PROTOCOL.md`), shared by
//! `mqttspec-server` and the `mqttspec-wasm` browser client. IO-free: it
//! compiles to wasm32 and only depends on serde.
//!
//! - [`message`]: the one JSON message shape.
//! - [`topic`]: topic names, `{prefix}/{client_id}/request` and so on.
//! - [`options`]: typed request options (filters, sort, paging, columns).
//! - [`filter`]: filter evaluation ([`matches`]) and row ordering
//!   ([`compare_rows`]) with the same semantics as the server's SQL.
//! - [`error`]: the error codes of failed responses.
//! - [`response`]: constructors of responses and notifications.

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

pub mod error;
pub mod filter;
pub mod message;
pub mod options;
pub mod response;
pub mod topic;

pub use error::ErrorCode;
pub use filter::{compare_rows, matches, Row};
pub use message::{ErrorBody, Message, MessageType, Operation};
pub use options::{require_filter, Direction, Filter, FilterOp, Logic, Options, Sort};
