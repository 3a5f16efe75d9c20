//! Timers that keep time in a background tab.
//!
//! Browsers throttle the main-thread timers of hidden pages (Chrome: at most
//! one wake-up per second, then one per minute after five minutes hidden).
//! A keepalive ping due every 60 s can then leave 60 s late, after the broker
//! (which allows 1.5 x keepalive) has dropped the connection: the most
//! reported browser problem of MQTT.js, which moved its timers into a Worker.
//! Timers of a dedicated Worker are not throttled that way, so the client's
//! keepalive and reconnection timers run in one small Worker per page, made
//! from a Blob URL: the page posts `[id, delay]` (or `[id, -1]` to cancel) and
//! the Worker posts `id` back when the delay has passed. Where no Worker can
//! be made (a Content-Security-Policy without `worker-src blob:`, or code
//! already running in a Worker) the main-thread `setTimeout` is used.
//!
//! [`Timer`] has the shape of `gloo_timers::callback::Timeout`: the callback
//! runs once after the delay unless the timer was dropped first.

use std::cell::RefCell;

use gloo_timers::callback::Timeout;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, BlobPropertyBag, MessageEvent, Url, Worker};

/// The Worker's whole program.
const WORKER_JS: &str = "const t=new Map();onmessage=({data:[i,d]})=>{clearTimeout(t.get(i));t.delete(i);if(d>=0)t.set(i,setTimeout(()=>{t.delete(i);postMessage(i)},d))}";

/// The page's timer Worker and the callbacks waiting for it.
struct Clock {
    worker: Worker,
    next_id: u32,
    waiting: Vec<(u32, Callback)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

thread_local! {
    /// `None` inside: no Worker could be made; use `setTimeout`.
    static CLOCK: RefCell<Option<Option<Clock>>> = const { RefCell::new(None) };
}

fn start_clock() -> Option<Clock> {
    let parts = Array::of1(&JsValue::from_str(WORKER_JS));
    let bag = BlobPropertyBag::new();
    bag.set_type("text/javascript");
    let blob = Blob::new_with_str_sequence_and_options(&parts, &bag).ok()?;
    let url = Url::create_object_url_with_blob(&blob).ok()?;
    let worker = Worker::new(&url).ok();
    let _ = Url::revoke_object_url(&url);
    let worker = worker?;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        if let Some(id) = ev.data().as_f64() {
            fire(id as u32);
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    Some(Clock {
        worker,
        next_id: 0,
        waiting: Vec::new(),
        _on_message: on_message,
    })
}

/// Run the callback of timer `id` (outside the borrow: it may set timers).
fn fire(id: u32) {
    let callback = CLOCK.with(|c| {
        let mut c = c.borrow_mut();
        let clock = c.as_mut()?.as_mut()?;
        let at = clock.waiting.iter().position(|(i, _)| *i == id)?;
        Some(clock.waiting.swap_remove(at).1)
    });
    if let Some(callback) = callback {
        callback();
    }
}

/// A one-shot timer; dropping it cancels it.
pub struct Timer(Kind);

enum Kind {
    Worker(u32),
    Main { _timeout: Timeout },
}

type Callback = Box<dyn FnOnce()>;

impl Timer {
    /// Run `callback` once after `millis` milliseconds.
    pub fn new(millis: u32, callback: impl FnOnce() + 'static) -> Timer {
        let callback: Callback = Box::new(callback);
        let placed = CLOCK.with(|c| -> Result<u32, Callback> {
            let mut c = c.borrow_mut();
            let Some(clock) = c.get_or_insert_with(start_clock).as_mut() else {
                return Err(callback);
            };
            let id = clock.next_id.wrapping_add(1);
            let message = Array::of2(&id.into(), &millis.into());
            if clock.worker.post_message(&message).is_err() {
                return Err(callback);
            }
            clock.next_id = id;
            clock.waiting.push((id, callback));
            Ok(id)
        });
        match placed {
            Ok(id) => Timer(Kind::Worker(id)),
            Err(callback) => Timer(Kind::Main {
                _timeout: Timeout::new(millis, callback),
            }),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Kind::Worker(id) = self.0 else { return };
        // Taken out under the borrow, dropped after it (dropping a callback
        // may drop a client, whose timers come back here).
        let callback = CLOCK.with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let clock = c.as_mut()?.as_mut()?;
            let at = clock.waiting.iter().position(|(i, _)| *i == id)?;
            let cancel = Array::of2(&id.into(), &JsValue::from(-1));
            let _ = clock.worker.post_message(&cancel);
            Some(clock.waiting.swap_remove(at).1)
        });
        drop(callback);
    }
}
