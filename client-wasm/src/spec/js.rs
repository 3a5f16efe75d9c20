//! The JS API: `SpecClient.connect(url, options)`, `read` / `create` /
//! `update` / `delete` / `meta`, `subscribe` (callback and async iterator)
//! and `liveQuery`. TypeScript declarations are written by hand below so
//! options and results are typed rather than `any`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use mqttspec_client::request::{self, EntityRef};
use mqttspec_client::subscriptions::Handle;
use mqttspec_client::{LiveQuery, SpecError};
use mqttspec_proto::{topic, Filter, Operation, Sort};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::client::{self, Inner, LiveId, Shared, Sink};
use super::json::{error_to_js, field, from_js};
use super::mqtt::MqttClient;
use crate::mqtt::QoS;
use crate::reply::Reply;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `SpecClient.connect`. MQTT options of `MqttClient.connect` (protocolVersion, keepalive, ...) apply too. */
export interface SpecConnectOptions extends ConnectOptions {
  /** MQTT client id; also the second level of the MQTTSpec topics. Default: random. */
  clientId?: string;
  /** Sent as the MQTT username (MQTTSpec servers read a JWT there). */
  token?: string;
  /** Topic prefix (default "spec"). */
  prefix?: string;
  /** QoS of requests and of the response/notify subscriptions (default 1). */
  qos?: 0 | 1 | 2;
  /** Milliseconds a request waits for its response, offline time included (default 10000). */
  timeoutMs?: number;
  /** Reconnect after a lost connection (default true). */
  reconnect?: boolean;
  /** Largest packet accepted, in bytes: default 256 MiB here (read responses carry whole result sets), 1 MiB for MqttClient. */
  maxPacketSize?: number;
}

export type FilterOperator = "eq" | "neq" | "gt" | "gte" | "lt" | "lte" | "like" | "ilike" | "in" | "not_in" | "is_null" | "is_not_null" | "between";
export interface Filter { column: string; operator: FilterOperator; value?: unknown; logic_operator?: "AND" | "OR"; }
export interface SortKey { column: string; direction?: "asc" | "desc"; }
export interface QueryOptions {
  columns?: string[]; omit_columns?: string[]; filters?: Filter[]; sort?: SortKey[];
  limit?: number; offset?: number; [extra: string]: unknown;
}
export type Row = Record<string, unknown>;
export interface EntityOptions { /** Schema, unless the entity is written "schema.entity". */ schema?: string; }
export interface ReadOptions extends EntityOptions { recordId?: string | number; options?: QueryOptions; }
export interface ReadResult<T = unknown> { data: T; metadata?: { total?: number; count?: number; [k: string]: unknown }; }
/** Options of `SpecClient.subscribe` (`SubscribeOptions` is MqttClient's). */
export interface SpecSubscribeOptions extends EntityOptions {
  filters?: Filter[];
  /** Called when subscribing again after a reconnect fails; the subscribe is retried after
   * 0.5 s, doubling up to 10 s (no notifications arrive meanwhile). */
  onError?: (error: SpecError) => void;
}
export interface Notification {
  type: "notification"; operation: "create" | "update" | "delete"; subscription_id: string;
  schema?: string; entity: string; data: Row; timestamp?: string;
}
export interface LiveQueryOptions extends EntityOptions {
  filters?: Filter[]; sort?: SortKey[]; limit?: number;
  /** Primary key column (default "id"); also the last sort key, so ties have one order. */
  key?: string;
  /** Called when reading the rows again (after a reconnect, or to refill a view cut by
   * `limit`) or (re)subscribing fails; it is retried after 0.5 s, doubling up to 10 s,
   * and the view stays as it was meanwhile. */
  onError?: (error: SpecError) => void;
}
export interface LiveChange { added: Row[]; updated: Row[]; removed: Row[]; }
/** Rejections are `Error`s with `name = "SpecError"` and the server's `error.code`
 * (model_not_found, invalid_column, hook_error, ...) or a local one: timeout, closed,
 * publish_failed, invalid_argument. */
export interface SpecError extends Error { code: string; }
export interface SpecClientEvents {
  connect: (connack: { sessionPresent: boolean }) => void;
  reconnect: () => void; offline: () => void; close: (info: { reconnectInMs?: number }) => void; error: (error: Error) => void;
}
export interface SpecClient {
  on<K extends keyof SpecClientEvents>(event: K, listener: SpecClientEvents[K]): SpecClient;
}
export interface SubscriptionHandle { [Symbol.asyncIterator](): AsyncIterator<Notification>; }
"#;

/// An MQTTSpec client (see the TypeScript declarations).
#[wasm_bindgen]
pub struct SpecClient {
    rc: Shared,
}

fn reject(code: &str, message: impl Into<String>) -> Promise {
    Promise::reject(&error_to_js(&SpecError::new(code, message)))
}

/// A topic level chosen by the user: not empty, no `/`, `+` or `#`.
fn check_level(what: &str, value: &str) -> Result<(), SpecError> {
    if value.is_empty() || value.contains(['/', '+', '#']) {
        return Err(SpecError::new(
            "invalid_argument",
            format!("{what} {value:?} must be non-empty without '/', '+' or '#'"),
        ));
    }
    Ok(())
}

/// Default `maxPacketSize` of `SpecClient.connect`: 256 MiB (MQTT allows 268,435,455 bytes).
const SPEC_MAX_PACKET_SIZE: u32 = 256 << 20;

struct Settings {
    mqtt: MqttClient,
    persistent: bool,
    prefix: String,
    client_id: String,
    qos: QoS,
    timeout_ms: u64,
}

/// The MQTT client's options: the caller's, with the token as the MQTT
/// username, SpecClient's larger default packet size and `reconnect: false`
/// as `reconnectPeriod: 0`.
fn mqtt_options(options: &JsValue) -> Object {
    let o = Object::new();
    if options.is_object() {
        Object::assign(&o, options.unchecked_ref());
    }
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&o, &key.into(), &value);
    };
    if let Some(token) = field(options, "token").as_string() {
        set("username", token.into());
    }
    if field(options, "maxPacketSize").as_f64().is_none() {
        // Read responses carry whole result sets: MqttClient's 1 MiB default
        // would close the connection on a few thousand rows.
        set("maxPacketSize", SPEC_MAX_PACKET_SIZE.into());
    }
    if field(options, "reconnect").as_bool() == Some(false) {
        set("reconnectPeriod", 0.into());
    }
    o
}

fn settings(url: &str, options: &JsValue) -> Result<Settings, SpecError> {
    let invalid = |e: JsValue| {
        let message = field(&e, "message").as_string().unwrap_or_default();
        SpecError::new("invalid_argument", message)
    };
    let mqtt = MqttClient::new(url, &mqtt_options(options)).map_err(invalid)?;
    let prefix = field(options, "prefix")
        .as_string()
        .unwrap_or_else(|| "spec".into());
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        return Err(SpecError::new(
            "invalid_argument",
            format!("prefix {prefix:?} must be non-empty without '+' or '#'"),
        ));
    }
    let client_id = mqtt.client_id();
    check_level("clientId", &client_id)?;
    let qos = match field(options, "qos").as_f64() {
        None | Some(1.0) => QoS::AtLeastOnce,
        Some(0.0) => QoS::AtMostOnce,
        Some(2.0) => QoS::ExactlyOnce,
        Some(q) => {
            return Err(SpecError::new(
                "invalid_argument",
                format!("qos must be 0, 1 or 2, not {q}"),
            ))
        }
    };
    let timeout_ms = match field(options, "timeoutMs").as_f64() {
        None => 10_000,
        Some(t) if t > 0.0 => t as u64,
        Some(t) => {
            return Err(SpecError::new(
                "invalid_argument",
                format!("timeoutMs must be positive, not {t}"),
            ))
        }
    };
    Ok(Settings {
        mqtt,
        persistent: field(options, "store").as_string().as_deref() == Some("indexeddb"),
        prefix,
        client_id,
        qos,
        timeout_ms,
    })
}

/// A message listener of the MQTT client calling `on(state, payload)`. `Fn`,
/// not `FnMut`: wasm-bindgen refuses to enter an `FnMut` closure twice, and
/// a listener must never be lost to that.
fn handler(weak: std::rc::Weak<RefCell<Inner>>, on: fn(&Shared, &[u8])) -> JsValue {
    Closure::<dyn Fn(JsValue, Uint8Array)>::new(move |_topic: JsValue, payload: Uint8Array| {
        if let Some(rc) = weak.upgrade() {
            on(&rc, &payload.to_vec());
        }
    })
    .into_js_value()
}

fn entity_ref(entity: &str, options: &JsValue) -> Result<EntityRef, SpecError> {
    if entity.is_empty() {
        return Err(SpecError::new(
            "invalid_argument",
            "entity must be a non-empty name like \"users\" or \"public.users\"",
        ));
    }
    Ok(EntityRef::parse(
        entity,
        field(options, "schema").as_string().as_deref(),
    ))
}

fn typed<T: serde::de::DeserializeOwned + Default>(
    value: &JsValue,
    what: &str,
) -> Result<T, SpecError> {
    match from_js(value, what)? {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| SpecError::new("invalid_argument", format!("{what}: {e}"))),
    }
}

#[wasm_bindgen]
impl SpecClient {
    /// Connect to the broker at `url` (`ws://` / `wss://`) and subscribe to
    /// this client's `response` and `notify/+` topics.
    #[wasm_bindgen(unchecked_return_type = "Promise<SpecClient>")]
    pub fn connect(
        url: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "SpecConnectOptions")] options: Option<
            JsValue,
        >,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let s = match settings(url, &options) {
            Ok(s) => s,
            Err(e) => return Promise::reject(&error_to_js(&e)),
        };
        let mqtt = s.mqtt.clone();
        let rc = Rc::new(RefCell::new(Inner::new(
            s.mqtt,
            s.persistent,
            s.prefix,
            s.client_id,
            s.qos,
            s.timeout_ms,
        )));
        let weak = Rc::downgrade(&rc);
        let on_connect = Closure::<dyn Fn(JsValue)>::new(move |_: JsValue| {
            if let Some(rc) = weak.upgrade() {
                client::on_connect(&rc);
            }
        });
        let _ = mqtt.on("connect", on_connect.as_ref().unchecked_ref());
        on_connect.forget();
        let opened = mqtt.open();
        future_to_promise(async move {
            JsFuture::from(opened).await?;
            let (response, notify, qos) = {
                let i = rc.borrow();
                let response = topic::response_topic(&i.prefix, &i.client_id);
                let notify = topic::notify_filter(&i.prefix, &i.client_id);
                (response, notify, i.qos)
            };
            let weak = Rc::downgrade(&rc);
            let options = Object::new();
            let _ = Reflect::set(&options, &"qos".into(), &(qos as u8).into());
            let subscribed = async {
                JsFuture::from(mqtt.subscribe(
                    &JsValue::from(response),
                    &options,
                    &handler(weak.clone(), client::on_response),
                ))
                .await?;
                JsFuture::from(mqtt.subscribe(
                    &JsValue::from(notify),
                    &options,
                    &handler(weak, client::on_notification),
                ))
                .await
            };
            if let Err(e) = subscribed.await {
                // Nobody gets this client: close it rather than leave it connected
                // (an open MQTT client keeps itself alive).
                client::end(&rc);
                return Err(e);
            }
            Ok(SpecClient { rc }.into())
        })
    }

    /// Read one record (`recordId`) or many (`options`: filters, sort, limit...).
    #[wasm_bindgen(unchecked_return_type = "Promise<ReadResult>")]
    pub fn read(
        &self,
        entity: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ReadOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.call(
            entity,
            &options,
            Operation::Read,
            field(&options, "recordId"),
            JsValue::UNDEFINED,
            field(&options, "options"),
        )
    }

    /// Create a record; resolves with the stored row in `data`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ReadResult<Row>>")]
    pub fn create(
        &self,
        entity: &str,
        #[wasm_bindgen(unchecked_param_type = "Row")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EntityOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        if !data.is_object() {
            return reject("invalid_argument", "create needs the new row as an object");
        }
        self.call(
            entity,
            &options,
            Operation::Create,
            JsValue::UNDEFINED,
            data,
            JsValue::UNDEFINED,
        )
    }

    /// Update the given fields of record `recordId`; resolves with the stored row.
    #[wasm_bindgen(unchecked_return_type = "Promise<ReadResult<Row>>")]
    pub fn update(
        &self,
        entity: &str,
        #[wasm_bindgen(js_name = recordId, unchecked_param_type = "string | number")]
        record_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Row")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EntityOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        if record_id.is_undefined() || record_id.is_null() || !data.is_object() {
            return reject(
                "invalid_argument",
                "update needs a recordId and the changed fields as an object",
            );
        }
        self.call(
            entity,
            &options,
            Operation::Update,
            record_id,
            data,
            JsValue::UNDEFINED,
        )
    }

    /// Delete record `recordId`.
    #[wasm_bindgen(js_name = delete, unchecked_return_type = "Promise<ReadResult<{deleted: boolean}>>")]
    pub fn delete_record(
        &self,
        entity: &str,
        #[wasm_bindgen(js_name = recordId, unchecked_param_type = "string | number")]
        record_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EntityOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        if record_id.is_undefined() || record_id.is_null() {
            return reject("invalid_argument", "delete needs a recordId");
        }
        self.call(
            entity,
            &options,
            Operation::Delete,
            record_id,
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
        )
    }

    /// Describe the entity's table (columns, types, keys).
    #[wasm_bindgen(unchecked_return_type = "Promise<ReadResult>")]
    pub fn meta(
        &self,
        entity: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "EntityOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.call(
            entity,
            &options,
            Operation::Meta,
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
        )
    }

    /// Subscribe to changes of `entity` (optionally only rows matching
    /// `filters`). `onNotification` receives each; the handle is also an
    /// async iterator. Re-established by itself after reconnects.
    #[wasm_bindgen(unchecked_return_type = "Promise<SubscriptionHandle>")]
    pub fn subscribe(
        &self,
        entity: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "SpecSubscribeOptions")] options: Option<
            JsValue,
        >,
        #[wasm_bindgen(
            js_name = onNotification,
            unchecked_optional_param_type = "(n: Notification) => void"
        )]
        on_notification: Option<Function>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let prepared = entity_ref(entity, &options).and_then(|e| {
            let filters: Vec<Filter> = typed(&field(&options, "filters"), "filters")?;
            Ok((
                e,
                (!filters.is_empty()).then(|| serde_json::json!({ "filters": filters })),
            ))
        });
        let (entity, sub_options) = match prepared {
            Ok(p) => p,
            Err(e) => return Promise::reject(&error_to_js(&e)),
        };
        let sink = Sink::new(
            on_notification,
            field(&options, "onError").dyn_into::<Function>().ok(),
        );
        let rc = self.rc.clone();
        client::subscribe(&self.rc, entity, sub_options, sink, move |handle| {
            let obj: JsValue = SubscriptionHandle { rc, handle }.into();
            let me = obj.clone();
            let iterator = Closure::<dyn Fn() -> JsValue>::new(move || me.clone()).into_js_value();
            let _ = Reflect::set(&obj, &js_sys::Symbol::async_iterator(), &iterator);
            obj
        })
    }

    /// A live query: the first `limit` rows matching `filters` in `sort`
    /// order, kept current. `onChange(rows, change)` runs after the first
    /// load and after every change (bursts coalesced into one call).
    #[wasm_bindgen(js_name = liveQuery, unchecked_return_type = "Promise<LiveQueryHandle>")]
    pub fn live_query(
        &self,
        entity: &str,
        #[wasm_bindgen(unchecked_param_type = "LiveQueryOptions")] options: JsValue,
        #[wasm_bindgen(js_name = onChange, unchecked_param_type = "(rows: Row[], change: LiveChange) => void")]
        on_change: Function,
    ) -> Promise {
        let prepared = entity_ref(entity, &options).and_then(|e| {
            let filters: Vec<Filter> = typed(&field(&options, "filters"), "filters")?;
            let sort: Vec<Sort> = typed(&field(&options, "sort"), "sort")?;
            let limit = match field(&options, "limit").as_f64() {
                None => None,
                Some(l) if l >= 1.0 => Some(l as usize),
                Some(l) => {
                    return Err(SpecError::new(
                        "invalid_argument",
                        format!("limit must be at least 1, not {l}"),
                    ))
                }
            };
            let key = field(&options, "key")
                .as_string()
                .unwrap_or_else(|| "id".into());
            Ok((e, LiveQuery::new(key, filters, sort, limit)))
        });
        let (entity, query) = match prepared {
            Ok(p) => p,
            Err(e) => return Promise::reject(&error_to_js(&e)),
        };
        let rc = self.rc.clone();
        let on_error = field(&options, "onError").dyn_into::<Function>().ok();
        client::live_query(&self.rc, entity, query, on_change, on_error, move |live| {
            LiveQueryHandle { rc, live }.into()
        })
    }

    /// Listen to `connect`, `reconnect`, `offline`, `close` or `error`.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: Function) -> Result<SpecClient, JsValue> {
        let mqtt = self.rc.borrow().mqtt.clone();
        if event == "message" || mqtt.on(event, &listener).is_err() {
            return Err(error_to_js(&SpecError::new(
                "invalid_argument",
                format!("unknown event {event:?}"),
            )));
        }
        Ok(SpecClient {
            rc: self.rc.clone(),
        })
    }

    /// Close: pending requests reject with `closed`, the connection ends cleanly.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn end(&self) -> Promise {
        client::end(&self.rc);
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// True while the MQTT connection is up.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.rc.borrow().mqtt.connected()
    }

    /// The MQTT client id (second level of this client's topics).
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.rc.borrow().client_id.clone()
    }
}

impl SpecClient {
    fn call(
        &self,
        entity: &str,
        options: &JsValue,
        op: Operation,
        record_id: JsValue,
        data: JsValue,
        query: JsValue,
    ) -> Promise {
        let built = entity_ref(entity, options).and_then(|e| {
            let record_id: Option<Value> = from_js(&record_id, "recordId")?;
            let data = from_js(&data, "data")?;
            let query = from_js(&query, "options")?;
            Ok(request::request(
                String::new(),
                op,
                &e,
                record_id,
                data,
                query,
            ))
        });
        match built {
            Ok(message) => {
                let (promise, d) = Reply::new();
                client::call_request(&self.rc, message, d);
                promise
            }
            Err(e) => Promise::reject(&error_to_js(&e)),
        }
    }
}

/// A subscription: `unsubscribe()`, or iterate it with `for await`.
#[wasm_bindgen]
pub struct SubscriptionHandle {
    rc: Shared,
    handle: Handle,
}

#[wasm_bindgen]
impl SubscriptionHandle {
    /// Stop the subscription (an iterator then ends).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unsubscribe(&self) -> Promise {
        client::unsubscribe(&self.rc, self.handle)
    }

    /// The async iterator's next notification.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<Notification>>")]
    pub fn next(&self) -> Promise {
        client::next(&self.rc, self.handle)
    }

    /// The server's id of this subscription (changes after a reconnect).
    #[wasm_bindgen(getter, js_name = subscriptionId)]
    pub fn subscription_id(&self) -> Option<String> {
        client::subscription_id(&self.rc, self.handle)
    }

    /// Ends iteration (`break` in `for await`): unsubscribes.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<Notification>>"
    )]
    pub fn finish(&self) -> Promise {
        let _ = client::unsubscribe(&self.rc, self.handle);
        Promise::resolve(&client::iter_result(&JsValue::UNDEFINED, true))
    }
}

/// A live query: current `rows()`, `close()` to stop.
#[wasm_bindgen]
pub struct LiveQueryHandle {
    rc: Shared,
    live: LiveId,
}

#[wasm_bindgen]
impl LiveQueryHandle {
    /// The rows in view now, in order.
    #[wasm_bindgen(unchecked_return_type = "Row[]")]
    pub fn rows(&self) -> JsValue {
        client::live_rows(&self.rc, self.live)
    }

    /// The server's id of the subscription feeding this view.
    #[wasm_bindgen(getter, js_name = subscriptionId)]
    pub fn subscription_id(&self) -> Option<String> {
        client::live_subscription_id(&self.rc, self.live)
    }

    /// Stop keeping the rows current.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        client::close_live(&self.rc, self.live)
    }
}
