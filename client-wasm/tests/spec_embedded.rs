//! SpecClient in headless Chromium against `mqttspec-server`'s embedded
//! broker (rmqtt) over MQTT 5 and 3.1.1: started by scripts/test-wasm.sh,
//! which passes its WebSocket URL at compile time (SPEC_WS_URL).

use client_wasm::spec::SpecClient;
use js_sys::{Object, Reflect};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn spec_url() -> &'static str {
    option_env!("SPEC_WS_URL").unwrap_or_else(|| {
        panic!("SPEC_WS_URL is not set: run these tests with scripts/test-wasm.sh")
    })
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

async fn connect(client_id: &str, version: u8) -> SpecClient {
    // wasm-bindgen-test does not run the crate's start function.
    client_wasm::spec::mqtt::install_core();
    let options = obj(&[
        ("clientId", client_id.into()),
        ("protocolVersion", version.into()),
    ]);
    let client = JsFuture::from(SpecClient::connect(spec_url(), Some(options)))
        .await
        .unwrap_or_else(|e| panic!("connect {client_id} (v{version}): {e:?}"));
    SpecClient::try_from_js_value(client).expect("a SpecClient")
}

#[wasm_bindgen_test]
async fn reads_and_writes_over_mqtt5_and_311_on_the_embedded_broker() {
    for version in [5u8, 4] {
        let client = connect(&format!("wasm-embedded-v{version}"), version).await;
        let read = JsFuture::from(client.read("users", Some(obj(&[("recordId", "2".into())]))))
            .await
            .expect("read answered");
        assert_eq!(get(&get(&read, "data"), "name"), "Jane Smith");
        let row = obj(&[
            ("device_id", format!("wasm-v{version}").into()),
            ("value", 2.5.into()),
        ]);
        let created = JsFuture::from(client.create("sensor_readings", row, None))
            .await
            .expect("create answered");
        assert_eq!(
            get(&get(&created, "data"), "device_id"),
            format!("wasm-v{version}").as_str()
        );
        JsFuture::from(client.end()).await.expect("ended");
    }
}
