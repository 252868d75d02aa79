//! A PostgreSQL server managed by Aegis itself, in a data directory: the run command's local mode
//! and the tests' ephemeral server.
//!
//! The server binaries come from the machine's PostgreSQL install (`initdb` and `pg_ctl` on `PATH`,
//! through `pg_config --bindir`, or in the usual package locations). PostgreSQL refuses to run as
//! root, so when Aegis runs as root the server runs as the `postgres` system user, which the server
//! package creates. The server listens on 127.0.0.1 only, on a free port chosen at each start, in its
//! own process group (so a terminal's Ctrl-C reaches Aegis, which then stops the server in order).
//! A small watchdog process stops the server if Aegis dies without doing so.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct LocalPostgresOptions {
    /// The cluster directory. Created (with `initdb`) when it does not hold a cluster yet.
    pub data_dir: PathBuf,
    /// Keep the cluster when the server stops (local mode). Otherwise it is deleted (tests).
    pub persistent: bool,
    /// Durable writes. Off for tests, where speed matters and the data is thrown away.
    pub durable: bool,
    /// Password of the `postgres` superuser, set at `initdb` time; `None` trusts local connections.
    pub password: Option<String>,
}

/// Starting or using the managed server failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    /// The PostgreSQL server programs (`initdb`, `pg_ctl`) were not found; the message says how
    /// to install them, or to set `DATABASE_URL` to a server run elsewhere.
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl) were not found on PATH, through `pg_config --bindir`, \
         or under /usr/lib/postgresql/*/bin. Install the PostgreSQL server package (Debian/Ubuntu: \
         `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; macOS: \
         `brew install postgresql@16`), or set DATABASE_URL to use a server you run yourself."
    )]
    NotInstalled,
    /// Running as root, the server must run as the `postgres` system user, which does not exist.
    #[error(
        "running as root, the managed PostgreSQL server must run as the `postgres` system user, which \
         does not exist; install the PostgreSQL server package or run as an ordinary user"
    )]
    NoPostgresUser,
    /// A file or process operation failed (the data directory, a socket, spawning a program).
    #[error("{0}")]
    Io(String),
    /// A server program (initdb, pg_ctl, …) ran and failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// Which step failed, e.g. `initdb` or `pg_ctl start`.
        what: String,
        /// The program's error output, and the end of the server log when there is one.
        detail: String,
    },
}

impl From<std::io::Error> for LocalPostgresError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// A running managed server. Dropping it stops the server (and deletes a non-persistent cluster).
#[derive(Debug)]
pub struct LocalPostgres {
    bin_dir: PathBuf,
    options: LocalPostgresOptions,
    port: u16,
    owner: Option<(u32, u32)>,
    watchdog: Option<Child>,
    stopped: bool,
}

impl LocalPostgres {
    /// Initialises the cluster if needed and starts the server. Blocking; takes about a second.
    pub fn start(mut options: LocalPostgresOptions) -> Result<Self, LocalPostgresError> {
        // The tools run from `/`, so every path handed to them must be absolute.
        options.data_dir = std::path::absolute(&options.data_dir)?;
        let bin_dir = find_bin_dir()?;
        let owner = server_owner()?;
        let mut server = Self {
            bin_dir,
            options,
            port: 0,
            owner,
            watchdog: None,
            stopped: true,
        };
        if !server.options.data_dir.join("PG_VERSION").exists() {
            server.init_cluster()?;
        } else if server.options.data_dir.join("postmaster.pid").exists() {
            // A server left running by an earlier run that was killed: stop it, then start afresh.
            let _ = server.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
        }
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.start_server() {
                Ok(()) => {
                    server.stopped = false;
                    server.spawn_watchdog();
                    return Ok(server);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| LocalPostgresError::Io("could not start".into())))
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        match &self.options.password {
            Some(pw) => format!(
                "postgres://postgres:{}@127.0.0.1:{}/{database}",
                percent_encode(pw),
                self.port
            ),
            None => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
        }
    }

    /// Stops the server but keeps its cluster, so that [`Self::resume`] can start it again on the
    /// same port: for tests of database outages.
    pub fn pause(&mut self) -> Result<(), LocalPostgresError> {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
            .map(drop)
    }

    /// Starts a server stopped by [`Self::pause`] again, on the same port.
    pub fn resume(&mut self) -> Result<(), LocalPostgresError> {
        self.start_server()?;
        self.spawn_watchdog();
        Ok(())
    }

    /// Writes a file into the cluster directory, readable by the server's user only (for example
    /// a TLS certificate and key, named then in `ssl_cert_file` and `ssl_key_file`).
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, LocalPostgresError> {
        let path = self.options.data_dir.join(name);
        let mut file = fs::File::create(&path)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        drop(file);
        self.chown(&path)?;
        Ok(path)
    }

    /// Stops the server (fast shutdown: open sessions are ended, data is safe). Idempotent.
    pub fn stop(&mut self) -> Result<(), LocalPostgresError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let result = self
            .pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
            .map(drop);
        if !self.options.persistent {
            let _ = fs::remove_dir_all(&self.options.data_dir);
        }
        result
    }

    fn init_cluster(&self) -> Result<(), LocalPostgresError> {
        let dir = &self.options.data_dir;
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        self.chown(dir)?;
        let dir_arg = dir.display().to_string();
        let mut args = vec![
            "-D".to_owned(),
            dir_arg,
            "-U".to_owned(),
            "postgres".to_owned(),
            "-E".to_owned(),
            "UTF8".to_owned(),
            "--locale=C.UTF-8".to_owned(),
        ];
        if !self.options.durable {
            args.push("-N".to_owned());
        }
        // The password goes through a file readable only by the server's user, never argv.
        let pwfile = match &self.options.password {
            Some(pw) => {
                let path = dir.with_extension("pwfile");
                let mut f = fs::File::create(&path)?;
                f.set_permissions(fs::Permissions::from_mode(0o600))?;
                f.write_all(pw.as_bytes())?;
                drop(f);
                self.chown(&path)?;
                args.extend([
                    "-A".to_owned(),
                    "scram-sha-256".to_owned(),
                    format!("--pwfile={}", path.display()),
                ]);
                Some(path)
            }
            None => {
                args.extend(["-A".to_owned(), "trust".to_owned()]);
                None
            }
        };
        let result = self.run(&self.bin_dir.join("initdb"), &args, "initdb");
        if let Some(path) = pwfile {
            let _ = fs::remove_file(path);
        }
        result.map(drop)
    }

    fn start_server(&self) -> Result<(), LocalPostgresError> {
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' -c max_connections=200",
            self.port
        );
        if !self.options.durable {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self
            .options
            .data_dir
            .join("server.log")
            .display()
            .to_string();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &opts])
            .map(drop)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, LocalPostgresError> {
        let dir = self.options.data_dir.display().to_string();
        let mut full = vec!["-D".to_owned(), dir];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        self.run(&self.bin_dir.join("pg_ctl"), &full, "pg_ctl")
    }

    fn run(
        &self,
        program: &Path,
        args: &[String],
        what: &str,
    ) -> Result<Output, LocalPostgresError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let output = cmd.output()?;
        if output.status.success() {
            Ok(output)
        } else {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if detail.is_empty() {
                detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            }
            let log = self.options.data_dir.join("server.log");
            if let Ok(text) = fs::read_to_string(&log) {
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                detail.push_str("\nserver.log: ");
                detail.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            Err(LocalPostgresError::Command {
                what: what.to_owned(),
                detail,
            })
        }
    }

    /// Starts a process that shuts the server down (and deletes a throw-away cluster) once this
    /// process has exited, however it exited. It signals the postmaster by PID, so it can never stop
    /// a later server started on the same directory.
    fn spawn_watchdog(&mut self) {
        let Some(postmaster) = fs::read_to_string(self.options.data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        else {
            return;
        };
        let script = r#"
            parent=$1; pm=$2; dir=$3; remove=$4
            # Alive: exists and is not a zombie. /proc where there is one (a root parent cannot be
            # signalled by this unprivileged watchdog), kill -0 elsewhere.
            alive() {
                if [ -d "/proc/$1" ]; then ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
                else kill -0 "$1" 2>/dev/null; fi
            }
            while alive "$parent"; do sleep 1; done
            kill -INT "$pm" 2>/dev/null
            i=0; while alive "$pm" && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
            if [ "$remove" = 1 ]; then rm -rf "$dir"; fi
        "#;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg("aegis-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(postmaster.trim())
            .arg(&self.options.data_dir)
            .arg(if self.options.persistent { "0" } else { "1" })
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        self.watchdog = cmd.spawn().ok();
    }

    fn chown(&self, path: &Path) -> Result<(), LocalPostgresError> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the managed PostgreSQL server failed");
        }
    }
}

/// Finds the directory holding `initdb` and `pg_ctl`.
pub fn find_bin_dir() -> Result<PathBuf, LocalPostgresError> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d))
    {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = Vec::new();
    for (root, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name
                .strip_prefix(prefix)
                .and_then(|v| v.parse::<u32>().ok())
            else {
                continue;
            };
            let dir = entry.path().join("bin");
            if has_tools(&dir) {
                candidates.push((version, dir));
            }
        }
    }
    candidates
        .into_iter()
        .max_by_key(|(v, _)| *v)
        .map(|(_, dir)| dir)
        .ok_or(LocalPostgresError::NotInstalled)
}

/// `Some((uid, gid))` of the `postgres` user when running as root; `None` otherwise.
fn server_owner() -> Result<Option<(u32, u32)>, LocalPostgresError> {
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let uid = id(&["-u", "postgres"]).map_err(|_| LocalPostgresError::NoPostgresUser)?;
    let gid = id(&["-g", "postgres"]).map_err(|_| LocalPostgresError::NoPostgresUser)?;
    Ok(Some((uid, gid)))
}

fn id(args: &[&str]) -> Result<u32, LocalPostgresError> {
    let out = Command::new("id").args(args).output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| LocalPostgresError::Io(format!("`id {}` failed", args.join(" "))))
}

fn free_port() -> Result<u16, LocalPostgresError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_percent_encoded_in_urls() {
        assert_eq!(percent_encode("a b/c@d"), "a%20b%2Fc%40d");
        assert_eq!(percent_encode("Abc-_.~9"), "Abc-_.~9");
    }
}
