//! The hand-written client codec against `mqttbytes` (differential tests):
//! - every client packet encodes to the bytes `mqttbytes` writes for it
//!   (MQTT 5 and 3.1.1), and `mqttbytes` reads them back as the same packet;
//! - every server packet `mqttbytes` writes decodes to what `mqttbytes`
//!   reads from it;
//! - arbitrary and mutated bytes never panic, and whatever the codec accepts
//!   `mqttbytes` accepts too, with the same value.
//!
//! `reference_encode` / `reference_decode` are the `mqttbytes`-based codec
//! the crate used before (kept here as the oracle).

use bytes::{Bytes, BytesMut};
use mqtt_session::codec::{decode, encode, EncodeError};
use mqtt_session::{v5, Framer, Protocol, QoS};
use mqttbytes::v4;
use proptest::prelude::*;
use v5::Packet as P;

const BOTH: [Protocol; 2] = [Protocol::V4, Protocol::V5];

fn reference_encode(packet: &P, protocol: Protocol) -> Result<Bytes, mqttbytes::Error> {
    let mut buf = BytesMut::new();
    match (protocol, packet) {
        (Protocol::V5, P::Connect(p)) => p.write(&mut buf),
        (Protocol::V5, P::Publish(p)) => p.write(&mut buf),
        (Protocol::V5, P::Subscribe(p)) => p.write(&mut buf),
        (Protocol::V5, P::Unsubscribe(p)) => p.write(&mut buf),
        (_, P::Connect(c)) => v4::Connect {
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
        .write(&mut buf),
        (_, P::Publish(p)) => v4::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic.clone(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }
        .write(&mut buf),
        (_, P::PubAck(p)) => v4::PubAck::new(p.pkid).write(&mut buf),
        (_, P::PubRec(p)) => v4::PubRec::new(p.pkid).write(&mut buf),
        (_, P::PubRel(p)) => v4::PubRel::new(p.pkid).write(&mut buf),
        (_, P::PubComp(p)) => v4::PubComp::new(p.pkid).write(&mut buf),
        (_, P::Subscribe(s)) => v4::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .iter()
                .map(|f| v4::SubscribeFilter::new(f.path.clone(), f.qos))
                .collect(),
        }
        .write(&mut buf),
        (_, P::Unsubscribe(u)) => v4::Unsubscribe {
            pkid: u.pkid,
            topics: u.filters.clone(),
        }
        .write(&mut buf),
        (_, P::PingReq) => v4::PingReq.write(&mut buf),
        (_, P::Disconnect(_)) => v4::Disconnect.write(&mut buf),
        _ => Err(mqttbytes::Error::InvalidPacketType(0)),
    }?;
    Ok(buf.freeze())
}

fn reference_decode(frame: Bytes, protocol: Protocol) -> Result<P, mqttbytes::Error> {
    use mqttbytes::PacketType as T;
    match frame.as_ref() {
        [0xE0, 0x00] => return Ok(P::Disconnect(v5::Disconnect::new())),
        [0xE0, 0x01, code] if protocol == Protocol::V5 => {
            let mut d = v5::Disconnect::new();
            d.reason_code = v5::DisconnectReasonCode::try_from(*code)?;
            return Ok(P::Disconnect(d));
        }
        _ => {}
    }
    let h = mqttbytes::check(frame.iter(), frame.len())?;
    let kind = h.packet_type()?;
    if protocol == Protocol::V5 {
        return Ok(match kind {
            T::ConnAck => P::ConnAck(v5::ConnAck::read(h, frame)?),
            T::Publish => P::Publish(v5::Publish::read(h, frame)?),
            T::PubAck => P::PubAck(v5::PubAck::read(h, frame)?),
            T::PubRec => P::PubRec(v5::PubRec::read(h, frame)?),
            T::PubRel => P::PubRel(v5::PubRel::read(h, frame)?),
            T::PubComp => P::PubComp(v5::PubComp::read(h, frame)?),
            T::SubAck => P::SubAck(v5::SubAck::read(h, frame)?),
            T::UnsubAck => P::UnsubAck(v5::UnsubAck::read(h, frame)?),
            T::PingResp => P::PingResp,
            T::Disconnect => P::Disconnect(v5::Disconnect::read(h, frame)?),
            other => return Err(mqttbytes::Error::InvalidPacketType(other as u8)),
        });
    }
    Ok(match kind {
        T::ConnAck => {
            use v4::ConnectReturnCode as A;
            use v5::ConnectReturnCode as B;
            let c = v4::ConnAck::read(h, frame)?;
            P::ConnAck(v5::ConnAck {
                session_present: c.session_present,
                code: match c.code {
                    A::Success => B::Success,
                    A::RefusedProtocolVersion => B::UnsupportedProtocolVersion,
                    A::BadClientId => B::ClientIdentifierNotValid,
                    A::ServiceUnavailable => B::ServerUnavailable,
                    A::BadUserNamePassword => B::BadUserNamePassword,
                    A::NotAuthorized => B::NotAuthorized,
                },
                properties: None,
            })
        }
        T::Publish => {
            let p = v4::Publish::read(h, frame)?;
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
        T::PubAck => P::PubAck(v5::PubAck::new(v4::PubAck::read(h, frame)?.pkid)),
        T::PubRec => P::PubRec(v5::PubRec::new(v4::PubRec::read(h, frame)?.pkid)),
        T::PubRel => P::PubRel(v5::PubRel::new(v4::PubRel::read(h, frame)?.pkid)),
        T::PubComp => P::PubComp(v5::PubComp::new(v4::PubComp::read(h, frame)?.pkid)),
        T::SubAck => {
            let s = v4::SubAck::read(h, frame)?;
            let codes = s.return_codes.into_iter().map(|c| match c {
                v4::SubscribeReasonCode::Success(QoS::AtMostOnce) => v5::SubscribeReasonCode::QoS0,
                v4::SubscribeReasonCode::Success(QoS::AtLeastOnce) => v5::SubscribeReasonCode::QoS1,
                v4::SubscribeReasonCode::Success(QoS::ExactlyOnce) => v5::SubscribeReasonCode::QoS2,
                v4::SubscribeReasonCode::Failure => v5::SubscribeReasonCode::Unspecified,
            });
            P::SubAck(v5::SubAck::new(s.pkid, codes.collect()))
        }
        T::UnsubAck => P::UnsubAck(v5::UnsubAck::new(v4::UnsubAck::read(h, frame)?.pkid)),
        T::PingResp => P::PingResp,
        T::Disconnect => P::Disconnect(v5::Disconnect::new()),
        other => return Err(mqttbytes::Error::InvalidPacketType(other as u8)),
    })
}

// ---- strategies -----------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,8}"
}

fn data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn user() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((text(), text()), 0..3)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn varint() -> impl Strategy<Value = usize> {
    prop_oneof![1..128usize, 1..268_435_456usize]
}

fn reason_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn publish_properties() -> impl Strategy<Value = v5::PublishProperties> {
    (
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(text()),
        proptest::option::of(data()),
        user(),
        proptest::collection::vec(varint(), 0..3),
        proptest::option::of(text()),
    )
        .prop_map(
            |(pfi, mei, alias, rt, cd, up, ids, ct)| v5::PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                topic_alias: alias,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
                subscription_identifiers: ids,
                content_type: ct,
            },
        )
}

fn publish() -> impl Strategy<Value = v5::Publish> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        text(),
        pkid(),
        proptest::option::of(publish_properties()),
        data(),
    )
        .prop_map(
            |(dup, qos, retain, topic, pkid, properties, payload)| v5::Publish {
                dup,
                qos,
                retain,
                topic,
                pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
                properties,
                payload,
            },
        )
}

fn connect() -> impl Strategy<Value = v5::Connect> {
    let will_props = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(data()),
        user(),
    )
        .prop_map(|(d, pfi, mei, ct, rt, cd, up)| v5::WillProperties {
            delay_interval: d,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        });
    let will = (
        text(),
        data(),
        qos(),
        any::<bool>(),
        proptest::option::of(will_props),
    )
        .prop_map(|(topic, message, qos, retain, properties)| v5::LastWill {
            topic,
            message,
            qos,
            retain,
            properties,
        });
    let props = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
        user(),
        proptest::option::of(text()),
        proptest::option::of(data()),
    )
        .prop_map(
            |(se, rm, mps, tam, rri, rpi, up, am, ad)| v5::ConnectProperties {
                session_expiry_interval: se,
                receive_maximum: rm,
                max_packet_size: mps,
                topic_alias_max: tam,
                request_response_info: rri,
                request_problem_info: rpi,
                user_properties: up,
                authentication_method: am,
                authentication_data: ad,
            },
        );
    (
        any::<u16>(),
        text(),
        any::<bool>(),
        proptest::option::of(will),
        proptest::option::of((text(), text())),
        proptest::option::of(props),
    )
        .prop_map(
            |(keep_alive, client_id, clean_session, last_will, login, properties)| v5::Connect {
                protocol: Protocol::V5,
                keep_alive,
                client_id,
                clean_session,
                last_will,
                login: login.map(|(u, p)| v5::Login::new(u, p)),
                properties,
            },
        )
}

fn client_packet() -> impl Strategy<Value = P> {
    let rule = prop_oneof![
        Just(v5::RetainForwardRule::OnEverySubscribe),
        Just(v5::RetainForwardRule::OnNewSubscribe),
        Just(v5::RetainForwardRule::Never),
    ];
    let filter = (text(), qos(), any::<bool>(), any::<bool>(), rule).prop_map(
        |(path, qos, nolocal, preserve_retain, retain_forward_rule)| v5::SubscribeFilter {
            path,
            qos,
            nolocal,
            preserve_retain,
            retain_forward_rule,
        },
    );
    let subscribe = (
        pkid(),
        proptest::collection::vec(filter, 0..4),
        proptest::option::of((proptest::option::of(varint()), user())),
    )
        .prop_map(|(pkid, filters, props)| {
            P::Subscribe(v5::Subscribe {
                pkid,
                filters,
                properties: props.map(|(id, user_properties)| v5::SubscribeProperties {
                    id,
                    user_properties,
                }),
            })
        });
    let unsubscribe = (
        pkid(),
        proptest::collection::vec(text(), 0..4),
        proptest::option::of(user()),
    )
        .prop_map(|(pkid, filters, props)| {
            P::Unsubscribe(v5::Unsubscribe {
                pkid,
                filters,
                properties: props
                    .map(|user_properties| v5::UnsubscribeProperties { user_properties }),
            })
        });
    prop_oneof![
        connect().prop_map(P::Connect),
        publish().prop_map(P::Publish),
        pkid().prop_map(|id| P::PubAck(v5::PubAck::new(id))),
        pkid().prop_map(|id| P::PubRec(v5::PubRec::new(id))),
        pkid().prop_map(|id| P::PubRel(v5::PubRel::new(id))),
        pkid().prop_map(|id| P::PubComp(v5::PubComp::new(id))),
        subscribe,
        unsubscribe,
        Just(P::PingReq),
        Just(P::Disconnect(v5::Disconnect::new())),
    ]
}

/// A server packet written by `mqttbytes` for `protocol`.
fn server_bytes(protocol: Protocol) -> BoxedStrategy<Vec<u8>> {
    fn write(f: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> Vec<u8> {
        let mut b = BytesMut::new();
        f(&mut b).unwrap();
        b.to_vec()
    }
    let ack_props = (reason_string(), user());
    if protocol == Protocol::V4 {
        let code = prop_oneof![
            qos().prop_map(v4::SubscribeReasonCode::Success),
            Just(v4::SubscribeReasonCode::Failure)
        ];
        return prop_oneof![
            // Return codes 6 and 7 are undefined: refused by both.
            (0..8u8, any::<bool>()).prop_map(|(code, sp)| vec![0x20, 2, u8::from(sp), code]),
            publish().prop_map(|p| write(|b| v4::Publish {
                dup: p.dup,
                qos: p.qos,
                retain: p.retain,
                topic: p.topic,
                pkid: p.pkid,
                payload: p.payload,
            }
            .write(b))),
            pkid().prop_map(|id| write(|b| v4::PubAck::new(id).write(b))),
            pkid().prop_map(|id| write(|b| v4::PubRec::new(id).write(b))),
            pkid().prop_map(|id| write(|b| v4::PubRel::new(id).write(b))),
            pkid().prop_map(|id| write(|b| v4::PubComp::new(id).write(b))),
            (pkid(), proptest::collection::vec(code, 0..4))
                .prop_map(|(id, codes)| write(|b| v4::SubAck::new(id, codes).write(b))),
            pkid().prop_map(|id| write(|b| v4::UnsubAck::new(id).write(b))),
            Just(vec![0xD0, 0]),
            Just(vec![0xE0, 0]),
        ]
        .boxed();
    }
    let connack_props = (
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(text()),
            proptest::option::of(any::<u16>()),
            reason_string(),
            user(),
        ),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(data()),
        ),
    )
        .prop_map(
            |((se, rm, mq, ra, mps, aci, tam, rs, up), (w, si, ss, ska, ri, sr, am, ad))| {
                v5::ConnAckProperties {
                    session_expiry_interval: se,
                    receive_max: rm,
                    max_qos: mq,
                    retain_available: ra,
                    max_packet_size: mps,
                    assigned_client_identifier: aci,
                    topic_alias_max: tam,
                    reason_string: rs,
                    user_properties: up,
                    wildcard_subscription_available: w,
                    subscription_identifiers_available: si,
                    shared_subscription_available: ss,
                    server_keep_alive: ska,
                    response_information: ri,
                    server_reference: sr,
                    authentication_method: am,
                    authentication_data: ad,
                }
            },
        );
    let connack_code = prop_oneof![Just(0u8), 0x80..=0x9Fu8];
    let subscribe_code = prop_oneof![0..3u8, 0x80..=0xA2u8];
    let unsubscribe_code = prop_oneof![Just(0u8), Just(0x11u8), 0x80..=0x91u8];
    let disconnect_props = (
        proptest::option::of(any::<u32>()),
        reason_string(),
        user(),
        proptest::option::of(text()),
    )
        .prop_map(|(se, rs, up, sr)| v5::DisconnectProperties {
            session_expiry_interval: se,
            reason_string: rs,
            user_properties: up,
            server_reference: sr,
        });
    prop_oneof![
        (any::<bool>(), connack_code, connack_props).prop_map(|(sp, code, props)| {
            // The code is patched in after writing, so that undefined codes are tried too.
            let mut bytes = write(|b| {
                let mut ack = v5::ConnAck::new(v5::ConnectReturnCode::Success, sp);
                ack.properties = Some(props);
                ack.write(b)
            });
            let at = header_len(&bytes) + 1;
            bytes[at] = code;
            bytes
        }),
        publish().prop_map(|p| write(|b| p.write(b))),
        (0..4u8, pkid(), any::<u8>(), proptest::option::of(ack_props)).prop_map(
            |(kind, id, code, props)| {
                let mut bytes = write(|b| {
                    let (reason_string, user_properties) = props.clone().unwrap_or_default();
                    let mut ack = v5::PubAck::new(id);
                    ack.reason = v5::PubAckReason::UnspecifiedError;
                    ack.properties = props.is_some().then_some(v5::PubAckProperties {
                        reason_string,
                        user_properties,
                    });
                    ack.write(b)
                });
                bytes[0] = 0x40 + (kind << 4) + if kind == 2 { 2 } else { 0 };
                let at = header_len(&bytes) + 2;
                bytes[at] = code;
                if code == 0 && props.is_none() {
                    bytes.truncate(4);
                    bytes[1] = 2;
                }
                bytes
            }
        ),
        (
            pkid(),
            proptest::collection::vec(subscribe_code, 0..4),
            proptest::option::of((reason_string(), user()))
        )
            .prop_map(|(id, codes, props)| {
                let bytes = write(|b| {
                    let mut ack =
                        v5::SubAck::new(id, vec![v5::SubscribeReasonCode::QoS0; codes.len()]);
                    ack.properties =
                        props.map(|(reason_string, user_properties)| v5::SubAckProperties {
                            reason_string,
                            user_properties,
                        });
                    ack.write(b)
                });
                with_codes_at_end(bytes, &codes)
            }),
        (
            pkid(),
            proptest::collection::vec(unsubscribe_code, 0..4),
            proptest::option::of((reason_string(), user()))
        )
            .prop_map(|(id, codes, props)| {
                let bytes = write(|b| {
                    let mut ack = v5::UnsubAck::new(id);
                    ack.reasons = vec![v5::UnsubAckReason::Success; codes.len()];
                    ack.properties =
                        props.map(|(reason_string, user_properties)| v5::UnsubAckProperties {
                            reason_string,
                            user_properties,
                        });
                    ack.write(b)
                });
                with_codes_at_end(bytes, &codes)
            }),
        Just(vec![0xD0, 0]),
        (
            prop_oneof![Just(0u8), Just(4u8), 0x80..=0xA2u8],
            proptest::option::of(disconnect_props)
        )
            .prop_map(|(code, props)| {
                let mut bytes = write(|b| {
                    let mut d = v5::Disconnect::new();
                    d.reason_code = v5::DisconnectReasonCode::UnspecifiedError;
                    d.properties = props;
                    d.write(b)
                });
                // (mqttbytes writes empty properties as a bare [0xE0, 0].)
                let at = header_len(&bytes);
                if let Some(b) = bytes.get_mut(at) {
                    *b = code;
                }
                bytes
            }),
    ]
    .boxed()
}

/// `bytes` (an ack written with placeholder reason codes, which end it) with
/// its reason codes replaced by `codes`.
fn with_codes_at_end(mut bytes: Vec<u8>, codes: &[u8]) -> Vec<u8> {
    let start = bytes.len() - codes.len();
    bytes[start..].copy_from_slice(codes);
    bytes
}

/// Type byte and remaining length of a packet written by `mqttbytes`.
fn header_len(bytes: &[u8]) -> usize {
    1 + bytes[1..].iter().take_while(|b| **b & 0x80 != 0).count() + 1
}

/// Whatever our decoder accepts, `mqttbytes` accepts with the same value.
fn check_frame(frame: Bytes, protocol: Protocol) {
    if let Ok(ours) = decode(frame.clone(), protocol) {
        let reference = reference_decode(frame.clone(), protocol);
        assert_eq!(Ok(&ours), reference.as_ref(), "{frame:?}");
    }
}

proptest! {
    #[test]
    fn client_packets_encode_as_mqttbytes_writes_them(p in client_packet()) {
        for protocol in BOTH {
            let ours = encode(&p, protocol).unwrap();
            prop_assert_eq!(&ours, &reference_encode(&p, protocol).unwrap());
            // And mqttbytes reads them back as a server would (it refuses
            // an empty DISCONNECT, which the specifications allow).
            if matches!(p, P::Disconnect(_)) {
                continue;
            }
            let mut b = BytesMut::from(ours.as_ref());
            let len = b.len();
            if protocol == Protocol::V5 {
                prop_assert_eq!(v5::read(&mut b, len).unwrap(), normalize(p.clone()));
            } else {
                v4::read(&mut b, len).unwrap();
            }
        }
    }

    #[test]
    fn server_packets_v5_decode_as_mqttbytes_reads_them(bytes in server_bytes(Protocol::V5)) {
        let frame = Bytes::from(bytes);
        let ours = decode(frame.clone(), Protocol::V5);
        prop_assert_eq!(ours.ok(), reference_decode(frame, Protocol::V5).ok());
    }

    #[test]
    fn server_packets_v4_decode_as_mqttbytes_reads_them(bytes in server_bytes(Protocol::V4)) {
        let frame = Bytes::from(bytes);
        let ours = decode(frame.clone(), Protocol::V4);
        prop_assert_eq!(ours.ok(), reference_decode(frame, Protocol::V4).ok());
    }

    /// Bit flips and truncations of server packets, cut by the framer: no
    /// panic, nothing accepted that mqttbytes refuses.
    #[test]
    fn mutated_server_packets_never_panic(
        v5 in any::<bool>(),
        bytes in server_bytes(Protocol::V5),
        bytes4 in server_bytes(Protocol::V4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0..8u8), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (protocol, mut bytes) = if v5 { (Protocol::V5, bytes) } else { (Protocol::V4, bytes4) };
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let mut framer = Framer::new(1 << 20);
        framer.push(&bytes);
        while let Ok(Some(frame)) = framer.next_packet() {
            check_frame(frame, protocol);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for protocol in BOTH {
            // Raw (a frame may be shorter or longer than its header says)...
            let _ = decode(Bytes::from(bytes.clone()), protocol);
            // ...and cut by the framer.
            let mut framer = Framer::new(1 << 20);
            framer.push(&bytes);
            while let Ok(Some(frame)) = framer.next_packet() {
                check_frame(frame, protocol);
            }
        }
    }
}

/// What `mqttbytes` reads back: empty property blocks are absent, and a
/// login with neither user name nor password is no login.
fn normalize(p: P) -> P {
    let empty_publish = v5::PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: vec![],
        subscription_identifiers: vec![],
        content_type: None,
    };
    match p {
        P::Publish(mut x) => {
            x.properties = x.properties.filter(|p| *p != empty_publish);
            P::Publish(x)
        }
        P::Connect(mut c) => {
            c.properties = c.properties.filter(|p| {
                p.session_expiry_interval.is_some()
                    || p.receive_maximum.is_some()
                    || p.max_packet_size.is_some()
                    || p.topic_alias_max.is_some()
                    || p.request_response_info.is_some()
                    || p.request_problem_info.is_some()
                    || !p.user_properties.is_empty()
                    || p.authentication_method.is_some()
                    || p.authentication_data.is_some()
            });
            if let Some(w) = &mut c.last_will {
                w.properties = w.properties.take().filter(|p| {
                    p.delay_interval.is_some()
                        || p.payload_format_indicator.is_some()
                        || p.message_expiry_interval.is_some()
                        || p.content_type.is_some()
                        || p.response_topic.is_some()
                        || p.correlation_data.is_some()
                        || !p.user_properties.is_empty()
                });
            }
            c.login = c
                .login
                .filter(|l| !l.username.is_empty() || !l.password.is_empty());
            P::Connect(c)
        }
        P::Subscribe(mut s) => {
            s.properties = s
                .properties
                .filter(|p| p.id.is_some() || !p.user_properties.is_empty());
            P::Subscribe(s)
        }
        P::Unsubscribe(mut u) => {
            u.properties = u.properties.filter(|p| !p.user_properties.is_empty());
            P::Unsubscribe(u)
        }
        other => other,
    }
}

#[test]
fn fields_too_long_for_their_length_prefix_are_refused() {
    let long = "x".repeat(70_000);
    let mut p = v5::Publish::new("t", QoS::AtMostOnce, vec![]);
    p.properties = Some(v5::PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("k".into(), long.clone())],
        subscription_identifiers: vec![],
        content_type: None,
    });
    assert_eq!(encode(&P::Publish(p), Protocol::V5), Err(EncodeError));
    let mut c = v5::Connect::new("c");
    c.login = Some(v5::Login::new("u", long.as_str()));
    for protocol in BOTH {
        assert_eq!(encode(&P::Connect(c.clone()), protocol), Err(EncodeError));
    }
    let mut q = v5::Publish::new("t", QoS::AtLeastOnce, vec![]);
    q.pkid = 0;
    assert_eq!(encode(&P::Publish(q), Protocol::V4), Err(EncodeError));
    assert_eq!(encode(&P::PingResp, Protocol::V4), Err(EncodeError));
}

#[test]
fn server_packets_of_every_kind_decode() {
    // Hand-written frames, one per packet type and version.
    let v5_frames: &[&[u8]] = &[
        &[0x20, 0x03, 0x01, 0x00, 0x00],
        &[
            0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x0A, 0x13, 0x00, 0x3C,
        ],
        &[0x30, 0x06, 0x00, 0x01, b't', 0x00, b'h', b'i'],
        &[0x40, 0x02, 0x00, 0x07],
        &[0x50, 0x03, 0x00, 0x07, 0x10],
        &[0x62, 0x04, 0x00, 0x07, 0x92, 0x00],
        &[0x70, 0x02, 0x00, 0x07],
        &[0x90, 0x05, 0x00, 0x07, 0x00, 0x01, 0x80],
        &[0xB0, 0x04, 0x00, 0x07, 0x00, 0x11],
        &[0xD0, 0x00],
        &[0xE0, 0x01, 0x8B],
        &[0xE0, 0x05, 0x9C, 0x03, 0x1C, 0x00, 0x00],
    ];
    for f in v5_frames {
        let frame = Bytes::copy_from_slice(f);
        let ours = decode(frame.clone(), Protocol::V5).unwrap();
        assert_eq!(Ok(ours), reference_decode(frame, Protocol::V5), "{f:?}");
    }
    let v4_frames: &[&[u8]] = &[
        &[0x20, 0x02, 0x01, 0x05],
        &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x09, b'x'],
        &[0x40, 0x02, 0x00, 0x07],
        &[0x90, 0x04, 0x00, 0x07, 0x02, 0x80],
        &[0xB0, 0x02, 0x00, 0x07],
        &[0xD0, 0x00],
        &[0xE0, 0x00],
    ];
    for f in v4_frames {
        let frame = Bytes::copy_from_slice(f);
        let ours = decode(frame.clone(), Protocol::V4).unwrap();
        assert_eq!(Ok(ours), reference_decode(frame, Protocol::V4), "{f:?}");
    }
}
