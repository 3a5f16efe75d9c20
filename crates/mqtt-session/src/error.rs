//! Errors of the session core. Each has a stable short `code()` that the
//! drivers expose to applications (for example as `error.code` in JS).

use crate::codec::DecodeError;
use crate::framing::FrameError;
use crate::topic::TopicError;

/// What went wrong. Errors from [`crate::Session::handle_bytes`] and
/// [`crate::Session::handle_timeout`] mean the connection is unusable: the
/// driver closes it (the session keeps its in-flight table for the next one).
///
/// The text ([`Error::message`], also its `Display`) is built without
/// `core::fmt`, which keeps the formatting machinery out of the browser
/// client's wasm.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The byte stream could not be cut into packets.
    Frame(FrameError),
    /// A packet could not be decoded.
    Decode(DecodeError),
    /// The server broke the protocol (unexpected packet, unknown topic alias...).
    Protocol(&'static str),
    /// CONNACK with a failure reason code.
    Refused(u8),
    /// No CONNACK in time.
    ConnectTimeout,
    /// No PINGRESP in time.
    KeepaliveTimeout,
    /// The server sent DISCONNECT.
    ServerDisconnect(u8),
    /// A topic name or filter is invalid.
    Topic(TopicError),
    /// The packet is bigger than the server accepts.
    PacketTooLarge {
        /// Encoded size.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// Too many publishes queued while disconnected.
    QueueFull(usize),
    /// All 65535 packet identifiers are in use.
    PacketIdsExhausted,
    /// A packet could not be encoded (string or payload too long).
    Encode,
    /// The operation needs a session that is not ended.
    Ended,
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        Error::Topic(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Frame(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Topic(e) => Some(e),
            _ => None,
        }
    }
}

/// Append `n` in decimal (no `core::fmt`).
pub(crate) fn push_decimal(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    for d in digits.iter().skip(at) {
        out.push(char::from(*d));
    }
}

/// Append `0x` and the two lowercase hex digits of `b`.
pub(crate) fn push_hex(out: &mut String, b: u8) {
    out.push_str("0x");
    for nibble in [b >> 4, b & 0xf] {
        out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
    }
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

    /// Human readable explanation (the `Display` text).
    pub fn message(&self) -> String {
        let mut m = String::new();
        match self {
            Error::Frame(e) => e.push_message(&mut m),
            Error::Decode(e) => {
                m.push_str("malformed packet from the server: ");
                m.push_str(e.reason());
            }
            Error::Protocol(what) => {
                m.push_str("protocol violation by the server: ");
                m.push_str(what);
            }
            Error::Refused(code) => {
                m.push_str("connection refused by the server: ");
                m.push_str(refusal(*code));
            }
            Error::ConnectTimeout => {
                m.push_str("no CONNACK from the server within the connect timeout")
            }
            Error::KeepaliveTimeout => m.push_str(
                "no PINGRESP from the server within the keep alive interval: connection presumed dead",
            ),
            Error::ServerDisconnect(code) => {
                m.push_str("the server closed the session (reason code ");
                push_hex(&mut m, *code);
                m.push(')');
            }
            Error::Topic(e) => m.push_str(e.message()),
            Error::PacketTooLarge { size, limit } => {
                m.push_str("packet of ");
                push_decimal(&mut m, *size);
                m.push_str(" bytes exceeds the server's maximum packet size of ");
                push_decimal(&mut m, *limit);
                m.push_str(" bytes");
            }
            Error::QueueFull(n) => {
                m.push_str("offline queue is full (");
                push_decimal(&mut m, *n);
                m.push_str(" messages): wait for the connection to come back");
            }
            Error::PacketIdsExhausted => m.push_str(
                "all packet identifiers are in use: too many unacknowledged operations",
            ),
            Error::Encode => m.push_str(
                "cannot encode the packet: a string is longer than 65535 bytes or the payload is too big",
            ),
            Error::Ended => m.push_str("the client was ended"),
        }
        m
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_what_format_would_write() {
        for n in [0usize, 7, 10, 65535, 268_435_455, usize::MAX] {
            let mut m = String::new();
            push_decimal(&mut m, n);
            assert_eq!(m, format!("{n}"));
        }
        for b in [0u8, 0x8e, 0xff] {
            let mut m = String::new();
            push_hex(&mut m, b);
            assert_eq!(m, format!("{b:#04x}"));
        }
        assert_eq!(
            Error::ServerDisconnect(0x8e).to_string(),
            "the server closed the session (reason code 0x8e)"
        );
        assert_eq!(
            Error::PacketTooLarge {
                size: 300,
                limit: 256
            }
            .to_string(),
            "packet of 300 bytes exceeds the server's maximum packet size of 256 bytes"
        );
        assert_eq!(
            Error::Decode(DecodeError::Utf8).to_string(),
            "malformed packet from the server: string is not UTF-8"
        );
    }
}
