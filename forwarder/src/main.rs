//! `ttf`: the tunnel forwarder CLI. Connects to the edge worker's
//! `/_tunnel` socket, prints the public URLs and relays requests.

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tunnel_proto::Message;

/// Expose a local HTTP service through the edge tunnel.
#[derive(Debug, Parser)]
#[command(name = "ttf", version, about)]
struct Args {
    /// Control socket URL of the edge worker, e.g. wss://tunnel.example.com/_tunnel
    #[arg(short, long, env = "TTF_ENDPOINT")]
    endpoint: String,
    /// Local port to forward to.
    #[arg(short, long, default_value_t = 3000)]
    port: u16,
    /// Local host to forward to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (mut ws, _) = tokio_tungstenite::connect_async(args.endpoint.as_str())
        .await
        .with_context(|| format!("cannot connect to {}", args.endpoint))?;
    ws.send(WsMessage::text(Message::Ready { version: None }.encode()))
        .await?;
    while let Some(frame) = ws.next().await {
        if let WsMessage::Text(text) = frame? {
            if let Message::ConnectionEstablished { public_url, .. } = Message::decode(&text)? {
                println!(
                    "Forwarding {public_url} -> http://{}:{}",
                    args.host, args.port
                );
                return Ok(());
            }
        }
    }
    bail!("the edge closed the control socket before connection_established")
}
