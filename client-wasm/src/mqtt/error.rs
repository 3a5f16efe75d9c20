//! Errors handed to applications: a message saying what went wrong and what
//! to do, plus a stable `code`. In JS they are `Error` objects with
//! `name = "MqttError"` and a `code` property.

use wasm_bindgen::JsValue;

/// An error of the MQTT client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// Stable machine-readable code (`CONNECTION_REFUSED`, `ENDED`, ...).
    pub code: &'static str,
    /// Human readable explanation.
    pub message: String,
}

impl ClientError {
    /// A new error.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
        }
    }

    /// The pending operation was dropped because `end()` was called.
    pub(crate) fn ended() -> Self {
        ClientError::new(
            "ENDED",
            "the client was ended before the operation completed",
        )
    }

    /// As a JS `Error` with `name` and `code`.
    pub fn to_js(&self) -> JsValue {
        let err = js_sys::Error::new(&self.message);
        err.set_name("MqttError");
        let _ = js_sys::Reflect::set(&err, &"code".into(), &self.code.into());
        err.into()
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<mqtt_session::Error> for ClientError {
    fn from(e: mqtt_session::Error) -> Self {
        ClientError::new(e.code(), e.message())
    }
}

impl From<ClientError> for JsValue {
    fn from(e: ClientError) -> Self {
        e.to_js()
    }
}
