//! The persistent outbox (`store: 'indexeddb'`): QoS 1/2 publishes survive a
//! page reload.
//!
//! One IndexedDB database per broker URL and client id, one object store of
//! records `{ seq, pkid, topic, payload, qos, retain, properties?, released }`
//! keyed by `seq` (the order of publishing). A publish is written, with its
//! packet identifier, before the session sends it
//! ([`mqtt_session::Session::publish_held`], then `release` once the write
//! committed); it is marked `released` when PUBREC hands a QoS 2 message to
//! the broker, and deleted when its flow completes. A client made with the
//! same URL and client id reads the records before it connects and gives
//! them back to the session ([`mqtt_session::Session::restore`]), which
//! resends each with its packet identifier (DUP when the broker kept the
//! session) or only its PUBREL: QoS 2 arrives exactly once and QoS 1 at
//! least once across the reload, as long as the broker keeps the session
//! (`clean: false`, and a session expiry with MQTT 5).
//!
//! Each IndexedDB request here gets one callback, used for its success and
//! its failure (only one of them fires, so nothing is leaked).

use js_sys::{Array, Object, Reflect, Uint8Array};
use mqtt_session::v5;
use wasm_bindgen::prelude::*;
use web_sys::{
    IdbDatabase, IdbFactory, IdbObjectStore, IdbObjectStoreParameters, IdbOpenDbRequest,
    IdbRequest, IdbTransaction, IdbTransactionMode,
};

use super::error::ClientError;

const STORE: &str = "publishes";

/// An open outbox and the next sequence number to give.
pub struct Outbox {
    db: IdbDatabase,
    next_seq: f64,
    /// `(pkid, seq)` of the records held, to find a record by packet id.
    records: Vec<(u16, f64)>,
}

/// A publish read back from the outbox.
pub struct Restored {
    /// The publish, with its packet identifier.
    pub publish: v5::Publish,
    /// PUBREC was received: only PUBREL is left.
    pub released: bool,
}

fn store_error(what: &str, e: &JsValue) -> ClientError {
    let mut m = String::from("the IndexedDB outbox ");
    m.push_str(what);
    if let Some(detail) = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
    {
        m.push_str(": ");
        m.push_str(&detail);
    }
    m.push_str(" (the publish is sent without it; check storage quota and private browsing)");
    ClientError::new("STORE_FAILED", m)
}

/// Call `done` once `request` succeeds (with its result) or fails.
fn on_request(request: &IdbRequest, done: impl FnOnce(Result<JsValue, JsValue>) + 'static) {
    let target = request.clone();
    let callback = Closure::once_into_js(move || {
        done(match target.error() {
            Ok(Some(e)) => Err(e.into()),
            _ => target.result(),
        })
    });
    request.set_onsuccess(Some(callback.unchecked_ref()));
    request.set_onerror(Some(callback.unchecked_ref()));
}

/// Call `done` once `tx` committed (Ok) or failed.
fn on_commit(tx: &IdbTransaction, done: impl FnOnce(Result<(), JsValue>) + 'static) {
    let target = tx.clone();
    let callback = Closure::once_into_js(move || {
        done(match target.error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        })
    });
    tx.set_oncomplete(Some(callback.unchecked_ref()));
    tx.set_onerror(Some(callback.unchecked_ref()));
    tx.set_onabort(Some(callback.unchecked_ref()));
}

fn field(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

impl Outbox {
    /// Open (or create) the outbox of `client_id` at `url` and read what a
    /// previous page left in it, oldest first.
    pub fn open(
        url: &str,
        client_id: &str,
        done: impl FnOnce(Result<(Outbox, Vec<Restored>), ClientError>) + 'static,
    ) {
        let factory = Reflect::get(&js_sys::global(), &"indexedDB".into())
            .ok()
            .and_then(|f| f.dyn_into::<IdbFactory>().ok());
        let mut name = String::from("mqttspec-outbox ");
        name.push_str(client_id);
        name.push(' ');
        name.push_str(url);
        let request = match factory.map(|f| f.open_with_u32(&name, 1)) {
            Some(Ok(r)) => r,
            Some(Err(e)) => return done(Err(store_error("cannot be opened", &e))),
            None => {
                return done(Err(store_error(
                    "needs IndexedDB, which this environment lacks",
                    &JsValue::UNDEFINED,
                )))
            }
        };
        let upgrading: IdbOpenDbRequest = request.clone();
        let on_upgrade = Closure::once_into_js(move || {
            if let Ok(db) = upgrading.result().and_then(|d| d.dyn_into::<IdbDatabase>()) {
                let params = IdbObjectStoreParameters::new();
                params.set_key_path(&"seq".into());
                let _ = db.create_object_store_with_optional_parameters(STORE, &params);
            }
        });
        request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
        on_request(&request, move |result| {
            let db = match result.and_then(|d| d.dyn_into::<IdbDatabase>()) {
                Ok(db) => db,
                Err(e) => return done(Err(store_error("cannot be opened", &e))),
            };
            let all = db
                .transaction_with_str(STORE)
                .and_then(|tx| tx.object_store(STORE))
                .and_then(|s| s.get_all());
            let all = match all {
                Ok(r) => r,
                Err(e) => return done(Err(store_error("cannot be read", &e))),
            };
            on_request(&all, move |records| match records {
                Ok(records) => done(Ok(Outbox::restore(db, &records))),
                Err(e) => done(Err(store_error("cannot be read", &e))),
            });
        });
    }

    fn restore(db: IdbDatabase, records: &JsValue) -> (Outbox, Vec<Restored>) {
        let mut outbox = Outbox {
            db,
            next_seq: 1.0,
            records: Vec::new(),
        };
        let mut restored = Vec::new();
        for record in Array::from(records).iter() {
            let seq = field(&record, "seq").as_f64().unwrap_or(0.0);
            outbox.next_seq = outbox.next_seq.max(seq + 1.0);
            let pkid = field(&record, "pkid").as_f64().unwrap_or(0.0) as u16;
            let Some(publish) = publish_of(&record, pkid) else {
                continue;
            };
            outbox.records.push((pkid, seq));
            restored.push(Restored {
                publish,
                released: field(&record, "released").as_bool() == Some(true),
            });
        }
        (outbox, restored)
    }

    fn store(&self) -> Result<(IdbTransaction, IdbObjectStore), JsValue> {
        let tx = self
            .db
            .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)?;
        let store = tx.object_store(STORE)?;
        Ok((tx, store))
    }

    /// Write `publish` (which has its packet identifier); `done` runs once
    /// the write committed or failed.
    pub fn put(
        &mut self,
        publish: &v5::Publish,
        done: impl FnOnce(Result<(), ClientError>) + 'static,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1.0;
        let record = record_of(publish, seq);
        let written = self.store().and_then(|(tx, store)| {
            store.put(&record)?;
            Ok(tx)
        });
        match written {
            Ok(tx) => {
                self.records.push((publish.pkid, seq));
                on_commit(&tx, move |r| {
                    done(r.map_err(|e| store_error("could not write a publish", &e)))
                });
            }
            Err(e) => done(Err(store_error("could not write a publish", &e))),
        }
    }

    /// QoS 2 publish `pkid` was received by the broker: only PUBREL is left.
    pub fn mark_released(&self, pkid: u16) {
        let Some(seq) = self.seq_of(pkid) else { return };
        let key = JsValue::from(seq);
        if let Ok((_, store)) = self.store() {
            if let Ok(read) = store.get(&key) {
                let target = store.clone();
                on_request(&read, move |record| {
                    if let Ok(record) = record {
                        if record.is_object() {
                            let _ = Reflect::set(&record, &"released".into(), &true.into());
                            let _ = Reflect::set(
                                &record,
                                &"payload".into(),
                                &Uint8Array::new_with_length(0),
                            );
                            let _ = target.put(&record);
                        }
                    }
                });
            }
        }
    }

    /// The flow of `pkid` completed (or failed): forget it.
    pub fn remove(&mut self, pkid: u16) {
        let Some(at) = self.records.iter().position(|(p, _)| *p == pkid) else {
            return;
        };
        let (_, seq) = self.records.swap_remove(at);
        if let Ok((_, store)) = self.store() {
            let _ = store.delete(&JsValue::from(seq));
        }
    }

    fn seq_of(&self, pkid: u16) -> Option<f64> {
        self.records
            .iter()
            .find(|(p, _)| *p == pkid)
            .map(|(_, seq)| *seq)
    }
}

fn record_of(p: &v5::Publish, seq: f64) -> Object {
    let o = Object::new();
    set(&o, "seq", &seq.into());
    set(&o, "pkid", &p.pkid.into());
    set(&o, "topic", &JsValue::from_str(&p.topic));
    set(&o, "payload", &Uint8Array::from(&p.payload[..]).into());
    set(&o, "qos", &(p.qos as u8).into());
    set(&o, "retain", &p.retain.into());
    set(&o, "released", &false.into());
    if let Some(props) = &p.properties {
        set(&o, "properties", &super::js::properties_js(props));
    }
    o
}

/// The publish a record holds (None for a record this version cannot read).
fn publish_of(record: &JsValue, pkid: u16) -> Option<v5::Publish> {
    let topic = field(record, "topic").as_string()?;
    let payload = field(record, "payload");
    let mut p = super::js::build_publish(topic, &payload, record).ok()?;
    if pkid == 0 || p.qos == mqtt_session::QoS::AtMostOnce {
        return None;
    }
    p.pkid = pkid;
    Some(p)
}
