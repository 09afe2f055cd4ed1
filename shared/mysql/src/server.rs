//! Connecting to a MySQL-protocol server and finding out what it is.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

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
            .finish()
    }
}

impl SourceOptions {
    /// The connection settings of `database.*`. TLS (`database.sslMode` require/verify-*) is
    /// not built into this version: those modes are refused here rather than silently
    /// connecting in clear text; `prefer` connects without TLS.
    pub fn from_config(database: &cdc_config::DatabaseConfig) -> Result<Self, SourceError> {
        use cdc_config::SslMode;
        if !matches!(database.ssl_mode, SslMode::Disable | SslMode::Prefer) {
            return Err(SourceError::TlsNotSupported { mode: database.ssl_mode.to_string() });
        }
        Ok(Self {
            host: database.host.clone(),
            port: database.port,
            user: database.username.clone(),
            password: database.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default(),
            schema: database.schema.clone(),
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn mysql_opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
            .into()
    }

    pub async fn connect(&self) -> Result<Conn, SourceError> {
        Conn::new(self.mysql_opts())
            .await
            .map_err(|source| SourceError::Connect { address: self.address(), user: self.user.clone(), source })
    }
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
    fn debug_output_hides_the_password() {
        let o = SourceOptions {
            host: "h".into(),
            port: 1,
            user: "u".into(),
            password: "s3cret".into(),
            schema: "db".into(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
