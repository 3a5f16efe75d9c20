//! The wire format: MQTT 3.1.1 and MQTT 5, written for the client side only.
//! [`encode`] writes the packets a client sends (CONNECT, PUBLISH, the
//! publish acks, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) and [`decode`]
//! reads the packets a server sends (CONNACK, PUBLISH, the publish acks,
//! SUBACK, UNSUBACK, PINGRESP, DISCONNECT), with their MQTT 5 properties.
//!
//! The data model is `mqttbytes`' MQTT 5 types (a superset of 3.1.1; 3.1.1
//! packets are expressed in them), but none of its readers and writers is
//! linked: they held both directions of every packet of both versions and
//! were the largest part of the browser client's wasm. One property reader
//! serves every packet type. `tests/codec.rs` checks both directions
//! against `mqttbytes` (byte-identical encodings, same decoded values).

mod decode;
mod encode;

pub use decode::decode;
pub use encode::{encode, EncodeError};

/// Why received bytes are not a valid packet; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A field or a length points past the end of the packet.
    Truncated,
    /// A variable byte integer longer than 4 bytes.
    RemainingLength,
    /// A packet type a server does not send.
    PacketType,
    /// QoS 3 in a PUBLISH.
    QoS,
    /// A property unknown or not allowed in this packet.
    Property,
    /// A string that is not UTF-8.
    Utf8,
    /// A QoS 1/2 PUBLISH with packet identifier 0.
    PacketIdZero,
    /// A reason or return code the protocol does not define.
    ReasonCode,
    /// Any other violation of the packet format.
    Invalid,
}

impl DecodeError {
    /// Short explanation, for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated or inconsistent lengths",
            DecodeError::RemainingLength => "bad remaining length",
            DecodeError::PacketType => "unexpected packet type",
            DecodeError::QoS => "invalid QoS",
            DecodeError::Property => "unknown property",
            DecodeError::Utf8 => "string is not UTF-8",
            DecodeError::PacketIdZero => "packet identifier 0",
            DecodeError::ReasonCode => "unknown reason code",
            DecodeError::Invalid => "invalid packet",
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed packet from the server: ")?;
        f.write_str(self.reason())
    }
}

impl std::error::Error for DecodeError {}

/// The largest value of a variable byte integer (remaining length, property
/// length, subscription identifier): 256 MiB - 1.
pub const MAX_VARINT: usize = 268_435_455;
