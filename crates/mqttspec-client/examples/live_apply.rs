//! How fast a live query applies update notifications with 1,000 rows in
//! view (native; the browser runs the same code compiled to wasm).
//! `cargo run --release -p mqttspec-client --example live_apply`

use std::time::Instant;

use mqttspec_client::LiveQuery;
use mqttspec_proto::{Direction, Filter, FilterOp, Operation, Row, Sort};
use serde_json::json;

fn row(id: u64, value: u64) -> Row {
    json!({"id": id, "device_id": "dev-3", "value": value, "ts": "2026-11-22T00:00:00Z"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn main() {
    let mut q = LiveQuery::new(
        "id",
        vec![Filter::new("device_id", FilterOp::Eq, json!("dev-3"))],
        vec![Sort {
            column: "value".into(),
            direction: Direction::Desc,
        }],
        None,
    );
    q.load(
        (0..1000).map(|i| row(i, (i * 7919) % 10007)).collect(),
        Some(1000),
    );
    let n = 200_000u64;
    let payloads: Vec<String> = (0..n)
        .map(|i| {
            json!({"type": "notification", "operation": "update", "subscription_id": "s",
                   "data": row(i % 1000, (i * 31) % 10007)})
            .to_string()
        })
        .collect();
    let start = Instant::now();
    let mut changed = 0usize;
    for p in &payloads {
        let m: mqttspec_proto::Message = serde_json::from_str(p).unwrap_or_default();
        if let Some(serde_json::Value::Object(data)) = m.data {
            changed += q.apply(Operation::Update, data).updated.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "live_apply: {n} update notifications (parse + apply) on a {}-row view: {:.0} per second ({changed} rows updated)",
        q.rows().len(),
        n as f64 / secs
    );
}
