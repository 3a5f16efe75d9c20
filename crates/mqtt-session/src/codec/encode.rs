//! Writing the packets a client sends. The bytes are those `mqttbytes`
//! writes for the same packet (checked by `tests/codec.rs`), except that a
//! field too long for its length prefix is an error instead of a wrapped
//! length.

use bytes::Bytes;
use mqttbytes::v5::{self, Packet};
use mqttbytes::{Protocol, QoS};

use super::MAX_VARINT;

/// A packet that cannot be encoded: a string or binary field longer than
/// 65,535 bytes, a packet or variable byte integer beyond 256 MiB, a QoS 1/2
/// PUBLISH without packet identifier, or a packet only servers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError;

/// Room left at the front of the buffer for the fixed header, written last
/// (type byte and up to 4 bytes of remaining length).
const HEADER_ROOM: usize = 5;

/// Encode one client-to-server packet. The MQTT 5 acks and DISCONNECT are
/// sent with reason "success" and no properties, whose encoding is the
/// 3.1.1 one.
pub fn encode(packet: &Packet, protocol: Protocol) -> Result<Bytes, EncodeError> {
    let v5 = protocol == Protocol::V5;
    let mut w = Writer {
        buf: vec![0; HEADER_ROOM],
        bad: false,
    };
    let byte1 = match packet {
        Packet::Connect(c) => {
            w.connect(c, v5);
            0x10
        }
        Packet::Publish(p) => {
            w.string(&p.topic);
            if p.qos != QoS::AtMostOnce {
                w.bad |= p.pkid == 0;
                w.u16(p.pkid);
            }
            if v5 {
                w.publish_properties(p.properties.as_ref());
            }
            w.buf.extend_from_slice(&p.payload);
            0x30 | u8::from(p.retain) | (p.qos as u8) << 1 | u8::from(p.dup) << 3
        }
        Packet::PubAck(a) => w.ack(a.pkid, 0x40),
        Packet::PubRec(a) => w.ack(a.pkid, 0x50),
        Packet::PubRel(a) => w.ack(a.pkid, 0x62),
        Packet::PubComp(a) => w.ack(a.pkid, 0x70),
        Packet::Subscribe(s) => {
            w.u16(s.pkid);
            if v5 {
                w.properties(s.properties.as_ref(), |w, p| {
                    if let Some(id) = p.id {
                        w.buf.push(11);
                        w.varint(id);
                    }
                    w.user(&p.user_properties);
                });
            }
            for f in &s.filters {
                w.string(&f.path);
                let mut options = f.qos as u8;
                if v5 {
                    options |= u8::from(f.nolocal) << 2 | u8::from(f.preserve_retain) << 3;
                    options |= match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => 0,
                        v5::RetainForwardRule::OnNewSubscribe => 1 << 4,
                        v5::RetainForwardRule::Never => 2 << 4,
                    };
                }
                w.buf.push(options);
            }
            0x82
        }
        Packet::Unsubscribe(u) => {
            w.u16(u.pkid);
            if v5 {
                w.properties(u.properties.as_ref(), |w, p| w.user(&p.user_properties));
            }
            for f in &u.filters {
                w.string(f);
            }
            0xA2
        }
        Packet::PingReq => 0xC0,
        Packet::Disconnect(_) => 0xE0,
        _ => return Err(EncodeError),
    };
    w.finish(byte1)
}

struct Writer {
    buf: Vec<u8>,
    /// A field did not fit: the packet is refused by [`Writer::finish`].
    bad: bool,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn varint(&mut self, v: usize) {
        self.bad |= v > MAX_VARINT;
        push_varint(&mut self.buf, v);
    }

    /// Two-byte length and the bytes.
    fn binary(&mut self, data: &[u8]) {
        let len = u16::try_from(data.len()).unwrap_or_else(|_| {
            self.bad = true;
            0
        });
        self.u16(len);
        self.buf.extend_from_slice(data);
    }

    fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

    fn ack(&mut self, pkid: u16, byte1: u8) -> u8 {
        self.u16(pkid);
        byte1
    }

    /// An MQTT 5 properties block: its length, then what `write` writes
    /// (a zero length for None).
    fn properties<P>(&mut self, props: Option<&P>, write: impl FnOnce(&mut Self, &P)) {
        let Some(props) = props else {
            self.buf.push(0);
            return;
        };
        let start = self.buf.len();
        write(self, props);
        let block = self.buf.split_off(start);
        self.varint(block.len());
        self.buf.extend_from_slice(&block);
    }

    fn prop_u8(&mut self, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            self.buf.extend_from_slice(&[id, v]);
        }
    }

    fn prop_u16(&mut self, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            self.buf.push(id);
            self.u16(v);
        }
    }

    fn prop_u32(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.buf.push(id);
            self.u32(v);
        }
    }

    fn prop_binary(&mut self, id: u8, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.buf.push(id);
            self.binary(v);
        }
    }

    fn prop_string(&mut self, id: u8, v: &Option<String>) {
        self.prop_binary(id, v.as_deref().map(str::as_bytes));
    }

    fn user(&mut self, pairs: &[(String, String)]) {
        for (key, value) in pairs {
            self.buf.push(38);
            self.string(key);
            self.string(value);
        }
    }

    fn publish_properties(&mut self, props: Option<&v5::PublishProperties>) {
        self.properties(props, |w, p| {
            w.prop_u8(1, p.payload_format_indicator);
            w.prop_u32(2, p.message_expiry_interval);
            w.prop_u16(35, p.topic_alias);
            w.prop_string(8, &p.response_topic);
            w.prop_binary(9, p.correlation_data.as_deref());
            w.user(&p.user_properties);
            for id in &p.subscription_identifiers {
                w.buf.push(11);
                w.varint(*id);
            }
            w.prop_string(3, &p.content_type);
        });
    }

    fn connect(&mut self, c: &v5::Connect, v5: bool) {
        let mut flags = u8::from(c.clean_session) << 1;
        if let Some(will) = &c.last_will {
            flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
        }
        let login = c.login.as_ref();
        let user = login.map_or("", |l| l.username.as_str());
        let pass = login.map_or("", |l| l.password.as_str());
        flags |= u8::from(!user.is_empty()) << 7 | u8::from(!pass.is_empty()) << 6;
        self.string("MQTT");
        self.buf.extend_from_slice(&[if v5 { 5 } else { 4 }, flags]);
        self.u16(c.keep_alive);
        if v5 {
            self.properties(c.properties.as_ref(), |w, p| {
                w.prop_u32(17, p.session_expiry_interval);
                w.prop_u16(33, p.receive_maximum);
                w.prop_u32(39, p.max_packet_size);
                w.prop_u16(34, p.topic_alias_max);
                w.prop_u8(25, p.request_response_info);
                w.prop_u8(23, p.request_problem_info);
                w.user(&p.user_properties);
                w.prop_string(21, &p.authentication_method);
                w.prop_binary(22, p.authentication_data.as_deref());
            });
        }
        self.string(&c.client_id);
        if let Some(will) = &c.last_will {
            if v5 {
                self.properties(will.properties.as_ref(), |w, p| {
                    w.prop_u32(24, p.delay_interval);
                    w.prop_u8(1, p.payload_format_indicator);
                    w.prop_u32(2, p.message_expiry_interval);
                    w.prop_string(3, &p.content_type);
                    w.prop_string(8, &p.response_topic);
                    w.prop_binary(9, p.correlation_data.as_deref());
                    w.user(&p.user_properties);
                });
            }
            self.string(&will.topic);
            self.binary(&will.message);
        }
        for field in [user, pass] {
            if !field.is_empty() {
                self.string(field);
            }
        }
    }

    /// Write the fixed header into the room left for it and cut the buffer
    /// to the packet.
    fn finish(mut self, byte1: u8) -> Result<Bytes, EncodeError> {
        let remaining = self.buf.len() - HEADER_ROOM;
        if self.bad || remaining > MAX_VARINT {
            return Err(EncodeError);
        }
        let mut header = Vec::with_capacity(HEADER_ROOM);
        header.push(byte1);
        push_varint(&mut header, remaining);
        let start = HEADER_ROOM - header.len();
        for (slot, b) in self.buf.iter_mut().skip(start).zip(header) {
            *slot = b;
        }
        Ok(Bytes::from(self.buf).slice(start..))
    }
}

/// A variable byte integer (the caller checks the 256 MiB bound).
fn push_varint(buf: &mut Vec<u8>, mut v: usize) {
    loop {
        let byte = (v % 128) as u8;
        v /= 128;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}
