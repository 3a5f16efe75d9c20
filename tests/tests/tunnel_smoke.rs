//! Smoke test of the foundation: the worker runs on workerd and a `ttf`
//! forwarder gets a tunnel from it.

use std::process::Command;
use std::time::Duration;

use e2e::{cargo_bin, Proc, Wrangler};

#[test]
fn forwarder_connects_to_worker_on_workerd() {
    let worker = Wrangler::start(&[]).expect("wrangler dev starts");
    let mut ttf = Proc::spawn(
        "ttf",
        Command::new(cargo_bin("ttf")).args(["--endpoint", &worker.control_url(), "--port", "9"]),
    )
    .unwrap();
    let line = ttf
        .wait_for_line("Forwarding", Duration::from_secs(30))
        .unwrap();
    assert!(line.contains("http"), "public URL printed: {line}");
}
