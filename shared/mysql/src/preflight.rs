//! Checks made before a capture starts, each failure with the exact fix. Every check runs and
//! every failure is reported at once, so an operator fixes the server in one pass.

use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use cdc_event::ServerFlavor;

use crate::server::{binary_logs, ServerInfo};
use crate::{SourceError, TableSelector};

/// One reason the server cannot be captured as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreflightFailure {
    BinlogDisabled,
    BinlogFormat { actual: String },
    BinlogRowImage { actual: String },
    MissingPrivileges { user: String, missing: Vec<&'static str> },
    TableNotFound { database: String, table: String },
    NoTableSelected { selector: String },
    PositionPurged { file: String, oldest: Option<String> },
}

impl fmt::Display for PreflightFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BinlogDisabled => write!(
                f,
                "binary logging is disabled (log_bin=OFF); fix: start the server with `log_bin` \
                 (e.g. `log-bin=mysql-bin` and a `server-id` in my.cnf) and restart it"
            ),
            Self::BinlogFormat { actual } => write!(
                f,
                "binlog_format is {actual}, row changes need ROW; fix: \
                 `SET GLOBAL binlog_format='ROW'` and `binlog_format=ROW` in my.cnf"
            ),
            Self::BinlogRowImage { actual } => write!(
                f,
                "binlog_row_image is {actual}, before/after images need FULL; fix: \
                 `SET GLOBAL binlog_row_image='FULL'` and `binlog_row_image=FULL` in my.cnf"
            ),
            Self::MissingPrivileges { user, missing } => write!(
                f,
                "user {user} lacks {}; fix: `GRANT {} ON *.* TO {user}`",
                missing.join(", "),
                missing.join(", ")
            ),
            Self::TableNotFound { database, table } => write!(
                f,
                "table {database}.{table} named in database.tables does not exist; fix: create it \
                 or correct DATABASE_TABLES / DATABASE_SCHEMA"
            ),
            Self::NoTableSelected { selector } => write!(
                f,
                "no existing table matches database.tables `{selector}`; fix: correct DATABASE_TABLES \
                 / DATABASE_SCHEMA or create the tables"
            ),
            Self::PositionPurged { file, oldest } => write!(
                f,
                "the resume position is in binlog {file}, which the server has already purged (oldest \
                 kept: {}); fix: restart with a new snapshot (remove the checkpoint or use \
                 snapshot mode `initial`) and keep binlogs longer (`expire_logs_days` / \
                 `binlog_expire_logs_seconds`)",
                oldest.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// All pre-flight failures of one start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PreflightError {
    pub failures: Vec<PreflightFailure>,
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the source database is not ready for change capture ({} problem(s)):", self.failures.len())?;
        for (i, failure) in self.failures.iter().enumerate() {
            writeln!(f, "  {}. {failure}", i + 1)?;
        }
        Ok(())
    }
}

/// Runs every check. `resume_file` is the binlog file of the checkpoint a capture resumes
/// from, if any.
pub async fn preflight(
    conn: &mut Conn,
    server: &ServerInfo,
    selector: &TableSelector,
    resume_file: Option<&str>,
) -> Result<Result<(), PreflightError>, SourceError> {
    let mut failures = Vec::new();
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_row_image')",
        )
        .await
        .map_err(|source| SourceError::Query { what: "binlog variables", source })?;
    let var = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_ascii_uppercase());
    // OceanBase's binlog service always produces full row images and may not expose the
    // variables at all; treat a missing variable as "not known to be wrong" there.
    let lenient = server.flavor == ServerFlavor::OceanBase;
    match var("log_bin") {
        Some(v) if v == "ON" || v == "1" => {}
        None if lenient => {}
        _ => failures.push(PreflightFailure::BinlogDisabled),
    }
    match var("binlog_format") {
        Some(v) if v == "ROW" => {}
        None if lenient => {}
        other => failures.push(PreflightFailure::BinlogFormat { actual: other.unwrap_or_else(|| "unknown".into()) }),
    }
    match var("binlog_row_image") {
        Some(v) if v == "FULL" => {}
        None if lenient => {}
        other => failures.push(PreflightFailure::BinlogRowImage { actual: other.unwrap_or_else(|| "unknown".into()) }),
    }

    let (user, grants) = current_grants(conn).await?;
    let missing = missing_privileges(&grants, server.flavor);
    if !missing.is_empty() {
        failures.push(PreflightFailure::MissingPrivileges { user, missing });
    }

    let existing = crate::tables::existing_tables(conn, selector).await?;
    let mut named_missing = false;
    for (database, table) in selector.literal_tables() {
        if !existing.iter().any(|t| t.database == database && t.table == table) {
            named_missing = true;
            failures.push(PreflightFailure::TableNotFound { database: database.into(), table: table.into() });
        }
    }
    if existing.is_empty() && !named_missing {
        failures.push(PreflightFailure::NoTableSelected { selector: selector.to_string() });
    }

    if let Some(file) = resume_file {
        let logs = binary_logs(conn).await?;
        if !logs.iter().any(|l| l == file) {
            failures.push(PreflightFailure::PositionPurged { file: file.to_owned(), oldest: logs.first().cloned() });
        }
    }

    Ok(if failures.is_empty() { Ok(()) } else { Err(PreflightError { failures }) })
}

async fn current_grants(conn: &mut Conn) -> Result<(String, String), SourceError> {
    let user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(|source| SourceError::Query { what: "CURRENT_USER()", source })?;
    let grants: Vec<String> = conn
        .query("SHOW GRANTS FOR CURRENT_USER()")
        .await
        .map_err(|source| SourceError::Query { what: "SHOW GRANTS", source })?;
    Ok((user.unwrap_or_default(), grants.join("\n")))
}

/// Privileges a binlog reader needs that `grants` (the text of SHOW GRANTS) does not give.
/// SELECT counts when granted on any database: table-level checks happen at snapshot time.
fn missing_privileges(grants: &str, flavor: ServerFlavor) -> Vec<&'static str> {
    let upper = grants.to_ascii_uppercase();
    let global: Vec<&str> = upper.lines().filter(|l| l.contains(" ON *.* ")).collect();
    let has_global = |p: &str| global.iter().any(|l| l.contains("ALL PRIVILEGES") || l.contains(p));
    let mut missing = Vec::new();
    if !upper.contains("ALL PRIVILEGES") && !upper.contains("GRANT SELECT") && !upper.contains(", SELECT") {
        missing.push("SELECT");
    }
    if !has_global("REPLICATION SLAVE") {
        missing.push("REPLICATION SLAVE");
    }
    // MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR and shows the new name.
    let client_ok = has_global("REPLICATION CLIENT") || (flavor == ServerFlavor::MariaDb && has_global("BINLOG MONITOR"));
    if !client_ok {
        missing.push("REPLICATION CLIENT");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_are_read_from_grant_text() {
        let full = "GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`";
        assert!(missing_privileges(full, ServerFlavor::MariaDb).is_empty());
        assert_eq!(missing_privileges(full, ServerFlavor::MySql), vec!["REPLICATION CLIENT"]);
        let none = "GRANT USAGE ON *.* TO `x`@`%`";
        assert_eq!(
            missing_privileges(none, ServerFlavor::MySql),
            vec!["SELECT", "REPLICATION SLAVE", "REPLICATION CLIENT"]
        );
        let all = "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION";
        assert!(missing_privileges(all, ServerFlavor::MySql).is_empty());
        let schema_select = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `c`@`%`\nGRANT SELECT ON `shop`.* TO `c`@`%`";
        assert!(missing_privileges(schema_select, ServerFlavor::MySql).is_empty());
    }

    #[test]
    fn every_failure_is_listed_with_its_fix() {
        let err = PreflightError {
            failures: vec![
                PreflightFailure::BinlogFormat { actual: "STATEMENT".into() },
                PreflightFailure::TableNotFound { database: "shop".into(), table: "nope".into() },
            ],
        };
        let text = err.to_string();
        assert!(text.contains("2 problem(s)"));
        assert!(text.contains("1. binlog_format is STATEMENT"));
        assert!(text.contains("2. table shop.nope"));
        assert!(text.contains("fix:"));
    }
}
