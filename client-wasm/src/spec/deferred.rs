//! A JS promise with its resolve and reject functions kept for later.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};

/// The settling half of a promise.
pub struct Deferred {
    resolve: Function,
    reject: Function,
}

impl Deferred {
    /// A new pending promise and the functions that settle it.
    pub fn new() -> (Promise, Deferred) {
        let mut d = Deferred {
            resolve: JsValue::UNDEFINED.unchecked_into(),
            reject: JsValue::UNDEFINED.unchecked_into(),
        };
        let promise = Promise::new(&mut |resolve, reject| {
            d.resolve = resolve;
            d.reject = reject;
        });
        (promise, d)
    }

    /// Fulfil with `value`.
    pub fn resolve(&self, value: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, value);
    }

    /// Reject with `error`.
    pub fn reject(&self, error: &JsValue) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, error);
    }
}
