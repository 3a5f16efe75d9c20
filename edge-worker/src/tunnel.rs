//! The `Tunnel` Durable Object: owns one forwarder control socket.

use tunnel_proto::Message;
use worker::*;

/// One tunnel: the forwarder's socket (hibernation API) and its requests.
#[durable_object]
pub struct Tunnel {
    state: State,
}

impl DurableObject for Tunnel {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let tunnel_id = req.headers().get("x-tunnel-id")?.unwrap_or_default();
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[&tunnel_id]);
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let WebSocketIncomingMessage::String(text) = message else {
            return Ok(());
        };
        match Message::decode(&text) {
            Ok(Message::Ready { .. }) => {
                let tunnel_id = self
                    .state
                    .get_tags(&ws)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let reply = Message::ConnectionEstablished {
                    connection_id: tunnel_id.clone(),
                    public_url: format!("http://localhost/{tunnel_id}"),
                    tunnel_id,
                    subdomain_url: None,
                    path_based_url: None,
                    version: None,
                };
                ws.send_with_str(reply.encode())
            }
            Ok(Message::Ping) => ws.send_with_str(Message::Pong.encode()),
            Ok(_) => Ok(()),
            Err(e) => ws.close(Some(1003), Some(e.to_string())),
        }
    }

    async fn websocket_close(
        &self,
        _ws: WebSocket,
        _code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        Ok(())
    }
}
