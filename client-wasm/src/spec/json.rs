//! JSON between Rust and JS. Payloads that only JS reads are parsed by the
//! browser's native `JSON.parse` (fast, no copy through Rust values); values
//! Rust needs (rows of live queries) are parsed by serde_json and handed to
//! JS as JSON text, which `JSON.parse` turns into objects faster than
//! building them field by field across the wasm boundary.

use js_sys::{Reflect, JSON};
use mqttspec_client::SpecError;
use serde::Serialize;
use wasm_bindgen::JsValue;

/// `value` as a JS value (objects, arrays, numbers...).
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|text| JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

/// A JS value (plain data) as serde_json; `undefined` becomes `None`.
pub fn from_js(value: &JsValue, what: &str) -> Result<Option<serde_json::Value>, SpecError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let text = JSON::stringify(value).map_err(|_| {
        SpecError::new(
            "invalid_argument",
            format!("{what} cannot be converted to JSON (cycle or BigInt?)"),
        )
    })?;
    let text: String = text.into();
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SpecError::new("invalid_argument", format!("{what} is not JSON data: {e}")))
}

/// Field `name` of a JS object (undefined if absent or not an object).
pub fn field(object: &JsValue, name: &str) -> JsValue {
    if object.is_object() {
        Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// A `SpecError` as a JS `Error` with `name = "SpecError"` and `code`.
pub fn error_to_js(e: &SpecError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("SpecError");
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from_str(&e.code));
    err.into()
}
