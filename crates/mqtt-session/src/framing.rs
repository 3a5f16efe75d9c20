//! Cutting a byte stream into whole MQTT control packets.
//!
//! MQTT over WebSocket wants one packet per WebSocket message, while TCP and
//! the WebSocket spec allow a message to carry several packets or part of one.
//! [`Framer`] reassembles with a bounded buffer and yields whole packets.

use bytes::BytesMut;

/// Why the stream cannot be framed; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Malformed MQTT remaining length (more than 4 bytes).
    MalformedLength,
    /// A packet larger than the framer's limit.
    TooLarge { size: usize, limit: usize },
}

impl FrameError {
    /// Append the explanation (no `core::fmt`: see [`crate::Error`]).
    pub(crate) fn push_message(&self, m: &mut String) {
        match self {
            FrameError::MalformedLength => {
                m.push_str("malformed MQTT remaining length (more than 4 bytes)")
            }
            FrameError::TooLarge { size, limit } => {
                m.push_str("MQTT packet of ");
                crate::error::push_decimal(m, *size);
                m.push_str(" bytes exceeds the limit of ");
                crate::error::push_decimal(m, *limit);
                m.push_str(" bytes");
            }
        }
    }
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = String::new();
        self.push_message(&mut m);
        f.write_str(&m)
    }
}

impl std::error::Error for FrameError {}

/// Reassembles whole packets from arbitrary chunks.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max_packet: usize,
}

impl Framer {
    /// A framer refusing packets larger than `max_packet` bytes (header included).
    pub fn new(max_packet: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_packet,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole packet (fixed header included), if one is complete.
    pub fn next_packet(&mut self) -> Result<Option<bytes::Bytes>, FrameError> {
        let Some(size) = packet_size(&self.buf)? else {
            return Ok(None);
        };
        if size > self.max_packet {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_packet,
            });
        }
        if self.buf.len() < size {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(size).freeze()))
    }
}

/// Total size of the packet starting at `buf[0]`, once its fixed header is
/// complete.
fn packet_size(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut remaining = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(1 + i + 1 + remaining));
        }
    }
    if buf.len() >= 5 {
        Err(FrameError::MalformedLength)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(len: usize) -> Vec<u8> {
        // PUBLISH QoS 0, topic "t", payload of len-... bytes: fixed header built by hand.
        let mut body = vec![0, 1, b't'];
        body.extend(std::iter::repeat_n(7u8, len));
        let mut out = vec![0x30];
        let mut rem = body.len();
        loop {
            let mut b = (rem % 128) as u8;
            rem /= 128;
            if rem > 0 {
                b |= 0x80;
            }
            out.push(b);
            if rem == 0 {
                break;
            }
        }
        out.extend(body);
        out
    }

    #[test]
    fn split_and_combined_packets() {
        let a = publish(3);
        let b = publish(300);
        let mut stream = a.clone();
        stream.extend(&b);
        for cut in 0..stream.len() {
            let mut f = Framer::new(1 << 20);
            let mut got = vec![];
            for part in [&stream[..cut], &stream[cut..]] {
                f.push(part);
                while let Some(p) = f.next_packet().unwrap() {
                    got.push(p.to_vec());
                }
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "cut at {cut}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn oversize_and_malformed_are_errors() {
        let mut f = Framer::new(10);
        f.push(&publish(100));
        assert!(matches!(f.next_packet(), Err(FrameError::TooLarge { .. })));
        let mut f = Framer::new(1 << 20);
        f.push(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(f.next_packet(), Err(FrameError::MalformedLength));
    }
}
