//! Sans-IO MQTT client machinery: bytes and events in, bytes, events and
//! deadlines out. Drivers (web-sys in the browser, tokio natively) own the
//! sockets and timers.

pub mod framing;

pub use framing::{FrameError, Framer};
