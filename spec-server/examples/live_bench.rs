//! Benchmark of live data at scale (issue 16; loopback, bounded counts,
//! stops by itself). Run by `bench/live_scale.sh`, which builds the server
//! binary and passes it in `MQTTSPEC_SERVER_BIN`. Real peers: PostgreSQL and
//! mosquitto started here (the `e2e` harness), servers as processes.
//!
//! 1. Notifications/s end to end: 8 writers create rows through the shared
//!    group while 20 subscribers each receive every create; 1 instance, then
//!    3 instances (`--share-group`), same database and broker, one run.
//! 2. Direct-write-to-subscriber latency: a row inserted by another
//!    application (tokio-postgres; rusqlite on an SQLite file) until a
//!    subscriber receives its notification, p50/p99.
//! 3. Resume vs full re-read of a 10,000-row live query after 100 changes:
//!    bytes and time.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::postgres::Postgres;
use e2e::{Mosquitto, Proc};
use mqttspec_proto::Message;
use serde_json::{json, Value};
use spec_server::client::{ClientOptions, SpecClient};

/// Writers, creates per writer and subscribers of one fan-out phase.
#[derive(Clone, Copy)]
struct Shape {
    writers: usize,
    creates: usize,
    subscribers: usize,
}

/// Many writes, few subscribers: the database's share dominates.
const WRITE_HEAVY: Shape = Shape {
    writers: 8,
    creates: 250,
    subscribers: 20,
};

/// Few writes, many subscribers: notifying (the servers' share) dominates.
const FAN_OUT_HEAVY: Shape = Shape {
    writers: 2,
    creates: 50,
    subscribers: 400,
};
const LATENCY_SAMPLES: usize = 200;
const WAIT: Duration = Duration::from_secs(30);

fn server_bin() -> String {
    std::env::var("MQTTSPEC_SERVER_BIN").expect(
        "MQTTSPEC_SERVER_BIN names the mqttspec-server binary (bench/live_scale.sh sets it)",
    )
}

/// Start one server process with `args`; returns it once ready, and the
/// MQTT port of its embedded broker (if it runs one).
fn start(args: &[&str]) -> (Proc, Option<u16>) {
    let mut cmd = Command::new(server_bin());
    cmd.args(["--mqtt-listen", "127.0.0.1:0", "--ws-listen", "off"])
        .args(args)
        .env("RUST_LOG", "warn,spec_server=info,mqttspec_server=info");
    let mut proc = Proc::spawn("mqttspec-server", &mut cmd).expect("server starts");
    let ready = proc
        .wait_for_line("mqttspec-server ready", Duration::from_secs(60))
        .expect("server ready");
    let port = ready
        .split("mqtt=Some(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    (proc, port)
}

async fn connect(port: u16, id: &str) -> SpecClient {
    let mut c = SpecClient::connect(ClientOptions::local(port, id))
        .await
        .expect("client connects");
    c.timeout = WAIT;
    c
}

fn ok(m: &Message) -> Value {
    assert_eq!(m.success, Some(true), "{m:?}");
    m.data.clone().unwrap_or(Value::Null)
}

async fn subscribe(c: &SpecClient, entity: &str, options: Value) -> Value {
    ok(&c
        .request(
            json!({"type": "subscription", "operation": "subscribe", "entity": entity,
                        "options": options}),
        )
        .await
        .expect("subscribed"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(idx.min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `(busy, total)` jiffies of all cores since boot (`/proc/stat`).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle + iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU jiffies (user + system) of process `pid` so far.
fn proc_jiffies(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum()
}

/// CPU jiffies of every process whose command is `comm`.
fn comm_jiffies(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(proc_jiffies)
        .sum()
}

/// Where the CPU went during a phase: jiffies of the servers, mosquitto,
/// PostgreSQL and this process (subscribers and writers).
#[derive(Default, Clone, Copy)]
struct Split {
    servers: u64,
    mosquitto: u64,
    postgres: u64,
    bench: u64,
}

fn split(servers: &[u32], mosquitto: u32) -> Split {
    Split {
        servers: servers.iter().map(|p| proc_jiffies(*p)).sum(),
        mosquitto: proc_jiffies(mosquitto),
        postgres: comm_jiffies("postgres"),
        bench: proc_jiffies(std::process::id()),
    }
}

impl Split {
    fn since(self, before: Split) -> String {
        let all = (self.servers + self.mosquitto + self.postgres + self.bench)
            .saturating_sub(before.servers + before.mosquitto + before.postgres + before.bench)
            .max(1) as f64;
        let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / all;
        format!(
            "servers {:.0} %, PostgreSQL {:.0} %, mosquitto {:.0} %, clients {:.0} %",
            pct(self.servers, before.servers),
            pct(self.postgres, before.postgres),
            pct(self.mosquitto, before.mosquitto),
            pct(self.bench, before.bench)
        )
    }
}

/// Notifications/s with `instances` servers on one broker and database,
/// and how busy the machine's cores were meanwhile (0..1, all processes).
async fn fan_out(
    pg: &Postgres,
    mosquitto: &Mosquitto,
    instances: usize,
    round: usize,
    shape: Shape,
) -> (f64, f64, String) {
    let broker = mosquitto.tcp_port;
    let url = pg.url();
    let broker_url = format!("mqtt://127.0.0.1:{broker}");
    let servers: Vec<Proc> = (0..instances)
        .map(|i| {
            start(&[
                "--database",
                &url,
                "--broker-url",
                &broker_url,
                "--client-id",
                &format!("bench-{round}-{i}"),
                "--share-group",
                &format!("bench{round}"),
            ])
            .0
        })
        .collect();
    let mut subscribers = Vec::new();
    for s in 0..shape.subscribers {
        let c = connect(broker, &format!("sub-{round}-{s}")).await;
        subscribe(&c, "items", json!({})).await;
        subscribers.push(c);
    }
    let mut writers = Vec::new();
    for w in 0..shape.writers {
        writers.push(Arc::new(connect(broker, &format!("w-{round}-{w}")).await));
    }
    let expected = shape.writers * shape.creates;
    let cpu_before = cpu_jiffies();
    let pids: Vec<u32> = servers.iter().map(Proc::pid).collect();
    let split_before = split(&pids, mosquitto.proc.pid());
    let started = Instant::now();
    let receivers: Vec<_> = subscribers
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                for _ in 0..expected {
                    c.notification(WAIT).await.expect("every notification");
                }
            })
        })
        .collect();
    let tasks: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let c = Arc::clone(c);
            tokio::spawn(async move {
                for i in 0..shape.creates {
                    let r = c
                        .request(
                            json!({"type": "request", "operation": "create", "entity": "items",
                                        "data": {"name": format!("r{round}-w{w}-{i}")}}),
                        )
                        .await
                        .expect("answered");
                    ok(&r);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    for r in receivers {
        r.await.expect("subscriber");
    }
    let rate = (expected * shape.subscribers) as f64 / started.elapsed().as_secs_f64();
    let cpu_after = cpu_jiffies();
    let where_to = split(&pids, mosquitto.proc.pid()).since(split_before);
    let busy = (cpu_after.0 - cpu_before.0) as f64 / (cpu_after.1 - cpu_before.1).max(1) as f64;
    drop(servers);
    (rate, busy, where_to)
}

/// One write of another application (boxed: the two databases differ).
type Write<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

async fn direct_write_latency<'a>(
    subscriber: &mut SpecClient,
    mut write: impl FnMut(usize) -> Write<'a>,
) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        // Writes spread over the SQLite watcher's 10 ms poll (a write right
        // after the previous notification would always wait a whole period).
        tokio::time::sleep(Duration::from_micros((i as u64 * 3_700) % 10_000)).await;
        write(i).await;
        let committed = Instant::now();
        subscriber
            .notification(WAIT)
            .await
            .expect("the direct write is notified");
        samples.push(committed.elapsed());
    }
    samples.sort();
    samples
}

async fn resume_vs_read() -> (usize, Duration, usize, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("rows.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE public_rows (id INTEGER PRIMARY KEY, label TEXT NOT NULL, n INTEGER NOT NULL);\n\
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10000)\n\
         INSERT INTO public_rows SELECT i, 'row-' || i, i FROM s;",
    )
    .expect("schema written");
    let (_server, port) = start(&["--schema", &schema.display().to_string()]);
    let port = port.expect("embedded broker port");
    let read = json!({"type": "request", "operation": "read", "entity": "public.rows",
                      "options": {"sort": [{"column": "id"}]}});
    let c = connect(port, "live").await;
    let data = subscribe(&c, "public.rows", json!({})).await;
    let since = data["seq"].as_u64().expect("seq");
    let started = Instant::now();
    let full = c.request(read.clone()).await.expect("read");
    let full_time = started.elapsed();
    let full_bytes = serde_json::to_vec(&full).map_or(0, |b| b.len());
    c.disconnect().await.expect("disconnect");
    let w = connect(port, "writer").await;
    for i in 0..100i64 {
        ok(&w
            .request(
                json!({"type": "request", "operation": "update", "entity": "public.rows",
                            "record_id": i * 97 + 1, "data": {"n": -i}}),
            )
            .await
            .expect("update"));
    }
    let mut c = connect(port, "live").await;
    let started = Instant::now();
    let data = subscribe(&c, "public.rows", json!({"since": since})).await;
    assert_eq!(data["resume"], "replayed");
    let mut bytes = data.to_string().len();
    for _ in 0..100 {
        let n = c.notification(WAIT).await.expect("replayed change");
        bytes += serde_json::to_vec(&n).map_or(0, |b| b.len());
    }
    (bytes, started.elapsed(), full_bytes, full_time)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pg = Postgres::start("bench").expect("PostgreSQL starts");
    pg.psql("CREATE TABLE public.items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0)")
        .expect("table");
    let mosquitto = Mosquitto::start("max_queued_messages 100000\nset_tcp_nodelay true")
        .expect("mosquitto starts");
    let broker = mosquitto.tcp_port;
    eprintln!("PostgreSQL and mosquitto up");
    let mut fan_outs = Vec::new();
    for (name, shape) in [
        ("write-heavy", WRITE_HEAVY),
        ("fan-out-heavy", FAN_OUT_HEAVY),
    ] {
        for instances in [1, 3] {
            let round = fan_outs.len();
            let (rate, busy, split) = fan_out(&pg, &mosquitto, instances, round, shape).await;
            eprintln!("{name}, {instances} instance(s): {rate:.0} notifications/s");
            fan_outs.push((name, shape, instances, rate, busy, split));
        }
    }

    // Direct writes: PostgreSQL through another application's connection.
    let url = pg.url();
    let (_pg_server, _) = start(&[
        "--database",
        &url,
        "--broker-url",
        &format!("mqtt://127.0.0.1:{broker}"),
        "--client-id",
        "bench-direct",
    ]);
    let mut sub = connect(broker, "direct-sub").await;
    subscribe(&sub, "items", json!({})).await;
    let (app, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("application connects");
    tokio::spawn(connection);
    let app = &app;
    let pg_latency = direct_write_latency(&mut sub, |i| {
        Box::pin(async move {
            app.execute(
                "INSERT INTO public.items (name) VALUES ($1)",
                &[&format!("direct-{i}")],
            )
            .await
            .expect("insert");
        })
    })
    .await;

    // SQLite: another process's connection on the server's file.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("direct.db");
    let (_sqlite_server, port) = start(&[
        "--database",
        &format!("sqlite:{}", file.display()),
        "--demo",
    ]);
    let mut sub = connect(port.expect("embedded port"), "direct-sqlite").await;
    subscribe(&sub, "users", json!({})).await;
    let db = rusqlite::Connection::open(&file).expect("open the file");
    let db = &db;
    let sqlite_latency = direct_write_latency(&mut sub, |i| {
        Box::pin(async move {
            db.execute(
                "INSERT INTO public_users (name, email) VALUES (?1, ?2)",
                [format!("direct-{i}"), format!("d{i}@example.com")],
            )
            .expect("insert");
        })
    })
    .await;

    let (resume_bytes, resume_time, read_bytes, read_time) = resume_vs_read().await;

    println!("## Live data at scale (`bench/live_scale.sh`)\n");
    println!("| measure | value |\n|---|---|");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for pair in fan_outs.chunks(2) {
        for (name, shape, instances, rate, busy, split) in pair {
            println!(
                "| notifications/s, {name} ({} writers x {} creates, {} subscribers), {instances} instance(s) | {rate:.0} (cores busy {:.0} % of {cores}; {split}) |",
                shape.writers,
                shape.creates,
                shape.subscribers,
                busy * 100.0
            );
        }
        if let [one, three] = pair {
            println!("| ratio 3 / 1, {} | {:.2} |", one.0, three.3 / one.3);
        }
    }
    println!(
        "| PostgreSQL direct INSERT to subscriber, p50 / p99 ({LATENCY_SAMPLES} samples) | {:.1} / {:.1} ms |",
        percentile(&pg_latency, 0.5),
        percentile(&pg_latency, 0.99)
    );
    println!(
        "| SQLite direct INSERT (other connection) to subscriber, p50 / p99 | {:.1} / {:.1} ms |",
        percentile(&sqlite_latency, 0.5),
        percentile(&sqlite_latency, 0.99)
    );
    println!(
        "| 10,000-row view after 100 changes: resume | {resume_bytes} bytes, {:.1} ms |",
        resume_time.as_secs_f64() * 1000.0
    );
    println!(
        "| 10,000-row view: full re-read | {read_bytes} bytes, {:.1} ms |",
        read_time.as_secs_f64() * 1000.0
    );
    println!(
        "| resume / re-read | {:.3} of the bytes, {:.2} of the time |",
        resume_bytes as f64 / read_bytes as f64,
        resume_time.as_secs_f64() / read_time.as_secs_f64()
    );
}
