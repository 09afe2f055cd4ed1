//! The tables a selector picks, read from `information_schema`.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{SourceError, TableSelector};

/// A captured table as the catalogue describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableInfo {
    pub database: String,
    pub table: String,
    /// `(name, COLUMN_TYPE)` in ordinal order, e.g. `("price", "decimal(12,2)")`.
    pub columns: Vec<(String, String)>,
    /// Primary-key columns in key order; empty when the table has none (snapshot then reads it
    /// as a single chunk).
    pub primary_key: Vec<String>,
    /// `information_schema.TABLES.TABLE_ROWS`: an estimate for InnoDB.
    pub estimated_rows: u64,
}

/// Base tables matched by `selector`, sorted by database and name.
pub async fn existing_tables(conn: &mut Conn, selector: &TableSelector) -> Result<Vec<TableInfo>, SourceError> {
    let rows: Vec<(String, String, Option<u64>)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|source| SourceError::Query { what: "information_schema.TABLES", source })?;
    let mut tables: Vec<TableInfo> = rows
        .into_iter()
        .filter(|(db, table, _)| selector.matches(db, table))
        .map(|(database, table, rows)| TableInfo {
            database,
            table,
            columns: Vec::new(),
            primary_key: Vec::new(),
            estimated_rows: rows.unwrap_or(0),
        })
        .collect();
    for table in &mut tables {
        let columns: Vec<(String, String, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, COLUMN_KEY FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(|source| SourceError::Query { what: "information_schema.COLUMNS", source })?;
        let key: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(|source| SourceError::Query { what: "information_schema.KEY_COLUMN_USAGE", source })?;
        table.columns = columns.into_iter().map(|(name, ty, _)| (name, ty)).collect();
        table.primary_key = key;
    }
    Ok(tables)
}
