//! Benchmark of `mqttspec-server` through its embedded broker (loopback,
//! bounded counts, stops by itself). Run by `bench/spec_server.sh`.
//!
//! 1. Read-by-id requests/s with 16 concurrent clients, against the
//!    baseline of `ping` round trips (same clients, same broker, no
//!    database) measured in the same run.
//! 2. Notification fan-out: latency from a create request to each of 1,000
//!    filtered subscribers receiving the notification (p50/p99), against
//!    the baseline of a plain MQTT publish fanned out by the same broker to
//!    the same 1,000 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::json;
use spec_server::broker::embedded::EmbeddedConfig;
use spec_server::client::{ClientOptions, SpecClient};
use spec_server::hooks::Hooks;
use spec_server::server::{self, BrokerMode, ServerConfig};
use tokio::sync::mpsc;

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 1500;
const SUBSCRIBERS: usize = 1000;
const ROUNDS: usize = 20;

/// Client options for the benchmark: requests at QoS 0 unless `qos` says otherwise.
fn options_qos(port: u16, client_id: &str, qos: QoS) -> ClientOptions {
    ClientOptions {
        request_qos: qos,
        ..ClientOptions::local(port, client_id)
    }
}

fn options(port: u16, client_id: &str) -> ClientOptions {
    options_qos(port, client_id, QoS::AtMostOnce)
}

/// The read-by-id request of client request `i`.
fn read_by_id(i: usize) -> serde_json::Value {
    json!({"type": "request", "operation": "read", "schema": "public", "entity": "users",
           "record_id": (i % 5 + 1).to_string()})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Requests/s of `make(i)` requests sent by CLIENTS clients in lockstep.
async fn throughput(clients: &[Arc<SpecClient>], make: fn(usize) -> serde_json::Value) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let client = Arc::clone(client);
        tasks.push(tokio::spawn(async move {
            for i in 0..REQUESTS_PER_CLIENT {
                let response = client.request(make(i)).await.expect("answered");
                assert_eq!(response.success, Some(true), "{response:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    (clients.len() * REQUESTS_PER_CLIENT) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latencies of ROUNDS rounds: `trigger` starts a round, every subscriber
/// reports its receive time on `arrivals`.
async fn fan_out<F, Fut>(
    arrivals: &mut mpsc::UnboundedReceiver<Instant>,
    mut trigger: F,
) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(ROUNDS * SUBSCRIBERS);
    for round in 0..ROUNDS {
        let start = Instant::now();
        trigger(round).await;
        for _ in 0..SUBSCRIBERS {
            let at = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
                .await
                .expect("every subscriber is reached within 60 s")
                .expect("subscribers alive");
            latencies.push(at.saturating_duration_since(start));
        }
    }
    latencies.sort();
    latencies
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = free_port();
    let broker = BrokerMode::Embedded(EmbeddedConfig::tcp(format!("127.0.0.1:{port}").parse()?));
    let config = ServerConfig {
        demo: true,
        ..ServerConfig::new("sqlite::memory:", broker)
    };
    server::start(config, Hooks::new()).await?;
    eprintln!("server up on 127.0.0.1:{port}; {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests");

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(Arc::new(
            SpecClient::connect(options(port, &format!("bench-{i}"))).await?,
        ));
    }
    // Warm-up, then the baseline and the measured operation.
    throughput(&clients[..1], |_| json!({"type": "ping"})).await;
    let ping_rps = throughput(&clients, |_| json!({"type": "ping"})).await;
    eprintln!("ping: {ping_rps:.0} req/s");
    let read_rps = throughput(&clients, read_by_id).await;
    eprintln!("read by id: {read_rps:.0} req/s");
    // The same with requests at QoS 1 (PUBACK, then the response).
    let mut qos1 = Vec::new();
    for i in 0..CLIENTS {
        let options = options_qos(port, &format!("bench-qos1-{i}"), QoS::AtLeastOnce);
        qos1.push(Arc::new(SpecClient::connect(options).await?));
    }
    let read_qos1_rps = throughput(&qos1, read_by_id).await;
    eprintln!("read by id, requests at QoS 1: {read_qos1_rps:.0} req/s");

    eprintln!(
        "connecting {SUBSCRIBERS} subscribers (and {SUBSCRIBERS} raw MQTT ones for the baseline)"
    );
    let (arrived_tx, mut arrivals) = mpsc::unbounded_channel::<Instant>();
    let (raw_tx, mut raw_arrivals) = mpsc::unbounded_channel::<Instant>();
    let mut raw_publisher = None;
    for i in 0..SUBSCRIBERS {
        let mut sub = SpecClient::connect(options(port, &format!("sub-{i}"))).await?;
        let response = sub
            .request(json!({"type": "subscription", "operation": "subscribe", "entity": "sensor_readings",
                            "options": {"filters": [{"column": "device_id", "operator": "eq", "value": "bench"}]}}))
            .await?;
        anyhow::ensure!(
            response.success == Some(true),
            "subscribe failed: {response:?}"
        );
        let tx = arrived_tx.clone();
        tokio::spawn(async move {
            while sub.notification(Duration::from_secs(3600)).await.is_some() {
                if tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        // The baseline: a plain rumqttc connection per subscriber on one shared topic.
        let mut options = rumqttc::MqttOptions::new(format!("raw-{i}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        let (raw, mut events) = rumqttc::AsyncClient::new(options, 16);
        raw.subscribe("bench/fanout", QoS::AtMostOnce).await?;
        let tx = raw_tx.clone();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(event) = events.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) => {
                        let _ = tx.send(Instant::now());
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), subscribed).await??;
        raw_publisher.get_or_insert(raw);
    }
    let raw_publisher = raw_publisher.expect("at least one subscriber");
    // One warm-up delivery to every raw subscriber.
    raw_publisher
        .publish("bench/fanout", QoS::AtMostOnce, false, "warm")
        .await?;
    for _ in 0..SUBSCRIBERS {
        tokio::time::timeout(Duration::from_secs(60), raw_arrivals.recv()).await?;
    }
    let writer = &clients[0];
    // Warm-up: the first notification of each subscription creates its topic
    // in the broker (a one-time cost, like the raw warm-up above).
    let first = Instant::now();
    let warm = json!({"type": "request", "operation": "create", "entity": "sensor_readings",
                      "data": {"device_id": "bench", "value": -1}});
    anyhow::ensure!(
        writer.request(warm).await?.success == Some(true),
        "warm-up create failed"
    );
    for _ in 0..SUBSCRIBERS {
        tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await?;
    }
    let cold = first.elapsed();
    let notify = fan_out(&mut arrivals, |round| async move {
        let response = writer
            .request(
                json!({"type": "request", "operation": "create", "entity": "sensor_readings",
                            "data": {"device_id": "bench", "value": round}}),
            )
            .await
            .expect("create answered");
        assert_eq!(response.success, Some(true));
    })
    .await;
    let publisher = &raw_publisher;
    let raw = fan_out(&mut raw_arrivals, |round| async move {
        publisher
            .publish("bench/fanout", QoS::AtMostOnce, false, format!("{round}"))
            .await
            .expect("published");
    })
    .await;

    let (n50, n99) = (percentile(&notify, 0.5), percentile(&notify, 0.99));
    let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
    println!("## mqttspec-server benchmark (embedded broker, SQLite in memory, loopback)");
    println!();
    println!("| measure | result | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| read by id, {CLIENTS} clients | {read_rps:.0} req/s | ping round trip {ping_rps:.0} req/s | {:.2} | >= 5000 req/s: {} |",
        read_rps / ping_rps,
        if read_rps >= 5000.0 { "met" } else { "NOT met" }
    );
    println!(
        "| read by id, {CLIENTS} clients, requests at QoS 1 | {read_qos1_rps:.0} req/s | read at QoS 0 {read_rps:.0} req/s | {:.2} | |",
        read_qos1_rps / read_rps
    );
    println!(
        "| notification fan-out to {SUBSCRIBERS}, p50 | {:.1} ms | raw MQTT fan-out p50 {:.1} ms | {:.2} | |",
        ms(n50),
        ms(r50),
        ms(n50) / ms(r50).max(0.001)
    );
    println!(
        "| notification fan-out to {SUBSCRIBERS}, p99 | {:.1} ms | raw MQTT fan-out p99 {:.1} ms | {:.2} | <= 50 ms: {} |",
        ms(n99),
        ms(r99),
        ms(n99) / ms(r99).max(0.001),
        if ms(n99) <= 50.0 { "met" } else { "NOT met" }
    );
    println!();
    println!(
        "Not in the percentiles: the first (cold) notification round, which creates every \
         subscription's topic in the broker, took {:.1} ms to reach all {SUBSCRIBERS}.",
        ms(cold)
    );
    println!(
        "{} read requests, {} pings, {ROUNDS} creates x {SUBSCRIBERS} notifications, {ROUNDS} publishes x {SUBSCRIBERS} deliveries",
        CLIENTS * REQUESTS_PER_CLIENT,
        CLIENTS * REQUESTS_PER_CLIENT
    );
    std::process::exit(0);
}
