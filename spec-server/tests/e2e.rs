//! End-to-end tests of `mqttspec-server` with real peers: its embedded
//! broker, an external mosquitto, SQLite and a PostgreSQL cluster started
//! here, driven by a real MQTT client (rumqttc).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{
    client, code, extra_schema, ids, ok, operation_suite, start_server, subscribe_and_leave,
};
use e2e::postgres::Postgres;
use e2e::{free_port, Mosquitto};
use serde_json::json;
use spec_server::broker::embedded::EmbeddedConfig;
use spec_server::client::{ClientOptions, SpecClient};
use spec_server::hooks::{on, Hook, HookContext, HookError, HookPoint, Hooks};
use spec_server::jwt::sign_hs256;
use spec_server::server::{self, BrokerMode, ServerConfig};

const LINE_WAIT: Duration = Duration::from_secs(60);

fn wait_gone(server: &mut common::Server, client_id: &str) {
    loop {
        let line = server
            .proc
            .wait_for_line("client gone", LINE_WAIT)
            .expect("client dropped");
        if line.contains(client_id) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_with_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let schema = extra_schema(dir.path(), false);
    let db = format!("sqlite:{}", dir.path().join("spec.db").display());
    let args = [
        "--database",
        &db,
        "--demo",
        "--schema",
        &schema,
        "--max-payload",
        "65536",
    ];
    let mut server = start_server(&args, None).unwrap();
    operation_suite(server.port).await;
    subscribe_and_leave(server.port, "leaver-embedded").await;
    wait_gone(&mut server, "leaver-embedded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mosquitto_with_sqlite() {
    let mosquitto = Mosquitto::start("").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = extra_schema(dir.path(), false);
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.tcp_port);
    let args = [
        "--broker-url",
        &url,
        "--database",
        "sqlite::memory:",
        "--demo",
        "--schema",
        &schema,
        "--max-payload",
        "65536",
        "--subscription-ttl",
        "8",
    ];
    let mut server = start_server(&args, Some(mosquitto.tcp_port)).unwrap();
    operation_suite(server.port).await;
    subscribe_and_leave(server.port, "leaver-external").await;
    wait_gone(&mut server, "leaver-external");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_with_postgres() {
    let pg = Postgres::start("spec").expect("PostgreSQL starts (install the `postgresql` package)");
    let schema = extra_schema(pg.dir(), true);
    let url = pg.url();
    let args = [
        "--database",
        &url,
        "--demo",
        "--schema",
        &schema,
        "--max-payload",
        "65536",
    ];
    let server = start_server(&args, None).unwrap();
    operation_suite(server.port).await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM public.sensor_readings")
            .unwrap(),
        "31"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_auth_and_tenancy_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let schema = extra_schema(dir.path(), false);
    let args = [
        "--demo",
        "--schema",
        &schema,
        "--jwt-secret",
        "s3cret",
        "--tenant-column",
        "tenant_id",
    ];
    let server = start_server(&args, None).unwrap();
    let connect = |id: &str, token: Option<String>| {
        let mut options = ClientOptions::local(server.port, id);
        options.username = token;
        SpecClient::connect(options)
    };
    let token = |mut claims: serde_json::Value| {
        claims
            .as_object_mut()
            .unwrap()
            .entry("exp")
            .or_insert(json!(4_000_000_000u64));
        claims
            .as_object_mut()
            .unwrap()
            .entry("client_id")
            .or_insert(json!("*"));
        Some(sign_hs256(b"s3cret", &claims))
    };
    assert!(connect("anon", None).await.is_err(), "no token: refused");
    assert!(connect(
        "forged",
        Some(sign_hs256(
            b"wrong",
            &json!({"tenant_id": 1, "exp": 4_000_000_000u64})
        ))
    )
    .await
    .is_err());
    assert!(
        connect("expired", token(json!({"tenant_id": 1, "exp": 1000})))
            .await
            .is_err()
    );
    let t1 = connect("tenant-1", token(json!({"sub": "u1", "tenant_id": 1})))
        .await
        .unwrap();
    let mut t2 = connect("tenant-2", token(json!({"sub": "u2", "tenant_id": 2})))
        .await
        .unwrap();
    let items = |op: &str, extra: serde_json::Value| {
        let mut m = json!({"type": "request", "operation": op, "entity": "items"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    let a1 = ok(&t1
        .request(items("create", json!({"data": {"name": "a1"}})))
        .await
        .unwrap());
    assert_eq!(a1["tenant_id"], 1, "tenant stamped on create");
    let listed = ok(&t1
        .request(json!({"type": "request", "operation": "meta", "entity": "*"}))
        .await
        .unwrap());
    assert!(
        listed["entities"]
            .as_array()
            .is_some_and(|all| all.iter().any(|e| e["table"] == "items")),
        "an authenticated tenant lists the entities; tenancy filters rows, not entities: {listed}"
    );
    let a2 = ok(&t1
        .request(items(
            "create",
            json!({"data": {"name": "a2", "tenant_id": 2}}),
        ))
        .await
        .unwrap());
    assert_eq!(
        a2["tenant_id"], 1,
        "a client cannot write into another tenant"
    );
    let b1 = ok(&t2
        .request(items("create", json!({"data": {"name": "b1"}})))
        .await
        .unwrap());
    assert_eq!(
        ids(&t2.request(items("read", json!({}))).await.unwrap()),
        vec![b1["id"].as_i64().unwrap()]
    );
    let a1_id = a1["id"].clone();
    for op in ["read", "delete"] {
        let r = t2
            .request(items(op, json!({"record_id": a1_id})))
            .await
            .unwrap();
        assert_eq!(code(&r), "not_found", "{op} of another tenant's row");
    }
    let r = t2
        .request(items(
            "update",
            json!({"record_id": a1_id, "data": {"name": "stolen"}}),
        ))
        .await
        .unwrap();
    assert_eq!(code(&r), "not_found");
    let either = json!({"options": {"filters": [
        {"column": "name", "operator": "eq", "value": "a1"},
        {"column": "name", "operator": "eq", "value": "b1", "logic_operator": "OR"}]}});
    assert_eq!(
        ids(&t1.request(items("read", either)).await.unwrap()),
        vec![a1_id.as_i64().unwrap()]
    );
    let sub = t2
        .request(json!({"type": "subscription", "operation": "subscribe", "entity": "items"}))
        .await
        .unwrap();
    ok(&sub);
    ok(&t1
        .request(items("create", json!({"data": {"name": "a3"}})))
        .await
        .unwrap());
    ok(&t2
        .request(items("create", json!({"data": {"name": "b2"}})))
        .await
        .unwrap());
    let n = t2
        .notification(Duration::from_secs(20))
        .await
        .expect("own tenant's notification");
    assert_eq!(
        n.data.as_ref().unwrap()["name"],
        "b2",
        "other tenants' changes are not notified"
    );
    let users = t1
        .request(json!({"type": "request", "operation": "read", "entity": "users"}))
        .await
        .unwrap();
    assert_eq!(
        ids(&users).len(),
        5,
        "entities without a tenant column are not filtered"
    );
    let no_tenant = connect("no-tenant", token(json!({"sub": "u3"})))
        .await
        .unwrap();
    let r = no_tenant.request(items("read", json!({}))).await.unwrap();
    assert_eq!(code(&r), "unauthorized");
}

/// Records every hook point it sees and applies a few rules.
struct Recorder(std::sync::Mutex<mpsc::Sender<HookPoint>>);

impl Hook for Recorder {
    fn call(&self, point: HookPoint, _ctx: &mut HookContext) -> Result<(), HookError> {
        let _ = self.0.lock().unwrap().send(point);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_hooks_reject_and_rewrite_in_process() {
    spec_server::logging::init(false);
    let (tx, points) = mpsc::channel();
    let hooks = Hooks::new()
        .with(Recorder(std::sync::Mutex::new(tx)))
        .with(on(HookPoint::BeforeHandle, |ctx| {
            let sensors = ctx
                .entity
                .as_ref()
                .is_some_and(|e| e.name == "sensor_readings");
            if ctx.client_id.starts_with("guest") && sensors {
                return Err(HookError::unauthorized("guests cannot see sensors"));
            }
            Ok(())
        }))
        .with(on(HookPoint::BeforeCreate, |ctx| {
            let name = ctx
                .data
                .as_ref()
                .and_then(|d| d["name"].as_str())
                .unwrap_or("");
            if name == "forbidden" {
                return Err(HookError::reject("the name \"forbidden\" is not allowed"));
            }
            Ok(())
        }))
        .with(on(HookPoint::BeforeRead, |ctx| {
            ctx.options.limit = Some(2);
            Ok(())
        }))
        .with(on(HookPoint::AfterSubscribe, |ctx| {
            let sensors = ctx
                .entity
                .as_ref()
                .is_some_and(|e| e.name == "sensor_readings");
            if sensors {
                return Err(HookError::reject("no sensor subscriptions today"));
            }
            Ok(())
        }))
        .with(on(HookPoint::AfterRead, |ctx| {
            if let Some(rows) = ctx.result.as_mut().and_then(|r| r.as_array_mut()) {
                for row in rows {
                    row["email"] = json!("hidden");
                }
            }
            Ok(())
        }));
    let port = free_port();
    let broker = BrokerMode::Embedded(EmbeddedConfig::tcp(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ));
    let config = ServerConfig {
        demo: true,
        ..ServerConfig::new("sqlite::memory:", broker)
    };
    let running = server::start(config, hooks).await.unwrap();
    let guest = client(port, "guest-1").await;
    let sensors = guest
        .request(json!({"type": "request", "operation": "read", "entity": "sensor_readings"}))
        .await
        .unwrap();
    assert_eq!(code(&sensors), "unauthorized");
    let users = guest
        .request(json!({"type": "request", "operation": "read", "entity": "users"}))
        .await
        .unwrap();
    let rows = ok(&users);
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(2),
        "BeforeRead forced limit 2"
    );
    assert_eq!(rows[0]["email"], "hidden", "AfterRead rewrote the result");
    assert_eq!(users.metadata.as_ref().unwrap()["total"], 5);
    let refused = guest
        .request(json!({"type": "request", "operation": "create", "entity": "users", "data": {"name": "forbidden"}}))
        .await
        .unwrap();
    assert_eq!(code(&refused), "hook_error");
    assert!(refused.error.unwrap().message.contains("not allowed"));
    let allowed = guest
        .request(json!({"type": "request", "operation": "create", "entity": "users", "data": {"name": "allowed"}}))
        .await
        .unwrap();
    assert_eq!(ok(&allowed)["name"], "allowed");
    let sub = guest
        .request(json!({"type": "subscription", "operation": "subscribe", "entity": "users"}))
        .await
        .unwrap();
    let sub_id = ok(&sub)["subscription_id"].clone();
    for op in ["update", "delete"] {
        ok(&guest
            .request(json!({"type": "request", "operation": op, "entity": "users", "record_id": 3, "data": {"status": "x"}}))
            .await
            .unwrap());
    }
    ok(&guest
        .request(
            json!({"type": "subscription", "operation": "unsubscribe", "subscription_id": sub_id}),
        )
        .await
        .unwrap());
    ok(&guest
        .request(json!({"type": "subscription", "operation": "subscribe", "entity": "users"}))
        .await
        .unwrap());
    let member = client(port, "member-1").await;
    let refused = member
        .request(
            json!({"type": "subscription", "operation": "subscribe", "entity": "sensor_readings"}),
        )
        .await
        .unwrap();
    assert_eq!(code(&refused), "hook_error");
    assert_eq!(
        running.handler.subscription_count(),
        1,
        "a subscription refused by AfterSubscribe is removed"
    );
    guest.disconnect().await.unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&HookPoint::AfterDisconnect) {
        match tokio::task::block_in_place(|| points.recv_timeout(LINE_WAIT)) {
            Ok(point) => seen.push(point),
            Err(_) => panic!("no AfterDisconnect hook; hooks run: {seen:?}"),
        }
    }
    assert_eq!(
        seen.first(),
        Some(&HookPoint::BeforeConnect),
        "connect hooks run first"
    );
    for point in HookPoint::ALL {
        assert!(seen.contains(&point), "{point:?} never ran; saw {seen:?}");
    }
    assert_eq!(
        running.handler.subscription_count(),
        0,
        "subscriptions dropped on disconnect"
    );
    drop(member);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_file_limits_the_entities() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    std::fs::write(&models, r#"{"entities": ["public.users"]}"#).unwrap();
    let models = models.display().to_string();
    let server = start_server(&["--demo", "--models", &models], None).unwrap();
    let c = client(server.port, "models").await;
    let users = c
        .request(json!({"type": "request", "operation": "read", "entity": "users"}))
        .await
        .unwrap();
    assert_eq!(ids(&users).len(), 5);
    let sensors = c
        .request(json!({"type": "request", "operation": "read", "entity": "sensor_readings"}))
        .await
        .unwrap();
    assert_eq!(code(&sensors), "model_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rows_caps_reads() {
    let server = start_server(
        &["--database", "sqlite::memory:", "--demo", "--max-rows", "3"],
        None,
    )
    .unwrap();
    let c = client(server.port, "max-rows").await;
    // (requested limit, rows returned): a missing or larger limit is lowered.
    for (limit, expected) in [(None, 3), (Some(2), 2), (Some(10), 3)] {
        let mut read = json!({"type": "request", "operation": "read", "entity": "users",
                              "options": {"sort": [{"column": "id"}]}});
        if let Some(limit) = limit {
            read["options"]["limit"] = json!(limit);
        }
        let response = c.request(read).await.unwrap();
        assert_eq!(
            ids(&response),
            (1..=expected).collect::<Vec<i64>>(),
            "limit {limit:?}"
        );
        let metadata = response.metadata.clone().unwrap();
        assert_eq!(metadata["total"], 5, "total counts every match");
        assert_eq!(metadata["count"], expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_is_survived() {
    let pg = Postgres::start("spec").expect("PostgreSQL starts (install the `postgresql` package)");
    let url = pg.url();
    let mut server = start_server(&["--database", &url, "--demo"], None).unwrap();
    let c = client(server.port, "pg-restart").await;
    let read = json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2});
    assert_eq!(
        ok(&c.request(read.clone()).await.unwrap())["name"],
        "Jane Smith"
    );

    // Database down: requests get an error response naming the cause.
    pg.stop().unwrap();
    let down = c.request(read.clone()).await.unwrap();
    assert_eq!(code(&down), "read_error");
    let message = &down.error.as_ref().unwrap().message;
    assert!(
        message.contains("cannot connect to PostgreSQL"),
        "{message}"
    );
    let create = json!({"type": "request", "operation": "create", "entity": "users",
                        "data": {"name": "After Restart", "email": "after@example.com", "status": "active"}});
    assert_eq!(
        code(&c.request(create.clone()).await.unwrap()),
        "create_error"
    );

    // Database back: the next requests reconnect and are answered; the
    // refused create was not applied, the new one is.
    pg.resume().unwrap();
    assert_eq!(ok(&c.request(read).await.unwrap())["name"], "Jane Smith");
    server
        .proc
        .wait_for_line("PostgreSQL connection open again", LINE_WAIT)
        .unwrap();
    ok(&c.request(create).await.unwrap());
    assert_eq!(
        pg.psql("SELECT count(*) FROM public.users WHERE email = 'after@example.com'")
            .unwrap(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mode_reconnects_after_a_broker_restart() {
    let mosquitto = Mosquitto::start("").unwrap();
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.tcp_port);
    let mut server =
        start_server(&["--broker-url", &url, "--demo"], Some(mosquitto.tcp_port)).unwrap();
    let c = client(server.port, "before-restart").await;
    ok(&c
        .request(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 1}))
        .await
        .unwrap());
    drop(c);
    let mosquitto = mosquitto.restart().unwrap();
    server
        .proc
        .wait_for_line("broker connection lost", LINE_WAIT)
        .unwrap();
    server
        .proc
        .wait_for_line("connected to the broker", LINE_WAIT)
        .unwrap();
    // The server resubscribes right after its CONNACK; a fresh client's
    // request is answered once that SUBACK is in (retry a few times).
    let mut c = client(mosquitto.tcp_port, "after-restart").await;
    c.timeout = Duration::from_secs(3);
    let mut answered = None;
    for _ in 0..10 {
        if let Ok(r) = c
            .request(
                json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2}),
            )
            .await
        {
            answered = Some(r);
            break;
        }
    }
    assert_eq!(
        ok(&answered.expect("answered after the restart"))["name"],
        "Jane Smith"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mosquitto_with_credentials() {
    let dir = tempfile::Builder::new()
        .prefix("spec-pw-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let passwords = dir.path().join("passwords");
    for (i, (user, pass)) in [("server", "s3cret"), ("app", "app-pass")]
        .iter()
        .enumerate()
    {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let status = cmd
            .arg("-b")
            .arg(&passwords)
            .args([user, pass])
            .status()
            .expect("mosquitto_passwd runs");
        assert!(status.success());
    }
    std::fs::set_permissions(
        &passwords,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mosquitto = Mosquitto::start(&format!(
        "allow_anonymous false\npassword_file {}",
        passwords.display()
    ))
    .unwrap();
    let url = format!("mqtt://server:s3cret@127.0.0.1:{}", mosquitto.tcp_port);
    let server = start_server(&["--broker-url", &url, "--demo"], Some(mosquitto.tcp_port)).unwrap();
    assert!(
        SpecClient::connect(ClientOptions::local(server.port, "anonymous"))
            .await
            .is_err(),
        "the broker refuses anonymous clients"
    );
    let options = ClientOptions {
        username: Some("app".into()),
        password: Some("app-pass".into()),
        ..ClientOptions::local(server.port, "app-1")
    };
    let c = SpecClient::connect(options).await.unwrap();
    let jane = c
        .request(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2}))
        .await
        .unwrap();
    assert_eq!(ok(&jane)["name"], "Jane Smith");
}

/// Run `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mosquitto_over_tls() {
    let dir = tempfile::Builder::new()
        .prefix("spec-tls-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=spec-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(
            d.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let tls_port = free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key",
        d.display()
    );
    let mosquitto = Mosquitto::start(&extra).unwrap();
    e2e::wait_for_port(tls_port, Duration::from_secs(10)).unwrap();
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let ca = d.join("ca.pem").display().to_string();
    // The server talks TLS to the broker; the test client uses the plain listener.
    let server = start_server(
        &["--broker-url", &url, "--broker-ca", &ca, "--demo"],
        Some(mosquitto.tcp_port),
    )
    .unwrap();
    let c = client(server.port, "tls-app").await;
    let jane = c
        .request(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2}))
        .await
        .unwrap();
    assert_eq!(ok(&jane)["name"], "Jane Smith");
    let other_ca = d.join("server.pem").display().to_string();
    let mut wrong = std::process::Command::new(env!("CARGO_BIN_EXE_mqttspec-server"));
    wrong.args([
        "--broker-url",
        &url,
        "--broker-ca",
        &other_ca,
        "--client-id",
        "wrong-ca",
    ]);
    let mut wrong = e2e::Proc::spawn("wrong-ca", &mut wrong).unwrap();
    wrong
        .wait_for_line("broker connection lost", LINE_WAIT)
        .expect("an untrusted certificate is refused");
}

/// A JWKS document and an RS256 token signer backed by an openssl key in `dir`.
fn rsa_jwks(dir: &std::path::Path) -> (String, impl Fn(&serde_json::Value) -> String + '_) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    openssl(dir, &["genrsa", "-out", "jwt.key", "2048"]);
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(["rsa", "-in", "jwt.key", "-noout", "-modulus"])
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("Modulus=")
        .to_string();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let jwks =
        json!({"keys": [{"kty": "RSA", "kid": "k1", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(n)}]});
    let sign = move |claims: &serde_json::Value| {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        std::fs::write(dir.join("signed"), &signed).unwrap();
        let sig = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-sign", "jwt.key", "signed"])
            .output()
            .unwrap();
        assert!(sig.status.success());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.stdout))
    };
    (jwks.to_string(), sign)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rs256_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (jwks, sign) = rsa_jwks(dir.path());
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks).unwrap();
    let jwks_path = jwks_path.display().to_string();
    let server = start_server(&["--demo", "--jwks", &jwks_path], None).unwrap();
    let connect = |id: &str, token: String| {
        SpecClient::connect(ClientOptions {
            username: Some(token),
            ..ClientOptions::local(server.port, id)
        })
    };
    let good = sign(&json!({"sub": "u1", "client_id": "rs-*", "exp": 4_000_000_000u64}));
    let c = connect("rs-ok", good).await.unwrap();
    let jane = c
        .request(json!({"type": "request", "operation": "read", "entity": "users", "record_id": 2}))
        .await
        .unwrap();
    assert_eq!(ok(&jane)["name"], "Jane Smith");
    let hs = sign_hs256(
        b"guess",
        &json!({"sub": "u1", "client_id": "rs-*", "exp": 4_000_000_000u64}),
    );
    assert!(
        connect("rs-hs", hs).await.is_err(),
        "an HMAC token is refused when only RSA keys are trusted"
    );
}
