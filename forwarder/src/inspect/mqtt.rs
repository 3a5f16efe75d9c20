//! MQTT-over-WebSocket decoding for the inspector: one decoder per
//! direction of a stream reassembles whole packets across messages
//! (`mqtt_session::framing::Framer`; MQTT.js splits one packet over several
//! messages) and summarises each with `mqttbytes` (3.1.1, or 5 once a
//! CONNECT of protocol level 5 was seen): type, topic, QoS, packet id and a
//! payload preview.

use bytes::BytesMut;
use mqtt_session::framing::Framer;
use mqttbytes::QoS;
use serde::Serialize;

/// Largest packet reassembled for inspection; a larger one stops decoding
/// of that direction (the relay itself is not affected).
const MAX_INSPECTED_PACKET: usize = 1024 * 1024;

/// Characters of payload shown.
const PREVIEW_CHARS: usize = 120;

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MqttPacket {
    /// `CONNECT`, `PUBLISH`, `SUBSCRIBE`, ...
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u16>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
    /// Payload length (PUBLISH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_len: Option<usize>,
    /// Payload as text when it is UTF-8, else hex of its first bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_preview: Option<String>,
    /// Anything else worth a glance: client id, filters, return code, or
    /// why the packet did not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl MqttPacket {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            topic: None,
            qos: None,
            packet_id: None,
            retain: false,
            payload_len: None,
            payload_preview: None,
            detail: None,
        }
    }
}

/// Reassembles and decodes one direction of an MQTT stream.
#[derive(Debug)]
pub struct MqttDecoder {
    framer: Framer,
    v5: Option<bool>,
    stopped: bool,
}

impl Default for MqttDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MqttDecoder {
    pub fn new() -> Self {
        Self {
            framer: Framer::new(MAX_INSPECTED_PACKET),
            v5: None,
            stopped: false,
        }
    }

    /// MQTT 5 (`Some(true)`) or 3.1.1, once a CONNECT told.
    pub fn v5(&self) -> Option<bool> {
        self.v5
    }

    /// Decode as MQTT 5 or 3.1.1 from now on.
    pub fn set_v5(&mut self, v5: bool) {
        self.v5 = Some(v5);
    }

    /// Feed one message's bytes; the packets it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<MqttPacket> {
        if self.stopped {
            return Vec::new();
        }
        self.framer.push(bytes);
        let mut out = Vec::new();
        loop {
            match self.framer.next_packet() {
                Ok(Some(packet)) => {
                    if let Some(level) = connect_level(&packet) {
                        self.v5 = Some(level == 5);
                    }
                    out.push(summarise(&packet, self.v5 == Some(true)));
                }
                Ok(None) => break,
                Err(e) => {
                    self.stopped = true;
                    let mut p = MqttPacket::new("UNDECODED");
                    p.detail = Some(format!("stopped decoding this direction: {e}"));
                    out.push(p);
                    break;
                }
            }
        }
        out
    }
}

/// The protocol level of a CONNECT packet.
fn connect_level(packet: &[u8]) -> Option<u8> {
    if packet.first()? >> 4 != 1 {
        return None;
    }
    // Fixed header: 1 byte + 1..4 bytes of remaining length.
    let len_bytes = packet
        .get(1..)?
        .iter()
        .take(4)
        .position(|b| b & 0x80 == 0)?
        + 1;
    // Protocol name (2-byte length + "MQTT" or "MQIsdp"), then the level.
    let name_at = 1 + len_bytes;
    let name_len = usize::from(u16::from_be_bytes([
        *packet.get(name_at)?,
        *packet.get(name_at + 1)?,
    ]));
    packet.get(name_at + 2 + name_len).copied()
}

fn qos(q: QoS) -> u8 {
    q as u8
}

fn preview(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.chars().take(PREVIEW_CHARS).collect(),
        Err(_) => payload
            .iter()
            .take(PREVIEW_CHARS / 3)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Summarise one whole packet.
fn summarise(packet: &[u8], v5: bool) -> MqttPacket {
    let mut buf = BytesMut::from(packet);
    let decoded = if v5 {
        mqttbytes::v5::read(&mut buf, MAX_INSPECTED_PACKET).map(from_v5)
    } else {
        mqttbytes::v4::read(&mut buf, MAX_INSPECTED_PACKET).map(from_v4)
    };
    decoded.unwrap_or_else(|e| {
        let mut p = MqttPacket::new("MALFORMED");
        p.detail = Some(format!("{e:?}"));
        p
    })
}

fn publish(topic: &str, q: QoS, pkid: u16, retain: bool, payload: &[u8]) -> MqttPacket {
    let mut p = MqttPacket::new("PUBLISH");
    p.topic = Some(topic.to_string());
    p.qos = Some(qos(q));
    p.packet_id = (pkid != 0).then_some(pkid);
    p.retain = retain;
    p.payload_len = Some(payload.len());
    p.payload_preview = Some(preview(payload));
    p
}

fn with_id(kind: &'static str, pkid: u16) -> MqttPacket {
    let mut p = MqttPacket::new(kind);
    p.packet_id = Some(pkid);
    p
}

/// The summary of a decoded packet of `mqttbytes::$v` (v4 and v5 name
/// their fields alike, except for what the caller passes in).
macro_rules! from_packet {
    ($packet:expr, $v:ident, $label:literal, $unsubscribe:ident, $disconnect:pat) => {{
        use mqttbytes::$v::Packet as P;
        match $packet {
            P::Connect(c) => {
                let mut p = MqttPacket::new("CONNECT");
                p.detail = Some(format!(
                    "client id {:?}, keep alive {} s, {}",
                    c.client_id, c.keep_alive, $label
                ));
                p
            }
            P::ConnAck(c) => {
                let mut p = MqttPacket::new("CONNACK");
                p.detail = Some(format!("{:?}", c.code));
                p
            }
            P::Publish(x) => publish(&x.topic, x.qos, x.pkid, x.retain, &x.payload),
            P::PubAck(x) => with_id("PUBACK", x.pkid),
            P::PubRec(x) => with_id("PUBREC", x.pkid),
            P::PubRel(x) => with_id("PUBREL", x.pkid),
            P::PubComp(x) => with_id("PUBCOMP", x.pkid),
            P::Subscribe(x) => {
                let mut p = with_id("SUBSCRIBE", x.pkid);
                let paths: Vec<&str> = x.filters.iter().map(|f| f.path.as_str()).collect();
                p.topic = Some(paths.join(", "));
                p.qos = x.filters.first().map(|f| qos(f.qos));
                p
            }
            P::SubAck(x) => {
                let mut p = with_id("SUBACK", x.pkid);
                p.detail = Some(format!("{:?}", x.return_codes));
                p
            }
            P::Unsubscribe(x) => {
                let mut p = with_id("UNSUBSCRIBE", x.pkid);
                p.topic = Some(x.$unsubscribe.join(", "));
                p
            }
            P::UnsubAck(x) => with_id("UNSUBACK", x.pkid),
            P::PingReq => MqttPacket::new("PINGREQ"),
            P::PingResp => MqttPacket::new("PINGRESP"),
            $disconnect => MqttPacket::new("DISCONNECT"),
        }
    }};
}

fn from_v4(packet: mqttbytes::v4::Packet) -> MqttPacket {
    from_packet!(packet, v4, "MQTT 3.1.1", topics, P::Disconnect)
}

fn from_v5(packet: mqttbytes::v5::Packet) -> MqttPacket {
    from_packet!(packet, v5, "MQTT 5", filters, P::Disconnect(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_connect_switches_the_decoder() {
        let mut d = MqttDecoder::new();
        // CONNECT, MQTT 5, client id "x", no properties.
        let connect = [
            0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 30, 0, 0, 1, b'x',
        ];
        let out = d.push(&connect);
        assert_eq!(out[0].kind, "CONNECT", "{out:?}");
        assert!(out[0].detail.as_deref().unwrap().contains("MQTT 5"));
        assert_eq!(d.v5(), Some(true));
        // PUBLISH QoS 0, topic "t", empty properties, binary payload.
        let publish = [0x30, 6, 0, 1, b't', 0, 0xff, 0x00];
        let p = &d.push(&publish)[0];
        assert_eq!(
            (p.kind, p.topic.as_deref(), p.qos),
            ("PUBLISH", Some("t"), Some(0))
        );
        assert_eq!(p.payload_preview.as_deref(), Some("ff 00"));
    }

    #[test]
    fn several_packets_in_one_message_and_garbage_stops_once() {
        let mut d = MqttDecoder::new();
        let out = d.push(&[0xc0, 0, 0xd0, 0, 0xe0, 0]);
        let kinds: Vec<_> = out.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, ["PINGREQ", "PINGRESP", "DISCONNECT"]);
        // A remaining length of five continuation bytes is malformed.
        let out = d.push(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(out[0].kind, "UNDECODED");
        assert!(d.push(&[0xc0, 0]).is_empty());
    }
}
