//! Shared pieces of the integration tests: start `mqttspec-server` (the
//! real binary) against real peers, and the operation suite run against
//! every broker/database combination.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::Proc;
use mqttspec_proto::Message;
use serde_json::{json, Value};
use spec_server::client::{ClientOptions, SpecClient};

/// A running `mqttspec-server` process.
pub struct Server {
    /// The process (its log lines can be awaited).
    pub proc: Proc,
    /// Port clients connect to (embedded broker, or mosquitto).
    pub port: u16,
    /// WebSocket port of the embedded broker.
    pub ws_port: u16,
}

/// The port of `name=Some(127.0.0.1:PORT)` in the server's ready line.
fn port_in(line: &str, name: &str) -> Option<u16> {
    let rest = line.split(&format!("{name}=Some(")).nth(1)?;
    let addr = rest.split(')').next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// Start the binary with `args` on OS-assigned listener ports; wait until
/// ready and read the ports from its ready line.
pub fn start_server(args: &[&str], broker_port: Option<u16>) -> anyhow::Result<Server> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqttspec-server"));
    cmd.args(["--mqtt-listen", "127.0.0.1:0"])
        .args(["--ws-listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", spec_server::logging::DEFAULT_FILTER)
        .env_remove("MQTTSPEC_DATABASE");
    let mut proc = Proc::spawn("mqttspec-server", &mut cmd)?;
    let ready = proc.wait_for_line("mqttspec-server ready", Duration::from_secs(60))?;
    let port = match broker_port {
        Some(port) => port,
        None => port_in(&ready, "mqtt")
            .ok_or_else(|| anyhow::anyhow!("no MQTT address in {ready:?}"))?,
    };
    Ok(Server {
        proc,
        port,
        ws_port: port_in(&ready, "ws").unwrap_or(0),
    })
}

/// Connect a client `client_id` to `port`.
pub async fn client(port: u16, client_id: &str) -> SpecClient {
    SpecClient::connect(ClientOptions::local(port, client_id))
        .await
        .unwrap_or_else(|e| panic!("client {client_id} cannot connect: {e}"))
}

/// Schema file for extra tables: one without primary key, one with a tenant column.
pub fn extra_schema(dir: &Path, postgres: bool) -> String {
    let sql = if postgres {
        "CREATE TABLE IF NOT EXISTS public.logs (msg TEXT);\n\
         CREATE TABLE IF NOT EXISTS public.items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, tenant_id BIGINT);"
    } else {
        "CREATE TABLE IF NOT EXISTS public_logs (msg TEXT);\n\
         CREATE TABLE IF NOT EXISTS public_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, tenant_id INTEGER);"
    };
    let path = dir.join("schema.sql");
    std::fs::write(&path, sql).expect("schema file written");
    path.display().to_string()
}

/// The data of a successful response (panics with the error otherwise).
pub fn ok(response: &Message) -> Value {
    assert_eq!(
        response.success,
        Some(true),
        "expected success, got {response:?}"
    );
    response.data.clone().unwrap_or(Value::Null)
}

/// The error code of a failed response.
pub fn code(response: &Message) -> String {
    assert_eq!(
        response.success,
        Some(false),
        "expected a failure, got {response:?}"
    );
    response
        .error
        .as_ref()
        .map(|e| e.code.clone())
        .unwrap_or_default()
}

/// Ids of the rows of a read-many response.
pub fn ids(response: &Message) -> Vec<i64> {
    ok(response)
        .as_array()
        .unwrap_or_else(|| panic!("data is not an array: {response:?}"))
        .iter()
        .map(|r| r["id"].as_i64().expect("row has an integer id"))
        .collect()
}

fn read(filters: Value) -> Value {
    json!({"type": "request", "operation": "read", "schema": "public", "entity": "sensor_readings",
           "options": {"filters": filters, "sort": [{"column": "id"}]}})
}

/// Every operation, error code, operator and notification case, against
/// a server started with `--demo` and [`extra_schema`].
pub async fn operation_suite(port: u16) {
    let a = client(port, "suite-a").await;
    fixtures(&a).await;
    reads(&a).await;
    operators(&a).await;
    writes_and_errors(&a).await;
    injection_refused(&a).await;
    notifications(port, &a).await;
    bad_input(port).await;
    let pong = a
        .request(json!({"type": "ping"}))
        .await
        .expect("server still answers");
    assert_eq!(pong.kind, Some(mqttspec_proto::MessageType::Pong));
}

/// The protocol doc's example requests, verbatim.
async fn fixtures(a: &SpecClient) {
    let fixtures: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/mqttspec_examples.json"
    ))
    .expect("fixtures");
    let requests = fixtures["requests"].as_array().expect("requests");
    let mut by_id = std::collections::HashMap::new();
    for request in requests {
        let response = a.request(request.clone()).await.expect("answered");
        assert_eq!(response.id, request["id"].as_str().map(str::to_string));
        by_id.insert(
            request["id"].as_str().unwrap_or_default().to_string(),
            response,
        );
    }
    assert_eq!(ok(&by_id["msg-1"])["name"], "John Doe");
    assert_eq!(
        ids(&by_id["msg-2"]),
        vec![4, 2, 1],
        "active users sorted by name"
    );
    let m123 = &by_id["msg-123"];
    assert_eq!(ids(m123), vec![4, 2, 1], "active users newest first");
    assert_eq!(m123.metadata, Some(json!({"total": 3, "count": 3})));
    let created = ok(&by_id["msg-3"]);
    assert_eq!(
        (created["name"].as_str(), created["status"].as_str()),
        (Some("Alice Brown"), Some("active"))
    );
    assert!(created["id"].as_i64().is_some() && created["created_at"].is_string());
    let updated = ok(&by_id["msg-4"]);
    assert_eq!(
        (updated["id"].as_i64(), updated["status"].as_str()),
        (Some(1), Some("inactive"))
    );
    assert_eq!(ok(&by_id["msg-5"]), json!({"deleted": true}));
    let sub = ok(&by_id["msg-6"]);
    let sub_id = sub["subscription_id"].as_str().expect("subscription id");
    assert_eq!(sub["notify_topic"], format!("spec/suite-a/notify/{sub_id}"));
    assert_eq!(
        code(&by_id["msg-7"]),
        "invalid_subscription",
        "sub-abc123 does not exist"
    );
    let unsub = a
        .request(json!({"type": "subscription", "operation": "unsubscribe", "data": {"subscription_id": sub_id}}))
        .await
        .expect("answered");
    assert_eq!(
        ok(&unsub),
        json!({"unsubscribed": true, "subscription_id": sub_id})
    );
}

async fn reads(a: &SpecClient) {
    let r = |v: Value| a.request(v);
    let one =
        r(json!({"type": "request", "operation": "read", "entity": "users", "record_id": "2"}))
            .await
            .unwrap();
    assert_eq!(ok(&one)["email"], "jane@example.com");
    let both = r(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2, "data": {"id": 3}}))
        .await
        .unwrap();
    assert_eq!(ok(&both)["id"], 2, "record_id wins over data.id");
    let gone =
        r(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 1}))
            .await
            .unwrap();
    assert_eq!(code(&gone), "not_found");
    let cols = r(
        json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2,
                        "options": {"columns": ["id", "name"]}}),
    )
    .await
    .unwrap();
    assert_eq!(ok(&cols), json!({"id": 2, "name": "Jane Smith"}));
    let omit = r(
        json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"omit_columns": ["email", "created_at"], "limit": 1}}),
    )
    .await
    .unwrap();
    let row = &ok(&omit)[0];
    assert!(
        row.get("email").is_none() && row.get("created_at").is_none() && row.get("name").is_some()
    );
    let page = r(json!({"type": "request", "operation": "read", "entity": "sensor_readings",
                        "options": {"sort": [{"column": "value", "direction": "desc"}], "limit": 5, "offset": 10}}))
    .await
    .unwrap();
    assert_eq!(ids(&page), vec![20, 19, 18, 17, 16]);
    assert_eq!(page.metadata, Some(json!({"total": 30, "count": 5})));
    let meta =
        r(json!({"type": "request", "operation": "meta", "schema": "public", "entity": "users"}))
            .await
            .unwrap();
    let meta = ok(&meta);
    assert_eq!(
        (meta["schema"].as_str(), meta["table"].as_str()),
        (Some("public"), Some("users"))
    );
    let id_col = &meta["columns"][0];
    assert_eq!(
        (id_col["name"].as_str(), id_col["is_primary"].as_bool()),
        (Some("id"), Some(true))
    );
    assert_eq!(meta["columns"][2]["is_unique"], true, "email is unique");
    let list = r(json!({"type": "request", "operation": "meta", "entity": "*"}))
        .await
        .unwrap();
    let list = ok(&list);
    let listed: Vec<String> = list["entities"]
        .as_array()
        .expect("an entity list")
        .iter()
        .map(|e| {
            format!(
                "{}.{}",
                e["schema"].as_str().unwrap_or(""),
                e["table"].as_str().unwrap_or("")
            )
        })
        .collect();
    for name in [
        "public.items",
        "public.logs",
        "public.sensor_readings",
        "public.users",
    ] {
        assert!(
            listed.iter().any(|l| l == name),
            "{name} listed: {listed:?}"
        );
    }
    let users = list["entities"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["table"] == "users"));
    assert_eq!(
        users,
        Some(&meta),
        "each entity as its own meta describes it"
    );
    let none = r(
        json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"columns": ["id"], "omit_columns": ["id"]}}),
    )
    .await
    .unwrap();
    assert_eq!(code(&none), "invalid_options");
}

/// Sensor readings: id n+1 has device-(n%3+1) and value 20 + n/2.
async fn operators(a: &SpecClient) {
    let q = |filters: Value| async move { ids(&a.request(read(filters)).await.expect("answered")) };
    let f = |c: &str, op: &str, v: Value| json!({"column": c, "operator": op, "value": v});
    assert_eq!(q(json!([f("value", "eq", json!(21))])).await, vec![3]);
    assert_eq!(
        q(json!([f("value", "eq", json!("21"))])).await,
        vec![3],
        "numeric string on a number column"
    );
    assert_eq!(
        q(json!([
            f("id", "lte", json!(3)),
            f("value", "neq", json!(20.5))
        ]))
        .await,
        vec![1, 3]
    );
    assert_eq!(q(json!([f("value", "gt", json!(34))])).await, vec![30]);
    assert_eq!(q(json!([f("value", "gte", json!(34))])).await, vec![29, 30]);
    assert_eq!(q(json!([f("value", "lt", json!(20.5))])).await, vec![1]);
    assert_eq!(
        q(json!([f("id", "in", json!([2, "4", 99]))])).await,
        vec![2, 4]
    );
    assert_eq!(
        q(json!([
            f("id", "lte", json!(5)),
            f("id", "not_in", json!([1, 2]))
        ]))
        .await,
        vec![3, 4, 5]
    );
    assert_eq!(
        q(json!([f("value", "between", json!([21, 22]))])).await,
        vec![3, 4, 5]
    );
    assert_eq!(
        q(json!([
            f("device_id", "like", json!("%-2")),
            f("id", "lt", json!(9))
        ]))
        .await,
        vec![2, 5, 8]
    );
    assert_eq!(
        q(json!([f("device_id", "like", json!("DEVICE-2"))])).await,
        Vec::<i64>::new(),
        "like is case-sensitive"
    );
    assert_eq!(
        q(json!([
            f("device_id", "ilike", json!("DEVICE-_")),
            f("id", "lt", json!(3))
        ]))
        .await,
        vec![1, 2]
    );
    assert_eq!(
        q(json!([f("device_id", "is_null", Value::Null)])).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        q(json!([
            f("device_id", "is_not_null", Value::Null),
            f("id", "lt", json!(3))
        ]))
        .await,
        vec![1, 2]
    );
    // AND binds tighter than OR: id=1 OR id>28 AND value<34.5  ->  1, 29
    let or = json!([f("id", "eq", json!(1)), {"column": "id", "operator": "gt", "value": 28, "logic_operator": "OR"},
                    f("value", "lt", json!(34.5))]);
    assert_eq!(q(or).await, vec![1, 29]);
    let bad = a
        .request(read(json!([f("value", "between", json!([1]))])))
        .await
        .unwrap();
    assert_eq!(code(&bad), "invalid_filter");
    let bad = a
        .request(read(json!([f("value", "in", json!(3))])))
        .await
        .unwrap();
    assert_eq!(code(&bad), "invalid_filter");
    let bad = a
        .request(read(
            json!([{"column": "value", "operator": "contains", "value": 1}]),
        ))
        .await
        .unwrap();
    assert_eq!(code(&bad), "invalid_options");
}

async fn writes_and_errors(a: &SpecClient) {
    let req = |op: &str, entity: &str, extra: Value| {
        let mut m =
            json!({"type": "request", "operation": op, "schema": "public", "entity": entity});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        a.request(m)
    };
    let no_email = req("create", "users", json!({"data": {"name": "No Mail"}}))
        .await
        .unwrap();
    let id = ok(&no_email)["id"].clone();
    assert!(ok(&no_email)["email"].is_null());
    let nulls = a
        .request(
            json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "email", "operator": "is_null"}]}}),
        )
        .await
        .unwrap();
    assert_eq!(ids(&nulls), vec![id.as_i64().unwrap()]);
    let partial = req(
        "update",
        "users",
        json!({"record_id": id, "data": {"status": "pending"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            ok(&partial)["name"].as_str(),
            ok(&partial)["status"].as_str()
        ),
        (Some("No Mail"), Some("pending"))
    );
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "create",
            "users",
            json!({"data": {"name": "X", "nickname": "x"}}),
            "invalid_column",
        ),
        ("create", "users", json!({"data": [1, 2]}), "invalid_data"),
        ("create", "users", json!({}), "invalid_data"),
        (
            "create",
            "users",
            json!({"data": {"name": "Dup", "email": "jane@example.com"}}),
            "create_error",
        ),
        (
            "create",
            "users",
            json!({"data": {"email": "nameless@example.com"}}),
            "create_error",
        ),
        (
            "update",
            "users",
            json!({"data": {"status": "x"}}),
            "invalid_data",
        ),
        ("update", "users", json!({"record_id": 2}), "invalid_data"),
        (
            "update",
            "users",
            json!({"record_id": 2, "data": {"id": 2}}),
            "invalid_data",
        ),
        (
            "update",
            "users",
            json!({"record_id": 999, "data": {"status": "x"}}),
            "not_found",
        ),
        (
            "update",
            "users",
            json!({"record_id": 2, "data": {"name": null}}),
            "update_error",
        ),
        ("delete", "users", json!({"record_id": 999}), "not_found"),
        ("delete", "users", json!({}), "invalid_data"),
        ("read", "nosuch", json!({}), "model_not_found"),
        (
            "read",
            "users",
            json!({"schema": "private"}),
            "model_not_found",
        ),
        ("read", "logs", json!({"record_id": 1}), "invalid_model"),
        (
            "read",
            "users",
            json!({"options": {"limit": "ten"}}),
            "invalid_options",
        ),
        (
            "read",
            "users",
            json!({"options": {"limit": -1}}),
            "invalid_options",
        ),
    ];
    for (op, entity, extra, expected) in cases {
        let response = req(op, entity, extra.clone()).await.unwrap();
        assert_eq!(code(&response), expected, "{op} {entity} {extra}");
        let message = &response.error.as_ref().unwrap().message;
        assert!(!message.is_empty(), "error messages say what was wrong");
    }
    let logs = req("create", "logs", json!({"data": {"msg": "hello"}}))
        .await
        .unwrap();
    assert_eq!(ok(&logs)["msg"], "hello");
    let logs = req("read", "logs", json!({})).await.unwrap();
    assert_eq!(ok(&logs).as_array().map(Vec::len), Some(1));
    let deleted = req("delete", "users", json!({"data": {"id": id}}))
        .await
        .unwrap();
    assert_eq!(ok(&deleted), json!({"deleted": true}));
    let protocol_errors: Vec<(Value, &str)> = vec![
        (
            json!({"type": "request", "operation": "read"}),
            "invalid_message",
        ),
        (
            json!({"type": "request", "entity": "users"}),
            "invalid_message",
        ),
        (
            json!({"type": "request", "operation": "launch", "entity": "users"}),
            "invalid_message",
        ),
        (
            json!({"type": "response", "operation": "read", "entity": "users"}),
            "invalid_message_type",
        ),
        (
            json!({"type": "request", "operation": "subscribe", "entity": "users"}),
            "invalid_operation",
        ),
        (
            json!({"type": "subscription", "operation": "read", "entity": "users"}),
            "invalid_subscription_operation",
        ),
        (
            json!({"type": "subscription", "operation": "unsubscribe"}),
            "invalid_subscription",
        ),
        (
            json!({"type": "subscription", "operation": "unsubscribe", "subscription_id": "nope"}),
            "invalid_subscription",
        ),
        (
            json!({"type": "subscription", "operation": "subscribe", "entity": "nosuch"}),
            "model_not_found",
        ),
    ];
    for (message, expected) in protocol_errors {
        let response = a.request(message.clone()).await.unwrap();
        assert_eq!(code(&response), expected, "{message}");
    }
}

/// Identifier injection in filters, sort, columns and data is refused with
/// `invalid_column` and changes nothing.
async fn injection_refused(a: &SpecClient) {
    let count = || async {
        let r = a
            .request(json!({"type": "request", "operation": "read", "entity": "users"}))
            .await
            .unwrap();
        r.metadata.expect("metadata")["total"]
            .as_u64()
            .expect("total")
    };
    let before = count().await;
    let attacks = vec![
        json!({"operation": "read", "options": {"filters": [{"column": "status' OR '1'='1", "operator": "eq", "value": 1}]}}),
        json!({"operation": "read", "options": {"filters": [{"column": "id\" IS NOT NULL OR \"id", "operator": "eq", "value": 1}]}}),
        json!({"operation": "read", "options": {"sort": [{"column": "name; DROP TABLE public_users; --", "direction": "asc"}]}}),
        json!({"operation": "read", "options": {"sort": [{"column": "(SELECT 1)"}]}}),
        json!({"operation": "read", "options": {"columns": ["id", "name FROM public_users; DELETE FROM public_users; --"]}}),
        json!({"operation": "read", "options": {"omit_columns": ["*"]}}),
        json!({"operation": "create", "data": {"name\") VALUES ('x'); DELETE FROM public_users; --": "x"}}),
        json!({"operation": "update", "record_id": 2, "data": {"status\" = 'x', \"name": "y"}}),
        json!({"operation": "delete", "record_id": 2, "options": {"filters": [{"column": "1=1 OR id", "operator": "eq", "value": 2}]}}),
        json!({"type": "subscription", "operation": "subscribe", "options": {"filters": [{"column": "x;--", "operator": "eq", "value": 1}]}}),
    ];
    for mut attack in attacks {
        let obj = attack.as_object_mut().expect("object");
        obj.entry("type").or_insert(json!("request"));
        obj.insert("entity".into(), json!("users"));
        let response = a.request(attack.clone()).await.unwrap();
        assert_eq!(code(&response), "invalid_column", "{attack}");
    }
    let value_attack = a
        .request(json!({"type": "request", "operation": "read", "entity": "users",
                        "options": {"filters": [{"column": "name", "operator": "eq", "value": "x' OR '1'='1"}]}}))
        .await
        .unwrap();
    assert_eq!(
        ids(&value_attack),
        Vec::<i64>::new(),
        "values are bound, never pasted"
    );
    assert_eq!(count().await, before, "nothing changed");
    let jane = a
        .request(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2}))
        .await
        .unwrap();
    assert_eq!(ok(&jane)["status"], "active");
}

async fn notifications(port: u16, a: &SpecClient) {
    let mut b = client(port, "suite-b").await;
    let wait = Duration::from_secs(20);
    let sub = b
        .request(json!({"type": "subscription", "operation": "subscribe", "schema": "public", "entity": "users",
                        "options": {"filters": [{"column": "status", "operator": "eq", "value": "active"}],
                                    "omit_columns": ["created_at"]}}))
        .await
        .unwrap();
    let active_sub = ok(&sub)["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    let all = b
        .request(
            json!({"type": "subscription", "operation": "subscribe", "entity": "sensor_readings"}),
        )
        .await
        .unwrap();
    let all_sub = ok(&all)["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    let create = |name: &str, status: &str| {
        a.request(
            json!({"type": "request", "operation": "create", "entity": "users",
                         "data": {"name": name, "status": status}}),
        )
    };
    // Not matching: no notification; the next one received is for the matching create.
    ok(&create("Quiet", "inactive").await.unwrap());
    let loud = ok(&create("Loud", "active").await.unwrap());
    let n = b.notification(wait).await.expect("create notification");
    assert_eq!(n.kind, Some(mqttspec_proto::MessageType::Notification));
    assert_eq!(n.operation, Some(mqttspec_proto::Operation::Create));
    assert_eq!(n.subscription_id.as_deref(), Some(active_sub.as_str()));
    assert_eq!(
        (n.schema.as_deref(), n.entity.as_deref()),
        (Some("public"), Some("users"))
    );
    let data = n.data.expect("data");
    assert_eq!(data["name"], "Loud");
    assert!(
        data.get("created_at").is_none(),
        "omit_columns applies to notifications"
    );
    assert!(n.timestamp.is_some());
    let loud_id = loud["id"].clone();
    // Leaving the filter is still told.
    let upd = |status: &str| {
        a.request(
            json!({"type": "request", "operation": "update", "entity": "users",
                         "record_id": loud_id, "data": {"status": status}}),
        )
    };
    ok(&upd("inactive").await.unwrap());
    let n = b
        .notification(wait)
        .await
        .expect("left-the-filter notification");
    assert_eq!(n.operation, Some(mqttspec_proto::Operation::Update));
    assert_eq!(n.data.as_ref().expect("data")["status"], "inactive");
    ok(&upd("pending").await.unwrap()); // outside before and after: nothing
    ok(&upd("active").await.unwrap()); // enters the filter
    let n = b.notification(wait).await.expect("entered notification");
    assert_eq!(n.data.as_ref().expect("data")["status"], "active");
    ok(&a.request(json!({"type": "request", "operation": "delete", "entity": "users", "record_id": loud_id}))
        .await
        .unwrap());
    let n = b.notification(wait).await.expect("delete notification");
    assert_eq!(n.operation, Some(mqttspec_proto::Operation::Delete));
    assert_eq!(n.data.as_ref().expect("data")["id"], loud_id);
    // Unsubscribed: only the other subscription is told.
    let unsub = b
        .request(json!({"type": "subscription", "operation": "unsubscribe", "subscription_id": active_sub}))
        .await
        .unwrap();
    assert_eq!(ok(&unsub)["unsubscribed"], true);
    ok(&create("After", "active").await.unwrap());
    ok(&a
        .request(
            json!({"type": "request", "operation": "create", "entity": "sensor_readings",
                         "data": {"device_id": "device-9", "value": 1.5}}),
        )
        .await
        .unwrap());
    let n = b.notification(wait).await.expect("sensor notification");
    assert_eq!(n.subscription_id.as_deref(), Some(all_sub.as_str()));
    assert_eq!(n.data.as_ref().expect("data")["device_id"], "device-9");
    // Another client cannot remove b's subscription.
    let steal = a
        .request(
            json!({"type": "subscription", "operation": "unsubscribe", "subscription_id": all_sub}),
        )
        .await
        .unwrap();
    assert_eq!(code(&steal), "invalid_subscription");
}

/// Non-JSON, wrong types, huge payloads: answered, server keeps going.
/// The server runs with `--max-payload 65536`.
async fn bad_input(port: u16) {
    let mut c = client(port, "suite-bad").await;
    let wait = Duration::from_secs(20);
    c.publish_raw(b"this is not json".to_vec()).await.unwrap();
    let r = c
        .unmatched_response(wait)
        .await
        .expect("answer to non-JSON");
    assert_eq!(code(&r), "invalid_message");
    c.publish_raw(vec![0xff, 0xfe, 0x00]).await.unwrap();
    let r = c
        .unmatched_response(wait)
        .await
        .expect("answer to binary garbage");
    assert_eq!(code(&r), "invalid_message");
    let typed = c
        .request(json!({"id": "t1", "type": "request", "operation": "read", "entity": 42}))
        .await
        .unwrap();
    assert_eq!(code(&typed), "invalid_message");
    assert!(typed
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("wrong types"));
    let huge = json!({"id": "big", "type": "request", "operation": "create", "entity": "users",
                      "data": {"name": "x".repeat(200_000)}});
    c.publish_raw(serde_json::to_vec(&huge).unwrap())
        .await
        .unwrap();
    let r = c
        .unmatched_response(wait)
        .await
        .expect("answer to a huge payload");
    assert_eq!(code(&r), "invalid_message");
    assert!(r
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("exceeds the limit"));
    let array = c.unmatched_response(Duration::from_millis(1)).await;
    assert!(array.is_none());
    c.publish_raw(b"[1,2,3]".to_vec()).await.unwrap();
    let r = c
        .unmatched_response(wait)
        .await
        .expect("answer to a JSON array");
    assert_eq!(code(&r), "invalid_message");
    let pong = c.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong.success, Some(true));
}

/// Subscribe as `client_id`, then disconnect; the caller checks the log.
pub async fn subscribe_and_leave(port: u16, client_id: &str) {
    let c = client(port, client_id).await;
    ok(&c
        .request(json!({"type": "subscription", "operation": "subscribe", "entity": "users"}))
        .await
        .unwrap());
    c.disconnect().await.unwrap();
}
