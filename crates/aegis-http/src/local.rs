//! Local mode: with no database configured, Aegis runs its own PostgreSQL in the data directory and
//! keeps a generated master key there, so a fresh checkout runs with one command.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aegis_domain::{RandomSecretGenerator, SecretGenerator as _};
use aegis_postgres::{LocalPostgres, LocalPostgresOptions};

/// The database every local-mode run uses on the managed server.
pub const DATABASE: &str = "aegis";

/// A running local mode. Dropping it stops the managed server.
pub struct LocalMode {
    pub server: LocalPostgres,
    pub data_dir: PathBuf,
    /// The master key read from, or generated into, `<data dir>/master_api_key`.
    pub master_api_key: String,
    pub key_generated: bool,
}

/// Reads a secret kept in `path`, or generates one and stores it readable by the owner only.
fn kept_secret(path: &Path) -> Result<(String, bool), String> {
    match fs::read_to_string(path) {
        Ok(v) if !v.trim().is_empty() => return Ok((v.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let secret = RandomSecretGenerator.hex_secret();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{secret}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((secret, true))
}

/// Starts the managed server (initialising it on first run). Blocking.
pub fn start(data_dir: &Path) -> Result<LocalMode, String> {
    fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let _ = fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700));
    // The server runs as another user when Aegis runs as root: it must be able to reach its
    // cluster directory inside this one.
    let _ = fs::set_permissions(data_dir, fs::Permissions::from_mode(0o711));
    let (password, _) = kept_secret(&data_dir.join("postgres_password"))?;
    let (master_api_key, key_generated) = kept_secret(&data_dir.join("master_api_key"))?;
    let server = LocalPostgres::start(LocalPostgresOptions {
        data_dir: data_dir.join("postgres"),
        persistent: true,
        durable: true,
        password: Some(password),
    })
    .map_err(|e| e.to_string())?;
    Ok(LocalMode {
        server,
        data_dir: data_dir.to_owned(),
        master_api_key,
        key_generated,
    })
}

/// The development sealing key: `<data dir>/secret_key`, generated on first use (decision 33).
pub fn development_secret_key(data_dir: &Path) -> Result<String, String> {
    fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    kept_secret(&data_dir.join("secret_key")).map(|(secret, _)| secret)
}
