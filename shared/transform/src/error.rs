//! Errors: of the rules file (all problems at once), of a filter's syntax (with a caret), and
//! of one record (with the reason, for the dead-letter queue).

use std::fmt;
use std::path::PathBuf;

use std::sync::Arc;

use cdc_event::TableId;

/// A syntax error in a filter, pointing at the character where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}\n    {text}\n    {caret}^")]
#[non_exhaustive]
pub struct ParseError {
    /// What was wrong.
    pub message: String,
    /// 1-based character column in the filter text.
    pub column: usize,
    text: String,
    caret: String,
}

impl ParseError {
    pub(crate) fn new(text: &str, at: usize, message: String) -> Self {
        // The filter is shown on one line, so a newline in it would move the caret.
        let shown: String = text.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
        ParseError { message, column: at + 1, text: shown, caret: " ".repeat(at) }
    }
}

/// Why a filter could not be evaluated for one row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at column {column} of the filter)")]
#[non_exhaustive]
pub struct EvalError {
    pub message: String,
    /// 1-based character column of the condition in the filter text.
    pub column: usize,
}

/// One problem in a rules file. `path` locates it (`rules[2] (shop.orders).mask.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A rules file that cannot be used, with every problem found (not just the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct SpecError {
    /// The file, when the rules came from one.
    pub file: Option<PathBuf>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "transform rules {}", file.display())?,
            None => f.write_str("transform rules")?,
        }
        write!(f, ": {} problem(s)", self.problems.len())?;
        for problem in &self.problems {
            // Continuation lines of a caret message stay indented under their problem.
            write!(f, "\n  - {}", problem.to_string().replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

/// Why one record could not be transformed. Never silently dropped: the caller sends the
/// record to its dead-letter queue with this reason. (`table` is shared, keeping the error
/// small on the per-record path.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// A rule names a column the table (at this schema version) does not have, where the
    /// rule cannot do without it (a filter, a mask).
    #[error("table {table}: rule {rule} {usage} column {column:?}, which the table does not have")]
    UnknownColumn { table: Arc<TableId>, rule: String, usage: &'static str, column: String },

    /// A mask that cannot apply to the column's type (truncate on an INT, hash on a FLOAT).
    #[error("table {table}: rule {rule}: {mask} mask cannot apply to column {column:?} ({column_type}): {reason}")]
    MaskType { table: Arc<TableId>, rule: String, column: String, column_type: String, mask: &'static str, reason: &'static str },

    /// After renames and drops, two output columns would have the same name.
    #[error("table {table}: rule {rule} makes two output columns named {name:?}")]
    DuplicateColumn { table: Arc<TableId>, rule: String, name: String },

    /// The rule leaves the table without columns.
    #[error("table {table}: rule {rule} drops every column")]
    NoColumns { table: Arc<TableId>, rule: String },

    /// The filter cannot be evaluated for this row.
    #[error("table {table} at {position}: filter `{filter}` cannot be evaluated: {source}")]
    Filter {
        table: Arc<TableId>,
        position: String,
        filter: String,
        #[source]
        source: EvalError,
    },

    /// The event lacks the row image the filter reads (after for c/u/r, before for d).
    #[error("table {table} at {position}: the {op} event has no {image} image for the filter")]
    MissingImage { table: Arc<TableId>, position: String, op: &'static str, image: &'static str },

    /// A row image whose length differs from the schema's column count.
    #[error("table {table} at {position}: the {image} image has {actual} values, the schema has {expected} columns")]
    RowLength { table: Arc<TableId>, position: String, image: &'static str, expected: usize, actual: usize },

    /// A value of a kind the column's type does not hold (a corrupt event), met by a mask.
    #[error("table {table} at {position}: column {column:?}: a {value_kind} value cannot be masked with {mask}")]
    MaskValue { table: Arc<TableId>, position: String, column: String, value_kind: &'static str, mask: &'static str },
}

impl TransformError {
    /// A short machine-readable kind (`filter`, `mask_type`, ...), for metrics and DLQ fields.
    pub fn kind(&self) -> &'static str {
        match self {
            TransformError::UnknownColumn { .. } => "unknown_column",
            TransformError::MaskType { .. } => "mask_type",
            TransformError::DuplicateColumn { .. } => "duplicate_column",
            TransformError::NoColumns { .. } => "no_columns",
            TransformError::Filter { .. } => "filter",
            TransformError::MissingImage { .. } => "missing_image",
            TransformError::RowLength { .. } => "row_length",
            TransformError::MaskValue { .. } => "mask_value",
        }
    }
}
