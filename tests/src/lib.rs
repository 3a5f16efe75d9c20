//! Test harness for end-to-end tests: starts real peers (wrangler dev on
//! workerd, mosquitto, the project's binaries) on free loopback ports and
//! stops them, whole process groups included, when dropped.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod postgres;
pub mod sign;
pub mod tunnel;

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 works")
}

/// Path of a binary of this workspace built by `cargo build` (debug profile).
pub fn cargo_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Wait until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on 127.0.0.1:{port} within {timeout:?}")
}

/// A spawned process (and its process group) killed on drop. Its output
/// lines are collected so tests can wait for a line and show logs on failure.
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    /// Spawn `cmd` in its own process group, capturing stdout and stderr.
    pub fn spawn(name: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            let tag = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("E2E_VERBOSE").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Wait for an output line containing `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    let output = self.output();
                    bail!(
                        "{} printed no line containing {needle:?} within {timeout:?}; it printed:\n{output}",
                        self.name
                    )
                }
            }
        }
    }

    /// Like [`Proc::wait_for_line`], but a matching line that an earlier
    /// wait already read counts too (for a process several tests share).
    pub fn saw_or_wait_for_line(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        self.seen.extend(self.lines.try_iter());
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(line.clone());
        }
        self.wait_for_line(needle, timeout)
    }

    /// Everything the process printed so far.
    pub fn output(&mut self) -> String {
        self.seen.extend(self.lines.try_iter());
        self.seen.join("\n")
    }

    /// Process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the whole process group now (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the group we created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `wrangler dev` running this repo's worker on workerd.
pub struct Wrangler {
    /// The process; kept alive while the worker is used.
    pub proc: Proc,
    /// Port it listens on (127.0.0.1).
    pub port: u16,
    _state: tempfile::TempDir,
}

impl Wrangler {
    /// Start `wrangler dev` with extra `--var NAME:VALUE` settings and wait
    /// until it serves.
    pub fn start(vars: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = free_port();
        let state = tempfile::tempdir()?;
        let root = repo_root();
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&root)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(state.path())
            .args([
                "--log-level",
                "info",
                "--show-interactive-dev-session=false",
            ])
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true");
        for (name, value) in vars {
            cmd.args(["--var", &format!("{name}:{value}")]);
        }
        let mut proc = Proc::spawn("wrangler", &mut cmd)?;
        proc.wait_for_line("Ready on", Duration::from_secs(300))?;
        wait_for_port(port, Duration::from_secs(30))?;
        Ok(Self {
            proc,
            port,
            _state: state,
        })
    }

    /// `ws://127.0.0.1:<port>/_tunnel`: the control socket URL for `ttf`.
    pub fn control_url(&self) -> String {
        format!("ws://127.0.0.1:{}/_tunnel", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A mosquitto broker with a TCP listener and a websockets listener.
pub struct Mosquitto {
    /// The broker process.
    pub proc: Proc,
    /// Plain MQTT/TCP port.
    pub tcp_port: u16,
    /// MQTT over WebSocket port.
    pub ws_port: u16,
    dir: tempfile::TempDir,
    extra: String,
}

impl Mosquitto {
    /// Start mosquitto on free ports; `extra` is appended to its config
    /// (e.g. `password_file ...`). Anonymous access is on unless `extra`
    /// says otherwise.
    pub fn start(extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (tcp_port, ws_port) = (free_port(), free_port());
        Self::start_on(dir, tcp_port, ws_port, extra)
    }

    fn start_on(
        dir: tempfile::TempDir,
        tcp_port: u16,
        ws_port: u16,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let allow_anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        let conf = format!(
            "per_listener_settings false\n{allow_anonymous}listener {tcp_port} 127.0.0.1\nlistener {ws_port} 127.0.0.1\nprotocol websockets\n{extra}\n"
        );
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, &conf)?;
        let mut proc = Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&path))?;
        for port in [tcp_port, ws_port] {
            wait_for_port(port, Duration::from_secs(10))
                .map_err(|e| anyhow::anyhow!("{e}\n{}", proc.output()))?;
        }
        Ok(Self {
            proc,
            tcp_port,
            ws_port,
            dir,
            extra: extra.to_string(),
        })
    }

    /// Kill the broker and start it again on the same ports and config.
    pub fn restart(self) -> anyhow::Result<Self> {
        let Mosquitto {
            proc,
            tcp_port,
            ws_port,
            dir,
            extra,
        } = self;
        drop(proc);
        Self::start_on(dir, tcp_port, ws_port, &extra)
    }

    /// Folder for files the config refers to (password files, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
