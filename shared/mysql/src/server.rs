//! Connecting to a MySQL-protocol server and finding out what it is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, DriverError, IoError, Opts, OptsBuilder, SslOpts};

use cdc_config::SslMode;
use cdc_event::ServerFlavor;

use crate::SourceError;

/// Where a capture connects. Built by the binaries from the `database.*` configuration.
#[derive(Clone)]
pub struct SourceOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The guide's `database.schema`: the default database of unqualified table names.
    pub schema: String,
    /// `database.sslMode` and its certificate files. [`TlsOptions::default`] is a plain
    /// (unencrypted) connection.
    pub tls: TlsOptions,
}

/// TLS to the source: `database.sslMode`, `sslRootCert`, `sslCert`, `sslKey`.
///
/// The modes mean what they mean to libmysqlclient and MariaDB Connector/C:
///
/// | mode | encrypted | server certificate | host name |
/// | --- | --- | --- | --- |
/// | `disable` | never | – | – |
/// | `prefer` | if the server offers TLS, else plain (logged as a warning) | not checked | not checked |
/// | `require` | always | not checked | not checked |
/// | `verify-ca` | always | must chain to `sslRootCert` | not checked |
/// | `verify-full` | always | must chain to `sslRootCert` | must name `database.host` |
///
/// The client certificate (`sslCert` + `sslKey`, PEM) is sent whenever both are set and TLS
/// is used. Files are read at every connect, so rotated certificates are picked up on the next
/// reconnect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `database.sslRootCert`: the CA bundle (PEM) the server certificate must chain to; used by
    /// `verify-ca` and `verify-full` only (only these CAs are trusted, no built-in roots).
    pub root_cert: Option<PathBuf>,
    /// `database.sslCert`: client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `database.sslKey`: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl Default for TlsOptions {
    /// A plain connection (`sslMode=disable`).
    fn default() -> Self {
        Self { mode: SslMode::Disable, root_cert: None, cert: None, key: None }
    }
}

impl TlsOptions {
    /// The TLS settings of `database.*`.
    pub fn from_config(database: &cdc_config::DatabaseConfig) -> Self {
        Self {
            mode: database.ssl_mode,
            root_cert: database.ssl_root_cert.clone(),
            cert: database.ssl_cert.clone(),
            key: database.ssl_key.clone(),
        }
    }

    /// Reads and checks the certificate files this mode uses, so a wrong path or a file of the
    /// wrong kind is reported by its setting name rather than deep inside a handshake.
    fn load(&self) -> Result<Option<TlsMaterial>, SourceError> {
        let mode = self.mode;
        if mode == SslMode::Disable {
            return Ok(None);
        }
        let root = match (mode, &self.root_cert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, Some(path)) => {
                Some(read_pem(mode, "sslRootCert", path, &["CERTIFICATE"], "no PEM certificate (BEGIN CERTIFICATE)")?)
            }
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(SourceError::TlsSettingMissing {
                    setting: "sslRootCert",
                    mode,
                    why: "the CA bundle (PEM) the server certificate must chain to",
                })
            }
            _ => None,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((
                read_pem(mode, "sslCert", cert, &["CERTIFICATE"], "no PEM certificate (BEGIN CERTIFICATE)")?,
                read_pem(
                    mode,
                    "sslKey",
                    key,
                    &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
                    "no PEM private key (BEGIN PRIVATE KEY / RSA PRIVATE KEY / EC PRIVATE KEY)",
                )?,
            )),
            (Some(_), None) => {
                return Err(SourceError::TlsSettingMissing {
                    setting: "sslKey",
                    mode,
                    why: "database.sslCert is set, and a client certificate is sent with its private key",
                })
            }
            (None, Some(_)) => {
                return Err(SourceError::TlsSettingMissing {
                    setting: "sslCert",
                    mode,
                    why: "database.sslKey is set, and a private key is sent with its client certificate",
                })
            }
            (None, None) => None,
        };
        Ok(Some(TlsMaterial { root, identity }))
    }
}

/// The contents of the certificate files, read for one connect.
struct TlsMaterial {
    root: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsMaterial {
    /// mysql_async's TLS settings for `mode`; `name_override` is the name to check the server
    /// certificate against instead of `database.host` (the verify-ca workaround below).
    fn ssl_opts(&self, mode: SslMode, name_override: Option<String>) -> SslOpts {
        let identity = self
            .identity
            .as_ref()
            .map(|(cert, key)| ClientIdentity::new(cert.clone().into(), key.clone().into()));
        let opts = SslOpts::default().with_client_identity(identity);
        match mode {
            // Encryption without authentication of the server, as libmysqlclient does.
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                opts.with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true)
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let opts = opts
                    .with_root_certs(self.root.iter().map(|pem| pem.clone().into()).collect())
                    // Only the configured CA: a public CA's certificate must not pass verify-ca.
                    .with_disable_built_in_roots(true);
                if mode == SslMode::VerifyCa {
                    opts.with_danger_skip_domain_validation(true).with_danger_tls_hostname_override(name_override)
                } else {
                    opts
                }
            }
        }
    }
}

fn read_pem(
    mode: SslMode,
    setting: &'static str,
    path: &Path,
    labels: &[&str],
    missing: &str,
) -> Result<Vec<u8>, SourceError> {
    let problem = |problem: String| SourceError::TlsFile { setting, path: path.to_path_buf(), mode, problem };
    let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if !labels.iter().any(|label| text.contains(&format!("-----BEGIN {label}-----"))) {
        return Err(problem(format!("{missing} in the file")));
    }
    Ok(bytes)
}

/// Addresses already warned about falling back to a plain connection under `prefer`: the
/// warning is logged once per process and address, not at every reconnect.
fn warn_plain_fallback_once(address: &str) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = WARNED
        .get_or_init(Default::default)
        .lock()
        .map(|mut warned| warned.insert(address.to_owned()))
        .unwrap_or(true);
    if first {
        tracing::warn!(
            address,
            "database.sslMode=prefer: the server does not offer TLS; connecting WITHOUT encryption \
             (set sslMode to require or verify-* to refuse plain connections)"
        );
    } else {
        tracing::debug!(address, "database.sslMode=prefer: the server does not offer TLS; connected in plain text");
    }
}

impl std::fmt::Debug for SourceOptions {
    // Hand-written so the password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("schema", &self.schema)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SourceOptions {
    /// The connection settings of `database.*`, TLS included. Checks that the certificate
    /// files the mode uses can be read, so a wrong path fails at start-up.
    pub fn from_config(database: &cdc_config::DatabaseConfig) -> Result<Self, SourceError> {
        let tls = TlsOptions::from_config(database);
        tls.load()?;
        Ok(Self {
            host: database.host.clone(),
            port: database.port,
            user: database.username.clone(),
            password: database.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default(),
            schema: database.schema.clone(),
            tls,
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// mysql_async options without TLS.
    fn plain_opts(&self) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
    }

    /// The mysql_async options of the first connection attempt: TLS as `tls.mode` asks
    /// (`prefer` asks for TLS; [`connect`](Self::connect) falls back to plain if the server
    /// has none). Reads the certificate files.
    pub fn mysql_opts(&self) -> Result<Opts, SourceError> {
        let ssl = self.tls.load()?.map(|material| material.ssl_opts(self.tls.mode, None));
        Ok(self.plain_opts().ssl_opts(ssl).into())
    }

    /// Connects with the TLS `database.sslMode` asks for.
    pub async fn connect(&self) -> Result<Conn, SourceError> {
        let mode = self.tls.mode;
        let Some(material) = self.tls.load()? else {
            return Conn::new(self.plain_opts()).await.map_err(|e| self.connect_error(e, false));
        };
        let attempt = |name_override: Option<String>| {
            Conn::new(self.plain_opts().ssl_opts(material.ssl_opts(mode, name_override)))
        };
        match attempt(None).await {
            Ok(conn) => Ok(conn),
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                if mode == SslMode::Prefer {
                    warn_plain_fallback_once(&self.address());
                    Conn::new(self.plain_opts()).await.map_err(|e| self.connect_error(e, false))
                } else {
                    Err(SourceError::TlsNotOffered { address: self.address(), mode })
                }
            }
            Err(err) => {
                // mysql_async 0.37.1 cannot skip the host-name check with current rustls
                // (blackbeam/mysql_async#404, fixed upstream by #408 but not released): its
                // verifier recognises a name mismatch by text that rustls no longer prints.
                // rustls checks the chain before the name, so a name mismatch means the chain
                // to sslRootCert was good; connect again, checking against a name the
                // certificate itself presents: the chain is verified again and the name check
                // passes, which is what verify-ca means (a certificate without subjectAltName
                // names still fails: rustls ignores the CN).
                if mode == SslMode::VerifyCa {
                    if let Some(name) = presented_name_of_mismatch(&err) {
                        tracing::debug!(address = %self.address(), %name, "verify-ca: certificate does not name the host; checking the chain against a name it presents");
                        return attempt(Some(name)).await.map_err(|e| self.connect_error(e, true));
                    }
                }
                Err(self.connect_error(err, true))
            }
        }
    }

    /// Files a connect failure under what went wrong: the TLS set-up, the handshake, or the
    /// connection/login itself (with a hint when the account's REQUIRE clause is the likely
    /// cause).
    fn connect_error(&self, source: mysql_async::Error, tls: bool) -> SourceError {
        let mode = self.tls.mode;
        let address = self.address();
        if tls {
            match &source {
                mysql_async::Error::Driver(DriverError::NoKeyFound) => {
                    return SourceError::TlsFile {
                        setting: "sslKey",
                        path: self.tls.key.clone().unwrap_or_default(),
                        mode,
                        problem: "no usable private key in the file".into(),
                    }
                }
                // Certificates or key that rustls refused while setting up (bad PEM, a key
                // that does not match the certificate, an unusable CA certificate).
                mysql_async::Error::Io(IoError::Tls(_)) => {
                    return SourceError::TlsSetup { files: self.tls_files(), mode, source: Box::new(source) }
                }
                // tokio-rustls reports every handshake failure (certificate checks, alerts,
                // protocol) as InvalidData; nothing else in the stack uses that kind.
                mysql_async::Error::Io(IoError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return SourceError::TlsHandshake { address, mode, source: Box::new(source) };
                }
                _ => {}
            }
        }
        if let mysql_async::Error::Server(e) = &source {
            if e.code == 1045 && !(tls && self.tls.cert.is_some()) {
                let hint = if tls {
                    "; if the account was created with REQUIRE X509, ISSUER or SUBJECT, it needs a client \
                     certificate: set database.sslCert and database.sslKey"
                } else if mode == SslMode::Prefer {
                    "; the connection is NOT encrypted (the server offers no TLS): if the account was \
                     created with REQUIRE SSL or X509, it is refused without TLS"
                } else {
                    "; the connection is not encrypted: if the account was created with REQUIRE SSL or \
                     X509, it is refused without TLS (use sslMode require or verify-*)"
                };
                return SourceError::LoginRefused { address, mode, hint, source: Box::new(source) };
            }
        }
        SourceError::Connect { address, user: self.user.clone(), source }
    }

    fn tls_files(&self) -> String {
        let files: Vec<String> = [("sslRootCert", &self.tls.root_cert), ("sslCert", &self.tls.cert), ("sslKey", &self.tls.key)]
            .into_iter()
            .filter_map(|(setting, path)| path.as_ref().map(|p| format!("database.{setting}={}", p.display())))
            .collect();
        if files.is_empty() {
            "no certificate files".into()
        } else {
            files.join(", ")
        }
    }
}

/// What went wrong in a TLS handshake (rustls's words, without mysql_async's "Input/output
/// error" wrapping), with the setting that likely fixes it.
pub(crate) fn handshake_failure(source: &mysql_async::Error) -> String {
    let detail = match source {
        mysql_async::Error::Io(IoError::Io(e)) => e.to_string(),
        other => other.to_string(),
    };
    let hint = if detail.contains("UnknownIssuer") {
        " (the server certificate does not chain to database.sslRootCert)"
    } else if detail.contains("not valid for name") {
        " (verify-full needs database.host to be a name or IP address the certificate presents; \
         verify-ca does not check it)"
    } else if detail.contains("CertificateRequired") || detail.contains("BadCertificate") {
        " (the server wants a client certificate it accepts: database.sslCert and database.sslKey)"
    } else {
        ""
    };
    format!("{detail}{hint}")
}

/// From a failed handshake whose only fault was a host-name mismatch, a name the server
/// certificate does present (a SAN entry, as rustls/webpki print them: `DnsName("db.example")`
/// or `IpAddress(10.0.0.5)`). `None` for any other failure, or a certificate without usable
/// names.
fn presented_name_of_mismatch(err: &mysql_async::Error) -> Option<String> {
    let mysql_async::Error::Io(IoError::Io(e)) = err else { return None };
    if e.kind() != std::io::ErrorKind::InvalidData {
        return None;
    }
    let text = e.to_string();
    let presented = text.split_once("certificate not valid for name")?.1.split_once("is only valid for")?.1;
    let mut rest = presented;
    let mut candidates = Vec::new();
    while let Some(at) = rest.find(['D', 'I']) {
        rest = &rest[at..];
        if let Some(tail) = rest.strip_prefix("DnsName(\"") {
            let Some(end) = tail.find("\")") else { break };
            // A wildcard matches any one label.
            candidates.push(tail[..end].replacen("*.", "cdc.", 1));
            rest = &tail[end..];
        } else if let Some(tail) = rest.strip_prefix("IpAddress(") {
            let Some(end) = tail.find(')') else { break };
            candidates.push(tail[..end].to_owned());
            rest = &tail[end..];
        } else {
            rest = &rest[1..];
        }
    }
    candidates.into_iter().find(|name| {
        !name.is_empty()
            && !name.contains('*')
            && (name.parse::<std::net::IpAddr>().is_ok()
                || name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    })
}

/// What the server told us about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    #[serde(serialize_with = "serialize_display")]
    pub flavor: ServerFlavor,
    pub version: String,
    pub server_id: u32,
}

/// Classifies a server from `VERSION()` and `@@version_comment`. OceanBase reports a
/// MySQL-like version such as `5.7.25-OceanBase_CE-v4.2.1.0` (or names itself only in the
/// comment), MariaDB always puts `MariaDB` in the version.
pub fn classify_flavor(version: &str, version_comment: &str) -> ServerFlavor {
    let haystack = format!("{version} {version_comment}").to_ascii_lowercase();
    if haystack.contains("oceanbase") {
        ServerFlavor::OceanBase
    } else if haystack.contains("mariadb") {
        ServerFlavor::MariaDb
    } else {
        ServerFlavor::MySql
    }
}

fn serialize_display<S: serde::Serializer>(value: &ServerFlavor, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, SourceError> {
    let row: Option<(String, Option<String>, Option<u32>)> = conn
        .query_first("SELECT VERSION(), @@version_comment, @@server_id")
        .await
        .map_err(|source| SourceError::Query { what: "server version", source })?;
    let (version, comment, server_id) = row.unwrap_or_default();
    Ok(ServerInfo {
        flavor: classify_flavor(&version, comment.as_deref().unwrap_or("")),
        version,
        server_id: server_id.unwrap_or(0),
    })
}

/// The server's current end of binlog, as `SHOW MASTER STATUS` reports it, plus the
/// MariaDB GTID position when the server has one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinlogHead {
    pub file: String,
    pub position: u64,
    pub gtid: Option<String>,
}

pub async fn binlog_head(conn: &mut Conn, flavor: ServerFlavor) -> Result<Option<BinlogHead>, SourceError> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|source| SourceError::Query { what: "SHOW MASTER STATUS", source })?;
    let Some(row) = row else { return Ok(None) };
    let file: Option<String> = row.get(0);
    let position: Option<u64> = row.get(1);
    let (Some(file), Some(position)) = (file, position) else { return Ok(None) };
    let gtid = match flavor {
        ServerFlavor::MariaDb => conn
            .query_first::<Option<String>, _>("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(|source| SourceError::Query { what: "gtid_binlog_pos", source })?
            .flatten(),
        // MySQL puts the executed GTID set in the fifth column of SHOW MASTER STATUS.
        _ => row.get::<Option<String>, _>(4).flatten(),
    }
    .filter(|g| !g.trim().is_empty());
    Ok(Some(BinlogHead { file, position, gtid }))
}

/// The binlog files the server still has, oldest first.
pub async fn binary_logs(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|source| SourceError::Query { what: "SHOW BINARY LOGS", source })?;
    Ok(rows.into_iter().filter_map(|r| r.get::<String, _>(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_are_told_apart_by_version_strings() {
        assert_eq!(classify_flavor("10.11.6-MariaDB-0+deb12u1-log", "Debian 12"), ServerFlavor::MariaDb);
        assert_eq!(classify_flavor("8.0.36", "MySQL Community Server - GPL"), ServerFlavor::MySql);
        assert_eq!(classify_flavor("5.7.25-OceanBase_CE-v4.2.1.0", ""), ServerFlavor::OceanBase);
        assert_eq!(classify_flavor("5.7.25", "OceanBase 4.2.1.0 (r100000) (Built Oct 2023)"), ServerFlavor::OceanBase);
    }

    #[test]
    fn verify_ca_finds_a_name_the_certificate_presents() {
        let mismatch = |text: &str| {
            mysql_async::Error::Io(IoError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, text.to_owned())))
        };
        let name = |text: &str| presented_name_of_mismatch(&mismatch(text));
        assert_eq!(
            name(r#"invalid peer certificate: certificate not valid for name "10.0.0.9"; certificate is only valid for IpAddress(10.0.0.5) or DnsName("db.example")"#),
            Some("10.0.0.5".into())
        );
        assert_eq!(
            name(r#"invalid peer certificate: certificate not valid for name "10.0.0.9"; certificate is only valid for DnsName("*.db.example")"#),
            Some("cdc.db.example".into())
        );
        // No SAN at all (a CN-only certificate): nothing to check against.
        assert_eq!(
            name(r#"invalid peer certificate: certificate not valid for name "h"; certificate is not valid for any names (according to its subjectAltName extension)"#),
            None
        );
        assert_eq!(name("invalid peer certificate: UnknownIssuer"), None);
        let refused = mysql_async::Error::Io(IoError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        assert_eq!(presented_name_of_mismatch(&refused), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let o = SourceOptions {
            host: "h".into(),
            port: 1,
            user: "u".into(),
            password: "s3cret".into(),
            schema: "db".into(),
            tls: TlsOptions::default(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
