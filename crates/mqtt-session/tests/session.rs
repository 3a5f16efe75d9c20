//! Native tests of the session core: every QoS flow in both directions,
//! resend after reconnection, keep alive, MQTT 5 features and bad input.
//! The "server" side is written with mqttbytes directly.

use bytes::{Bytes, BytesMut};
use mqtt_session::{v5, Error, Event, Message, Options, Protocol, QoS, Session, SubscribeFilter};
use mqttbytes::v4;

/// Encode a server packet for `proto`.
fn server(proto: Protocol, p: v5::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    match proto {
        Protocol::V5 => match p {
            v5::Packet::ConnAck(mut x) => {
                // mqttbytes omits the property length when there are none;
                // real servers always send it.
                x.properties.get_or_insert_with(v5::ConnAckProperties::new);
                x.write(&mut b)
            }
            v5::Packet::Publish(x) => x.write(&mut b),
            v5::Packet::PubAck(x) => x.write(&mut b),
            v5::Packet::PubRec(x) => x.write(&mut b),
            v5::Packet::PubRel(x) => x.write(&mut b),
            v5::Packet::PubComp(x) => x.write(&mut b),
            v5::Packet::SubAck(x) => x.write(&mut b),
            v5::Packet::UnsubAck(x) => x.write(&mut b),
            v5::Packet::PingResp => v5::PingResp.write(&mut b),
            v5::Packet::Disconnect(x) => x.write(&mut b),
            other => panic!("not a server packet: {other:?}"),
        },
        Protocol::V4 => match p {
            v5::Packet::ConnAck(x) => v4::ConnAck::new(
                match x.code as u8 {
                    0 => v4::ConnectReturnCode::Success,
                    _ => v4::ConnectReturnCode::BadUserNamePassword,
                },
                x.session_present,
            )
            .write(&mut b),
            v5::Packet::Publish(x) => {
                let mut p = v4::Publish::from_bytes(x.topic, x.qos, x.payload);
                p.pkid = x.pkid;
                p.dup = x.dup;
                p.retain = x.retain;
                p.write(&mut b)
            }
            v5::Packet::PubAck(x) => v4::PubAck::new(x.pkid).write(&mut b),
            v5::Packet::PubRec(x) => v4::PubRec::new(x.pkid).write(&mut b),
            v5::Packet::PubRel(x) => v4::PubRel::new(x.pkid).write(&mut b),
            v5::Packet::PubComp(x) => v4::PubComp::new(x.pkid).write(&mut b),
            v5::Packet::SubAck(x) => v4::SubAck::new(
                x.pkid,
                x.return_codes
                    .iter()
                    .map(|c| v4::SubscribeReasonCode::try_from(*c as u8).unwrap())
                    .collect(),
            )
            .write(&mut b),
            v5::Packet::UnsubAck(x) => v4::UnsubAck::new(x.pkid).write(&mut b),
            v5::Packet::PingResp => v4::PingResp.write(&mut b),
            v5::Packet::Disconnect(_) => v4::Disconnect.write(&mut b),
            other => panic!("not a server packet: {other:?}"),
        },
    }
    .unwrap();
    b.to_vec()
}

/// Decode what the client sent (as MQTT 5 types; 3.1.1 packets read with v4).
fn client_packet(proto: Protocol, bytes: Bytes) -> v5::Packet {
    let mut b = BytesMut::from(bytes.as_ref());
    let len = b.len();
    match proto {
        Protocol::V5 => v5::read(&mut b, len).unwrap(),
        Protocol::V4 => match v4::read(&mut b, len).unwrap() {
            v4::Packet::Connect(c) => {
                let mut x = v5::Connect::new(c.client_id);
                x.keep_alive = c.keep_alive;
                x.clean_session = c.clean_session;
                x.login = c.login.map(|l| v5::Login::new(l.username, l.password));
                x.last_will = c
                    .last_will
                    .map(|w| v5::LastWill::new(w.topic, w.message.to_vec(), w.qos, w.retain));
                v5::Packet::Connect(x)
            }
            v4::Packet::Publish(p) => {
                let mut x = v5::Publish::from_bytes(p.topic, p.qos, p.payload);
                x.pkid = p.pkid;
                x.dup = p.dup;
                x.retain = p.retain;
                v5::Packet::Publish(x)
            }
            v4::Packet::PubAck(p) => v5::Packet::PubAck(v5::PubAck::new(p.pkid)),
            v4::Packet::PubRec(p) => v5::Packet::PubRec(v5::PubRec::new(p.pkid)),
            v4::Packet::PubRel(p) => v5::Packet::PubRel(v5::PubRel::new(p.pkid)),
            v4::Packet::PubComp(p) => v5::Packet::PubComp(v5::PubComp::new(p.pkid)),
            v4::Packet::Subscribe(s) => v5::Packet::Subscribe(v5::Subscribe {
                pkid: s.pkid,
                filters: s
                    .filters
                    .into_iter()
                    .map(|f| SubscribeFilter::new(f.path, f.qos))
                    .collect(),
                properties: None,
            }),
            v4::Packet::Unsubscribe(u) => v5::Packet::Unsubscribe(v5::Unsubscribe {
                pkid: u.pkid,
                filters: u.topics,
                properties: None,
            }),
            v4::Packet::PingReq => v5::Packet::PingReq,
            v4::Packet::Disconnect => v5::Packet::Disconnect(v5::Disconnect::new()),
            other => panic!("not a client packet: {other:?}"),
        },
    }
}

/// A session plus a tiny test-side view of its traffic.
struct Peer {
    s: Session,
    proto: Protocol,
    now: u64,
}

impl Peer {
    fn new(proto: Protocol) -> Self {
        Self::with(Options::new("c1", proto))
    }

    fn with(opts: Options) -> Self {
        let proto = opts.protocol;
        Peer {
            s: Session::new(opts),
            proto,
            now: 1_000,
        }
    }

    fn sent(&mut self) -> Vec<v5::Packet> {
        let mut out = vec![];
        while let Some(b) = self.s.poll_transmit() {
            out.push(client_packet(self.proto, b));
        }
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn feed(&mut self, p: v5::Packet) -> Result<(), Error> {
        let bytes = server(self.proto, p);
        self.s.handle_bytes(&bytes, self.now)
    }

    /// Open a connection and answer CONNACK; returns what the client sent after it.
    fn connect(&mut self, session_present: bool) -> Vec<v5::Packet> {
        self.events();
        self.s.start_connection(self.now).unwrap();
        let first = self.sent();
        assert!(matches!(first[..], [v5::Packet::Connect(_)]), "{first:?}");
        self.feed(v5::Packet::ConnAck(v5::ConnAck::new(
            v5::ConnectReturnCode::Success,
            session_present,
        )))
        .unwrap();
        let ev = self.events();
        assert!(
            matches!(ev.first(), Some(Event::Connected { session_present: sp, .. }) if *sp == session_present),
            "{ev:?}"
        );
        self.sent()
    }
}

fn publish(topic: &str, qos: QoS, payload: &[u8]) -> v5::Publish {
    v5::Publish::new(topic, qos, payload.to_vec())
}

fn server_publish(topic: &str, qos: QoS, pkid: u16, payload: &[u8]) -> v5::Packet {
    let mut p = publish(topic, qos, payload);
    p.pkid = pkid;
    v5::Packet::Publish(p)
}

fn message(ev: &Event) -> &Message {
    match ev {
        Event::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

const BOTH: [Protocol; 2] = [Protocol::V4, Protocol::V5];

#[test]
fn connect_packet_carries_options() {
    for proto in BOTH {
        let mut o = Options::new("dash-1", proto);
        o.keep_alive = 30;
        o.login = Some(("alice".into(), "secret".into()));
        o.will = Some(v5::LastWill::new(
            "status/dash-1",
            "gone",
            QoS::AtLeastOnce,
            true,
        ));
        o.session_expiry = Some(600);
        let mut p = Peer::with(o);
        p.s.start_connection(0).unwrap();
        let [v5::Packet::Connect(c)] = &p.sent()[..] else {
            panic!("expected CONNECT")
        };
        assert_eq!(c.client_id, "dash-1");
        assert_eq!(c.keep_alive, 30);
        assert!(c.clean_session);
        let login = c.login.as_ref().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "secret")
        );
        let will = c.last_will.as_ref().unwrap();
        assert_eq!(
            (will.topic.as_str(), will.qos, will.retain),
            ("status/dash-1", QoS::AtLeastOnce, true)
        );
        assert_eq!(&will.message[..], b"gone");
        if proto == Protocol::V5 {
            let props = c.properties.as_ref().unwrap();
            assert_eq!(props.session_expiry_interval, Some(600));
            assert_eq!(props.max_packet_size, Some(1 << 20));
        }
    }
}

#[test]
fn a_will_set_after_creation_goes_out_with_connect() {
    for proto in BOTH {
        let mut p = Peer::with(Options::new("dash-2", proto));
        p.s.set_will(v5::LastWill::new(
            "status/dash-2",
            "gone",
            QoS::ExactlyOnce,
            false,
        ));
        p.s.start_connection(0).unwrap();
        let [v5::Packet::Connect(c)] = &p.sent()[..] else {
            panic!("expected CONNECT")
        };
        let will = c.last_will.as_ref().expect("the will");
        assert_eq!(
            (will.topic.as_str(), will.qos, &will.message[..]),
            ("status/dash-2", QoS::ExactlyOnce, &b"gone"[..])
        );
    }
}

#[test]
fn qos0_both_directions() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        assert_eq!(
            p.s.publish(publish("a/b", QoS::AtMostOnce, b"x")).unwrap(),
            None
        );
        let sent = p.sent();
        assert!(
            matches!(&sent[..], [v5::Packet::Publish(x)] if x.topic == "a/b" && x.payload[..] == b"x"[..])
        );
        p.feed(server_publish("c/d", QoS::AtMostOnce, 0, b"hello"))
            .unwrap();
        let ev = p.events();
        let m = message(&ev[0]);
        assert_eq!(
            (m.topic.as_str(), &m.payload[..], m.qos),
            ("c/d", &b"hello"[..], QoS::AtMostOnce)
        );
        assert!(p.sent().is_empty(), "no ack for QoS 0");
    }
}

#[test]
fn qos1_both_directions() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let pkid =
            p.s.publish(publish("a", QoS::AtLeastOnce, b"1"))
                .unwrap()
                .unwrap();
        assert!(
            matches!(&p.sent()[..], [v5::Packet::Publish(x)] if x.pkid == pkid && x.qos == QoS::AtLeastOnce && !x.dup)
        );
        assert_eq!(p.s.inflight(), 1);
        p.feed(v5::Packet::PubAck(v5::PubAck::new(pkid))).unwrap();
        assert_eq!(p.events(), vec![Event::Published { pkid, reason: 0 }]);
        assert_eq!(p.s.inflight(), 0);
        // A stray PUBACK is ignored.
        p.feed(v5::Packet::PubAck(v5::PubAck::new(pkid))).unwrap();
        assert!(p.events().is_empty());

        p.feed(server_publish("in", QoS::AtLeastOnce, 7, b"m"))
            .unwrap();
        assert_eq!(message(&p.events()[0]).qos, QoS::AtLeastOnce);
        assert!(matches!(&p.sent()[..], [v5::Packet::PubAck(a)] if a.pkid == 7));
    }
}

#[test]
fn qos2_both_directions() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let pkid =
            p.s.publish(publish("a", QoS::ExactlyOnce, b"2"))
                .unwrap()
                .unwrap();
        assert!(
            matches!(&p.sent()[..], [v5::Packet::Publish(x)] if x.pkid == pkid && x.qos == QoS::ExactlyOnce)
        );
        p.feed(v5::Packet::PubRec(v5::PubRec::new(pkid))).unwrap();
        assert!(matches!(&p.sent()[..], [v5::Packet::PubRel(r)] if r.pkid == pkid));
        assert_eq!(
            p.events(),
            vec![Event::Released { pkid }],
            "not complete before PUBCOMP"
        );
        p.feed(v5::Packet::PubComp(v5::PubComp::new(pkid))).unwrap();
        assert_eq!(p.events(), vec![Event::Published { pkid, reason: 0 }]);

        // Incoming, with the server resending the PUBLISH before PUBREL.
        p.feed(server_publish("in", QoS::ExactlyOnce, 9, b"once"))
            .unwrap();
        assert_eq!(p.events().len(), 1);
        assert!(matches!(&p.sent()[..], [v5::Packet::PubRec(r)] if r.pkid == 9));
        p.feed(server_publish("in", QoS::ExactlyOnce, 9, b"once"))
            .unwrap();
        assert!(p.events().is_empty(), "duplicate QoS 2 delivered twice");
        assert!(matches!(&p.sent()[..], [v5::Packet::PubRec(r)] if r.pkid == 9));
        p.feed(v5::Packet::PubRel(v5::PubRel::new(9))).unwrap();
        assert!(matches!(&p.sent()[..], [v5::Packet::PubComp(c)] if c.pkid == 9));
        // After PUBREL the identifier is free for a new message.
        p.feed(server_publish("in", QoS::ExactlyOnce, 9, b"next"))
            .unwrap();
        assert_eq!(&message(&p.events()[0]).payload[..], b"next");
    }
}

#[test]
fn resend_with_dup_when_session_present() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let a =
            p.s.publish(publish("a", QoS::AtLeastOnce, b"a"))
                .unwrap()
                .unwrap();
        let b =
            p.s.publish(publish("b", QoS::ExactlyOnce, b"b"))
                .unwrap()
                .unwrap();
        let c =
            p.s.publish(publish("c", QoS::ExactlyOnce, b"c"))
                .unwrap()
                .unwrap();
        p.sent();
        p.feed(v5::Packet::PubRec(v5::PubRec::new(c))).unwrap();
        p.sent();
        p.s.connection_lost();
        assert_eq!(p.s.inflight(), 3);
        let resent = p.connect(true);
        match &resent[..] {
            [v5::Packet::Publish(x), v5::Packet::Publish(y), v5::Packet::PubRel(z)] => {
                assert_eq!((x.pkid, x.dup, x.topic.as_str()), (a, true, "a"));
                assert_eq!((y.pkid, y.dup, y.topic.as_str()), (b, true, "b"));
                assert_eq!(z.pkid, c);
            }
            other => panic!("unexpected replay {other:?}"),
        }
        p.feed(v5::Packet::PubAck(v5::PubAck::new(a))).unwrap();
        p.feed(v5::Packet::PubRec(v5::PubRec::new(b))).unwrap();
        p.feed(v5::Packet::PubComp(v5::PubComp::new(b))).unwrap();
        p.feed(v5::Packet::PubComp(v5::PubComp::new(c))).unwrap();
        let done: Vec<_> = p.events();
        assert_eq!(
            done,
            vec![
                Event::Published { pkid: a, reason: 0 },
                Event::Released { pkid: b },
                Event::Published { pkid: b, reason: 0 },
                Event::Published { pkid: c, reason: 0 }
            ]
        );
    }
}

#[test]
fn new_session_resubscribes_and_resends_without_dup() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let sub =
            p.s.subscribe(vec![
                SubscribeFilter::new("x/#".into(), QoS::AtLeastOnce),
                SubscribeFilter::new("y".into(), QoS::ExactlyOnce),
            ])
            .unwrap();
        p.sent();
        let codes = vec![v5::SubscribeReasonCode::QoS1, v5::SubscribeReasonCode::QoS2];
        p.feed(v5::Packet::SubAck(v5::SubAck::new(sub, codes)))
            .unwrap();
        assert_eq!(
            p.events(),
            vec![Event::Subscribed {
                pkid: sub,
                codes: vec![1, 2]
            }]
        );
        let q =
            p.s.publish(publish("a", QoS::AtLeastOnce, b"a"))
                .unwrap()
                .unwrap();
        p.sent();
        p.s.connection_lost();
        let replay = p.connect(false);
        match &replay[..] {
            // Resubscribed before the resend, so our own subscriptions see it.
            [v5::Packet::Subscribe(s), v5::Packet::Publish(x)] => {
                assert_eq!((x.pkid, x.dup), (q, false));
                let filters: Vec<_> = s.filters.iter().map(|f| (f.path.as_str(), f.qos)).collect();
                assert_eq!(
                    filters,
                    vec![("x/#", QoS::AtLeastOnce), ("y", QoS::ExactlyOnce)]
                );
                let codes = vec![v5::SubscribeReasonCode::QoS1, v5::SubscribeReasonCode::QoS2];
                p.feed(v5::Packet::SubAck(v5::SubAck::new(s.pkid, codes)))
                    .unwrap();
            }
            other => panic!("unexpected replay {other:?}"),
        }
        assert_eq!(p.s.pending_requests(), 0);
        // Session kept: no resubscription.
        p.s.connection_lost();
        let replay = p.connect(true);
        assert!(
            replay
                .iter()
                .all(|x| !matches!(x, v5::Packet::Subscribe(_))),
            "{replay:?}"
        );
    }
}

#[test]
fn offline_queue_is_bounded_and_flushed_in_order() {
    let mut o = Options::new("c", Protocol::V4);
    o.max_offline = 3;
    let mut p = Peer::with(o);
    p.s.publish(publish("q/0", QoS::AtMostOnce, b"0")).unwrap();
    p.s.publish(publish("q/1", QoS::AtLeastOnce, b"1")).unwrap();
    let sub =
        p.s.subscribe(vec![SubscribeFilter::new("s".into(), QoS::AtMostOnce)])
            .unwrap();
    p.s.publish(publish("q/2", QoS::ExactlyOnce, b"2")).unwrap();
    assert_eq!(
        p.s.publish(publish("q/3", QoS::AtMostOnce, b"3")),
        Err(Error::QueueFull(3))
    );
    assert!(p.sent().is_empty(), "nothing sent before connecting");
    let after = p.connect(false);
    let shape: Vec<String> = after
        .iter()
        .map(|x| match x {
            v5::Packet::Publish(p) => p.topic.clone(),
            v5::Packet::Subscribe(s) => format!("sub {}", s.pkid),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            format!("sub {sub}"),
            "q/0".into(),
            "q/1".into(),
            "q/2".into()
        ]
    );
}

#[test]
fn keepalive_pings_and_detects_dead_server() {
    let mut o = Options::new("c", Protocol::V4);
    o.keep_alive = 10;
    let mut p = Peer::with(o);
    p.connect(false);
    let deadline = p.s.poll_deadline().unwrap();
    assert_eq!(deadline, p.now + 10_000);
    p.s.handle_timeout(deadline - 1).unwrap();
    assert!(p.sent().is_empty());
    p.s.handle_timeout(deadline).unwrap();
    assert_eq!(p.sent(), vec![v5::Packet::PingReq]);
    p.now = deadline + 100;
    p.feed(v5::Packet::PingResp).unwrap();
    assert_eq!(p.s.poll_deadline(), Some(deadline + 10_000));
    p.s.handle_timeout(deadline + 10_000).unwrap();
    assert_eq!(p.sent(), vec![v5::Packet::PingReq]);
    // No PINGRESP this time.
    assert_eq!(
        p.s.handle_timeout(deadline + 20_000),
        Err(Error::KeepaliveTimeout)
    );
    assert!(!p.s.is_connected());
}

#[test]
fn connect_timeout_and_refusal() {
    let mut p = Peer::new(Protocol::V4);
    p.s.start_connection(0).unwrap();
    assert_eq!(p.s.poll_deadline(), Some(30_000));
    assert_eq!(p.s.handle_timeout(30_000), Err(Error::ConnectTimeout));
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.s.start_connection(0).unwrap();
        let err = p
            .feed(v5::Packet::ConnAck(v5::ConnAck::new(
                v5::ConnectReturnCode::BadUserNamePassword,
                false,
            )))
            .unwrap_err();
        assert_eq!(err, Error::Refused(0x86));
        assert!(
            err.to_string().contains("bad user name or password"),
            "{err}"
        );
        assert_eq!(err.code(), "CONNECTION_REFUSED");
    }
}

#[test]
fn subscribe_and_unsubscribe_report_per_filter_codes() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let pkid =
            p.s.subscribe(vec![
                SubscribeFilter::new("ok".into(), QoS::ExactlyOnce),
                SubscribeFilter::new("denied".into(), QoS::AtMostOnce),
            ])
            .unwrap();
        assert!(
            matches!(&p.sent()[..], [v5::Packet::Subscribe(s)] if s.pkid == pkid && s.filters.len() == 2)
        );
        let codes = vec![
            v5::SubscribeReasonCode::QoS1,
            v5::SubscribeReasonCode::Unspecified,
        ];
        p.feed(v5::Packet::SubAck(v5::SubAck::new(pkid, codes)))
            .unwrap();
        assert_eq!(
            p.events(),
            vec![Event::Subscribed {
                pkid,
                codes: vec![1, 0x80]
            }]
        );
        assert_eq!(p.s.subscriptions().collect::<Vec<_>>(), vec!["ok"]);
        let un = p.s.unsubscribe(vec!["ok".into()]).unwrap();
        assert!(matches!(&p.sent()[..], [v5::Packet::Unsubscribe(u)] if u.pkid == un));
        let mut ack = v5::UnsubAck::new(un);
        if proto == Protocol::V5 {
            ack.reasons = vec![v5::UnsubAckReason::Success];
        }
        p.feed(v5::Packet::UnsubAck(ack)).unwrap();
        assert_eq!(
            p.events(),
            vec![Event::Unsubscribed {
                pkid: un,
                codes: vec![0]
            }]
        );
        assert_eq!(p.s.subscriptions().count(), 0);
        assert_eq!(
            p.s.subscribe(vec![SubscribeFilter::new("a/#/b".into(), QoS::AtMostOnce)]),
            Err(Error::Topic(
                mqtt_session::topic::TopicError::MisplacedWildcard
            ))
        );
        assert!(matches!(
            p.s.publish(publish("a/+", QoS::AtMostOnce, b"")),
            Err(Error::Topic(_))
        ));
    }
}

#[test]
fn mqtt5_properties_and_limits() {
    let mut o = Options::new("c", Protocol::V5);
    o.topic_alias_max = 4;
    let mut p = Peer::with(o);
    p.s.start_connection(0).unwrap();
    p.sent();
    let mut ack = v5::ConnAck::new(v5::ConnectReturnCode::Success, false);
    let mut props = v5::ConnAckProperties::new();
    props.receive_max = Some(2);
    props.max_packet_size = Some(200);
    props.server_keep_alive = Some(5);
    ack.properties = Some(props);
    p.feed(v5::Packet::ConnAck(ack)).unwrap();
    p.events();
    assert_eq!(p.s.poll_deadline(), Some(5_000), "server keep alive wins");

    // Receive maximum 2: the third QoS 1 publish waits for an ack.
    let ids: Vec<u16> = (0..3)
        .map(|i| {
            p.s.publish(publish("t", QoS::AtLeastOnce, &[i]))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(p.sent().len(), 2);
    assert_eq!(p.s.queued(), 1);
    p.feed(v5::Packet::PubAck(v5::PubAck::new(ids[0]))).unwrap();
    assert!(matches!(&p.sent()[..], [v5::Packet::Publish(x)] if x.pkid == ids[2]));
    assert_eq!(
        p.events(),
        vec![Event::Published {
            pkid: ids[0],
            reason: 0
        }]
    );

    // Maximum packet size of the server.
    let err =
        p.s.publish(publish("t", QoS::AtMostOnce, &[0; 300]))
            .unwrap_err();
    assert!(
        matches!(err, Error::PacketTooLarge { limit: 200, .. }),
        "{err}"
    );

    // PUBACK with a failure reason.
    let mut nack = v5::PubAck::new(ids[1]);
    nack.reason = v5::PubAckReason::NotAuthorized;
    p.feed(v5::Packet::PubAck(nack)).unwrap();
    assert_eq!(
        p.events(),
        vec![Event::Published {
            pkid: ids[1],
            reason: 0x87
        }]
    );

    // User properties and topic alias received.
    let mut pb = publish("sensors/t1", QoS::AtMostOnce, b"21.5");
    let mut pp = v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: None,
        topic_alias: Some(3),
        response_topic: Some("reply/here".into()),
        correlation_data: None,
        user_properties: vec![("unit".into(), "C".into())],
        subscription_identifiers: vec![],
        content_type: Some("text/plain".into()),
    };
    pb.properties = Some(pp.clone());
    p.feed(v5::Packet::Publish(pb)).unwrap();
    let ev = p.events();
    let props = message(&ev[0]).properties.clone().unwrap();
    assert_eq!(
        props.user_properties,
        vec![("unit".to_string(), "C".to_string())]
    );
    assert_eq!(props.response_topic.as_deref(), Some("reply/here"));
    pp.user_properties.clear();
    let mut aliased = publish("", QoS::AtMostOnce, b"22.0");
    aliased.properties = Some(pp.clone());
    p.feed(v5::Packet::Publish(aliased.clone())).unwrap();
    assert_eq!(message(&p.events()[0]).topic, "sensors/t1");
    // Unknown and out-of-range aliases are protocol errors.
    pp.topic_alias = Some(4);
    aliased.properties = Some(pp.clone());
    assert!(matches!(
        p.feed(v5::Packet::Publish(aliased.clone())),
        Err(Error::Protocol(_))
    ));
    p.connect(true);
    pp.topic_alias = Some(9);
    aliased.topic = "x".into();
    aliased.properties = Some(pp);
    assert!(matches!(
        p.feed(v5::Packet::Publish(aliased)),
        Err(Error::Protocol(_))
    ));
}

#[test]
fn server_limits_do_not_survive_reconnection() {
    let mut p = Peer::with(Options::new("c", Protocol::V5));
    p.s.start_connection(0).unwrap();
    p.sent();
    let mut ack = v5::ConnAck::new(v5::ConnectReturnCode::Success, false);
    let mut props = v5::ConnAckProperties::new();
    props.receive_max = Some(1);
    props.max_packet_size = Some(200);
    props.server_keep_alive = Some(5);
    ack.properties = Some(props);
    p.feed(v5::Packet::ConnAck(ack)).unwrap();
    assert_eq!(p.s.poll_deadline(), Some(5_000));
    p.s.connection_lost();
    // The next server (or the same one, reconfigured) sends no limits: none apply.
    p.connect(false);
    assert_eq!(
        p.s.poll_deadline(),
        Some(p.now + 60_000),
        "own keep alive again"
    );
    p.s.publish(publish("t", QoS::AtMostOnce, &[0; 300]))
        .expect("no server maximum packet size any more");
    for i in 0..3 {
        p.s.publish(publish("t", QoS::AtLeastOnce, &[i])).unwrap();
    }
    let sent = p.sent();
    assert_eq!(sent.len(), 4, "no receive maximum any more: {sent:?}");
    assert_eq!(p.s.queued(), 0);
}

#[test]
fn aliases_do_not_survive_reconnection() {
    let mut o = Options::new("c", Protocol::V5);
    o.topic_alias_max = 2;
    let mut p = Peer::with(o);
    p.connect(false);
    let mut pb = publish("t/1", QoS::AtMostOnce, b"");
    pb.properties = Some(v5::PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: Some(1),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![],
        subscription_identifiers: vec![],
        content_type: None,
    });
    p.feed(v5::Packet::Publish(pb.clone())).unwrap();
    p.s.connection_lost();
    p.connect(true);
    pb.topic.clear();
    assert_eq!(
        p.feed(v5::Packet::Publish(pb)),
        Err(Error::Protocol("unknown topic alias"))
    );
}

#[test]
fn incoming_packet_over_max_size_is_refused() {
    let mut o = Options::new("c", Protocol::V5);
    o.max_packet_size = 64;
    let mut p = Peer::with(o);
    p.connect(false);
    let err = p
        .feed(server_publish("t", QoS::AtMostOnce, 0, &[1; 100]))
        .unwrap_err();
    assert_eq!(err.code(), "MALFORMED_PACKET");
    assert!(
        err.to_string().contains("exceeds the limit of 64 bytes"),
        "{err}"
    );
}

#[test]
fn server_disconnect_is_reported() {
    let mut p = Peer::new(Protocol::V5);
    p.connect(false);
    let mut d = v5::Disconnect::new();
    d.reason_code = v5::DisconnectReasonCode::SessionTakenOver;
    assert_eq!(
        p.feed(v5::Packet::Disconnect(d)),
        Err(Error::ServerDisconnect(0x8E))
    );
    assert!(!p.s.is_connected());
    // An empty MQTT 5 DISCONNECT (reason omitted) is accepted as "normal".
    p.connect(false);
    assert_eq!(
        p.s.handle_bytes(&[0xE0, 0x00], 0),
        Err(Error::ServerDisconnect(0))
    );
}

#[test]
fn packets_split_across_and_combined_in_messages() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let mut stream = vec![];
        for i in 0..5u8 {
            stream.extend(server(
                proto,
                server_publish("s/t", QoS::AtLeastOnce, u16::from(i) + 1, &[i; 150]),
            ));
        }
        // One byte per message, then everything in one message.
        for b in &stream {
            p.s.handle_bytes(std::slice::from_ref(b), 0).unwrap();
        }
        p.s.handle_bytes(&stream, 0).unwrap();
        let ev = p.events();
        assert_eq!(ev.len(), 10);
        assert_eq!(&message(&ev[4]).payload[..], &[4u8; 150][..]);
        assert_eq!(p.sent().len(), 10, "one PUBACK per message");
    }
}

#[test]
fn malformed_input_closes_the_connection_but_keeps_inflight() {
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("unknown packet type", vec![0xF0, 0x00]),
        (
            "remaining length over 4 bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        (
            "topic length beyond the packet",
            vec![0x30, 0x03, 0x00, 0x09, b'a'],
        ),
        ("QoS 3", vec![0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]),
        (
            "QoS 1 with packet id 0",
            vec![0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
        ),
        ("truncated PUBACK", vec![0x40, 0x01, 0x00]),
        (
            "invalid UTF-8 topic",
            vec![0x30, 0x04, 0x00, 0x02, 0xC3, 0x28],
        ),
        (
            "server-only packet from client side",
            vec![0x82, 0x04, 0x00, 0x01, 0x00, 0x00],
        ),
    ];
    for proto in BOTH {
        for (what, bytes) in &bad {
            let mut p = Peer::new(proto);
            p.connect(false);
            let pkid =
                p.s.publish(publish("keep", QoS::AtLeastOnce, b"me"))
                    .unwrap()
                    .unwrap();
            p.sent();
            let err = p.s.handle_bytes(bytes, 0).expect_err(what);
            assert!(!err.to_string().is_empty());
            assert!(!p.s.is_connected(), "{what}: connection must be closed");
            assert_eq!(p.s.inflight(), 1, "{what}: in-flight publish lost");
            let replay = p.connect(true);
            assert!(
                matches!(&replay[..], [v5::Packet::Publish(x)] if x.pkid == pkid && x.dup),
                "{what}: {replay:?}"
            );
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Truncations and bit flips of valid packets, fed after CONNACK.
    let mut samples = vec![];
    for proto in BOTH {
        samples.push((
            proto,
            server(
                proto,
                server_publish("a/b", QoS::ExactlyOnce, 3, b"payload"),
            ),
        ));
        samples.push((
            proto,
            server(
                proto,
                v5::Packet::SubAck(v5::SubAck::new(1, vec![v5::SubscribeReasonCode::QoS1])),
            ),
        ));
        samples.push((proto, server(proto, v5::Packet::PubRec(v5::PubRec::new(2)))));
    }
    let mut pb = publish("a", QoS::AtLeastOnce, b"x");
    pb.pkid = 5;
    pb.properties = Some(v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(9),
        topic_alias: None,
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"c")),
        user_properties: vec![("k".into(), "v".into())],
        subscription_identifiers: vec![4],
        content_type: Some("t".into()),
    });
    samples.push((Protocol::V5, server(Protocol::V5, v5::Packet::Publish(pb))));
    let mut runs = 0;
    for (proto, sample) in samples {
        for cut in 1..=sample.len() {
            for flip in 0..sample.len() * 8 {
                let mut bytes = sample[..cut].to_vec();
                if let Some(b) = bytes.get_mut(flip / 8) {
                    *b ^= 1 << (flip % 8);
                }
                let mut p = Peer::new(proto);
                p.connect(false);
                let _ = p.s.handle_bytes(&bytes, 0);
                runs += 1;
            }
        }
    }
    assert!(runs > 1000);
}

#[test]
fn unencodable_publishes_are_refused_up_front() {
    let mut p = Peer::new(Protocol::V5);
    p.connect(false);
    let long_topic = "t".repeat(70_000);
    assert_eq!(
        p.s.publish(publish(&long_topic, QoS::AtLeastOnce, b"x")),
        Err(Error::Encode)
    );
    assert_eq!(p.s.inflight(), 0);
    assert!(p.sent().is_empty());
}

/// What the server sends a client resuming its session: CONNACK and the
/// queued messages, all in one WebSocket message (a merging relay).
fn connack_and_messages(proto: Protocol, qos: QoS, count: u16) -> Vec<u8> {
    let mut bytes = server(
        proto,
        v5::Packet::ConnAck(v5::ConnAck::new(v5::ConnectReturnCode::Success, true)),
    );
    for pkid in 1..=count {
        bytes.extend(server(
            proto,
            server_publish("q", qos, pkid, &pkid.to_be_bytes()),
        ));
    }
    bytes
}

#[test]
fn messages_are_acknowledged_only_when_taken() {
    for proto in BOTH {
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let mut p = Peer::new(proto);
            p.s.start_connection(p.now).unwrap();
            p.sent();
            p.s.handle_bytes(&connack_and_messages(proto, qos, 3), p.now)
                .unwrap();
            assert!(p.sent().is_empty(), "acknowledged before anyone took it");
            assert!(matches!(p.s.poll_event(), Some(Event::Connected { .. })));
            assert!(p.sent().is_empty(), "CONNACK taken, messages not yet");
            for pkid in 1..=3u16 {
                let m = p.s.poll_event().unwrap();
                assert_eq!(&message(&m).payload[..], &pkid.to_be_bytes()[..]);
                let acked: Vec<u16> = p
                    .sent()
                    .iter()
                    .map(|x| match x {
                        v5::Packet::PubAck(a) if qos == QoS::AtLeastOnce => a.pkid,
                        v5::Packet::PubRec(r) if qos == QoS::ExactlyOnce => r.pkid,
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                assert_eq!(acked, vec![pkid], "one ack per message taken, in order");
            }
        }
    }
}

#[test]
fn messages_not_taken_before_a_disconnection_are_not_acknowledged_on_the_next() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        p.feed(server_publish("q", QoS::AtLeastOnce, 4, b"late"))
            .unwrap();
        p.s.connection_lost();
        p.s.start_connection(p.now).unwrap();
        p.sent();
        p.feed(v5::Packet::ConnAck(v5::ConnAck::new(
            v5::ConnectReturnCode::Success,
            true,
        )))
        .unwrap();
        let ev = p.events();
        assert_eq!(&message(&ev[0]).payload[..], b"late", "still delivered");
        assert!(matches!(ev[1], Event::Connected { .. }));
        // The server resends it on this connection; acknowledging the old
        // copy here would acknowledge a packet id the new one may reuse.
        assert!(p.sent().is_empty(), "{:?}", p.sent());
    }
}

#[test]
fn a_resent_qos2_message_is_acknowledged_after_the_first_copy_is_taken() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        p.feed(server_publish("q", QoS::ExactlyOnce, 5, b"once"))
            .unwrap();
        p.feed(server_publish("q", QoS::ExactlyOnce, 5, b"once"))
            .unwrap();
        assert!(p.sent().is_empty());
        let ev = p.events();
        assert_eq!(ev.len(), 1, "delivered once");
        let recs: Vec<u16> = p
            .sent()
            .iter()
            .map(|x| match x {
                v5::Packet::PubRec(r) => r.pkid,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(recs, vec![5, 5]);
    }
}

proptest::proptest! {
    /// However messages and takings interleave, every QoS 1 message taken
    /// is acknowledged exactly once, in arrival order, and nothing that was
    /// not taken is acknowledged.
    #[test]
    fn acks_follow_takings(steps in proptest::collection::vec(proptest::bool::ANY, 1..60)) {
        let mut p = Peer::new(Protocol::V4);
        p.connect(false);
        let (mut received, mut taken, mut acked) = (0u16, 0u16, Vec::new());
        for receive in steps {
            if receive {
                received += 1;
                p.feed(server_publish("q", QoS::AtLeastOnce, received, b"x")).unwrap();
            } else if let Some(ev) = p.s.poll_event() {
                taken += 1;
                proptest::prop_assert_eq!(&message(&ev).payload[..], b"x");
            }
            for x in p.sent() {
                match x {
                    v5::Packet::PubAck(a) => acked.push(a.pkid),
                    other => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
            }
            proptest::prop_assert_eq!(acked.clone(), (1..=taken).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_connection_silent_past_the_keep_alive_is_stale() {
    let mut o = Options::new("c1", Protocol::V4);
    o.keep_alive = 10;
    let mut p = Peer::with(o);
    assert!(!p.s.is_stale(p.now + 1_000_000), "not connected: not stale");
    p.connect(false);
    let heard = p.now;
    assert!(!p.s.is_stale(heard + 10_000));
    assert!(p.s.is_stale(heard + 10_001));
    p.now = heard + 9_000;
    p.feed(v5::Packet::PingResp).unwrap();
    assert!(!p.s.is_stale(heard + 10_001), "bytes arrived since");
    p.s.connection_lost();
    assert!(!p.s.is_stale(heard + 1_000_000));
}

#[test]
fn held_publishes_leave_only_when_released_in_release_order() {
    for proto in BOTH {
        let mut p = Peer::new(proto);
        p.connect(false);
        let a =
            p.s.publish_held(publish("a", QoS::AtLeastOnce, b"a"))
                .unwrap()
                .unwrap();
        let b =
            p.s.publish_held(publish("b", QoS::ExactlyOnce, b"b"))
                .unwrap()
                .unwrap();
        assert!(p.sent().is_empty(), "held");
        assert_eq!(
            p.s.publish_held(publish("z", QoS::AtMostOnce, b"z"))
                .unwrap(),
            None
        );
        assert_eq!(p.sent().len(), 1, "QoS 0 is not held");
        // A reconnection does not send held publishes either.
        p.s.connection_lost();
        assert!(p.connect(true).is_empty());
        p.s.release(a).unwrap();
        p.s.release(b).unwrap();
        p.s.release(b).unwrap(); // twice: no effect
        let sent: Vec<u16> = p
            .sent()
            .iter()
            .map(|x| match x {
                v5::Packet::Publish(x) => x.pkid,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(sent, vec![a, b]);
        p.feed(v5::Packet::PubRec(v5::PubRec::new(b))).unwrap();
        assert_eq!(p.events(), vec![Event::Released { pkid: b }]);
    }
}

#[test]
fn restored_publishes_are_resent_with_their_ids_or_only_released() {
    for proto in BOTH {
        // A page persisted these before it was reloaded: 3 (QoS 1, sent),
        // 9 (QoS 2, not yet received by the server), 12 (QoS 2, PUBREC seen).
        let mut p = Peer::new(proto);
        let restored = |pkid, qos, payload: &[u8]| {
            let mut x = publish("t", qos, payload);
            x.pkid = pkid;
            x
        };
        p.s.restore(restored(3, QoS::AtLeastOnce, b"one"), false)
            .unwrap();
        p.s.restore(restored(9, QoS::ExactlyOnce, b"two"), false)
            .unwrap();
        p.s.restore(restored(12, QoS::ExactlyOnce, b"three"), true)
            .unwrap();
        assert!(
            p.s.restore(restored(9, QoS::AtLeastOnce, b"dup"), false)
                .is_err(),
            "an id in use"
        );
        assert!(p
            .s
            .restore(restored(4, QoS::AtMostOnce, b"q0"), false)
            .is_err());
        let replay = p.connect(true);
        match &replay[..] {
            [v5::Packet::Publish(one), v5::Packet::Publish(two), v5::Packet::PubRel(rel)] => {
                assert_eq!(
                    (one.pkid, one.dup, &one.payload[..]),
                    (3, true, &b"one"[..])
                );
                assert_eq!(
                    (two.pkid, two.dup, &two.payload[..]),
                    (9, true, &b"two"[..])
                );
                assert_eq!(rel.pkid, 12);
            }
            other => panic!("unexpected replay {other:?}"),
        }
        // New publishes do not reuse a restored identifier.
        let fresh =
            p.s.publish(publish("n", QoS::AtLeastOnce, b"n"))
                .unwrap()
                .unwrap();
        assert!(![3, 9, 12].contains(&fresh));
        p.feed(v5::Packet::PubAck(v5::PubAck::new(3))).unwrap();
        p.feed(v5::Packet::PubComp(v5::PubComp::new(12))).unwrap();
        assert_eq!(
            p.events(),
            vec![
                Event::Published { pkid: 3, reason: 0 },
                Event::Published {
                    pkid: 12,
                    reason: 0
                }
            ]
        );
    }
}
