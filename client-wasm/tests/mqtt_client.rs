//! MqttClient (the JS driver `js/mqtt-client.js` over the wasm `MqttCore`,
//! driven here through the Rust bindings SpecClient uses) in headless
//! Chromium against a real mosquitto (started by scripts/test-wasm.sh, which
//! passes its URLs at compile time).

use std::cell::RefCell;
use std::rc::Rc;

use client_wasm::spec::mqtt::{install_core, MqttClient};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn env(value: Option<&'static str>, name: &str) -> &'static str {
    value.unwrap_or_else(|| panic!("{name} is not set: run these tests with scripts/test-wasm.sh"))
}

fn ws_url() -> &'static str {
    env(option_env!("MQTT_WS_URL"), "MQTT_WS_URL")
}

fn auth_url() -> &'static str {
    env(option_env!("MQTT_WS_AUTH_URL"), "MQTT_WS_AUTH_URL")
}

/// A topic prefix unique to this run and test.
fn unique(name: &str) -> String {
    let n = (js_sys::Math::random() * 1e9) as u64;
    format!("wasmtest/{name}/{n}")
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// `new MqttClient(url, opts).open()`, through the JS API's options parser.
async fn connect(url: &str, opts: JsValue) -> Result<MqttClient, JsValue> {
    // wasm-bindgen-test does not run the crate's start function.
    install_core();
    let client = MqttClient::new(url, &opts)?;
    JsFuture::from(client.open()).await?;
    Ok(client)
}

async fn must_connect(url: &str, opts: JsValue) -> MqttClient {
    match connect(url, opts).await {
        Ok(c) => c,
        Err(e) => panic!("connect to {url} failed: {}", describe(&e)),
    }
}

fn describe(e: &JsValue) -> String {
    let code = get(e, "code").as_string();
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()));
    format!(
        "{} ({})",
        msg.unwrap_or_else(|| format!("{e:?}")),
        code.unwrap_or_default()
    )
}

fn code_of(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

async fn ok(p: Promise, what: &str) -> JsValue {
    match JsFuture::from(p).await {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {}", describe(&e)),
    }
}

async fn err(p: Promise, what: &str) -> JsValue {
    match JsFuture::from(p).await {
        Ok(v) => panic!("{what} should have failed, got {v:?}"),
        Err(e) => e,
    }
}

/// A received message, as the `onMessage` listener saw it.
#[derive(Clone)]
struct Message {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
    /// MQTT 5 properties (undefined without).
    properties: JsValue,
}

/// Messages collected by a subscription's `onMessage`.
#[derive(Clone, Default)]
struct Inbox(Rc<RefCell<Vec<Message>>>);

impl Inbox {
    fn handler(&self) -> JsValue {
        let inbox = self.0.clone();
        Closure::<dyn FnMut(String, Uint8Array, JsValue)>::new(
            move |topic: String, payload: Uint8Array, info: JsValue| {
                inbox.borrow_mut().push(Message {
                    topic,
                    payload: payload.to_vec(),
                    qos: get(&info, "qos").as_f64().unwrap_or(-1.0) as u8,
                    retain: get(&info, "retain").as_bool() == Some(true),
                    properties: get(&info, "properties"),
                })
            },
        )
        .into_js_value()
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    fn payloads(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    }

    async fn wait_for(&self, n: usize, what: &str) {
        wait_until(what, 20_000, || self.len() >= n).await;
    }
}

/// Poll `cond` every 10 ms until it holds (panics after `timeout_ms`).
async fn wait_until(what: &str, timeout_ms: u32, cond: impl Fn() -> bool) {
    let start = js_sys::Date::now();
    while !cond() {
        if js_sys::Date::now() - start > f64::from(timeout_ms) {
            panic!("timed out after {timeout_ms} ms waiting for {what}");
        }
        TimeoutFuture::new(10).await;
    }
}

fn publish_with(c: &MqttClient, topic: &str, payload: &[u8], options: JsValue) -> Promise {
    c.publish(topic, &Uint8Array::from(payload), &options)
}

fn publish(c: &MqttClient, topic: &str, qos: u8, payload: &str) -> Promise {
    publish_with(c, topic, payload.as_bytes(), obj(&[("qos", qos.into())]))
}

fn subscribe(c: &MqttClient, filter: &str, qos: u8, inbox: Option<&Inbox>) -> Promise {
    let handler = inbox.map_or(JsValue::UNDEFINED, Inbox::handler);
    c.subscribe(&filter.into(), &obj(&[("qos", qos.into())]), &handler)
}

fn versions() -> [(u8, JsValue); 2] {
    [(4, JsValue::from(4)), (5, JsValue::from(5))]
}

#[wasm_bindgen_test]
async fn connects_with_username_and_password() {
    let user = env(option_env!("MQTT_USER"), "MQTT_USER");
    let pass = env(option_env!("MQTT_PASS"), "MQTT_PASS");
    for (v, version) in versions() {
        let good = obj(&[
            ("protocolVersion", version.clone()),
            ("username", user.into()),
            ("password", pass.into()),
        ]);
        let c = must_connect(auth_url(), good).await;
        assert!(c.connected(), "v{v}");
        let _ = c.end();
        let bad = obj(&[
            ("protocolVersion", version.clone()),
            ("username", user.into()),
            ("password", "wrong".into()),
            ("reconnectPeriod", 0.into()),
        ]);
        let e = connect(auth_url(), bad)
            .await
            .err()
            .expect("wrong password must fail");
        assert_eq!(code_of(&e), "CONNECTION_REFUSED", "v{v}: {}", describe(&e));
        let anonymous = obj(&[("protocolVersion", version)]);
        let e = connect(auth_url(), anonymous)
            .await
            .err()
            .expect("anonymous must fail");
        assert_eq!(code_of(&e), "CONNECTION_REFUSED", "v{v}: {}", describe(&e));
    }
}

#[wasm_bindgen_test]
async fn qos_0_1_2_both_ways() {
    for (v, version) in versions() {
        let base = unique("qos");
        let sub = must_connect(ws_url(), obj(&[("protocolVersion", version.clone())])).await;
        let publ = must_connect(ws_url(), obj(&[("protocolVersion", version)])).await;
        let inbox = Inbox::default();
        let granted = ok(
            subscribe(&sub, &format!("{base}/+"), 2, Some(&inbox)),
            "subscribe",
        )
        .await;
        let first = js_sys::Array::from(&granted).get(0);
        assert_eq!(
            Reflect::get(&first, &"qos".into()).unwrap(),
            JsValue::from(2u8),
            "v{v}"
        );
        for (i, qos) in [0, 1, 2].into_iter().enumerate() {
            // Outgoing from one client, incoming on the other...
            ok(
                publish(
                    &publ,
                    &format!("{base}/{i}"),
                    qos,
                    &format!("from-other-{i}"),
                ),
                "publish",
            )
            .await;
            // ...and a client receiving its own publish.
            ok(
                publish(&sub, &format!("{base}/{i}"), qos, &format!("from-self-{i}")),
                "publish",
            )
            .await;
        }
        inbox.wait_for(6, "six messages").await;
        let msgs = inbox.0.borrow().clone();
        for (i, qos) in [0, 1, 2].into_iter().enumerate() {
            for who in ["other", "self"] {
                let payload = format!("from-{who}-{i}");
                let got: Vec<&Message> = msgs
                    .iter()
                    .filter(|m| m.payload[..] == *payload.as_bytes())
                    .collect();
                assert_eq!(
                    got.len(),
                    1,
                    "v{v}: {payload} delivered {} times",
                    got.len()
                );
                assert_eq!(got[0].qos, qos, "v{v}: {payload}");
                assert_eq!(got[0].topic, format!("{base}/{i}"));
            }
        }
        // Unsubscribed: the handler gets nothing more, even from our own publishes.
        ok(sub.unsubscribe(&format!("{base}/+").into()), "unsubscribe").await;
        ok(publish(&publ, &format!("{base}/x"), 1, "after"), "publish").await;
        // A marker on another subscription proves the broker has delivered past it.
        let marker = Inbox::default();
        ok(
            subscribe(&sub, &format!("{base}-marker"), 1, Some(&marker)),
            "subscribe",
        )
        .await;
        ok(publish(&publ, &format!("{base}-marker"), 1, "m"), "publish").await;
        marker.wait_for(1, "marker").await;
        assert_eq!(inbox.len(), 6, "v{v}: message after unsubscribe");
        let _ = sub.end();
        let _ = publ.end();
    }
}

#[wasm_bindgen_test]
async fn retained_messages_reach_new_subscribers() {
    let topic = unique("retained");
    let a = must_connect(ws_url(), JsValue::UNDEFINED).await;
    let retained = || obj(&[("qos", 1.into()), ("retain", true.into())]);
    ok(
        publish_with(&a, &topic, b"kept", retained()),
        "retained publish",
    )
    .await;
    let b = must_connect(ws_url(), JsValue::UNDEFINED).await;
    let inbox = Inbox::default();
    ok(subscribe(&b, &topic, 1, Some(&inbox)), "subscribe").await;
    inbox.wait_for(1, "retained message").await;
    let m = inbox.0.borrow()[0].clone();
    assert!(m.retain, "retain flag");
    assert_eq!(&m.payload[..], b"kept");
    // Clear it.
    ok(publish_with(&a, &topic, b"", retained()), "clear retained").await;
    let _ = a.end();
    let _ = b.end();
}

#[wasm_bindgen_test]
async fn last_will_is_published_when_the_socket_dies() {
    for (v, version) in versions() {
        let base = unique("will");
        let watcher = must_connect(ws_url(), obj(&[("protocolVersion", version.clone())])).await;
        let inbox = Inbox::default();
        ok(
            subscribe(&watcher, &format!("{base}/#"), 1, Some(&inbox)),
            "subscribe",
        )
        .await;
        let will = |who: &str| {
            obj(&[
                ("protocolVersion", version.clone()),
                ("reconnectPeriod", 0.into()),
                (
                    "will",
                    obj(&[
                        ("topic", format!("{base}/{who}").into()),
                        ("payload", format!("{who} is gone").into()),
                        ("qos", 1.into()),
                    ]),
                ),
            ])
        };
        // A clean end() sends DISCONNECT: no will.
        let polite = must_connect(ws_url(), will("polite")).await;
        let _ = polite.end();
        // Killing the socket without DISCONNECT: the broker publishes the will.
        let victim = must_connect(ws_url(), will("victim")).await;
        victim.reconnect();
        inbox.wait_for(1, "the will").await;
        assert_eq!(inbox.payloads(), vec!["victim is gone".to_string()], "v{v}");
        assert!(!victim.connected());
        let _ = watcher.end();
    }
}

#[wasm_bindgen_test]
async fn mqtt5_properties_round_trip() {
    let topic = unique("props");
    let opts = || obj(&[("protocolVersion", 5.into())]);
    let a = must_connect(ws_url(), opts()).await;
    let inbox = Inbox::default();
    ok(subscribe(&a, &topic, 1, Some(&inbox)), "subscribe").await;
    let user = obj(&[("k", js_sys::Array::of2(&"v1".into(), &"v2".into()).into())]);
    let properties = obj(&[
        ("payloadFormatIndicator", true.into()),
        ("messageExpiryInterval", 60.into()),
        ("responseTopic", "reply/to".into()),
        ("correlationData", Uint8Array::from(&b"corr"[..]).into()),
        ("userProperties", user),
        ("contentType", "application/json".into()),
    ]);
    let options = obj(&[("qos", 1.into()), ("properties", properties)]);
    ok(
        publish_with(&a, &topic, b"{}", options),
        "publish with properties",
    )
    .await;
    inbox.wait_for(1, "message with properties").await;
    let props = inbox.0.borrow()[0].properties.clone();
    assert_eq!(
        get(&props, "contentType").as_string().as_deref(),
        Some("application/json")
    );
    assert_eq!(
        get(&props, "responseTopic").as_string().as_deref(),
        Some("reply/to")
    );
    let correlation = get(&props, "correlationData");
    assert_eq!(Uint8Array::new(&correlation).to_vec(), b"corr");
    assert_eq!(get(&props, "payloadFormatIndicator"), JsValue::TRUE);
    let values = get(&get(&props, "userProperties"), "k");
    let values: Vec<String> = js_sys::Array::from(&values)
        .iter()
        .filter_map(|v| v.as_string())
        .collect();
    assert_eq!(values, ["v1", "v2"]);
    let _ = a.end();
}

#[wasm_bindgen_test]
async fn errors_have_codes() {
    let c = must_connect(ws_url(), JsValue::UNDEFINED).await;
    let e = err(publish(&c, "a/+/b", 0, "x"), "publish to a wildcard").await;
    assert_eq!(code_of(&e), "INVALID_TOPIC");
    let e = err(subscribe(&c, "a/#/b", 0, None), "bad filter").await;
    assert_eq!(code_of(&e), "INVALID_TOPIC");
    // Operations pending at end() are rejected, later ones too.
    let topic = unique("ended");
    let _ = c.end();
    let e = err(publish(&c, &topic, 1, "late"), "publish after end").await;
    assert_eq!(code_of(&e), "ENDED", "{}", describe(&e));
    // Nothing listens on this port (mosquitto's TCP port speaks no WebSocket).
    let tcp = env(option_env!("MQTT_TCP_PORT"), "MQTT_TCP_PORT");
    let e = connect(
        &format!("ws://127.0.0.1:{tcp}"),
        obj(&[("connectTimeout", 5000.into())]),
    )
    .await
    .err()
    .expect("no WebSocket there");
    assert!(
        ["CONNECTION_FAILED", "CONNECT_TIMEOUT"].contains(&code_of(&e).as_str()),
        "{}",
        describe(&e)
    );
    let e = connect("ftp://example.invalid/", JsValue::UNDEFINED)
        .await
        .err()
        .expect("bad url");
    assert_eq!(code_of(&e), "INVALID_URL", "{}", describe(&e));
    let e = connect(ws_url(), obj(&[("protocolVersion", 3.into())]))
        .await
        .err()
        .expect("bad version");
    assert_eq!(code_of(&e), "INVALID_OPTIONS");
}

#[wasm_bindgen_test]
async fn offline_publishes_are_sent_after_reconnecting() {
    let topic = unique("offline");
    let sub = must_connect(ws_url(), JsValue::UNDEFINED).await;
    let inbox = Inbox::default();
    ok(subscribe(&sub, &topic, 2, Some(&inbox)), "subscribe").await;
    let c = must_connect(ws_url(), obj(&[("reconnectPeriod", 50.into())])).await;
    c.reconnect();
    assert!(!c.connected());
    let pending: Vec<Promise> = (0..5)
        .map(|i| publish(&c, &topic, 2, &format!("queued-{i}")))
        .collect();
    for p in pending {
        ok(p, "queued publish").await;
    }
    inbox.wait_for(5, "queued messages").await;
    assert_eq!(
        inbox.payloads(),
        (0..5).map(|i| format!("queued-{i}")).collect::<Vec<_>>()
    );
    let _ = c.end();
    let _ = sub.end();
}

async fn restart_broker() {
    let control = env(option_env!("MQTT_CONTROL_URL"), "MQTT_CONTROL_URL");
    let fetch = js_sys::Function::new_with_args("u", "return fetch(u).then(r => r.ok ? r.text() : Promise.reject(new Error('restart: ' + r.status)))");
    let p: Promise = fetch
        .call1(&JsValue::UNDEFINED, &format!("{control}/restart").into())
        .unwrap()
        .unchecked_into();
    ok(p, "broker restart").await;
}

#[wasm_bindgen_test]
async fn broker_restart_mid_stream_keeps_qos_promises() {
    for (v, version) in versions() {
        let base = unique("restart");
        let opts = |id: &str, clean: bool| {
            obj(&[
                ("protocolVersion", version.clone()),
                (
                    "clientId",
                    format!("{id}-{v}-{}", (js_sys::Math::random() * 1e9) as u64).into(),
                ),
                ("clean", clean.into()),
                ("sessionExpiryInterval", 300.into()),
                ("reconnectPeriod", 100.into()),
                ("maxReconnectDelay", 1000.into()),
            ])
        };
        // Persistent session: the broker (with persistence) keeps its
        // subscription and queued messages across the restart.
        let kept = must_connect(ws_url(), opts("kept", false)).await;
        let kept_inbox = Inbox::default();
        ok(
            subscribe(&kept, &format!("{base}/#"), 2, Some(&kept_inbox)),
            "subscribe",
        )
        .await;
        // Clean session: lost on restart, so the client resubscribes by itself.
        let fresh = must_connect(ws_url(), opts("fresh", true)).await;
        let fresh_inbox = Inbox::default();
        ok(
            subscribe(&fresh, &format!("{base}/#"), 1, Some(&fresh_inbox)),
            "subscribe",
        )
        .await;
        // The publisher's session must survive too: with a clean session the
        // broker may forget a QoS 2 message between PUBREC and PUBREL.
        let publ = must_connect(ws_url(), opts("pub", false)).await;

        let total = 40;
        let mut pending = vec![];
        for i in 0..total {
            let qos = if i % 2 == 0 { 1 } else { 2 };
            pending.push(publish(
                &publ,
                &format!("{base}/{i}"),
                qos,
                &format!("m{i}"),
            ));
            if i == total / 2 {
                restart_broker().await;
            }
        }
        for p in pending {
            ok(p, "publish across the restart").await;
        }
        // Wait for every distinct payload: QoS 1 messages may come twice
        // across the restart, so a count of arrivals can reach `total`
        // before the last QoS 2 messages are in.
        let distinct = || {
            let mut p = kept_inbox.payloads();
            p.sort();
            p.dedup();
            p.len()
        };
        wait_until("every message on the kept session", 20_000, || {
            distinct() >= total
        })
        .await;
        let got = kept_inbox.payloads();
        for i in 0..total {
            let n = got.iter().filter(|p| **p == format!("m{i}")).count();
            if i % 2 == 1 {
                assert_eq!(n, 1, "v{v}: QoS 2 message m{i} delivered {n} times");
            } else {
                assert!(n >= 1, "v{v}: QoS 1 message m{i} lost");
            }
        }
        // The clean client resubscribed: a message published now reaches it.
        wait_until("fresh client reconnected", 20_000, || fresh.connected()).await;
        let before = fresh_inbox.len();
        ok(
            publish(&publ, &format!("{base}/after"), 1, "after"),
            "publish",
        )
        .await;
        wait_until("message after resubscription", 20_000, || {
            fresh_inbox.payloads()[before..].contains(&"after".to_string())
        })
        .await;
        let _ = kept.end();
        let _ = fresh.end();
        let _ = publ.end();
    }
}
