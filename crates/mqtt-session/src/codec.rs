//! The wire format: MQTT 3.1.1 and MQTT 5 packets encoded and decoded with
//! `mqttbytes`. The session works on the MQTT 5 packet types (a superset);
//! for 3.1.1 this module converts at the boundary, so the rest of the crate
//! has one representation.

use bytes::{Bytes, BytesMut};
use mqttbytes::{v4, v5, Protocol, QoS};

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
        P::PubAck(p) => p.write(buf),
        P::PubRec(p) => p.write(buf),
        P::PubRel(p) => p.write(buf),
        P::PubComp(p) => p.write(buf),
        P::Subscribe(p) => p.write(buf),
        P::Unsubscribe(p) => p.write(buf),
        P::PingReq => v5::PingReq.write(buf),
        P::Disconnect(p) => p.write(buf),
        _ => Err(mqttbytes::Error::InvalidPacketType(0)),
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

/// Decode one whole packet (as cut by [`crate::Framer`]).
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
    let max = frame.len();
    let mut buf = BytesMut::from(frame.as_ref());
    let packet = match protocol {
        Protocol::V5 => v5::read(&mut buf, max),
        Protocol::V4 => v4::read(&mut buf, max).and_then(upgrade),
    };
    packet.map_err(DecodeError)
}

/// A server-to-client 3.1.1 packet expressed in the MQTT 5 types.
fn upgrade(packet: v4::Packet) -> Result<v5::Packet, mqttbytes::Error> {
    use v4::Packet as P;
    use v5::Packet as Q;
    Ok(match packet {
        P::ConnAck(c) => Q::ConnAck(v5::ConnAck {
            session_present: c.session_present,
            code: connack_code(c.code),
            properties: None,
        }),
        P::Publish(p) => Q::Publish(v5::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            properties: None,
            payload: p.payload,
        }),
        P::PubAck(p) => Q::PubAck(v5::PubAck::new(p.pkid)),
        P::PubRec(p) => Q::PubRec(v5::PubRec::new(p.pkid)),
        P::PubRel(p) => Q::PubRel(v5::PubRel::new(p.pkid)),
        P::PubComp(p) => Q::PubComp(v5::PubComp::new(p.pkid)),
        P::SubAck(s) => Q::SubAck(v5::SubAck::new(
            s.pkid,
            s.return_codes
                .into_iter()
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(QoS::AtMostOnce) => {
                        v5::SubscribeReasonCode::QoS0
                    }
                    v4::SubscribeReasonCode::Success(QoS::AtLeastOnce) => {
                        v5::SubscribeReasonCode::QoS1
                    }
                    v4::SubscribeReasonCode::Success(QoS::ExactlyOnce) => {
                        v5::SubscribeReasonCode::QoS2
                    }
                    v4::SubscribeReasonCode::Failure => v5::SubscribeReasonCode::Unspecified,
                })
                .collect(),
        )),
        P::UnsubAck(u) => Q::UnsubAck(v5::UnsubAck::new(u.pkid)),
        P::PingResp => Q::PingResp,
        P::PingReq => return Err(mqttbytes::Error::InvalidPacketType(12)),
        P::Disconnect => Q::Disconnect(v5::Disconnect::new()),
        P::Connect(_) => return Err(mqttbytes::Error::UnexpectedConnect),
        P::Subscribe(_) => return Err(mqttbytes::Error::InvalidPacketType(8)),
        P::Unsubscribe(_) => return Err(mqttbytes::Error::InvalidPacketType(10)),
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
