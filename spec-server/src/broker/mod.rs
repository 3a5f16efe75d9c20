//! Broker transports: where requests come from and where answers go.
//! [`embedded`] runs rumqttd in-process and talks to it over a local link;
//! [`external`] connects to any broker as a client.

pub mod embedded;
pub mod external;

/// What a transport reports to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerEvent {
    /// A client published `payload` on its request topic.
    Request {
        /// Client id from the topic.
        client_id: String,
        /// Raw payload.
        payload: Vec<u8>,
    },
    /// A client disconnected (embedded broker only).
    Gone(String),
}
