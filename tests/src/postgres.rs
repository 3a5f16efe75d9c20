//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir owned
//! by user `postgres` (run through `runuser -u postgres --`), started with
//! `pg_ctl` on a free loopback port with its unix socket in the temp dir,
//! one database created; stopped and removed on drop. Nothing is skipped:
//! if PostgreSQL is missing, `start` fails saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::free_port;

/// A running PostgreSQL cluster with one database.
pub struct Postgres {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Database name.
    pub database: String,
    bin: PathBuf,
    data: PathBuf,
    /// Server options (`pg_ctl -o`): port, listen address, socket folder.
    options: String,
    dir: tempfile::TempDir,
}

/// Folder of PostgreSQL's server binaries (`initdb`, `pg_ctl`): `PG_BIN`,
/// else the newest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): \
             install the Debian package `postgresql` or set PG_BIN"
        ),
    }
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    cmd
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {what}: {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Postgres {
    /// Create, start and open a cluster with database `database`.
    pub fn start(database: &str) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("e2e-pg-").tempdir()?;
        let chown = |path: &Path| {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(path),
                "chown",
            )
        };
        chown(dir.path())?;
        let data = dir.path().join("data");
        run(
            as_postgres(&bin, "initdb").args(["-D"]).arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        )?;
        let port = free_port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c full_page_writes=off",
            dir.path().display()
        );
        let pg = Postgres {
            port,
            database: database.to_string(),
            bin,
            data,
            options,
            dir,
        };
        pg.resume()?;
        run(
            as_postgres(&pg.bin, "createdb")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .arg(database),
            "createdb",
        )?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// Run SQL through `psql` (stops at the first error).
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let psql = self.bin.join("psql");
        let out = Command::new(&psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                &self.database,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .with_context(|| format!("cannot run {}", psql.display()))?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Start the (stopped) server again, on the same port and data.
    pub fn resume(&self) -> anyhow::Result<()> {
        let log = self.dir.path().join("server.log");
        run(
            self.pg_ctl()
                .args(["-o", &self.options, "-l"])
                .arg(&log)
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::anyhow!("{e}\nserver log:\n{log}")
        })
    }

    /// Stop the server (`pg_ctl stop -m fast`: open connections are cut).
    pub fn stop(&self) -> anyhow::Result<()> {
        run(
            self.pg_ctl().args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
    }

    /// `pg_ctl -D <data>`, run as user `postgres`.
    fn pg_ctl(&self) -> Command {
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D").arg(&self.data);
        cmd
    }

    /// Folder of the cluster (data, log, socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
