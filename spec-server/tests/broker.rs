//! The embedded broker as an attacker and a heavy user meet it: isolation
//! between clients, invalid client ids, MQTT 5 and keepalive 0 on TCP,
//! same-id reconnects under JWT, duplicate deliveries, one client's burst,
//! memory after a write-heavy run, and an external mosquitto isolating
//! clients with a `pattern` ACL. Peers: rumqttc clients, raw MQTT packets
//! over TCP, mosquitto.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{client, code, ok, start_server};
use e2e::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::json;
use spec_server::client::{ClientOptions, SpecClient};
use spec_server::jwt::sign_hs256;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

/// The burst and the memory test each load both cores for seconds: one at a
/// time, so neither measures the other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plain rumqttc client: its events arrive on the returned channel.
async fn raw_client(port: u16, id: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Packet>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(packet) = event {
                if tx.send(packet).is_err() {
                    return;
                }
            }
        }
    });
    (client, rx)
}

async fn next_packet(
    rx: &mut mpsc::UnboundedReceiver<Packet>,
    want: impl Fn(&Packet) -> bool,
) -> Packet {
    loop {
        let packet = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a packet in time")
            .expect("connection open");
        if want(&packet) {
            return packet;
        }
    }
}

/// `client` pings on its own request topic; returns the next PUBLISH it
/// receives (its pong, unless something else reached it first).
async fn ping_and_next(
    client: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Packet>,
    client_id: &str,
    id: &str,
) -> rumqttc::Publish {
    client
        .publish(
            format!("spec/{client_id}/request"),
            QoS::AtLeastOnce,
            false,
            json!({"id": id, "type": "ping"}).to_string(),
        )
        .await
        .unwrap();
    match next_packet(rx, |p| matches!(p, Packet::Publish(_))).await {
        Packet::Publish(p) => p,
        _ => unreachable!(),
    }
}

/// MQTT 3.1.1 CONNECT (clean session) with `client_id` and `keep_alive`.
fn connect_v4(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x04\x02".to_vec();
    body.extend(keep_alive.to_be_bytes());
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

/// MQTT 5 CONNECT (clean start, no properties) with `client_id`.
fn connect_v5(client_id: &str) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x05\x02\x00\x1e\x00".to_vec();
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

/// Send `connect` and return the CONNACK's return / reason code.
fn connack_code(port: u16, connect: &[u8]) -> u8 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(connect).unwrap();
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x20, "a CONNACK");
    let mut rest = vec![0u8; head[1] as usize];
    stream.read_exact(&mut rest).unwrap();
    rest[1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_read_or_act_for_each_other() {
    let server = start_server(&["--demo"], None).unwrap();
    let a = client(server.port, "iso-a").await;
    let (b, mut b_rx) = raw_client(server.port, "iso-b").await;
    let filters = [
        "spec/#",
        "#",
        "spec/+/response",
        "spec/iso-a/response",
        "spec/iso-a/notify/+",
        "spec/iso-b/response",
    ];
    b.subscribe_many(
        filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce)),
    )
    .await
    .unwrap();
    let Packet::SubAck(ack) = next_packet(&mut b_rx, |p| matches!(p, Packet::SubAck(_))).await
    else {
        unreachable!()
    };
    let granted: Vec<bool> = ack
        .return_codes
        .iter()
        .map(|c| !matches!(c, SubscribeReasonCode::Failure))
        .collect();
    assert_eq!(
        granted,
        [false, false, false, false, false, true],
        "{filters:?}"
    );
    // B publishes a create on A's request topic: it must not run as A.
    let stolen = json!({"id": "s1", "type": "request", "operation": "create", "entity": "users",
                        "data": {"name": "stolen", "email": "x@example.com"}});
    b.publish(
        "spec/iso-a/request",
        QoS::AtLeastOnce,
        false,
        stolen.to_string(),
    )
    .await
    .unwrap();
    // B's next request on its own topic is answered after the broker has
    // handled the stolen one (one session's packets are handled in order).
    let pong = ping_and_next(&b, &mut b_rx, "iso-b", "p1").await;
    assert_eq!(pong.topic, "spec/iso-b/response");
    let read = a
        .request(json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "name", "operator": "eq", "value": "stolen"}]}}))
        .await
        .unwrap();
    assert_eq!(ok(&read), json!([]), "the stolen create ran");
    // A gets nothing of B's, and B's notifications stay B's.
    let answer = a.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(answer.success, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_ids_are_refused_and_disturb_nobody() {
    let server = start_server(&["--demo"], None).unwrap();
    let steady = client(server.port, "steady").await;
    for id in ["a+b", "#", "x/y"] {
        for _ in 0..2 {
            assert_eq!(
                connack_code(server.port, &connect_v4(id, 30)),
                0x02,
                "v4 {id}"
            );
            assert_eq!(connack_code(server.port, &connect_v5(id)), 0x85, "v5 {id}");
        }
    }
    let pong = steady.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong.success, Some(true));
    let late = client(server.port, "late").await;
    assert_eq!(
        late.request(json!({"type": "ping"})).await.unwrap().success,
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_zero_and_mqtt5_are_accepted_on_tcp() {
    let server = start_server(&["--demo"], None).unwrap();
    assert_eq!(connack_code(server.port, &connect_v4("ka0", 0)), 0);
    assert_eq!(connack_code(server.port, &connect_v5("v5-tcp")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_reconnect_under_jwt_keeps_the_new_session() {
    let server = start_server(&["--demo", "--jwt-secret", "s3cret"], None).unwrap();
    let token = |sub: &str, id: &str| {
        sign_hs256(
            b"s3cret",
            &json!({"sub": sub, "client_id": id, "exp": 4_000_000_000u64}),
        )
    };
    let connect = |id: &str, token: String| {
        SpecClient::connect(ClientOptions {
            username: Some(token),
            ..ClientOptions::local(server.port, id)
        })
    };
    let first = connect("jc1", token("u1", "jc1")).await.unwrap();
    assert_eq!(
        first
            .request(json!({"type": "ping"}))
            .await
            .unwrap()
            .success,
        Some(true)
    );
    let second = connect("jc1", token("u1", "jc1")).await.unwrap();
    // The first connection is replaced; its end must not touch the second.
    assert!(
        first.request(json!({"type": "ping"})).await.is_err(),
        "the replaced connection is closed"
    );
    for _ in 0..3 {
        let read = second
            .request(
                json!({"type": "request", "operation": "read", "entity": "users", "record_id": 1}),
            )
            .await
            .unwrap();
        assert_eq!(ok(&read)["id"], 1, "{read:?}");
    }
    assert!(
        connect("jc1", token("u2", "jc1")).await.is_err(),
        "another subject cannot take a held id"
    );
    assert!(
        connect("jc1", token("u1", "other")).await.is_err(),
        "a token bound to another id is refused"
    );
    let prefix = sign_hs256(
        b"s3cret",
        &json!({"sub": "u3", "client_id": "dash-*", "exp": 4_000_000_000u64}),
    );
    assert!(connect("dash-7", prefix).await.is_ok());
    let still = second.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(still.success, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_runs_once_and_gets_the_first_answer() {
    let server = start_server(&["--demo"], None).unwrap();
    let mut c = client(server.port, "dup").await;
    let create = json!({"id": "dup-1", "type": "request", "operation": "create", "entity": "users",
                        "data": {"name": "once", "email": "once@example.com"}});
    let payload = serde_json::to_vec(&create).unwrap();
    c.publish_raw(payload.clone()).await.unwrap();
    c.publish_raw(payload).await.unwrap();
    let first = c.unmatched_response(WAIT).await.expect("first answer");
    let second = c.unmatched_response(WAIT).await.expect("second answer");
    assert_eq!(
        ok(&first),
        ok(&second),
        "the duplicate gets the first answer"
    );
    assert_eq!(
        first.timestamp, second.timestamp,
        "sent again, not run again"
    );
    let read = c
        .request(json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "name", "operator": "eq", "value": "once"}]}}))
        .await
        .unwrap();
    assert_eq!(ok(&read).as_array().map(Vec::len), Some(1));
}

/// One client sends `count` pings without waiting at `qos`; every one is
/// answered (`pong` or `too_many_requests`) while another client keeps
/// being answered. Returns (pongs, refusals, the other client's slowest).
async fn burst(port: u16, id: &str, count: usize, qos: QoS) -> (usize, usize, Duration) {
    let (loud, mut rx) = raw_client(port, id).await;
    loud.subscribe(format!("spec/{id}/response"), QoS::AtLeastOnce)
        .await
        .unwrap();
    next_packet(&mut rx, |p| matches!(p, Packet::SubAck(_))).await;
    let quiet = client(port, &format!("{id}-quiet")).await;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pinger = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        let mut answered = 0;
        loop {
            let start = Instant::now();
            let pong = quiet.request(json!({"type": "ping"})).await.unwrap();
            assert_eq!(pong.success, Some(true));
            slowest = slowest.max(start.elapsed());
            answered += 1;
            if answered >= 5 && stop_rx.try_recv().is_ok() {
                return slowest;
            }
        }
    });
    let topic = format!("spec/{id}/request");
    let sender = tokio::spawn(async move {
        for i in 0..count {
            let ping = json!({"id": format!("b{i}"), "type": "ping"}).to_string();
            loud.publish(topic.clone(), qos, false, ping).await.unwrap();
        }
        loud
    });
    let (mut pongs, mut refused) = (0, 0);
    while pongs + refused < count {
        let packet = tokio::time::timeout(WAIT, rx.recv()).await;
        let Ok(Some(packet)) = packet else {
            panic!("{id}: answers stopped after {pongs} pongs and {refused} refusals of {count}");
        };
        let Packet::Publish(p) = packet else {
            continue;
        };
        let answer: mqttspec_proto::Message = serde_json::from_slice(&p.payload).unwrap();
        match answer.success {
            Some(true) => pongs += 1,
            _ => {
                assert_eq!(code(&answer), "too_many_requests", "{answer:?}");
                refused += 1;
            }
        }
    }
    let _loud = sender.await.unwrap();
    let _ = stop_tx.send(());
    (pongs, refused, pinger.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_burst_is_answered_or_refused_and_freezes_nobody() {
    // QoS 1 bursts: tests/python/test_broker.py (paho-mqtt).
    let _heavy = HEAVY.lock().await;
    let server = start_server(&["--demo"], None).unwrap();
    let (pongs, refused, slowest) = burst(server.port, "burst0", 20_000, QoS::AtMostOnce).await;
    eprintln!("20,000 at QoS 0: {pongs} pongs, {refused} too_many_requests; slowest concurrent ping {slowest:?}");
    assert!(pongs > 0);
    // The broker still serves new clients afterwards.
    let after = client(server.port, "after-burst").await;
    assert_eq!(
        after
            .request(json!({"type": "ping"}))
            .await
            .unwrap()
            .success,
        Some(true)
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_after_a_write_heavy_run() {
    let _heavy = HEAVY.lock().await;
    let mut server = start_server(&["--demo"], None).unwrap();
    let warm = client(server.port, "warm").await;
    warm.request(json!({"type": "ping"})).await.unwrap();
    warm.disconnect().await.unwrap();
    server.proc.wait_for_line("client gone", WAIT).unwrap();
    let start = rss_kib(server.proc.pid());
    let watcher = client(server.port, "rss-sub").await;
    ok(&watcher
        .request(
            json!({"type": "subscription", "operation": "subscribe", "entity": "sensor_readings"}),
        )
        .await
        .unwrap());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let port = server.port;
            tokio::spawn(async move {
                let c = client(port, &format!("rss-w{w}")).await;
                for i in 0..2_500 {
                    let create = json!({"type": "request", "operation": "create", "entity": "sensor_readings",
                                        "data": {"device_id": format!("d{w}"), "value": i, "ts": "2026-01-01T00:00:00Z"}});
                    ok(&c.request(create).await.unwrap());
                }
                c.disconnect().await.unwrap();
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let peak = rss_kib(server.proc.pid());
    watcher.disconnect().await.unwrap();
    let mut gone = 0;
    while gone < 9 {
        server.proc.wait_for_line("client gone", WAIT).unwrap();
        gone += 1;
    }
    let end = rss_kib(server.proc.pid());
    eprintln!("RSS: start {start} KiB, peak {peak} KiB, after {end} KiB");
    assert!(
        end <= start + 50 * 1024,
        "RSS grew from {start} KiB to {end} KiB after 20,000 creates and every client left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mosquitto_with_a_pattern_acl_isolates_clients() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "user mqttspec-server\ntopic read spec/+/request\ntopic write spec/+/response\ntopic write spec/+/notify/+\n\
         pattern write spec/%c/request\npattern read spec/%c/response\npattern read spec/%c/notify/+\n",
    )
    .unwrap();
    let mosquitto = Mosquitto::start(&format!("acl_file {}", acl.display())).unwrap();
    let url = format!("mqtt://mqttspec-server@127.0.0.1:{}", mosquitto.tcp_port);
    let server = start_server(&["--demo", "--broker-url", &url], Some(mosquitto.tcp_port)).unwrap();
    let a = client(server.port, "ext-a").await;
    assert_eq!(
        a.request(json!({"type": "ping"})).await.unwrap().success,
        Some(true)
    );
    let (b, mut b_rx) = raw_client(server.port, "ext-b").await;
    b.subscribe("spec/#", QoS::AtLeastOnce).await.unwrap();
    b.publish(
        "spec/ext-a/request",
        QoS::AtLeastOnce,
        false,
        json!({"id": "s1", "type": "request", "operation": "create", "entity": "users",
               "data": {"name": "stolen-ext", "email": "x@example.com"}})
        .to_string(),
    )
    .await
    .unwrap();
    // mosquitto 2.0 grants and then filters silently: B receives nothing of
    // A's, and the stolen create never reaches the server.
    b.subscribe("spec/ext-b/response", QoS::AtLeastOnce)
        .await
        .unwrap();
    let first = ping_and_next(&b, &mut b_rx, "ext-b", "p1").await;
    assert_eq!(
        first.topic, "spec/ext-b/response",
        "B saw only its own answer first"
    );
    let read = a
        .request(json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "name", "operator": "eq", "value": "stolen-ext"}]}}))
        .await
        .unwrap();
    assert_eq!(ok(&read), json!([]));
    let next = ping_and_next(&b, &mut b_rx, "ext-b", "p2").await;
    assert_eq!(
        next.topic, "spec/ext-b/response",
        "A's read answer reached B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_get_their_answers_and_nothing_else() {
    let server = start_server(&["--demo"], None).unwrap();
    let port = server.port.to_string();
    let rr = std::process::Command::new("mosquitto_rr")
        .args(["-p", &port, "-i", "cli-rr", "-t", "spec/cli-rr/request"])
        .args(["-e", "spec/cli-rr/response", "-W", "30"])
        .args([
            "-m",
            r#"{"id":"1","type":"request","operation":"read","entity":"users","record_id":2}"#,
        ])
        .output()
        .unwrap();
    assert!(rr.status.success(), "{rr:?}");
    let answer: serde_json::Value = serde_json::from_slice(&rr.stdout).unwrap();
    assert_eq!(answer["data"]["name"], "Jane Smith");
    let sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-p", &port, "-i", "cli-sub", "-t", "spec/#", "-C", "1", "-W", "30",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sub.stderr).contains("All subscription requests were denied"),
        "{sub:?}"
    );
    assert!(sub.stdout.is_empty(), "{sub:?}");
}
