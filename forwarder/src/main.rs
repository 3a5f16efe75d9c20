//! `ttf`: the tunnel forwarder CLI. Connects to the edge worker's
//! `/_tunnel` socket, prints the public URLs and relays requests to a local
//! service (see `relay`). Exit codes: 0 after Ctrl-C, 1 on a fatal error
//! (bad endpoint, token refused), 2 on bad usage.

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

mod burst;
mod cli;
mod console;
mod inspect;
mod local;
mod quickack;
mod relay;
mod resume_store;
mod routes;
mod stop;
mod stream_queue;
mod streams;

use clap::Parser;

// One thread: `ttf` relays, it does not compute. On the multi-threaded
// runtime every relayed message woke tasks on the other worker thread
// (futex wake + context switch); one thread halved `ttf`'s CPU per 100 B
// WebSocket message and per HTTP request (bench/tunnel_ws.sh, issue 17).
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let policies = match args.policies() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ttf: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match relay::run(args, policies).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttf: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
