//! Broker transports: where requests come from and where answers go.
//! [`embedded`] runs rmqtt in-process and hooks the server into it;
//! [`external`] connects to any broker as a client.

pub mod embedded;
pub mod external;
