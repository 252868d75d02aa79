//! Opening connections, with TLS as the URL's `sslmode` asks (decision 32).
//!
//! The modes mean what they mean to libpq:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (the default) | when the server offers it | chain, only with `sslrootcert` |
//! | `require` | always | chain, only with `sslrootcert` |
//! | `verify-ca` | always | chain, against the CA file `sslrootcert` names (required) |
//! | `verify-full` | always | chain and host name, against `sslrootcert` or the bundled Mozilla roots |
//!
//! TLS is rustls with the aws-lc-rs provider, the workspace's one crypto provider. Without a check
//! of the certificate, TLS stops a passive eavesdropper but not an active one. `sslrootcert=system`
//! names the bundled Mozilla roots and, as in libpq, needs `verify-full`: a public CA vouches for
//! names, so checking its chain without the name proves nothing.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified};
use rustls::client::{WebPkiServerVerifier, danger};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How much TLS a connection insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS; only for a server on the same host or a trusted network.
    Disable,
    /// TLS when the server offers it, plaintext otherwise; the certificate is checked only when
    /// `sslrootcert` is given. The default, as in libpq.
    Prefer,
    /// Always TLS, refusing a server without it; the certificate is checked only when
    /// `sslrootcert` is given, so without it an active attacker can still intercept.
    Require,
    /// Always TLS, with the server's certificate chain checked against the CA file `sslrootcert`
    /// names (required); the host name is not checked.
    VerifyCa,
    /// Always TLS, with the chain and the host name checked, against `sslrootcert` or (with
    /// `sslrootcert=system` or none) the bundled Mozilla roots. The mode to use across networks.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "sslmode must be disable, prefer, require, verify-ca or verify-full, got {other:?}"
            )),
        }
    }

    /// The mode as the connection string spells it (`verify-full`, …), for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A database to connect to: the connection settings, and the TLS policy taken out of them.
#[derive(Clone)]
pub struct ConnectTarget {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    /// Whether the connection string named the mode (rather than defaulting to `prefer`).
    ssl_mode_given: bool,
    tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for ConnectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectTarget")
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

/// Parameters Aegis handles itself rather than passing to the driver.
const TLS_PARAMETERS: [&str; 2] = ["sslmode", "sslrootcert"];

impl ConnectTarget {
    /// Parses a `postgres://` URL or a `key=value` connection string. Errors name the problem
    /// and never contain the password.
    pub fn parse(connection: &str) -> Result<Self, String> {
        let (rest, tls_params) = split_tls_parameters(connection)?;
        let mut ssl_mode = None;
        let mut root_cert = None;
        for (key, value) in tls_params {
            match key.as_str() {
                "sslmode" => ssl_mode = Some(SslMode::parse(&value)?),
                _ => root_cert = Some(value),
            }
        }
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
        // A mode the driver parsed itself (a spelling not taken out above) is kept, never
        // weakened.
        let ssl_mode_given =
            ssl_mode.is_some() || config.get_ssl_mode() != tokio_postgres::config::SslMode::Prefer;
        let ssl_mode = ssl_mode.unwrap_or(match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        });
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        // A peer that vanishes without closing the connection (a network partition) is noticed in
        // about a minute rather than after the system's two hours, unless the URL says otherwise.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config
                .keepalives_idle(Duration::from_secs(30))
                .keepalives_interval(Duration::from_secs(10))
                .keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        let tls = match ssl_mode {
            SslMode::Disable => None,
            mode => Some(Arc::new(client_config(mode, root_cert.as_deref())?)),
        };
        Ok(Self {
            config,
            ssl_mode,
            ssl_mode_given,
            tls,
        })
    }

    /// The TLS mode.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// Whether the connection string chose the mode, rather than leaving the default.
    pub fn ssl_mode_given(&self) -> bool {
        self.ssl_mode_given
    }

    /// Whether every host is this machine (where an unverified certificate matters less).
    pub fn is_local(&self) -> bool {
        self.config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            tokio_postgres::config::Host::Unix(_) => true,
        })
    }

    /// Opens a connection. Its I/O runs as a task on the current tokio runtime.
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let bad = |e: tokio_postgres::Error| ConnectionError::BadConnection(error_chain(&e));
        match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(ClientConfig::clone(tls));
                let (client, connection) = self.config.connect(tls).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
    }
}

/// "error: cause: cause", as one line (a TLS failure's reason is in the causes).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a `key=value` string, decoded.
fn split_tls_parameters(connection: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut taken = Vec::new();
    let is_url = connection.starts_with("postgres://") || connection.starts_with("postgresql://");
    let rest = if is_url {
        let Some((base, query)) = connection.split_once('?') else {
            return Ok((connection.to_owned(), taken));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if TLS_PARAMETERS.contains(&key) {
                taken.extend(
                    form_urlencoded::parse(pair.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned())),
                );
            } else {
                reject_client_certificates(key)?;
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for word in connection.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if TLS_PARAMETERS.contains(&key) => {
                    taken.push((key.to_owned(), value.trim_matches('\'').to_owned()));
                }
                Some((key, _)) => {
                    reject_client_certificates(key)?;
                    kept.push(word);
                }
                None => kept.push(word),
            }
        }
        kept.join(" ")
    };
    Ok((rest, taken))
}

fn reject_client_certificates(key: &str) -> Result<(), String> {
    if matches!(key, "sslcert" | "sslkey" | "sslpassword" | "sslcrl") {
        return Err(format!(
            "{key} is not supported (client certificates are not)"
        ));
    }
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration for a mode that uses TLS.
fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mozilla = || RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let roots = match (mode, root_cert) {
        (SslMode::VerifyFull, Some("system") | None) => Some(mozilla()),
        (_, Some("system")) => {
            return Err("sslrootcert=system needs sslmode=verify-full".into());
        }
        (SslMode::VerifyCa, None) => {
            return Err(
                "sslmode=verify-ca needs sslrootcert, the file of the CA that signed the server's \
                 certificate (with a public CA, use verify-full)"
                    .into(),
            );
        }
        (_, Some(path)) => Some(load_roots(path)?),
        (_, None) => None,
    };
    let config = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
        (_, roots) => {
            let chain = roots
                .map(|roots| {
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| e.to_string())
                })
                .transpose()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NameUnchecked {
                    chain,
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
    };
    Ok(config.with_no_client_auth())
}

fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let path = PathBuf::from(path);
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(roots)
}

/// The verifier of every mode but `verify-full` (which uses rustls's own): with a `chain` verifier
/// (`verify-ca`, or `prefer`/`require` with a root certificate) the chain must lead to a trusted
/// root and only the name in the certificate is not checked; without one (`prefer`/`require`
/// alone) the server is not authenticated, as libpq does. Handshake signatures are always checked.
#[derive(Debug)]
struct NameUnchecked {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl danger::ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, taken) = split_tls_parameters(
            "postgres://u:p%40ss@db:5432/aegis?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p%40ss@db:5432/aegis?application_name=x");
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/etc/ca.pem".to_owned())
            ]
        );
        let (rest, taken) = split_tls_parameters("host=db user=u sslmode=require").unwrap();
        assert_eq!(rest, "host=db user=u");
        assert_eq!(taken, [("sslmode".to_owned(), "require".to_owned())]);
        let (rest, _) = split_tls_parameters("postgres://db/aegis?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://db/aegis");
    }

    #[test]
    fn modes_parse_and_bad_values_are_named() {
        for (url, mode) in [
            ("postgres://db/a", SslMode::Prefer),
            ("postgres://db/a?sslmode=disable", SslMode::Disable),
            ("postgres://db/a?sslmode=require", SslMode::Require),
            ("postgres://db/a?sslmode=verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(ConnectTarget::parse(url).unwrap().ssl_mode(), mode, "{url}");
        }
        let err = ConnectTarget::parse("postgres://u:hunter2@db/a?sslmode=maybe").unwrap_err();
        assert!(err.contains("sslmode") && !err.contains("hunter2"), "{err}");
        let err =
            ConnectTarget::parse("postgres://db/a?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = ConnectTarget::parse("postgres://db/a?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert"), "{err}");
        // A public CA's chain without the name proves nothing: refused, as libpq does.
        for url in [
            "postgres://db/a?sslmode=verify-ca",
            "postgres://db/a?sslmode=verify-ca&sslrootcert=system",
            "postgres://db/a?sslmode=require&sslrootcert=system",
        ] {
            let err = ConnectTarget::parse(url).unwrap_err();
            assert!(err.contains("verify"), "{url}: {err}");
        }
        let target =
            ConnectTarget::parse("postgres://db/a?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(target.ssl_mode(), SslMode::VerifyFull);
        // The default is known as such; a mode the driver parses itself is kept, not weakened.
        assert!(
            !ConnectTarget::parse("postgres://db/a")
                .unwrap()
                .ssl_mode_given()
        );
        let spaced = ConnectTarget::parse("host=db user=u sslmode = require").unwrap();
        assert_eq!(
            (spaced.ssl_mode(), spaced.ssl_mode_given()),
            (SslMode::Require, true)
        );
        assert!(
            ConnectTarget::parse("postgres://127.0.0.1/a")
                .unwrap()
                .is_local()
        );
        assert!(
            !ConnectTarget::parse("postgres://db.example.com/a")
                .unwrap()
                .is_local()
        );
    }
}
