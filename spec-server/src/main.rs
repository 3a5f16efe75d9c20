//! `mqttspec-server` command line.

use clap::Parser;

/// MQTTSpec server: database queries and live subscriptions over MQTT.
#[derive(Debug, Parser)]
#[command(name = "mqttspec-server", version, about)]
struct Args {
    /// Database URL: sqlite:path, sqlite::memory: or postgres://...
    #[arg(long, env = "MQTTSPEC_DATABASE", default_value = "sqlite::memory:")]
    database: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!("database {} not supported yet", args.database)
}
