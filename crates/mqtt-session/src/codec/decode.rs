//! Reading the packets a server sends. Every read is bounds-checked against
//! the packet (and properties against their declared length): malformed
//! input gives a [`DecodeError`], never a panic.

use bytes::Bytes;
use mqttbytes::v5::{self, Packet};
use mqttbytes::{Protocol, QoS};

use super::DecodeError;

type Result<T> = core::result::Result<T, DecodeError>;

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the same fields in four types.
macro_rules! ack {
    ($r:ident, $v5:ident, $kind:ident, $props:ident, $reason:ident) => {{
        let (pkid, code, props) = ack(&mut $r, $v5)?;
        Packet::$kind(v5::$kind {
            pkid,
            reason: $reason(code)?,
            properties: props.map(|p| v5::$props {
                reason_string: p.reason_string,
                user_properties: p.user_properties,
            }),
        })
    }};
}

/// Decode one whole packet (as cut by [`crate::Framer`]). Only packets a
/// server may send are decoded; the others are errors. Payloads and binary
/// properties share `frame`'s memory.
pub fn decode(frame: Bytes, protocol: Protocol) -> Result<Packet> {
    let mut r = Reader {
        buf: frame.as_ref(),
        frame: &frame,
    };
    let byte1 = r.u8()?;
    let len = r.varint()?;
    let mut r = Reader {
        buf: r.take(len)?,
        frame: &frame,
    };
    let v5 = protocol == Protocol::V5;
    Ok(match byte1 >> 4 {
        2 => Packet::ConnAck(connack(&mut r, v5)?),
        3 => Packet::Publish(publish(byte1, &mut r, v5)?),
        4 => ack!(r, v5, PubAck, PubAckProperties, puback_reason),
        5 => ack!(r, v5, PubRec, PubRecProperties, pubrec_reason),
        6 => ack!(r, v5, PubRel, PubRelProperties, pubrel_reason),
        7 => ack!(r, v5, PubComp, PubCompProperties, pubcomp_reason),
        9 => Packet::SubAck(suback(&mut r, v5)?),
        11 => Packet::UnsubAck(unsuback(&mut r, v5)?),
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(byte1, &mut r, v5)?),
        _ => return Err(DecodeError::PacketType),
    })
}

/// A cursor over a packet (or part of one) inside `frame`.
struct Reader<'a> {
    buf: &'a [u8],
    frame: &'a Bytes,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// A variable byte integer (at most 4 bytes).
    fn varint(&mut self) -> Result<usize> {
        let mut value = 0;
        for shift in [0, 7, 14, 21] {
            let b = self.u8()?;
            value |= usize::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::RemainingLength)
    }

    /// Two-byte length and that many bytes.
    fn binary(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn string(&mut self) -> Result<String> {
        core::str::from_utf8(self.binary()?)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8)
    }

    /// Binary data sharing the frame's memory.
    fn bytes(&mut self) -> Result<Bytes> {
        let data = self.binary()?;
        Ok(self.frame.slice_ref(data))
    }

    /// Whatever is left, sharing the frame's memory.
    fn rest(&mut self) -> Bytes {
        let rest = core::mem::take(&mut self.buf);
        self.frame.slice_ref(rest)
    }

    /// The properties block of an MQTT 5 packet: None when empty. Only the
    /// property identifiers in `allowed` (a bit per identifier) may appear.
    fn properties(&mut self, allowed: u64) -> Result<Option<Props>> {
        let len = self.varint()?;
        if len == 0 {
            return Ok(None);
        }
        let mut r = Reader {
            buf: self.take(len)?,
            frame: self.frame,
        };
        let mut p = Props::default();
        while !r.buf.is_empty() {
            let id = r.u8()?;
            if id >= 64 || allowed & (1 << id) == 0 {
                return Err(DecodeError::Property);
            }
            match id {
                1 => p.payload_format_indicator = Some(r.u8()?),
                2 => p.message_expiry_interval = Some(r.u32()?),
                3 => p.content_type = Some(r.string()?),
                8 => p.response_topic = Some(r.string()?),
                9 => p.correlation_data = Some(r.bytes()?),
                11 => p.subscription_identifiers.push(r.varint()?),
                17 => p.session_expiry_interval = Some(r.u32()?),
                18 => p.assigned_client_identifier = Some(r.string()?),
                19 => p.server_keep_alive = Some(r.u16()?),
                21 => p.authentication_method = Some(r.string()?),
                22 => p.authentication_data = Some(r.bytes()?),
                26 => p.response_information = Some(r.string()?),
                28 => p.server_reference = Some(r.string()?),
                31 => p.reason_string = Some(r.string()?),
                33 => p.receive_max = Some(r.u16()?),
                34 => p.topic_alias_max = Some(r.u16()?),
                35 => p.topic_alias = Some(r.u16()?),
                36 => p.max_qos = Some(r.u8()?),
                37 => p.retain_available = Some(r.u8()?),
                38 => {
                    let key = r.string()?;
                    p.user_properties.push((key, r.string()?));
                }
                39 => p.max_packet_size = Some(r.u32()?),
                40 => p.wildcard_subscription_available = Some(r.u8()?),
                41 => p.subscription_identifiers_available = Some(r.u8()?),
                42 => p.shared_subscription_available = Some(r.u8()?),
                _ => return Err(DecodeError::Property),
            }
        }
        Ok(Some(p))
    }
}

/// A bit per property identifier.
const fn ids(list: &[u8]) -> u64 {
    let mut mask = 0;
    let mut rest = list;
    while let [id, tail @ ..] = rest {
        mask |= 1 << *id;
        rest = tail;
    }
    mask
}

/// Reason string and user properties: acks, SUBACK, UNSUBACK.
const ACK_PROPS: u64 = ids(&[31, 38]);
const CONNACK_PROPS: u64 = ids(&[
    17, 33, 36, 37, 39, 18, 34, 31, 38, 40, 41, 42, 19, 26, 28, 21, 22,
]);
const PUBLISH_PROPS: u64 = ids(&[1, 2, 35, 8, 9, 38, 11, 3]);
const DISCONNECT_PROPS: u64 = ids(&[17, 31, 38, 28]);

/// Every property a server packet may carry, read by one loop whatever the
/// packet type, then moved into that packet's properties type.
#[derive(Default)]
struct Props {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Bytes>,
    subscription_identifiers: Vec<usize>,
    session_expiry_interval: Option<u32>,
    assigned_client_identifier: Option<String>,
    server_keep_alive: Option<u16>,
    authentication_method: Option<String>,
    authentication_data: Option<Bytes>,
    response_information: Option<String>,
    server_reference: Option<String>,
    reason_string: Option<String>,
    receive_max: Option<u16>,
    topic_alias_max: Option<u16>,
    topic_alias: Option<u16>,
    max_qos: Option<u8>,
    retain_available: Option<u8>,
    user_properties: Vec<(String, String)>,
    max_packet_size: Option<u32>,
    wildcard_subscription_available: Option<u8>,
    subscription_identifiers_available: Option<u8>,
    shared_subscription_available: Option<u8>,
}

fn connack(r: &mut Reader, v5: bool) -> Result<v5::ConnAck> {
    use v5::ConnectReturnCode as C;
    let session_present = r.u8()? & 1 == 1;
    let code = r.u8()?;
    let code = if v5 {
        match code {
            0 => C::Success,
            0x80 => C::UnspecifiedError,
            0x81 => C::MalformedPacket,
            0x82 => C::ProtocolError,
            0x83 => C::ImplementationSpecificError,
            0x84 => C::UnsupportedProtocolVersion,
            0x85 => C::ClientIdentifierNotValid,
            0x86 => C::BadUserNamePassword,
            0x87 => C::NotAuthorized,
            0x88 => C::ServerUnavailable,
            0x89 => C::ServerBusy,
            0x8A => C::Banned,
            0x8C => C::BadAuthenticationMethod,
            0x90 => C::TopicNameInvalid,
            0x95 => C::PacketTooLarge,
            0x97 => C::QuotaExceeded,
            0x99 => C::PayloadFormatInvalid,
            0x9A => C::RetainNotSupported,
            0x9B => C::QoSNotSupported,
            0x9C => C::UseAnotherServer,
            0x9D => C::ServerMoved,
            0x9F => C::ConnectionRateExceeded,
            _ => return Err(DecodeError::ReasonCode),
        }
    } else {
        // MQTT 3.1.1 return codes, as their MQTT 5 reason codes.
        match code {
            0 => C::Success,
            1 => C::UnsupportedProtocolVersion,
            2 => C::ClientIdentifierNotValid,
            3 => C::ServerUnavailable,
            4 => C::BadUserNamePassword,
            5 => C::NotAuthorized,
            _ => return Err(DecodeError::ReasonCode),
        }
    };
    let properties = if v5 {
        r.properties(CONNACK_PROPS)?.map(|p| v5::ConnAckProperties {
            session_expiry_interval: p.session_expiry_interval,
            receive_max: p.receive_max,
            max_qos: p.max_qos,
            retain_available: p.retain_available,
            max_packet_size: p.max_packet_size,
            assigned_client_identifier: p.assigned_client_identifier,
            topic_alias_max: p.topic_alias_max,
            reason_string: p.reason_string,
            user_properties: p.user_properties,
            wildcard_subscription_available: p.wildcard_subscription_available,
            subscription_identifiers_available: p.subscription_identifiers_available,
            shared_subscription_available: p.shared_subscription_available,
            server_keep_alive: p.server_keep_alive,
            response_information: p.response_information,
            server_reference: p.server_reference,
            authentication_method: p.authentication_method,
            authentication_data: p.authentication_data,
        })
    } else {
        None
    };
    Ok(v5::ConnAck {
        session_present,
        code,
        properties,
    })
}

fn publish(byte1: u8, r: &mut Reader, v5: bool) -> Result<v5::Publish> {
    let qos = match (byte1 >> 1) & 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return Err(DecodeError::QoS),
    };
    let topic = r.string()?;
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        match r.u16()? {
            0 => return Err(DecodeError::PacketIdZero),
            id => id,
        }
    };
    let properties = if v5 {
        r.properties(PUBLISH_PROPS)?.map(|p| v5::PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: p.topic_alias,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            subscription_identifiers: p.subscription_identifiers,
            content_type: p.content_type,
        })
    } else {
        None
    };
    Ok(v5::Publish {
        dup: byte1 & 0b1000 != 0,
        qos,
        retain: byte1 & 1 != 0,
        topic,
        pkid,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: packet identifier, then (MQTT 5) an
/// optional reason code and optional properties. 3.1.1 reads the
/// identifier only.
fn ack(r: &mut Reader, v5: bool) -> Result<(u16, u8, Option<Props>)> {
    let len = r.buf.len();
    let pkid = r.u16()?;
    if !v5 || len == 2 {
        return Ok((pkid, 0, None));
    }
    let code = r.u8()?;
    let props = if len < 4 {
        None
    } else {
        r.properties(ACK_PROPS)?
    };
    Ok((pkid, code, props))
}

/// PUBACK and PUBREC share their reason codes, as do PUBREL and PUBCOMP
/// (each in its own `mqttbytes` type).
macro_rules! reason_codes {
    ($name:ident, $ty:ident, $($code:literal => $variant:ident),+) => {
        fn $name(code: u8) -> Result<v5::$ty> {
            match code {
                $($code => Ok(v5::$ty::$variant),)+
                _ => Err(DecodeError::ReasonCode),
            }
        }
    };
}

macro_rules! publish_ack_reasons {
    ($name:ident, $ty:ident) => {
        reason_codes!($name, $ty,
            0 => Success, 0x10 => NoMatchingSubscribers, 0x80 => UnspecifiedError,
            0x83 => ImplementationSpecificError, 0x87 => NotAuthorized,
            0x90 => TopicNameInvalid, 0x91 => PacketIdentifierInUse,
            0x97 => QuotaExceeded, 0x99 => PayloadFormatInvalid);
    };
}

publish_ack_reasons!(puback_reason, PubAckReason);
publish_ack_reasons!(pubrec_reason, PubRecReason);
reason_codes!(pubrel_reason, PubRelReason, 0 => Success, 0x92 => PacketIdentifierNotFound);
reason_codes!(pubcomp_reason, PubCompReason, 0 => Success, 0x92 => PacketIdentifierNotFound);

/// SUBACK: packet identifier, (MQTT 5) properties, one code per filter.
fn suback(r: &mut Reader, v5: bool) -> Result<v5::SubAck> {
    use v5::SubscribeReasonCode as C;
    let pkid = r.u16()?;
    let properties = if v5 { r.properties(ACK_PROPS)? } else { None };
    if r.buf.is_empty() {
        return Err(DecodeError::Truncated);
    }
    let mut return_codes = Vec::with_capacity(r.buf.len());
    for &code in r.buf {
        return_codes.push(match code {
            0 => C::QoS0,
            1 => C::QoS1,
            2 => C::QoS2,
            0x80 => C::Unspecified,
            0x83 if v5 => C::ImplementationSpecific,
            0x87 if v5 => C::NotAuthorized,
            0x8F if v5 => C::TopicFilterInvalid,
            0x91 if v5 => C::PkidInUse,
            0x97 if v5 => C::QuotaExceeded,
            0x9E if v5 => C::SharedSubscriptionsNotSupported,
            0xA1 if v5 => C::SubscriptionIdNotSupported,
            0xA2 if v5 => C::WildcardSubscriptionsNotSupported,
            _ => return Err(DecodeError::ReasonCode),
        });
    }
    Ok(v5::SubAck {
        pkid,
        return_codes,
        properties: properties.map(|p| v5::SubAckProperties {
            reason_string: p.reason_string,
            user_properties: p.user_properties,
        }),
    })
}

/// UNSUBACK: packet identifier only in 3.1.1; properties and one reason
/// code per filter in MQTT 5.
fn unsuback(r: &mut Reader, v5: bool) -> Result<v5::UnsubAck> {
    use v5::UnsubAckReason as R;
    if !v5 {
        if r.buf.len() != 2 {
            return Err(DecodeError::Invalid);
        }
        return Ok(v5::UnsubAck::new(r.u16()?));
    }
    let pkid = r.u16()?;
    let properties = r.properties(ACK_PROPS)?;
    if r.buf.is_empty() {
        return Err(DecodeError::Truncated);
    }
    let mut reasons = Vec::with_capacity(r.buf.len());
    for &code in r.buf {
        reasons.push(match code {
            0 => R::Success,
            0x11 => R::NoSubscriptionExisted,
            0x80 => R::UnspecifiedError,
            0x83 => R::ImplementationSpecificError,
            0x87 => R::NotAuthorized,
            0x8F => R::TopicFilterInvalid,
            0x91 => R::PacketIdentifierInUse,
            _ => return Err(DecodeError::ReasonCode),
        });
    }
    Ok(v5::UnsubAck {
        pkid,
        reasons,
        properties: properties.map(|p| v5::UnsubAckProperties {
            reason_string: p.reason_string,
            user_properties: p.user_properties,
        }),
    })
}

/// DISCONNECT: empty in 3.1.1; in MQTT 5 an optional reason code (0 when
/// absent) and optional properties.
fn disconnect(byte1: u8, r: &mut Reader, v5: bool) -> Result<v5::Disconnect> {
    if v5 && byte1 & 0x0F != 0 {
        return Err(DecodeError::Invalid);
    }
    if !v5 || r.buf.is_empty() {
        return Ok(v5::Disconnect::new());
    }
    let reason_code = disconnect_reason(r.u8()?)?;
    let properties = if r.buf.is_empty() {
        None
    } else {
        r.properties(DISCONNECT_PROPS)?
            .map(|p| v5::DisconnectProperties {
                session_expiry_interval: p.session_expiry_interval,
                reason_string: p.reason_string,
                user_properties: p.user_properties,
                server_reference: p.server_reference,
            })
    };
    Ok(v5::Disconnect {
        reason_code,
        properties,
    })
}

fn disconnect_reason(code: u8) -> Result<v5::DisconnectReasonCode> {
    use v5::DisconnectReasonCode as D;
    Ok(match code {
        0x00 => D::NormalDisconnection,
        0x04 => D::DisconnectWithWillMessage,
        0x80 => D::UnspecifiedError,
        0x81 => D::MalformedPacket,
        0x82 => D::ProtocolError,
        0x83 => D::ImplementationSpecificError,
        0x87 => D::NotAuthorized,
        0x89 => D::ServerBusy,
        0x8B => D::ServerShuttingDown,
        0x8D => D::KeepAliveTimeout,
        0x8E => D::SessionTakenOver,
        0x8F => D::TopicFilterInvalid,
        0x90 => D::TopicNameInvalid,
        0x93 => D::ReceiveMaximumExceeded,
        0x94 => D::TopicAliasInvalid,
        0x95 => D::PacketTooLarge,
        0x96 => D::MessageRateTooHigh,
        0x97 => D::QuotaExceeded,
        0x98 => D::AdministrativeAction,
        0x99 => D::PayloadFormatInvalid,
        0x9A => D::RetainNotSupported,
        0x9B => D::QoSNotSupported,
        0x9C => D::UseAnotherServer,
        0x9D => D::ServerMoved,
        0x9E => D::SharedSubscriptionNotSupported,
        0x9F => D::ConnectionRateExceeded,
        0xA0 => D::MaximumConnectTime,
        0xA1 => D::SubscriptionIdentifiersNotSupported,
        0xA2 => D::WildcardSubscriptionsNotSupported,
        _ => return Err(DecodeError::ReasonCode),
    })
}
