//! Live data at scale (issue 16), against real peers: writes of other
//! processes (`sqlite3`, `psql`) notify through the change log; several
//! instances behind one mosquitto share the requests and the change feed;
//! a live query resumes after a reconnect from its last change sequence.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{client, ok, start_server, Server};
use e2e::postgres::Postgres;
use e2e::Mosquitto;
use mqttspec_client::request::{resume, subscribe, EntityRef};
use mqttspec_client::LiveQuery;
use mqttspec_proto::response::{Resume, SubscribeData};
use mqttspec_proto::{Message, Operation, Row};
use serde_json::json;
use spec_server::client::SpecClient;

const WAIT: Duration = Duration::from_secs(10);

fn sqlite3(db: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 runs (install the `sqlite3` package)");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn subscribe_to(c: &SpecClient, entity: &str, since: Option<u64>) -> SubscribeData {
    let entity = EntityRef::parse(entity, None);
    let message = match since {
        Some(since) => resume(String::new(), &entity, None, since),
        None => subscribe(String::new(), &entity, None),
    };
    let mut value = serde_json::to_value(message).unwrap();
    value.as_object_mut().unwrap().remove("id");
    let answer = c.request(value).await.unwrap();
    serde_json::from_value(ok(&answer)).unwrap()
}

async fn subscribe_to_with(
    c: &SpecClient,
    entity: &str,
    options: serde_json::Value,
) -> SubscribeData {
    let entity = EntityRef::parse(entity, None);
    let mut value = serde_json::to_value(subscribe(String::new(), &entity, Some(options))).unwrap();
    value.as_object_mut().unwrap().remove("id");
    serde_json::from_value(ok(&c.request(value).await.unwrap())).unwrap()
}

async fn next_notification(c: &mut SpecClient) -> Message {
    c.notification(WAIT)
        .await
        .expect("a notification within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite3_writes_of_another_process_notify() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let url = format!("sqlite:{}", db.display());
    let server = start_server(&["--database", &url, "--demo"], None).unwrap();
    let mut c = client(server.port, "watcher").await;
    let sub = subscribe_to(&c, "public.users", None).await;
    let head = sub.seq.expect("the answer carries the log's head");

    let mut latencies = Vec::new();
    let mut last = head;
    for (sql, op) in [
        (
            "INSERT INTO public_users (name, email) VALUES ('outside', 'o@example.com')",
            Operation::Create,
        ),
        (
            "UPDATE public_users SET status = 'gone' WHERE name = 'outside'",
            Operation::Update,
        ),
        (
            "DELETE FROM public_users WHERE name = 'outside'",
            Operation::Delete,
        ),
    ] {
        sqlite3(&db, sql);
        let committed = Instant::now();
        let n = next_notification(&mut c).await;
        latencies.push(committed.elapsed());
        assert_eq!(n.operation, Some(op), "{n:?}");
        assert_eq!(n.data.as_ref().unwrap()["name"], "outside");
        let seq = n.seq.expect("notifications carry a sequence").get();
        assert!(seq > last, "sequences increase: {seq} after {last}");
        last = seq;
    }
    eprintln!("sqlite3 commit to notification: {latencies:?}");
    // 250 ms is the goal (docs/BENCHMARKS.md measures it); the bound here
    // leaves room for a machine busy compiling.
    assert!(latencies.iter().all(|l| *l < Duration::from_secs(2)));
}

fn pg_schema(pg: &Postgres) -> String {
    let path = pg.dir().join("items.sql");
    std::fs::write(
        &path,
        "CREATE TABLE IF NOT EXISTS public.items (id BIGSERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL, n BIGINT NOT NULL DEFAULT 0, note TEXT);",
    )
    .unwrap();
    path.display().to_string()
}

/// One instance of the shared group `spec` on mosquitto at `mqtt_port`.
fn instance(database: &str, schema: &str, mqtt_port: u16, name: &str) -> Server {
    instance_with(database, mqtt_port, name, "spec", &["--schema", schema])
}

/// One instance of the shared group `group` on mosquitto at `mqtt_port`,
/// with `extra` arguments.
fn instance_with(
    database: &str,
    mqtt_port: u16,
    name: &str,
    group: &str,
    extra: &[&str],
) -> Server {
    let broker = format!("mqtt://127.0.0.1:{mqtt_port}");
    let mut args = vec![
        "--broker-url",
        &broker,
        "--client-id",
        name,
        "--share-group",
        group,
        "--database",
        database,
    ];
    args.extend_from_slice(extra);
    start_server(&args, Some(mqtt_port)).unwrap()
}

/// Notifications by sequence (a change seen through two subscriptions, or
/// twice, counts once); panics on a sequence that names two changes.
/// A `subscription_lost` (its holder died) is skipped: the watcher
/// resubscribes from its last sequence in any case.
fn collect(into: &mut BTreeMap<u64, Message>, n: Message) {
    if n.error
        .as_ref()
        .is_some_and(|e| e.code == "subscription_lost")
    {
        return;
    }
    let seq = n.seq.expect("notifications carry a sequence").get();
    let key = |m: &Message| (m.operation, m.data.as_ref().map(|d| d["id"].clone()));
    if let Some(seen) = into.get(&seq) {
        assert_eq!(key(seen), key(&n), "sequence {seq} names two changes");
    }
    into.insert(seq, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_system_on_postgres() {
    let pg =
        Postgres::start("scale").expect("PostgreSQL starts (install the `postgresql` package)");
    let mosquitto = Mosquitto::start("").unwrap();
    let (url, schema, port) = (pg.url(), pg_schema(&pg), mosquitto.tcp_port);
    let mut servers: Vec<Server> = ["srv-a", "srv-b", "srv-c"]
        .iter()
        .map(|name| instance(&url, &schema, port, name))
        .collect();

    let mut watcher = client(port, "watcher").await;
    let sub = subscribe_to(&watcher, "public.items", None).await;
    let writer = client(port, "writer").await;

    // Each request runs once: 30 creates of unique names all succeed (a
    // second run would fail on the unique name) and leave 30 rows.
    for i in 0..30 {
        let answer = writer
            .request(
                json!({"type": "request", "operation": "create", "entity": "items",
                            "data": {"name": format!("item-{i}")}}),
            )
            .await
            .unwrap();
        ok(&answer);
    }
    // The same request sent again reaches other instances (the broker
    // rotates the group) and gets the first answer: it ran once.
    let again = json!({"id": "same-create", "type": "request", "operation": "create",
                       "entity": "items", "data": {"name": "once"}});
    let first = ok(&writer.request(again.clone()).await.unwrap());
    for _ in 0..5 {
        assert_eq!(ok(&writer.request(again.clone()).await.unwrap()), first);
    }
    // Writes from outside the servers notify too.
    pg.psql("INSERT INTO public.items (name) VALUES ('from-psql')")
        .unwrap();
    pg.psql("UPDATE public.items SET n = 7 WHERE name = 'item-0'")
        .unwrap();
    // A row far over NOTIFY's 8,000-byte payload limit.
    pg.psql("UPDATE public.items SET note = repeat('x', 20000) WHERE name = 'item-1'")
        .unwrap();
    let mut seen = BTreeMap::new();
    for _ in 0..34 {
        collect(&mut seen, next_notification(&mut watcher).await);
    }
    assert_eq!(seen.len(), 34, "one notification per change");
    let big = seen
        .values()
        .filter_map(|m| m.data.as_ref()?["note"].as_str());
    assert_eq!(big.map(str::len).max(), Some(20_000));
    assert_eq!(pg.psql("SELECT count(*) FROM public.items").unwrap(), "32");
    let ops: Vec<_> = seen.values().filter_map(|m| m.operation).collect();
    assert_eq!(ops.iter().filter(|o| **o == Operation::Update).count(), 2);
    let mut last_seq = *seen.keys().last().unwrap();

    // Unsubscribe works whichever instance takes it.
    let other = subscribe_to(&watcher, "public.items", None).await;
    let gone = watcher
        .request(json!({"type": "subscription", "operation": "unsubscribe",
                        "subscription_id": other.subscription_id}))
        .await
        .unwrap();
    ok(&gone);

    // Six subscriptions spread over the instances (the broker rotates the
    // group), on a marker row only.
    let mut lost_watch = client(port, "lost-watch").await;
    let marker = json!({"filters": [{"column": "name", "operator": "eq", "value": "marker"}]});
    let mut watched = HashSet::new();
    for _ in 0..6 {
        let s = subscribe_to_with(&lost_watch, "public.items", marker.clone()).await;
        watched.insert(s.subscription_id);
    }

    // Steady writes while one instance is killed and started again: no
    // request runs twice, and the watcher, resubscribing from its last
    // sequence, hears of every row.
    let load = tokio::spawn(async move {
        let mut writer = writer;
        writer.timeout = Duration::from_secs(3);
        let mut created = 0;
        for i in 0..150 {
            let id = format!("load-{i}");
            let create = json!({"id": id, "type": "request", "operation": "create",
                                "entity": "items", "data": {"name": id}});
            // A request the killed instance held is lost with it: send it
            // again with the same id.
            for _attempt in 0..5 {
                match writer.request(create.clone()).await {
                    Ok(answer) => {
                        assert_eq!(answer.success, Some(true), "ran twice? {answer:?}");
                        created += 1;
                        break;
                    }
                    Err(_) => continue,
                }
            }
        }
        created
    });
    let killed = servers.remove(0);
    drop(killed);
    servers.push(instance(&url, &schema, port, "srv-a"));
    let created = load.await.unwrap();
    assert_eq!(created, 150, "every create answered once");
    assert_eq!(
        pg.psql("SELECT count(*) FROM public.items WHERE name LIKE 'load-%'")
            .unwrap(),
        "150"
    );

    // Each marker subscription either still delivers, or was told by a
    // surviving instance that its holder died (it would resubscribe).
    ok(&watcher
        .request(
            json!({"type": "request", "operation": "create", "entity": "items",
                        "data": {"name": "marker"}}),
        )
        .await
        .unwrap());
    let mut lost = 0;
    while !watched.is_empty() {
        let m = next_notification(&mut lost_watch).await;
        let id = m.subscription_id.clone().unwrap();
        assert!(watched.remove(&id), "one message per subscription: {m:?}");
        if m.operation.is_none() {
            assert_eq!(m.error.unwrap().code, "subscription_lost");
            lost += 1;
        }
    }
    assert!(lost > 0, "the killed instance held some of the six");

    // The watcher resubscribes from its last sequence (its subscription may
    // have lived on the killed instance) and drops the old one.
    // (What arrived meanwhile is applied; the replay repeats some of it,
    // which counts once by sequence.)
    if let Some(seq) = seen.keys().last() {
        last_seq = last_seq.max(*seq);
    }
    let again = subscribe_to(&watcher, "public.items", Some(last_seq)).await;
    assert_eq!(again.resume, Some(Resume::Replayed));
    let _ = watcher
        .request(json!({"type": "subscription", "operation": "unsubscribe",
                        "subscription_id": sub.subscription_id}))
        .await;
    let ids: HashSet<i64> = pg
        .psql("SELECT id FROM public.items WHERE name LIKE 'load-%'")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let notified = |seen: &BTreeMap<u64, Message>| -> HashSet<i64> {
        seen.values()
            .filter(|m| m.operation == Some(Operation::Create))
            .filter_map(|m| m.data.as_ref()?["id"].as_i64())
            .filter(|id| ids.contains(id))
            .collect()
    };
    while notified(&seen).len() < ids.len() {
        collect(&mut seen, next_notification(&mut watcher).await);
    }
    assert_eq!(notified(&seen), ids, "every created row was notified");
}

/// A live view of `entity` driven natively: subscribe (or resume), read
/// when the answer says so, apply notifications by sequence.
struct View {
    query: LiveQuery,
    entity: &'static str,
    /// The current subscription: notifications of an older one (not yet
    /// dropped by the server) are not this view's, as a real driver routes
    /// them by `subscription_id`.
    sub_id: String,
}

impl View {
    async fn read(&self, c: &SpecClient) -> (Vec<Row>, Option<u64>, usize) {
        let answer = c
            .request(
                json!({"type": "request", "operation": "read", "entity": self.entity,
                            "options": self.query.read_options()}),
            )
            .await
            .unwrap();
        let bytes = serde_json::to_vec(&answer).unwrap().len();
        let total = answer.metadata.as_ref().and_then(|m| m["total"].as_u64());
        let rows = ok(&answer)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect();
        (rows, total, bytes)
    }

    /// Subscribe (from `since`), read if needed; returns the bytes read.
    async fn start(&mut self, c: &SpecClient, since: Option<u64>) -> (SubscribeData, usize) {
        let answer = subscribe_to(c, self.entity, since).await;
        self.sub_id = answer.subscription_id.clone();
        if !self.query.subscribed(&answer) {
            return (answer, 0);
        }
        self.query.begin_reload();
        let (rows, total, bytes) = self.read(c).await;
        self.query.load(rows, total);
        (answer, bytes)
    }

    /// Apply `n` if it is this view's; returns what it changed.
    fn apply(&mut self, n: Message) -> Option<mqttspec_client::LiveChange> {
        if n.subscription_id.as_deref() != Some(self.sub_id.as_str()) {
            return None;
        }
        let row = n.data.and_then(|d| d.as_object().cloned()).unwrap();
        Some(
            self.query
                .apply_seq(n.operation.unwrap(), row, n.seq.map(|s| s.get())),
        )
    }
}

fn rows_schema(dir: &std::path::Path, rows: usize) -> String {
    let path = dir.join("rows.sql");
    std::fs::write(
        &path,
        format!(
            "CREATE TABLE public_rows (id INTEGER PRIMARY KEY, label TEXT NOT NULL, n INTEGER NOT NULL);\n\
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})\n\
             INSERT INTO public_rows SELECT i, 'row-' || i, i FROM s;"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_query_resumes_with_only_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let schema = rows_schema(dir.path(), 10_000);
    let server = start_server(&["--schema", &schema], None).unwrap();
    let mut view = View {
        query: LiveQuery::new("id", vec![], vec![], None),
        entity: "public.rows",
        sub_id: String::new(),
    };
    let c = client(server.port, "live").await;
    let started = Instant::now();
    let (_, full_bytes) = view.start(&c, None).await;
    let full_time = started.elapsed();
    assert_eq!(view.query.rows().len(), 10_000);
    let since = view.query.last_seq().expect("a sequence to resume from");
    // The socket drops (no DISCONNECT): the server forgets the subscription.
    drop(c);

    // While the client is away: 100 changes (updates, creates, deletes).
    let w = client(server.port, "writer").await;
    for i in 0..100i64 {
        let request = match i % 4 {
            0 | 1 => json!({"operation": "update", "record_id": i * 50 + 1, "data": {"n": -i}}),
            2 => json!({"operation": "create", "data": {"id": 20_000 + i, "label": "new", "n": i}}),
            _ => json!({"operation": "delete", "record_id": i * 50 + 3}),
        };
        let mut request = request;
        let o = request.as_object_mut().unwrap();
        o.insert("type".into(), json!("request"));
        o.insert("entity".into(), json!("public.rows"));
        ok(&w.request(request).await.unwrap());
    }

    let mut c = client(server.port, "live").await;
    let started = Instant::now();
    let (answer, read_bytes) = view.start(&c, Some(since)).await;
    assert_eq!(answer.resume, Some(Resume::Replayed));
    assert_eq!(read_bytes, 0, "a resume reads nothing");
    let mut resume_bytes = serde_json::to_vec(&answer).unwrap().len();
    // The replay, and only it: 100 changes after `since`, in order.
    let mut applied = 0;
    while view.query.last_seq() < Some(since + 100) {
        let n = next_notification(&mut c).await;
        let bytes = serde_json::to_vec(&n).unwrap().len();
        if view.apply(n).is_some() {
            resume_bytes += bytes;
            applied += 1;
        }
    }
    assert_eq!(applied, 100, "one notification per change");
    let resume_time = started.elapsed();
    assert_eq!(view.query.last_seq(), Some(since + 100));
    let (fresh, _, _) = view.read(&c).await;
    let mut fresh = fresh;
    fresh.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        view.query.rows(),
        fresh.as_slice(),
        "the view equals a fresh read"
    );
    eprintln!(
        "10,000-row view, 100 changes: resume {resume_bytes} bytes in {resume_time:?}; full read {full_bytes} bytes in {full_time:?}"
    );
    assert!(
        resume_bytes * 10 < full_bytes,
        "a resume sends a fraction of a read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_older_than_the_log_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let schema = rows_schema(dir.path(), 10);
    let server = start_server(&["--schema", &schema, "--change-log-retain", "5"], None).unwrap();
    let away = client(server.port, "away").await;
    let since = subscribe_to(&away, "public.rows", None).await.seq.unwrap();
    away.disconnect().await.unwrap();
    let mut w = client(server.port, "writer").await;
    subscribe_to(&w, "public.rows", None).await;
    // One change at a time, each seen by a live subscriber: the feed has
    // pruned past `since` by the last one.
    for i in 0..20 {
        ok(&w
            .request(
                json!({"type": "request", "operation": "update", "entity": "public.rows",
                            "record_id": 1, "data": {"n": i}}),
            )
            .await
            .unwrap());
        next_notification(&mut w).await;
    }
    let back = client(server.port, "away").await;
    let answer = subscribe_to(&back, "public.rows", Some(since)).await;
    assert_eq!(answer.resume, Some(Resume::Reset), "{answer:?}");
    // A resume inside the log replays.
    let answer = subscribe_to(&back, "public.rows", Some(answer.seq.unwrap() - 2)).await;
    assert_eq!(answer.resume, Some(Resume::Replayed), "{answer:?}");
}

/// One write of the model test: who makes it, on which row, what.
#[derive(Debug, Clone)]
struct Step {
    /// 0, 1: a client through the shared group; 2: `psql`, outside the servers.
    writer: u8,
    id: i64,
    active: bool,
    score: i64,
    delete: bool,
}

fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    proptest::collection::vec(
        (
            0u8..3,
            0i64..12,
            any::<bool>(),
            0i64..6,
            proptest::bool::weighted(0.25),
        )
            .prop_map(|(writer, id, active, score, delete)| Step {
                writer,
                id,
                active,
                score,
                delete,
            }),
        25,
    )
}

/// Apply what has arrived until `view` equals a fresh read (a refill when
/// the view asks for one); fails if it does not within 10 s.
async fn converge(view: &mut View, c: &mut SpecClient, step: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (mut fresh, _, _) = view.read(c).await;
        if view.query.rows() == fresh.as_mut_slice() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(n) = c.notification(left).await else {
            panic!(
                "step {step}: view of {:?} is {:?}, a fresh read {:?}",
                view.query.read_options(),
                view.query.rows(),
                fresh
            );
        };
        let Some(change) = view.apply(n) else {
            continue;
        };
        if change.needs_refill {
            view.query.begin_reload();
            let (rows, total, _) = view.read(c).await;
            view.query.load(rows, total);
        }
    }
}

/// The model-based live-query test with real peers: writes arrive through
/// two instances and from `psql`; after every step every live view (with
/// filters, sorts and limits) equals a fresh read.
#[test]
fn live_views_equal_fresh_reads_across_instances_and_outside_writes() {
    use mqttspec_proto::{Direction, Filter, FilterOp, Sort};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg =
        Postgres::start("model").expect("PostgreSQL starts (install the `postgresql` package)");
    let mosquitto = Mosquitto::start("").unwrap();
    let schema = pg.dir().join("scores.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE IF NOT EXISTS public.scores (id BIGINT PRIMARY KEY, status TEXT NOT NULL, score BIGINT NOT NULL);",
    )
    .unwrap();
    let schema = schema.display().to_string();
    let (url, port) = (pg.url(), mosquitto.tcp_port);
    let _servers: Vec<Server> = ["model-a", "model-b"]
        .iter()
        .map(|name| instance(&url, &schema, port, name))
        .collect();
    let active = || vec![Filter::new("status", FilterOp::Eq, json!("active"))];
    let by_score = || {
        vec![Sort {
            column: "score".into(),
            direction: Direction::Desc,
        }]
    };
    let mut config = proptest::test_runner::Config::with_cases(2);
    config.failure_persistence = None;
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let cases = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&steps(), |steps| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(async {
                pg.psql("DELETE FROM public.scores").unwrap();
                let mut views = Vec::new();
                for (i, (filters, sort, limit)) in [
                    (active(), by_score(), None),
                    (active(), by_score(), Some(4)),
                    (vec![], vec![], Some(3)),
                ]
                .into_iter()
                .enumerate()
                {
                    let mut c = client(port, &format!("view-{case}-{i}")).await;
                    let mut view = View {
                        query: LiveQuery::new("id", filters, sort, limit),
                        entity: "public.scores",
                        sub_id: String::new(),
                    };
                    let entity = EntityRef::parse(view.entity, None);
                    let mut sub = serde_json::to_value(subscribe(
                        String::new(),
                        &entity,
                        Some(view.query.subscribe_options()),
                    ))
                    .unwrap();
                    sub.as_object_mut().unwrap().remove("id");
                    let answer: SubscribeData =
                        serde_json::from_value(ok(&c.request(sub).await.unwrap())).unwrap();
                    assert!(view.query.subscribed(&answer));
                    view.sub_id = answer.subscription_id.clone();
                    let (rows, total, _) = view.read(&c).await;
                    view.query.load(rows, total);
                    converge(&mut view, &mut c, 0).await;
                    views.push((view, c));
                }
                let writers = [
                    client(port, &format!("model-w{case}-0")).await,
                    client(port, &format!("model-w{case}-1")).await,
                ];
                let mut exists = HashSet::new();
                for (n, s) in steps.iter().enumerate() {
                    let status = if s.active { "active" } else { "inactive" };
                    let present = exists.contains(&s.id);
                    let (request, sql) = match (present, s.delete) {
                        (true, true) => {
                            exists.remove(&s.id);
                            (
                                json!({"operation": "delete", "record_id": s.id}),
                                format!("DELETE FROM public.scores WHERE id = {}", s.id),
                            )
                        }
                        (true, false) => (
                            json!({"operation": "update", "record_id": s.id,
                                   "data": {"status": status, "score": s.score}}),
                            format!(
                                "UPDATE public.scores SET status = '{status}', score = {} WHERE id = {}",
                                s.score, s.id
                            ),
                        ),
                        (false, _) => {
                            exists.insert(s.id);
                            (
                                json!({"operation": "create",
                                       "data": {"id": s.id, "status": status, "score": s.score}}),
                                format!(
                                    "INSERT INTO public.scores VALUES ({}, '{status}', {})",
                                    s.id, s.score
                                ),
                            )
                        }
                    };
                    match writers.get(usize::from(s.writer)) {
                        Some(w) => {
                            let mut request = request;
                            let o = request.as_object_mut().unwrap();
                            o.insert("type".into(), json!("request"));
                            o.insert("entity".into(), json!("public.scores"));
                            ok(&w.request(request).await.unwrap());
                        }
                        None => {
                            pg.psql(&sql).unwrap();
                        }
                    }
                    for (view, c) in views.iter_mut() {
                        converge(view, c, n + 1).await;
                    }
                }
                for (_, c) in views {
                    c.disconnect().await.unwrap();
                }
                for w in writers {
                    w.disconnect().await.unwrap();
                }
            });
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared.db");
    let url = format!("sqlite:{}", file.display());
    let mosquitto = Mosquitto::start("").unwrap();
    let port = mosquitto.tcp_port;
    let _servers: Vec<Server> = ["file-a", "file-b"]
        .iter()
        .map(|name| instance_with(&url, port, name, "files", &["--demo"]))
        .collect();
    let mut watcher = client(port, "file-watcher").await;
    subscribe_to(&watcher, "public.users", None).await;
    let writer = client(port, "file-writer").await;
    for i in 0..10 {
        ok(&writer
            .request(json!({"type": "request", "operation": "create", "entity": "users",
                            "data": {"name": format!("u{i}"), "email": format!("u{i}@example.com")}}))
            .await
            .unwrap());
    }
    // Sent again (to the other instance, in turn): the first answer.
    let again = json!({"id": "file-once", "type": "request", "operation": "create", "entity": "users",
                       "data": {"name": "u-once", "email": "once@example.com"}});
    let first = ok(&writer.request(again.clone()).await.unwrap());
    for _ in 0..3 {
        assert_eq!(
            ok(&writer.request(again.clone()).await.unwrap()),
            first,
            "ran once"
        );
    }
    sqlite3(
        &file,
        "UPDATE public_users SET status = 'x' WHERE name = 'u0'",
    );
    let mut seen = BTreeMap::new();
    for _ in 0..12 {
        collect(&mut seen, next_notification(&mut watcher).await);
    }
    assert_eq!(
        seen.len(),
        12,
        "one notification per change, in one sequence"
    );
    let rows = ok(&writer
        .request(json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "name", "operator": "like", "value": "u%"}]}}))
        .await
        .unwrap());
    assert_eq!(rows.as_array().unwrap().len(), 11, "each create ran once");
}

/// Behind a shared group a client's pings reach any instance; each tells
/// the others through the change log, so the one holding its subscription
/// does not expire it (`--subscription-ttl`) whichever instance the broker
/// picks (mosquitto rotates, other brokers may stick to one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_through_any_instance_keeps_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ttl.db");
    let url = format!("sqlite:{}", file.display());
    let mosquitto = Mosquitto::start("").unwrap();
    let port = mosquitto.tcp_port;
    let ttl = ["--demo", "--subscription-ttl", "2"];
    let _servers: Vec<Server> = ["ttl-a", "ttl-b"]
        .iter()
        .map(|name| instance_with(&url, port, name, "ttl", &ttl))
        .collect();
    let mut watcher = client(port, "ttl-watcher").await;
    subscribe_to(&watcher, "public.users", None).await;
    // Pings over twice the TTL, taken by both instances in turn (the
    // pacing is the scenario: a client active for longer than the TTL).
    let mut every = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..20 {
        every.tick().await;
        ok(&watcher
            .request(json!({"type": "ping"}))
            .await
            .unwrap_or_default());
    }
    let writer = client(port, "ttl-writer").await;
    ok(&writer
        .request(
            json!({"type": "request", "operation": "create", "entity": "users",
                        "data": {"name": "late", "email": "late@example.com"}}),
        )
        .await
        .unwrap());
    let n = next_notification(&mut watcher).await;
    assert_eq!(n.data.unwrap()["name"], "late", "the subscription lived on");
    let told = Command::new("sqlite3")
        .arg(&file)
        .arg("SELECT count(*) FROM _mqttspec_changes WHERE op = 'alive'")
        .output()
        .unwrap();
    let told: u32 = String::from_utf8_lossy(&told.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        told >= 2,
        "the instances told each other of the activity ({told})"
    );
}

/// Every change-log and shared-state statement runs on both databases
/// (several are reached only after thousands of changes or claims, or
/// when an instance dies, and their failures are logged, not answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_statements_run_on_sqlite_and_postgres() {
    use spec_server::db::{self, capture};
    let pg =
        Postgres::start("stmts").expect("PostgreSQL starts (install the `postgresql` package)");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("stmts.db").display());
    for (url, table) in [
        (
            sqlite.as_str(),
            "CREATE TABLE public_t (id INTEGER PRIMARY KEY, v TEXT)",
        ),
        (
            pg.url().as_str(),
            "CREATE TABLE public.t (id BIGINT PRIMARY KEY, v TEXT)",
        ),
    ] {
        let db = db::open(url).await.unwrap();
        db.execute_script(table).await.unwrap();
        let entities = db.entities().await.unwrap();
        let served: Vec<&db::Entity> = entities.iter().collect();
        assert_eq!(
            served.len(),
            1,
            "{url}: the server's own tables are not served"
        );
        let d = db.dialect();
        db.execute_script(&capture::install_script(d, &served))
            .await
            .unwrap();
        let run = |(sql, params): (String, Vec<db::Param>)| {
            let db = &db;
            async move {
                db.query(sql.clone(), params)
                    .await
                    .unwrap_or_else(|e| panic!("{url}: {sql}: {e}"))
            }
        };
        let key = capture::log_key(served[0]);
        let insert = if url.starts_with("sqlite") {
            "INSERT INTO public_t VALUES (1, 'a'); UPDATE public_t SET v = 'b'; DELETE FROM public_t;"
        } else {
            "INSERT INTO public.t VALUES (1, 'a'); UPDATE public.t SET v = 'b'; DELETE FROM public.t;"
        };
        db.execute_script(insert).await.unwrap();
        assert_eq!(
            run(capture::control(d, "alive", r#"{"client_id":"c"}"#))
                .await
                .len(),
            1
        );
        let log = run(capture::fetch(d, 0, 10)).await;
        assert_eq!(log.len(), 4, "{url}: {log:?}");
        assert_eq!(run(capture::fetch_range(d, &key, 0, 3)).await.len(), 3);
        let bounds = run(capture::bounds(d)).await;
        assert_eq!(bounds[0]["head"].as_u64(), Some(4), "{url}: {bounds:?}");
        assert_eq!(run(capture::prune(d, 2)).await.len(), 2);
        assert_eq!(run(capture::claim(d, "c", "r", 1000, 100)).await.len(), 1);
        assert_eq!(
            run(capture::claim(d, "c", "r", 1050, 100)).await.len(),
            0,
            "{url}: held"
        );
        assert_eq!(
            run(capture::claim(d, "c", "r", 2000, 100)).await.len(),
            1,
            "{url}: stale"
        );
        assert!(run(capture::answer(d, "c", "r")).await[0]["answer"].is_null());
        assert_eq!(run(capture::settle(d, "c", "r", Some("{}"))).await.len(), 1);
        assert_eq!(run(capture::answer(d, "c", "r")).await[0]["answer"], "{}");
        assert_eq!(
            run(capture::claim(d, "c", "r", 9000, 100)).await.len(),
            0,
            "{url}: answered"
        );
        assert_eq!(run(capture::claim(d, "c", "s", 1000, 100)).await.len(), 1);
        assert_eq!(run(capture::settle(d, "c", "s", None)).await.len(), 1);
        assert_eq!(run(capture::prune_answers(d, 5000)).await.len(), 1);
        run(capture::subscription_held(d, "s1", "c", "srv-a")).await;
        run(capture::subscription_held(d, "s2", "c", "srv-a")).await;
        run(capture::subscription_held(d, "s3", "d", "srv-a")).await;
        assert_eq!(
            run(capture::subscriptions_dropped(d, "c", Some("s1")))
                .await
                .len(),
            1
        );
        let taken = run(capture::subscriptions_of(d, "srv-a")).await;
        assert_eq!(taken.len(), 2, "{url}: {taken:?}");
        assert_eq!(
            run(capture::subscriptions_dropped(d, "d", None))
                .await
                .len(),
            0
        );
    }
}
