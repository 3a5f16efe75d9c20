//! A JS promise with the two functions that settle it, kept until the
//! operation it stands for completes (a broker's ack, a server's response).

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};

/// The settling half of a promise.
pub(crate) struct Reply {
    resolve: Function,
    reject: Function,
}

impl Reply {
    /// A pending promise and the functions that settle it.
    pub(crate) fn new() -> (Promise, Reply) {
        let mut reply = Reply {
            resolve: JsValue::UNDEFINED.unchecked_into(),
            reject: JsValue::UNDEFINED.unchecked_into(),
        };
        let promise = Promise::new(&mut |resolve, reject| {
            reply.resolve = resolve;
            reply.reject = reject;
        });
        (promise, reply)
    }

    /// Fulfil with `value`.
    pub(crate) fn ok(&self, value: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, value);
    }

    /// Reject with `error` (a JS `Error`).
    pub(crate) fn reject(&self, error: &JsValue) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, error);
    }
}
