//! The control-socket session: connect (with the token), send `ready`
//! (protocol v2), print the public URLs, then relay every `http_request` to
//! the local service of its route concurrently and send the answers back,
//! and hand WebSocket streams (`ws_open`, binary frames, `ws_close`) to
//! `streams`; heartbeat pings; reconnect with backoff when the socket is
//! lost; close cleanly on Ctrl-C.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tunnel_proto::heads::{self, RequestHead};
use tunnel_proto::policy::Policies;
use tunnel_proto::v1::decode_body;
use tunnel_proto::v2::{self, Frame, FrameKind};
use tunnel_proto::{names, ErrorCode, Message};

use crate::burst::Burst;
use crate::cli::Args;
use crate::console;
use crate::inspect::{server, Inspector};
use crate::local::{Local, Relayed};
use crate::resume_store::ResumeStore;
use crate::routes::{Routes, Target};
use crate::stop::Stop;
use crate::streams::{Out, Streams};
use backoff_core::{random_unit, Backoff};

/// Read buffer of every WebSocket `ttf` opens (the control socket and
/// local WebSockets). tungstenite zero-fills the free part of its read
/// buffer before each read, also before the reads that find nothing, so
/// its default of 128 KiB made every relayed 100-byte message cost two
/// 128 KiB `memset`s (13 % of `ttf`'s CPU in the WebSocket echo bench).
/// 16 KiB still takes a 64 KiB frame in four reads.
const WS_READ_BUFFER: usize = 16 * 1024;

/// Settings of every WebSocket `ttf` opens (see [`WS_READ_BUFFER`]).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER)
}

/// How a session ended without a fatal error.
enum End {
    /// Ctrl-C / SIGTERM: stop.
    Stopped,
    /// The socket was lost after the tunnel was up: reconnect at once.
    Lost(String),
}

/// A failure to set up a session.
enum Failure {
    /// Retrying cannot help (e.g. the edge refused the token).
    Fatal(anyhow::Error),
    /// Try again after a delay.
    Retry(anyhow::Error),
    /// The name is held (409): its holder may be gone any moment (the edge
    /// closes a silent one within ~12 s), so try again soon, not with the
    /// growing backoff.
    Busy(anyhow::Error),
}

/// Delay between attempts while the requested name is held.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The body of a refused upgrade, or a reason when the edge sent none.
fn refusal_reason(
    resp: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> String {
    let body = resp
        .body()
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let body = body.trim();
    if !body.is_empty() {
        return body.to_string();
    }
    match resp.status().as_u16() {
        409 => {
            "the requested name is held by another connected forwarder (the edge sent no details)"
                .into()
        }
        status => format!("HTTP {status} without details"),
    }
}

/// Run the forwarder until stopped or a fatal error.
pub async fn run(args: Args, policies: Policies) -> anyhow::Result<()> {
    let stop = Stop::install().context("cannot install the Ctrl-C handler")?;
    let routes = args.routes().map_err(|e| anyhow!(e))?;
    let local = Local::new(args.request_timeout());
    // Reconnect delays: from 1 s, doubling to 60 s, with jitter.
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    // Resume token of the current tunnel: presented on reconnect to keep the
    // id; with --name also kept on disk for a restarted ttf.
    let store = ResumeStore::new(&args.endpoint, args.name.as_deref());
    let mut resume = store.load();
    let inspector = start_inspector(&args, &routes, &local).await?;
    let ctx = Ctx {
        args: &args,
        policies: &policies,
        routes: &routes,
        local: &local,
        stop: &stop,
        inspector: inspector.as_ref(),
    };
    loop {
        let delay = match session(&ctx, &mut resume, &store).await {
            Ok(End::Stopped) => {
                println!("Tunnel closed.");
                return Ok(());
            }
            Ok(End::Lost(reason)) => {
                backoff.reset();
                eprintln!("Connection to the edge lost ({reason}); reconnecting");
                backoff.next_delay(random_unit())
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Busy(e)) => {
                eprintln!("{e:#}; retrying in {:.1} s", BUSY_RETRY.as_secs_f64());
                BUSY_RETRY
            }
            Err(Failure::Retry(e)) => {
                let delay = backoff.next_delay(random_unit());
                eprintln!(
                    "Cannot reach the edge: {e:#}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.requested() => { println!("Stopped."); return Ok(()); }
        }
    }
}

/// Start the inspector's web server unless `--inspect off`; a taken
/// default port only turns it off, a taken explicit address is an error.
async fn start_inspector(
    args: &Args,
    routes: &Routes,
    local: &Local,
) -> anyhow::Result<Option<Inspector>> {
    let Some((addr, explicit)) = args.inspect_addr() else {
        return Ok(None);
    };
    let (listener, bound) = match server::bind(addr).await {
        Ok(pair) => pair,
        Err(e) if explicit => {
            bail!("--inspect {addr}: cannot listen there ({e}); choose another address or --inspect off")
        }
        Err(e) => {
            eprintln!(
                "Inspector off: {addr} is not available ({e}); choose one with --inspect ADDR"
            );
            return Ok(None);
        }
    };
    let inspector = Inspector::new(args.inspect_requests, args.inspect_body_cap);
    let ctx = server::Context {
        inspector: inspector.clone(),
        local: local.clone(),
        routes: routes.clone(),
    };
    tokio::spawn(server::serve(listener, ctx));
    println!("Inspector: http://{bound}");
    Ok(Some(inspector))
}

/// What every session shares.
struct Ctx<'a> {
    args: &'a Args,
    policies: &'a Policies,
    routes: &'a Routes,
    local: &'a Local,
    stop: &'a Stop,
    inspector: Option<&'a Inspector>,
}

/// One control-socket session.
async fn session(
    ctx: &Ctx<'_>,
    resume: &mut Option<String>,
    store: &ResumeStore,
) -> Result<End, Failure> {
    let Ctx {
        args,
        policies,
        routes,
        stop,
        inspector,
        ..
    } = *ctx;
    let mut request = args
        .endpoint
        .as_str()
        .into_client_request()
        .with_context(|| {
            format!(
                "invalid --endpoint {:?}: expected ws:// or wss:// URL",
                args.endpoint
            )
        })
        .map_err(Failure::Fatal)?;
    if let Some(token) = &args.token {
        let value = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
            Failure::Fatal(anyhow!(
                "--token contains characters not allowed in a header"
            ))
        })?;
        request.headers_mut().insert("authorization", value);
    }
    if let Some(token) = resume.as_deref() {
        if let Ok(value) = HeaderValue::from_str(token) {
            request.headers_mut().insert(v2::RESUME_HEADER, value);
        }
    }
    if let Some(name) = args.name.as_deref() {
        if let Ok(value) = HeaderValue::from_str(name) {
            request.headers_mut().insert(names::NAME_HEADER, value);
        }
    }
    // Nagle off: answers are small frames that must leave at once.
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true);
    let (mut ws, _) = tokio::select! {
        r = tokio::time::timeout(args.connect_timeout(), connect) => match r {
            Err(_) => return Err(Failure::Retry(anyhow!("no answer within {:?}", args.connect_timeout()))),
            Ok(Err(WsError::Http(resp))) if resume.is_some() && matches!(resp.status().as_u16(), 403 | 410) => {
                *resume = None;
                store.clear();
                return Err(Failure::Retry(anyhow!(
                    "the edge did not resume the tunnel ({}): {}; opening a new one", resp.status(), refusal_reason(&resp)
                )));
            }
            Ok(Err(WsError::Http(resp))) if resp.status().as_u16() == 409 => {
                return Err(Failure::Busy(anyhow!("the edge refused the name ({}): {}", resp.status(), refusal_reason(&resp))));
            }
            Ok(Err(WsError::Http(resp))) if matches!(resp.status().as_u16(), 400 | 401 | 403) => {
                return Err(Failure::Fatal(anyhow!(
                    "the edge refused the control socket ({}): {}; check --token / TTF_TOKEN and --name",
                    resp.status(), refusal_reason(&resp)
                )));
            }
            Ok(Err(e)) => return Err(Failure::Retry(anyhow!(e).context(format!("connecting to {}", args.endpoint)))),
            Ok(Ok(pair)) => pair,
        },
        _ = stop.requested() => return Ok(End::Stopped),
    };
    let ready = Message::Ready {
        version: Some(args.protocol),
        ping_interval_ms: Some(
            args.ping_interval()
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        ),
        policies: (!policies.is_empty()).then(|| policies.clone()),
    };
    ws.send(WsMessage::text(ready.encode()))
        .await
        .map_err(|e| Failure::Retry(e.into()))?;
    let local_url = routes.find("/").to_string();
    let established = tokio::time::timeout(args.connect_timeout(), async {
        while let Some(frame) = ws.next().await {
            if let WsMessage::Text(text) = frame? {
                if let Ok(m @ Message::ConnectionEstablished { .. }) = Message::decode(&text) {
                    return Ok(m);
                }
            }
        }
        bail!("the edge closed the control socket before connection_established")
    })
    .await
    .map_err(|_| {
        Failure::Retry(anyhow!(
            "no connection_established within {:?}",
            args.connect_timeout()
        ))
    })?
    .map_err(Failure::Retry)?;
    if let Message::ConnectionEstablished {
        tunnel_id,
        public_url,
        subdomain_url,
        path_based_url,
        version,
        resume_token,
        policies: confirmed,
        ..
    } = &established
    {
        let missing: Vec<String> = policies
            .names()
            .into_iter()
            .filter(|n| !confirmed.as_ref().is_some_and(|c| c.contains(n)))
            .collect();
        if !missing.is_empty() {
            // Serving without them would expose what the flags protect.
            return Err(Failure::Fatal(anyhow!(
                "the edge does not enforce the edge policies {} (it runs an older worker that ignores them): deploy the current edge-worker, or drop those flags",
                missing.join(", ")
            )));
        }
        if let Some(token) = resume_token {
            if resume.as_deref() != Some(token.as_str()) {
                store.save(token);
            }
            *resume = Some(token.clone());
        }
        if version.is_none() {
            eprintln!("The edge speaks tunnel protocol v1 only: WebSocket and MQTT routes are unavailable");
        }
        for line in console::established_lines(
            tunnel_id,
            public_url,
            subdomain_url.as_deref(),
            path_based_url.as_deref(),
            &local_url,
        ) {
            println!("{line}");
        }
        for route in routes.iter().filter(|r| r.prefix != "/") {
            println!("Route {} -> {}", route.prefix, route.target);
        }
        if let Some(names) = confirmed.as_ref().filter(|n| !n.is_empty()) {
            println!("Edge policies: {}", names.join(", "));
        }
    }
    let binary = matches!(established, Message::ConnectionEstablished { version: Some(v), .. } if v >= heads::VERSION);
    let end = relay(ctx, ws, binary).await;
    if let Some(i) = inspector {
        i.session_ended();
    }
    Ok(end)
}

/// One binary frame from the edge (a batch's frames one by one): a
/// request (v3), or a body chunk or message for a stream. Returns the
/// stream id of the request it started, if it did.
fn on_frame(
    ctx: &Ctx<'_>,
    streams: &mut Streams,
    answers: &mpsc::UnboundedSender<Out>,
    frame: Frame<'_>,
) -> Option<u32> {
    if frame.kind != FrameKind::Request {
        if let Some(i) = ctx.inspector {
            i.edge_binary(&frame);
        }
        streams.deliver(frame);
        return None;
    }
    let (head, body) = match RequestHead::decode(&frame) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("Ignored a bad request frame from the edge: {e}");
            return None;
        }
    };
    if let Some(i) = ctx.inspector {
        i.binary_request(&head, frame.stream_id, body);
    }
    let RequestHead {
        request_id,
        method,
        uri,
        headers,
    } = head;
    let relayed = Relayed {
        request_id,
        method,
        uri,
        headers,
        body: Bytes::copy_from_slice(body),
        upload: None,
    };
    start_request(
        ctx,
        streams,
        answers,
        relayed,
        Some(frame.stream_id),
        !frame.is_end(),
    )
    .then_some(frame.stream_id)
}

/// Serve one relayed request in its own task; its answer (or its head
/// and body frames, on `stream_id`) goes to `answers`. `body_streamed`:
/// the body follows as body frames. False when it was refused at once.
fn start_request(
    ctx: &Ctx<'_>,
    streams: &mut Streams,
    answers: &mpsc::UnboundedSender<Out>,
    mut relayed: Relayed,
    stream_id: Option<u32>,
    body_streamed: bool,
) -> bool {
    let Ctx {
        args,
        routes,
        local,
        inspector,
        ..
    } = *ctx;
    let local = local.clone();
    let tap = inspector.cloned().map(|i| (i, relayed.request_id.clone()));
    let answers = answers.clone();
    let verbose = args.verbose;
    if verbose {
        println!(
            "  -> {} {} headers: {:?}",
            relayed.method, relayed.uri, relayed.headers
        );
    }
    let target = routes.find(&relayed.uri).clone();
    let sink = match stream_id
        .map(|id| streams.request(id, body_streamed))
        .transpose()
    {
        Ok(Some((sink, upload))) => {
            relayed.upload = upload;
            Some(sink)
        }
        Ok(None) => None,
        Err(refusal) => {
            let refused = Message::Error {
                request_id: Some(relayed.request_id),
                code: ErrorCode::InternalError,
                message: refusal.to_string(),
            };
            let _ = answers.send(Out::Frame(WsMessage::text(refused.encode())));
            return false;
        }
    };
    tokio::spawn(async move {
        let (m, u) = (relayed.method.clone(), relayed.uri.clone());
        let outcome = match &target {
            Target::Http(authority) | Target::Ws(authority) => local.serve(relayed, authority, sink).await,
            Target::MqttTcp(addr) => local.refuse(
                relayed,
                ErrorCode::InvalidRequest,
                format!("this path is bridged to the MQTT broker at {addr}: open a WebSocket (subprotocol mqtt) instead"),
            ),
        };
        println!(
            "{}",
            console::request_line(SystemTime::now(), &m, &u, outcome.status, outcome.elapsed)
        );
        if let Some((i, request_id)) = tap {
            i.done(&request_id, &outcome);
        }
        if let Some(detail) = outcome.detail.filter(|_| verbose) {
            println!("  {detail}");
        }
        if let Some(message) = outcome.message {
            let _ = answers.send(Out::Frame(WsMessage::text(message.encode())));
        }
        if let Some(id) = stream_id {
            let _ = answers.send(Out::Ended(id));
        }
    });
    true
}

/// Wait until `deadline`; forever without one.
async fn linger(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Send binary `messages` to the edge.
async fn send_all<K>(sink: &mut K, messages: Vec<Vec<u8>>) -> Result<(), End>
where
    K: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    for message in messages {
        send_one(sink, WsMessage::binary(message)).await?;
    }
    Ok(())
}

/// Send `frame` to the edge.
async fn send_one<K>(sink: &mut K, frame: WsMessage) -> Result<(), End>
where
    K: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    sink.send(frame)
        .await
        .map_err(|e| End::Lost(format!("sending to the edge failed: {e}")))
}

/// Relay requests until the socket is lost or the user stops. `binary`:
/// the edge agreed to v3 (binary heads, batches).
async fn relay<S>(ctx: &Ctx<'_>, ws: tokio_tungstenite::WebSocketStream<S>, binary: bool) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ctx {
        args,
        routes,
        stop,
        inspector,
        ..
    } = *ctx;
    let (mut sink, mut stream) = ws.split();
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Out>();
    let mut streams = Streams::new(
        answers_tx.clone(),
        args.connect_timeout(),
        args.stream_buffer,
        binary,
    );
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + args.ping_interval(),
        args.ping_interval(),
    );
    let mut awaiting_pong = false;
    let mut burst = Burst::default();
    let stop = stop.requested();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    None => return End::Lost("socket ended".into()),
                    Some(Err(e)) => return End::Lost(e.to_string()),
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        match Frame::decode(&bytes) {
                            Ok(frame) if frame.kind == FrameKind::Batch => {
                                let mut started = Vec::new();
                                for inner in heads::unbatch(&frame) {
                                    match inner {
                                        Ok(inner) => started.extend(on_frame(ctx, &mut streams, &answers_tx, inner)),
                                        Err(e) => {
                                            eprintln!("Ignored the rest of a bad batch from the edge: {e}");
                                            break;
                                        }
                                    }
                                }
                                burst.started(&started);
                            }
                            Ok(frame) => {
                                on_frame(ctx, &mut streams, &answers_tx, frame);
                            }
                            Err(e) => eprintln!("Ignored a bad binary frame from the edge: {e}"),
                        }
                        continue;
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        return End::Lost(frame.map(|f| format!("closed by the edge: {} {}", f.code, f.reason)).unwrap_or_else(|| "closed by the edge".into()));
                    }
                    Some(Ok(_)) => continue,
                };
                let decoded = Message::decode(&text);
                if let (Some(i), Ok(m)) = (inspector, &decoded) {
                    let mqtt_route = matches!(m, Message::WsOpen { uri, .. } if matches!(routes.find(uri), Target::MqttTcp(_)));
                    i.edge_text(m, mqtt_route);
                }
                match decoded {
                    Ok(Message::HttpRequest { request_id, method, uri, headers, body, stream_id, body_streamed, .. }) => {
                        let body = match decode_body(&body) {
                            Ok(body) => Bytes::from(body),
                            Err(e) => {
                                let refused = Message::Error { request_id: Some(request_id), code: ErrorCode::InvalidRequest, message: e.to_string() };
                                let _ = answers_tx.send(Out::Frame(WsMessage::text(refused.encode())));
                                continue;
                            }
                        };
                        let relayed = Relayed { request_id, method, uri, headers, body, upload: None };
                        start_request(ctx, &mut streams, &answers_tx, relayed, stream_id, body_streamed);
                    }
                    Ok(Message::Ping) => {
                        if sink.send(WsMessage::text(Message::Pong.encode())).await.is_err() {
                            return End::Lost("sending pong failed".into());
                        }
                    }
                    Ok(Message::Pong) => awaiting_pong = false,
                    Ok(Message::WsOpen { stream_id, uri, headers, protocols }) => {
                        let target = routes.find(&uri).clone();
                        streams.open(stream_id, uri, headers, protocols, &target);
                    }
                    Ok(Message::WsClose { stream_id, code, reason }) => streams.close(stream_id, code, reason),
                    Ok(Message::Window { stream_id, bytes }) => streams.window(stream_id, bytes),
                    Ok(other) => {
                        if args.verbose {
                            println!("  ignored message from the edge: {other:?}");
                        }
                    }
                    Err(e) => eprintln!("Ignored a bad frame from the edge: {e}"),
                }
            }
            Some(out) = answers.recv() => {
                // Everything queued now; v3 binary frames wait in `burst`
                // for the answers of their batch (see burst.rs). The
                // inspector sees each frame as it is made, before its
                // stream's end.
                let mut next = Some(out);
                while let Some(out) = next.take() {
                    let frame = match out {
                        Out::Frame(frame) => {
                            if let Some(i) = inspector {
                                i.to_edge(&frame);
                            }
                            match frame {
                                WsMessage::Binary(frame) if binary => {
                                    burst.hold(frame.into(), Instant::now());
                                    None
                                }
                                frame => Some(frame),
                            }
                        }
                        Out::Consumed(id, bytes) => {
                            streams.consumed(id, bytes);
                            Some(WsMessage::text(Message::Window { stream_id: id, bytes }.encode()))
                        }
                        Out::Ended(id) => {
                            if let Some(i) = inspector {
                                i.stream_ended(id);
                            }
                            streams.ended(id);
                            burst.ended(id);
                            None
                        }
                    };
                    if let Some(frame) = frame {
                        // Nothing overtakes a held frame.
                        if let Err(end) = send_all(&mut sink, burst.take()).await {
                            return end;
                        }
                        if let Err(end) = send_one(&mut sink, frame).await {
                            return end;
                        }
                    }
                    next = answers.try_recv().ok();
                }
                if let Err(end) = send_all(&mut sink, burst.due(Instant::now())).await {
                    return end;
                }
            },
            _ = linger(burst.deadline()) => {
                if let Err(end) = send_all(&mut sink, burst.due(Instant::now())).await {
                    return end;
                }
            },
            _ = heartbeat.tick() => {
                if awaiting_pong {
                    return End::Lost(format!("no pong within {:?}", args.ping_interval()));
                }
                awaiting_pong = true;
                if sink.send(WsMessage::text(Message::Ping.encode())).await.is_err() {
                    return End::Lost("sending ping failed".into());
                }
            }
            _ = &mut stop => {
                // Answers already made still go out.
                let _ = send_all(&mut sink, burst.take()).await;
                let close = CloseFrame { code: CloseCode::Normal, reason: "forwarder stopped".into() };
                let _ = sink.send(WsMessage::Close(Some(close))).await;
                // Wait briefly for the edge to acknowledge the close.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(frame)) = stream.next().await {
                        if matches!(frame, WsMessage::Close(_)) { break; }
                    }
                }).await;
                return End::Stopped;
            }
        }
    }
}
