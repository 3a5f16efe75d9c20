//! `mqttspec-server` as a library: an MQTTSpec server (see
//! `docs/SPEC_SERVER.md`) answering database requests and live
//! subscriptions over MQTT, with an embedded broker or an external one,
//! SQLite or PostgreSQL, and hooks.
//!
//! - [`server::start`] wires everything from a [`server::ServerConfig`].
//! - [`handler`]: request processing; [`db`]: the database trait, SQL and
//!   the two databases; [`registry`]: the entities served.
//! - [`hooks`]: the 17 hook points; [`jwt`] and [`tenant`] are built-in hooks.
//! - [`broker`]: embedded (rmqtt) and external transports; [`acl`], [`dispatch`] and [`dedup`]: who may do what, fairness, exactly-once writes.

// Nothing fed by the network may panic: no slicing or indexing that can be
// out of range or off a char boundary, no unwrap/expect/panic (tests exempt).
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod acl;
pub mod broker;
pub mod client;
pub mod clock;
pub mod db;
pub mod dedup;
pub mod demo;
pub mod dispatch;
pub mod feed;
pub mod handler;
pub mod hooks;
pub mod jwt;
pub mod logging;
pub mod registry;
pub mod server;
pub mod subscriptions;
pub mod tenant;
