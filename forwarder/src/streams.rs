//! Relayed WebSocket streams (protocol v2): each `ws_open` from the edge
//! starts one task that connects to the local target, a `ws://` service
//! (subprotocols passed on) or an MQTT broker's TCP port (bridged: the byte
//! stream is cut into whole MQTT packets, one packet per message), and then
//! relays messages both ways, one message for one message, in order, until
//! either side closes (code and reason relayed).
//!
//! Messages from the edge wait in a per-stream queue bounded in bytes
//! ([`crate::stream_queue`]); a local side that does not keep up gets its
//! stream closed with 1013 instead of making the forwarder buffer without
//! bound.

use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mqtt_session::framing::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tunnel_proto::stream::{WsData, INVALID_TEXT_CODE};
use tunnel_proto::table::{Chunk, Part, PartKind, Refusal, Slots, StreamTable, MAX_STREAMS};
use tunnel_proto::v2::{self, Frame, FrameKind};
use tunnel_proto::{Headers, Message};

use crate::console;
use crate::local::{BodySink, Upload};
use crate::routes::Target;
use crate::stream_queue::{self, Cost, QueueRx, QueueTx, Refused};

/// Largest MQTT packet the TCP bridge reassembles.
pub const MAX_MQTT_PACKET: usize = 16 * 1024 * 1024;

/// Bytes of queued messages the TCP bridge gathers into one write (MQTT.js
/// sends one packet as several small WebSocket messages).
const TCP_WRITE_BATCH: usize = 256 * 1024;

/// What a task sends to the control socket.
#[derive(Debug)]
pub enum Out {
    /// A frame to send to the edge.
    Frame(WsMessage),
    /// Stream `id` ended: forget it.
    Ended(u32),
    /// The local service took this many bytes of stream `id`'s request
    /// body: the receive window reopens and the edge gets a `window`.
    Consumed(u32, u32),
}

/// Input of one stream task.
#[derive(Debug)]
enum Input {
    /// One message from the public side.
    Message(WsMessage),
    /// The public side closed with this code and reason.
    Close(u16, String),
}

impl Cost for Input {
    fn bytes(&self) -> usize {
        match self {
            Input::Message(m) => m.len(),
            Input::Close(_, reason) => reason.len(),
        }
    }
}

/// What `ttf` keeps per stream in its [`StreamTable`].
struct ForwarderSlots;

impl Slots for ForwarderSlots {
    /// The edge opens streams; this side never waits for an open.
    type Open = Infallible;
    /// Window updates of a streamed answer body.
    type Grants = mpsc::UnboundedSender<u32>;
    /// A streamed request body being received.
    type Body = mpsc::UnboundedSender<Result<Bytes, String>>;
    /// The queue of a relayed WebSocket's task.
    type Input = QueueTx<Input>;
}

/// The open streams of one control-socket session.
pub struct Streams {
    table: StreamTable<ForwarderSlots>,
    out: mpsc::UnboundedSender<Out>,
    timeout: Duration,
    /// Bytes that may wait in one stream's queue.
    queue_bytes: usize,
    /// v3 was agreed: answer heads go in binary frames.
    binary: bool,
}

/// A control message as a text frame for the edge.
fn control(message: Message) -> Out {
    Out::Frame(WsMessage::text(message.encode()))
}

/// A close frame for a relayed `code` and `reason`.
fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(v2::sendable_close_code(code).map(|code| CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }))
}

impl Streams {
    /// Streams whose tasks report on `out`; `timeout` bounds connecting,
    /// `queue_bytes` what may wait for one slow local side; `binary`: the
    /// edge agreed to v3 (binary heads).
    pub fn new(
        out: mpsc::UnboundedSender<Out>,
        timeout: Duration,
        queue_bytes: usize,
        binary: bool,
    ) -> Self {
        Self {
            // The edge picks the ids; this side only validates them.
            table: StreamTable::new(0, MAX_STREAMS),
            out,
            timeout,
            queue_bytes,
            binary,
        }
    }

    /// Start stream `id` towards `target` for the public path `uri`.
    pub fn open(
        &mut self,
        id: u32,
        uri: String,
        headers: Headers,
        protocols: Vec<String>,
        target: &Target,
    ) {
        let (tx, rx) = stream_queue::queue(self.queue_bytes);
        if let Err(refusal) = self.table.insert(id, Part::Input(tx)) {
            eprintln!("Refused a WebSocket stream from the edge: {refusal}");
            let status = if matches!(refusal, Refusal::Full(_)) {
                503
            } else {
                502
            };
            let _ = self.out.send(control(Message::WsRefused {
                stream_id: id,
                status,
                message: refusal.to_string(),
            }));
            return;
        }
        let out = self.out.clone();
        let timeout = self.timeout;
        match target.clone() {
            Target::Http(authority) | Target::Ws(authority) => {
                let url = format!("ws://{authority}{uri}");
                tokio::spawn(async move {
                    run_ws(id, url, uri, headers, protocols, rx, &out, timeout).await;
                    let _ = out.send(Out::Ended(id));
                });
            }
            Target::MqttTcp(addr) => {
                tokio::spawn(async move {
                    run_mqtt_tcp(id, addr, uri, protocols, rx, &out, timeout).await;
                    let _ = out.send(Out::Ended(id));
                });
            }
        }
    }

    /// A binary frame from the edge: one message for its stream, or a
    /// chunk of a request body.
    pub fn deliver(&mut self, frame: Frame<'_>) {
        if frame.kind == FrameKind::Body {
            // An ABORT also stops the answer's body task (nobody reads it);
            // the edge cancels nothing it did not start, so a cancel
            // verdict needs no answer from this side.
            let abort = frame.is_abort();
            self.table.on_body(&frame, |tx, chunk| {
                let chunk = match chunk {
                    Chunk::Data(bytes) => Ok(Bytes::copy_from_slice(bytes)),
                    Chunk::Failed(_) if abort => Err("the edge aborted the request body".into()),
                    Chunk::Failed(reason) => Err(reason),
                };
                tx.send(chunk).is_ok()
            });
            return;
        }
        if frame.kind != FrameKind::WsMessage {
            return; // Heads and batches are the session's (relay.rs).
        }
        let message = match WsData::from_frame(&frame) {
            Ok(WsData::Text(t)) => WsMessage::text(t),
            Ok(WsData::Binary(b)) => WsMessage::binary(b.to_vec()),
            Err(reason) => {
                self.fail(frame.stream_id, INVALID_TEXT_CODE, reason);
                return;
            }
        };
        self.send(frame.stream_id, Input::Message(message));
    }

    /// The public side of stream `id` closed.
    pub fn close(&mut self, id: u32, code: u16, reason: String) {
        self.send(id, Input::Close(code, reason));
    }

    /// Stream `id`'s task ended.
    pub fn ended(&mut self, id: u32) {
        self.table.close(id);
    }

    /// The streams of a v2 request on stream `id`: where its answer body
    /// may stream, and (`upload`) its request body, fed by body frames.
    pub fn request(
        &mut self,
        id: u32,
        upload: bool,
    ) -> Result<(BodySink, Option<Upload>), Refusal> {
        let (tx, credits) = mpsc::unbounded_channel();
        self.table.insert(id, Part::Grants(tx))?;
        let sink = BodySink {
            stream_id: id,
            out: self.out.clone(),
            credits,
            binary: self.binary,
        };
        if !upload {
            return Ok((sink, None));
        }
        let (tx, chunks) = mpsc::unbounded_channel();
        if let Err(refusal) = self.table.insert(id, Part::Body(tx)) {
            self.table.detach(id, PartKind::Grants);
            return Err(refusal);
        }
        let upload = Upload {
            stream_id: id,
            chunks,
            out: self.out.clone(),
        };
        Ok((sink, Some(upload)))
    }

    /// The edge acknowledged `bytes` of stream `id`'s body.
    pub fn window(&mut self, id: u32, bytes: u32) {
        if let Some(tx) = self.table.grants(id) {
            let _ = tx.send(bytes);
        }
    }

    /// The local service took `bytes` of stream `id`'s request body.
    pub fn consumed(&mut self, id: u32, bytes: u32) {
        self.table.consumed(id, bytes as usize);
    }

    fn send(&mut self, id: u32, input: Input) {
        let Some(tx) = self.table.input(id) else {
            return; // Ended already: late messages are dropped.
        };
        match tx.try_send(input) {
            Ok(()) => {}
            Err(Refused::Full(behind)) => self.fail(
                id,
                1013,
                &format!("the local side reads too slowly: {behind} bytes waiting"),
            ),
            Err(Refused::Closed) => {
                self.table.detach(id, PartKind::Input);
            }
        }
    }

    /// Give up stream `id`: the public side gets `code`, the local side
    /// sees its queue end (1001).
    fn fail(&mut self, id: u32, code: u16, reason: &str) {
        self.table.detach(id, PartKind::Input);
        let _ = self.out.send(control(Message::WsClose {
            stream_id: id,
            code,
            reason: reason.into(),
        }));
    }
}

/// Print the console line of an open attempt.
fn log_open(uri: &str, status: u16, start: Instant) {
    println!(
        "{}",
        console::request_line(SystemTime::now(), "WS", uri, status, start.elapsed())
    );
}

/// Connect to a local WebSocket service; `Err((status, message))` for the
/// public caller when it cannot be reached or refuses.
async fn connect_ws(
    url: &str,
    headers: &Headers,
    protocols: &[String],
    timeout: Duration,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
        Option<String>,
    ),
    (u16, String),
> {
    let mut request = url.into_client_request().map_err(|e| {
        (
            400,
            format!("cannot build the local WebSocket URL {url}: {e}"),
        )
    })?;
    for (name, values) in headers {
        if name == "host" || name == "content-length" || name.starts_with("sec-websocket-") {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                request.headers_mut().append(name.clone(), value);
            }
        }
    }
    if !protocols.is_empty() {
        let offered = HeaderValue::from_str(&protocols.join(", "))
            .map_err(|_| (400, "invalid Sec-WebSocket-Protocol".to_string()))?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offered);
    }
    let connect = tokio_tungstenite::connect_async_with_config(
        request,
        Some(crate::relay::ws_config()),
        true,
    );
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err((
            504,
            format!("the local WebSocket {url} did not open within {timeout:?}"),
        )),
        Ok(Err(WsError::Http(resp))) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let status = resp.status().as_u16();
            Err((
                status,
                if body.is_empty() {
                    format!("the local service refused the WebSocket upgrade with {status}")
                } else {
                    body
                },
            ))
        }
        Ok(Err(WsError::Io(e))) => Err((502, format!("nothing answers on {url}: {e}"))),
        Ok(Err(e)) => Err((
            502,
            format!("the local WebSocket {url} failed to open: {e}"),
        )),
        Ok(Ok((ws, resp))) => {
            let protocol = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok((ws, protocol))
        }
    }
}

/// One stream to a local WebSocket service.
#[allow(clippy::too_many_arguments)]
async fn run_ws(
    id: u32,
    url: String,
    uri: String,
    headers: Headers,
    protocols: Vec<String>,
    mut input: QueueRx<Input>,
    out: &mpsc::UnboundedSender<Out>,
    timeout: Duration,
) {
    let start = Instant::now();
    let local = match connect_ws(&url, &headers, &protocols, timeout).await {
        Ok((ws, protocol)) => {
            let _ = out.send(control(Message::WsOpened {
                stream_id: id,
                protocol,
            }));
            log_open(&uri, 101, start);
            ws
        }
        Err((status, message)) => {
            log_open(&uri, status, start);
            let _ = out.send(control(Message::WsRefused {
                stream_id: id,
                status,
                message,
            }));
            return;
        }
    };
    let (mut sink, mut stream) = local.split();
    let to_edge = |message: WsMessage| {
        let frame = match &message {
            WsMessage::Text(t) => WsData::Text(t.as_str()).encode(id),
            WsMessage::Binary(b) => WsData::Binary(b).encode(id),
            _ => return,
        };
        let _ = out.send(Out::Frame(WsMessage::binary(frame)));
    };
    let closed_by_public = loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => to_edge(m),
                Some(Ok(WsMessage::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((v2::CLOSE_NO_STATUS, String::new()));
                    let _ = out.send(control(Message::WsClose { stream_id: id, code, reason }));
                    let _ = sink.close().await;
                    return;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    let reason = match m {
                        Some(Err(e)) => format!("the local WebSocket failed: {e}"),
                        _ => "the local WebSocket ended without a close frame".into(),
                    };
                    let _ = out.send(control(Message::WsClose { stream_id: id, code: 1006, reason }));
                    return;
                }
            },
            i = input.recv() => {
                let i = match i {
                    Some(Input::Message(m)) => match write_queued(&mut sink, m, &mut input).await {
                        Ok(None) => continue,
                        Ok(rest) => rest,
                        Err(e) => {
                            let _ = out.send(control(Message::WsClose {
                                stream_id: id,
                                code: 1006,
                                reason: format!("writing to the local WebSocket failed: {e}"),
                            }));
                            return;
                        }
                    },
                    other => other,
                };
                match i {
                    Some(Input::Close(code, reason)) => break close_frame(code, &reason),
                    // `write_queued` hands back anything but a message.
                    Some(Input::Message(_)) => continue,
                    None => break close_frame(1001, "the tunnel closed the stream"),
                }
            },
        }
    };
    // The public side closed: pass its close on and wait briefly for the
    // local side's answer.
    let _ = sink.send(closed_by_public).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, WsMessage::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Write `first` and the messages queued right behind it to the local
/// socket, flushed once: the messages of one batch from the edge leave in
/// one write (one syscall, and the local service reads them together)
/// instead of one each. The first queued input that is not a message is
/// handed back.
async fn write_queued<S>(
    sink: &mut S,
    first: WsMessage,
    input: &mut QueueRx<Input>,
) -> Result<Option<Input>, WsError>
where
    S: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    sink.feed(first).await?;
    let mut rest = None;
    while let Some(next) = input.try_recv() {
        match next {
            Input::Message(m) => sink.feed(m).await?,
            other => {
                rest = Some(other);
                break;
            }
        }
    }
    sink.flush().await?;
    Ok(rest)
}

/// One stream bridged to an MQTT broker's TCP port.
async fn run_mqtt_tcp(
    id: u32,
    addr: String,
    uri: String,
    protocols: Vec<String>,
    mut input: QueueRx<Input>,
    out: &mpsc::UnboundedSender<Out>,
    timeout: Duration,
) {
    let start = Instant::now();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(tcp)) => tcp,
        failed => {
            let message = match failed {
                Ok(Err(e)) => format!("nothing answers on mqtt+tcp://{addr}: {e}"),
                _ => format!("the broker at {addr} did not accept within {timeout:?}"),
            };
            log_open(&uri, 502, start);
            let _ = out.send(control(Message::WsRefused {
                stream_id: id,
                status: 502,
                message,
            }));
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let _ = out.send(control(Message::WsOpened {
        stream_id: id,
        protocol: v2::mqtt_subprotocol(&protocols),
    }));
    log_open(&uri, 101, start);
    let (mut rd, mut wr) = tcp.into_split();
    let mut framer = Framer::new(MAX_MQTT_PACKET);
    let mut buf = vec![0u8; 64 * 1024];
    let close = |code: u16, reason: String| {
        let _ = out.send(control(Message::WsClose {
            stream_id: id,
            code,
            reason,
        }));
    };
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) => return close(1000, "the broker closed the connection".into()),
                Ok(n) => {
                    framer.push(buf.get(..n).unwrap_or_default());
                    loop {
                        match framer.next_packet() {
                            Ok(Some(packet)) => {
                                let frame = WsData::Binary(&packet).encode(id);
                                let _ = out.send(Out::Frame(WsMessage::binary(frame)));
                            }
                            Ok(None) => break,
                            Err(e) => return close(1002, format!("the broker sent bad MQTT: {e}")),
                        }
                    }
                }
                Err(e) => return close(1011, format!("reading from the broker failed: {e}")),
            },
            i = input.recv() => match i {
                Some(Input::Message(m)) => {
                    // One write for what is waiting (up to a batch), in order.
                    let mut data = Vec::from(m.into_data());
                    let mut closed = false;
                    while data.len() < TCP_WRITE_BATCH {
                        match input.try_recv() {
                            Some(Input::Message(m)) => data.extend_from_slice(&m.into_data()),
                            Some(Input::Close(..)) => {
                                closed = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    if let Err(e) = wr.write_all(&data).await {
                        return close(1011, format!("writing to the broker failed: {e}"));
                    }
                    if closed {
                        let _ = wr.shutdown().await;
                        return;
                    }
                }
                Some(Input::Close(..)) | None => {
                    let _ = wr.shutdown().await;
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A sink that records what it was fed and when it was flushed.
    #[derive(Default)]
    struct Recorder {
        fed: Vec<WsMessage>,
        flushed_after: Vec<usize>,
    }

    impl futures_util::Sink<WsMessage> for Recorder {
        type Error = WsError;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), WsError> {
            self.fed.push(item);
            Ok(())
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            let n = self.fed.len();
            self.flushed_after.push(n);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_messages_leave_in_one_flush_and_a_close_is_handed_back() {
        let (tx, mut rx) = stream_queue::queue::<Input>(1 << 20);
        for text in ["b", "c"] {
            tx.try_send(Input::Message(WsMessage::text(text))).unwrap();
        }
        tx.try_send(Input::Close(1000, "bye".into())).unwrap();
        tx.try_send(Input::Message(WsMessage::text("after")))
            .unwrap();
        let mut sink = Recorder::default();
        let rest = write_queued(&mut sink, WsMessage::text("a"), &mut rx)
            .await
            .unwrap();
        let texts: Vec<String> = sink
            .fed
            .iter()
            .map(|m| m.to_text().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(sink.flushed_after, [3], "one flush, after the last message");
        assert!(matches!(rest, Some(Input::Close(1000, r)) if r == "bye"));
        // What follows the close stays queued.
        assert!(matches!(rx.try_recv(), Some(Input::Message(_))));
    }

    #[tokio::test]
    async fn a_lone_message_is_written_and_flushed() {
        let (_tx, mut rx) = stream_queue::queue::<Input>(1 << 20);
        let mut sink = Recorder::default();
        let rest = write_queued(&mut sink, WsMessage::binary(vec![1, 2]), &mut rx)
            .await
            .unwrap();
        assert!(rest.is_none());
        assert_eq!(sink.fed, [WsMessage::binary(vec![1, 2])]);
        assert_eq!(sink.flushed_after, [1]);
    }
}
