//! Benchmark of `mqttspec-server` (loopback, bounded counts, stops by
//! itself). Run by `bench/spec_server.sh`. Twice in one run: on its
//! embedded broker (rmqtt) and on an external mosquitto started here.
//!
//! 1. Read-by-id requests/s with 16 concurrent clients, against the
//!    ceiling of a trivial echo responder (an MQTT client answering every
//!    request with a pong) on the same broker, same clients' pattern.
//! 2. Notification fan-out: latency from a create request to each of 1,000
//!    filtered subscribers receiving the notification (p50/p99).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::json;
use spec_server::broker::embedded::EmbeddedConfig;
use spec_server::broker::external::ExternalConfig;
use spec_server::client::{ClientOptions, SpecClient};
use spec_server::hooks::Hooks;
use spec_server::server::{self, BrokerMode, ServerConfig};
use tokio::sync::mpsc;

const CLIENTS: usize = 16;
const ECHO_PREFIX: &str = "echo";
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

/// What one broker setup measured.
struct Figures {
    read_rps: f64,
    echo_rps: f64,
    read_qos1_rps: f64,
    n50: Duration,
    n99: Duration,
    cold: Duration,
}

/// A trivial responder on the broker at `port`: every `echo/{c}/request`
/// is answered on `echo/{c}/response` with a pong of the same id.
async fn start_echo(port: u16) -> anyhow::Result<()> {
    let mut options = rumqttc::MqttOptions::new("echo-responder", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_credentials("echo", "");
    let (client, mut events) = rumqttc::AsyncClient::new(options, 4096);
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    client
        .subscribe(format!("{ECHO_PREFIX}/+/request"), QoS::AtMostOnce)
        .await?;
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Ok(event) = events.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let id = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .and_then(|v| v.get("id").cloned());
                    let reply = json!({"id": id, "type": "pong", "success": true}).to_string();
                    let topic = p.topic.replacen("/request", "/response", 1);
                    if client
                        .try_publish(topic, QoS::AtMostOnce, false, reply)
                        .is_err()
                    {
                        eprintln!("echo responder: request queue full");
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready).await??;
    Ok(())
}

/// Measure the server reachable through the broker at `port`.
async fn measure(label: &str, port: u16) -> anyhow::Result<Figures> {
    let mut clients = Vec::new();
    let mut echo_clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(Arc::new(
            SpecClient::connect(options(port, &format!("{label}-bench-{i}"))).await?,
        ));
        let echo = ClientOptions {
            prefix: ECHO_PREFIX.into(),
            ..options(port, &format!("{label}-echo-{i}"))
        };
        echo_clients.push(Arc::new(SpecClient::connect(echo).await?));
    }
    start_echo(port).await?;
    // Warm-up, then the ceiling and the measured operation.
    throughput(&clients[..1], |_| json!({"type": "ping"})).await;
    throughput(&echo_clients[..1], |_| json!({"type": "ping"})).await;
    let echo_rps = throughput(&echo_clients, |_| json!({"type": "ping"})).await;
    eprintln!("{label}: echo responder {echo_rps:.0} req/s");
    let read_rps = throughput(&clients, read_by_id).await;
    eprintln!("{label}: read by id {read_rps:.0} req/s");
    let mut qos1 = Vec::new();
    for i in 0..CLIENTS {
        let options = options_qos(port, &format!("{label}-qos1-{i}"), QoS::AtLeastOnce);
        qos1.push(Arc::new(SpecClient::connect(options).await?));
    }
    let read_qos1_rps = throughput(&qos1, read_by_id).await;
    eprintln!("{label}: read by id, requests at QoS 1: {read_qos1_rps:.0} req/s");

    eprintln!("{label}: connecting {SUBSCRIBERS} subscribers");
    let (arrived_tx, mut arrivals) = mpsc::unbounded_channel::<Instant>();
    for i in 0..SUBSCRIBERS {
        let mut sub = SpecClient::connect(options(port, &format!("{label}-sub-{i}"))).await?;
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
    }
    let writer = &clients[0];
    // Warm-up: the first notification of each subscription creates its topic
    // in the broker (a one-time cost).
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
    Ok(Figures {
        read_rps,
        echo_rps,
        read_qos1_rps,
        n50: percentile(&notify, 0.5),
        n99: percentile(&notify, 0.99),
        cold,
    })
}

/// mosquitto on a free port (2.0 is MQTT 5 capable), no ACL: the bench
/// measures speed, the tests measure isolation.
fn start_mosquitto(dir: &std::path::Path) -> anyhow::Result<(std::process::Child, u16)> {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"),
    )?;
    let child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("mosquitto does not listen on {port}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The echo responder logs in as "echo" and may use echo/#.
    let dir = tempfile::tempdir()?;
    let acl = spec_server::acl::Acl::parse(
        "spec",
        "pattern write echo/%c/request\npattern read echo/%c/response\nuser echo\ntopic readwrite echo/#\n",
    )?;
    let port = free_port();
    let mut embedded = EmbeddedConfig::tcp(format!("127.0.0.1:{port}").parse()?);
    embedded.acl = Some(acl);
    let config = ServerConfig {
        demo: true,
        ..ServerConfig::new("sqlite::memory:", BrokerMode::Embedded(embedded))
    };
    server::start(config, Hooks::new()).await?;
    eprintln!(
        "embedded broker on 127.0.0.1:{port}; {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests"
    );
    let inside = measure("embedded", port).await?;

    let (mut mosquitto, mport) = start_mosquitto(dir.path())?;
    let external = ExternalConfig {
        url: format!("mqtt://127.0.0.1:{mport}"),
        username: None,
        password: None,
        ca_file: None,
        client_id: "mqttspec-server".into(),
        qos: QoS::AtLeastOnce,
        max_packet: 16 << 20,
        share_group: None,
    };
    let config = ServerConfig {
        demo: true,
        ..ServerConfig::new("sqlite::memory:", BrokerMode::External(external))
    };
    server::start(config, Hooks::new()).await?;
    eprintln!("external mosquitto on 127.0.0.1:{mport}");
    let outside = measure("mosquitto", mport).await?;
    let _ = mosquitto.kill();

    println!("## mqttspec-server benchmark (SQLite in memory, loopback)");
    println!();
    println!("| measure | embedded broker (rmqtt) | external mosquitto | embedded / mosquitto | target |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, a: f64, b: f64, unit: &str, target: &str| {
        println!(
            "| {name} | {a:.1} {unit} | {b:.1} {unit} | {:.2} | {target} |",
            a / b.max(0.001)
        );
    };
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    row(
        &format!("read by id, {CLIENTS} clients"),
        inside.read_rps,
        outside.read_rps,
        "req/s",
        &format!(">= 12,000 req/s: {}", met(inside.read_rps >= 12_000.0)),
    );
    row(
        "echo responder ceiling, same clients",
        inside.echo_rps,
        outside.echo_rps,
        "req/s",
        "",
    );
    row(
        "read by id / echo ceiling",
        inside.read_rps / inside.echo_rps,
        outside.read_rps / outside.echo_rps,
        "",
        "",
    );
    row(
        "read by id, requests at QoS 1",
        inside.read_qos1_rps,
        outside.read_qos1_rps,
        "req/s",
        "",
    );
    row(
        &format!("notification fan-out to {SUBSCRIBERS}, p50"),
        ms(inside.n50),
        ms(outside.n50),
        "ms",
        "",
    );
    row(
        &format!("notification fan-out to {SUBSCRIBERS}, p99"),
        ms(inside.n99),
        ms(outside.n99),
        "ms",
        &format!("<= 50 ms: {}", met(ms(inside.n99) <= 50.0)),
    );
    row(
        "first (cold) fan-out round",
        ms(inside.cold),
        ms(outside.cold),
        "ms",
        "",
    );
    println!();
    println!(
        "{} read requests and {} echo round trips per broker, {ROUNDS} creates x {SUBSCRIBERS} notifications",
        CLIENTS * REQUESTS_PER_CLIENT,
        CLIENTS * REQUESTS_PER_CLIENT
    );
    std::process::exit(0);
}
