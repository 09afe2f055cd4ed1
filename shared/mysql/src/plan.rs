//! What a capture would read, gathered before it starts: the server, the pre-flight result,
//! the selected tables and the binlog head. Printed by `cdc-capture check` and the demo.

use std::fmt;

use crate::{binlog_head, existing_tables, preflight, server_info, BinlogHead, PreflightError, ServerInfo};
use crate::{SourceError, SourceOptions, TableInfo, TableSelector};

/// The facts a capture starts from.
#[derive(Debug, Clone)]
pub struct CapturePlan {
    pub address: String,
    pub server: ServerInfo,
    pub preflight: Result<(), PreflightError>,
    pub selector: TableSelector,
    pub tables: Vec<TableInfo>,
    pub head: Option<BinlogHead>,
}

impl CapturePlan {
    /// Connects, identifies the server, runs every pre-flight check and lists the tables.
    /// `resume_file` is the binlog file of the checkpoint a capture would resume from.
    pub async fn gather(
        source: &SourceOptions,
        selector: &TableSelector,
        resume_file: Option<&str>,
    ) -> Result<Self, SourceError> {
        let mut conn = source.connect().await?;
        let server = server_info(&mut conn).await?;
        let preflight = preflight(&mut conn, &server, selector, resume_file).await?;
        let tables = existing_tables(&mut conn, selector).await?;
        let head = binlog_head(&mut conn, server.flavor).await?;
        // A failed disconnect only means the server already closed the session.
        let _ = conn.disconnect().await;
        Ok(Self { address: source.address(), server, preflight, selector: selector.clone(), tables, head })
    }

    pub fn is_ready(&self) -> bool {
        self.preflight.is_ok()
    }
}

impl fmt::Display for CapturePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "source: {} {} at {} (server_id {})",
            self.server.flavor, self.server.version, self.address, self.server.server_id
        )?;
        match &self.preflight {
            Ok(()) => writeln!(f, "pre-flight: OK (binlog on, ROW format, FULL row image, privileges, tables)")?,
            Err(err) => write!(f, "pre-flight: {err}")?,
        }
        writeln!(f, "tables selected by `{}`: {}", self.selector, self.tables.len())?;
        for table in &self.tables {
            let key = if table.primary_key.is_empty() {
                "no primary key: snapshot reads it as one chunk".to_owned()
            } else {
                format!("key ({})", table.primary_key.join(", "))
            };
            let columns: Vec<String> = table.columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
            writeln!(f, "  {}.{}: ~{} rows, {key}", table.database, table.table, table.estimated_rows)?;
            writeln!(f, "    {}", columns.join(", "))?;
        }
        match &self.head {
            Some(head) => writeln!(
                f,
                "binlog head: {}:{}{}",
                head.file,
                head.position,
                head.gtid.as_deref().map(|g| format!(" (GTID {g})")).unwrap_or_default()
            ),
            None => writeln!(f, "binlog head: none (binary logging is off)"),
        }
    }
}
