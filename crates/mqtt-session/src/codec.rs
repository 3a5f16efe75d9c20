//! The wire format: MQTT 3.1.1 and MQTT 5 packets encoded and decoded with
//! `mqttbytes`. The session works on the MQTT 5 packet types (a superset);
//! for 3.1.1 this module converts at the boundary, so the rest of the crate
//! has one representation.

use bytes::{Bytes, BytesMut};
use mqttbytes::{v4, v5, FixedHeader, PacketType, Protocol, QoS};

/// Why received bytes are not a valid packet; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub mqttbytes::Error);

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed packet from the server: ")?;
        f.write_str(describe(self.0))
    }
}

impl std::error::Error for DecodeError {}

/// Short explanation of an `mqttbytes` error.
fn describe(e: mqttbytes::Error) -> &'static str {
    use mqttbytes::Error as E;
    match e {
        E::InsufficientBytes(_) | E::MalformedPacket | E::BoundaryCrossed(_) => {
            "truncated or inconsistent lengths"
        }
        E::MalformedRemainingLength => "bad remaining length",
        E::PayloadSizeLimitExceeded(_) => "packet exceeds the maximum packet size",
        E::InvalidPacketType(_) | E::NotConnect(_) | E::UnexpectedConnect => {
            "unexpected packet type"
        }
        E::InvalidQoS(_) => "invalid QoS",
        E::InvalidPropertyType(_) => "unknown property",
        E::TopicNotUtf8 => "string is not UTF-8",
        E::PacketIdZero => "packet identifier 0",
        E::InvalidConnectReturnCode(_) | E::InvalidReason(_) | E::InvalidSubscribeReasonCode(_) => {
            "unknown reason code"
        }
        _ => "invalid packet",
    }
}

/// Encode one client-to-server packet.
pub(crate) fn encode(packet: &v5::Packet, protocol: Protocol) -> Result<Bytes, mqttbytes::Error> {
    let mut buf = BytesMut::new();
    match protocol {
        Protocol::V5 => encode_v5(packet, &mut buf)?,
        Protocol::V4 => encode_v4(packet, &mut buf)?,
    };
    Ok(buf.freeze())
}

fn encode_v5(packet: &v5::Packet, buf: &mut BytesMut) -> Result<usize, mqttbytes::Error> {
    use v5::Packet as P;
    match packet {
        P::Connect(p) => p.write(buf),
        P::Publish(p) => p.write(buf),
        P::Subscribe(p) => p.write(buf),
        P::Unsubscribe(p) => p.write(buf),
        // The client sends acks and DISCONNECT with reason "success" and no
        // properties, whose MQTT 5 encoding is byte for byte the 3.1.1 one:
        // sharing the 3.1.1 writers keeps the wasm smaller.
        _ => encode_v4(packet, buf),
    }
}

fn encode_v4(packet: &v5::Packet, buf: &mut BytesMut) -> Result<usize, mqttbytes::Error> {
    use v5::Packet as P;
    match packet {
        P::Connect(c) => v4::Connect {
            protocol: Protocol::V4,
            keep_alive: c.keep_alive,
            client_id: c.client_id.clone(),
            clean_session: c.clean_session,
            last_will: c.last_will.as_ref().map(|w| v4::LastWill {
                topic: w.topic.clone(),
                message: w.message.clone(),
                qos: w.qos,
                retain: w.retain,
            }),
            login: c
                .login
                .as_ref()
                .map(|l| v4::Login::new(l.username.as_str(), l.password.as_str())),
        }
        .write(buf),
        P::Publish(p) => v4::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic.clone(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }
        .write(buf),
        P::PubAck(p) => v4::PubAck::new(p.pkid).write(buf),
        P::PubRec(p) => v4::PubRec::new(p.pkid).write(buf),
        P::PubRel(p) => v4::PubRel::new(p.pkid).write(buf),
        P::PubComp(p) => v4::PubComp::new(p.pkid).write(buf),
        P::Subscribe(s) => v4::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .iter()
                .map(|f| v4::SubscribeFilter::new(f.path.clone(), f.qos))
                .collect(),
        }
        .write(buf),
        P::Unsubscribe(u) => v4::Unsubscribe {
            pkid: u.pkid,
            topics: u.filters.clone(),
        }
        .write(buf),
        P::PingReq => v4::PingReq.write(buf),
        P::Disconnect(_) => v4::Disconnect.write(buf),
        _ => Err(mqttbytes::Error::InvalidPacketType(0)),
    }
}

/// Decode one whole packet (as cut by [`crate::Framer`]). Only packets a
/// server may send are decoded; the others are errors.
pub(crate) fn decode(frame: Bytes, protocol: Protocol) -> Result<v5::Packet, DecodeError> {
    // A DISCONNECT without reason code is legal in MQTT 5 (reason 0) but
    // mqttbytes refuses an empty v5 DISCONNECT body...
    // Likewise a reason code without properties (as mosquitto sends it).
    match frame.as_ref() {
        [0xE0, 0x00] => return Ok(v5::Packet::Disconnect(v5::Disconnect::new())),
        [0xE0, 0x01, code] if protocol == Protocol::V5 => {
            let mut d = v5::Disconnect::new();
            d.reason_code = v5::DisconnectReasonCode::try_from(*code).map_err(DecodeError)?;
            return Ok(v5::Packet::Disconnect(d));
        }
        _ => {}
    }
    let header = mqttbytes::check(frame.iter(), frame.len()).map_err(DecodeError)?;
    let kind = header.packet_type().map_err(DecodeError)?;
    match protocol {
        Protocol::V5 => decode_v5(kind, header, frame),
        Protocol::V4 => decode_v4(kind, header, frame),
    }
    .map_err(DecodeError)
}

fn decode_v5(
    kind: PacketType,
    header: FixedHeader,
    frame: Bytes,
) -> Result<v5::Packet, mqttbytes::Error> {
    use v5::Packet as P;
    Ok(match kind {
        PacketType::ConnAck => P::ConnAck(v5::ConnAck::read(header, frame)?),
        PacketType::Publish => P::Publish(v5::Publish::read(header, frame)?),
        PacketType::PubAck => P::PubAck(v5::PubAck::read(header, frame)?),
        PacketType::PubRec => P::PubRec(v5::PubRec::read(header, frame)?),
        PacketType::PubRel => P::PubRel(v5::PubRel::read(header, frame)?),
        PacketType::PubComp => P::PubComp(v5::PubComp::read(header, frame)?),
        PacketType::SubAck => P::SubAck(v5::SubAck::read(header, frame)?),
        PacketType::UnsubAck => P::UnsubAck(v5::UnsubAck::read(header, frame)?),
        PacketType::PingResp => P::PingResp,
        PacketType::Disconnect => P::Disconnect(v5::Disconnect::read(header, frame)?),
        other => return Err(mqttbytes::Error::InvalidPacketType(other as u8)),
    })
}

/// A server-to-client 3.1.1 packet, expressed in the MQTT 5 types.
fn decode_v4(
    kind: PacketType,
    header: FixedHeader,
    frame: Bytes,
) -> Result<v5::Packet, mqttbytes::Error> {
    use v5::Packet as P;
    Ok(match kind {
        PacketType::ConnAck => {
            let c = v4::ConnAck::read(header, frame)?;
            P::ConnAck(v5::ConnAck {
                session_present: c.session_present,
                code: connack_code(c.code),
                properties: None,
            })
        }
        PacketType::Publish => {
            let p = v4::Publish::read(header, frame)?;
            P::Publish(v5::Publish {
                dup: p.dup,
                qos: p.qos,
                retain: p.retain,
                topic: p.topic,
                pkid: p.pkid,
                properties: None,
                payload: p.payload,
            })
        }
        PacketType::PubAck => P::PubAck(v5::PubAck::new(v4::PubAck::read(header, frame)?.pkid)),
        PacketType::PubRec => P::PubRec(v5::PubRec::new(v4::PubRec::read(header, frame)?.pkid)),
        PacketType::PubRel => P::PubRel(v5::PubRel::new(v4::PubRel::read(header, frame)?.pkid)),
        PacketType::PubComp => P::PubComp(v5::PubComp::new(v4::PubComp::read(header, frame)?.pkid)),
        PacketType::SubAck => {
            let s = v4::SubAck::read(header, frame)?;
            let codes = s.return_codes.into_iter().map(|c| match c {
                v4::SubscribeReasonCode::Success(QoS::AtMostOnce) => v5::SubscribeReasonCode::QoS0,
                v4::SubscribeReasonCode::Success(QoS::AtLeastOnce) => v5::SubscribeReasonCode::QoS1,
                v4::SubscribeReasonCode::Success(QoS::ExactlyOnce) => v5::SubscribeReasonCode::QoS2,
                v4::SubscribeReasonCode::Failure => v5::SubscribeReasonCode::Unspecified,
            });
            P::SubAck(v5::SubAck::new(s.pkid, codes.collect()))
        }
        PacketType::UnsubAck => {
            P::UnsubAck(v5::UnsubAck::new(v4::UnsubAck::read(header, frame)?.pkid))
        }
        PacketType::PingResp => P::PingResp,
        PacketType::Disconnect => P::Disconnect(v5::Disconnect::new()),
        other => return Err(mqttbytes::Error::InvalidPacketType(other as u8)),
    })
}

/// MQTT 3.1.1 CONNACK return codes mapped to their MQTT 5 reason codes.
fn connack_code(code: v4::ConnectReturnCode) -> v5::ConnectReturnCode {
    use v4::ConnectReturnCode as A;
    use v5::ConnectReturnCode as B;
    match code {
        A::Success => B::Success,
        A::RefusedProtocolVersion => B::UnsupportedProtocolVersion,
        A::BadClientId => B::ClientIdentifierNotValid,
        A::ServiceUnavailable => B::ServerUnavailable,
        A::BadUserNamePassword => B::BadUserNamePassword,
        A::NotAuthorized => B::NotAuthorized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_disconnect_match_the_mqtt5_encoding() {
        let packets = [
            v5::Packet::PubAck(v5::PubAck::new(7)),
            v5::Packet::PubRec(v5::PubRec::new(8)),
            v5::Packet::PubRel(v5::PubRel::new(9)),
            v5::Packet::PubComp(v5::PubComp::new(10)),
            v5::Packet::PingReq,
            v5::Packet::Disconnect(v5::Disconnect::new()),
        ];
        for p in packets {
            let mut reference = BytesMut::new();
            match &p {
                v5::Packet::PubAck(x) => x.write(&mut reference),
                v5::Packet::PubRec(x) => x.write(&mut reference),
                v5::Packet::PubRel(x) => x.write(&mut reference),
                v5::Packet::PubComp(x) => x.write(&mut reference),
                v5::Packet::PingReq => v5::PingReq.write(&mut reference),
                v5::Packet::Disconnect(x) => x.write(&mut reference),
                _ => unreachable!(),
            }
            .unwrap();
            let ours = encode(&p, Protocol::V5).unwrap();
            assert_eq!(&ours[..], &reference[..], "{p:?}");
            // And the session can read them back as a server would.
            assert!(decode(ours, Protocol::V5).is_ok() || matches!(p, v5::Packet::PingReq));
        }
    }
}
