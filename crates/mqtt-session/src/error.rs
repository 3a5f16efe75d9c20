//! Errors of the session core. Each has a stable short `code()` that the
//! drivers expose to applications (for example as `error.code` in JS).

use crate::codec::DecodeError;
use crate::framing::FrameError;
use crate::topic::TopicError;

/// What went wrong. Errors from [`crate::Session::handle_bytes`] and
/// [`crate::Session::handle_timeout`] mean the connection is unusable: the
/// driver closes it (the session keeps its in-flight table for the next one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The byte stream could not be cut into packets.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A packet could not be decoded.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The server broke the protocol (unexpected packet, unknown topic alias...).
    #[error("protocol violation by the server: {0}")]
    Protocol(&'static str),
    /// CONNACK with a failure reason code.
    #[error("connection refused by the server: {}", refusal(*.0))]
    Refused(u8),
    /// No CONNACK in time.
    #[error("no CONNACK from the server within the connect timeout")]
    ConnectTimeout,
    /// No PINGRESP in time.
    #[error(
        "no PINGRESP from the server within the keep alive interval: connection presumed dead"
    )]
    KeepaliveTimeout,
    /// The server sent DISCONNECT.
    #[error("the server closed the session (reason code {0:#04x})")]
    ServerDisconnect(u8),
    /// A topic name or filter is invalid.
    #[error("{0}")]
    Topic(#[from] TopicError),
    /// The packet is bigger than the server accepts.
    #[error("packet of {size} bytes exceeds the server's maximum packet size of {limit} bytes")]
    PacketTooLarge {
        /// Encoded size.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// Too many publishes queued while disconnected.
    #[error("offline queue is full ({0} messages): wait for the connection to come back")]
    QueueFull(usize),
    /// All 65535 packet identifiers are in use.
    #[error("all packet identifiers are in use: too many unacknowledged operations")]
    PacketIdsExhausted,
    /// A packet could not be encoded (string or payload too long).
    #[error(
        "cannot encode the packet: a string is longer than 65535 bytes or the payload is too big"
    )]
    Encode,
    /// The operation needs a session that is not ended.
    #[error("the client was ended")]
    Ended,
}

impl Error {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Frame(_) | Error::Decode(_) => "MALFORMED_PACKET",
            Error::Protocol(_) => "PROTOCOL_ERROR",
            Error::Refused(_) => "CONNECTION_REFUSED",
            Error::ConnectTimeout => "CONNECT_TIMEOUT",
            Error::KeepaliveTimeout => "KEEPALIVE_TIMEOUT",
            Error::ServerDisconnect(_) => "SERVER_DISCONNECT",
            Error::Topic(_) => "INVALID_TOPIC",
            Error::PacketTooLarge { .. } => "PACKET_TOO_LARGE",
            Error::QueueFull(_) => "QUEUE_FULL",
            Error::PacketIdsExhausted => "PACKET_IDS_EXHAUSTED",
            Error::Encode => "ENCODE_ERROR",
            Error::Ended => "ENDED",
        }
    }
}

/// Meaning of a CONNACK reason code (MQTT 5 numbering; 3.1.1 codes are mapped).
fn refusal(code: u8) -> &'static str {
    match code {
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x9F => "connection rate exceeded",
        _ => "unspecified error",
    }
}
