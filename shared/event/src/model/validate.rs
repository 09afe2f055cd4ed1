//! Model invariants: which value fits which column, and what a well-formed event looks like.
//!
//! The binary batch encoding carries any value unchecked (it is a lossless transport of the
//! model). The Debezium JSON encoding checks values first, because it maps each value through
//! its column type and could not otherwise promise an exact round-trip. Capture can call
//! [`ChangeEvent::validate`] to catch its own mistakes early.

use std::collections::HashSet;

use super::event::{ChangeEvent, Op};
use super::table::{ColumnType, TableId, TableSchema};
use super::value::{Row, Value};

/// Earliest TIMESTAMP value the encodings accept: 0000-01-01T00:00:00Z, in microseconds.
pub const MIN_TIMESTAMP_MICROS: i64 = -62_167_219_200_000_000;
/// Latest TIMESTAMP value the encodings accept: 9999-12-31T23:59:59.999999Z, in microseconds.
pub const MAX_TIMESTAMP_MICROS: i64 = 253_402_300_799_999_999;

/// Why one value does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueCheckError {
    #[error("a {value} value does not belong in a {column_type} column")]
    TypeMismatch {
        value: &'static str,
        column_type: &'static str,
    },
    #[error("invalid {value} value: {reason}")]
    Invalid {
        value: &'static str,
        reason: &'static str,
    },
}

/// An event or schema that breaks a model invariant; names the table and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    #[error("table {table}: column {column:?} has invalid type {column_type}: {reason}")]
    ColumnType {
        table: TableId,
        column: String,
        column_type: String,
        reason: &'static str,
    },
    #[error("table {table}: duplicate column name {column:?}")]
    DuplicateColumn { table: TableId, column: String },
    #[error("table {table}: primary key column {column:?} is not a column of the table")]
    UnknownPrimaryKeyColumn { table: TableId, column: String },
    #[error(
        "table {table}: {image} image has {actual} values but the schema has {expected} columns"
    )]
    RowLength {
        table: TableId,
        image: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("table {table} column {column:?}: {source}")]
    Value {
        table: TableId,
        column: String,
        #[source]
        source: ValueCheckError,
    },
    #[error("table {table}: a {op:?} event must {expectation} a {image} image")]
    Image {
        table: TableId,
        op: Op,
        image: &'static str,
        expectation: &'static str,
    },
}

fn signed_range(column_type: &ColumnType) -> Option<(i64, i64)> {
    Some(match column_type {
        ColumnType::TinyInt { unsigned: false } => (i8::MIN.into(), i8::MAX.into()),
        ColumnType::SmallInt { unsigned: false } => (i16::MIN.into(), i16::MAX.into()),
        ColumnType::MediumInt { unsigned: false } => (-(1 << 23), (1 << 23) - 1),
        ColumnType::Int { unsigned: false } => (i32::MIN.into(), i32::MAX.into()),
        ColumnType::BigInt { unsigned: false } => (i64::MIN, i64::MAX),
        _ => return None,
    })
}

fn unsigned_max(column_type: &ColumnType) -> Option<u64> {
    Some(match column_type {
        ColumnType::TinyInt { unsigned: true } => u8::MAX.into(),
        ColumnType::SmallInt { unsigned: true } => u16::MAX.into(),
        ColumnType::MediumInt { unsigned: true } => (1 << 24) - 1,
        ColumnType::Int { unsigned: true } => u32::MAX.into(),
        ColumnType::BigInt { unsigned: true } => u64::MAX,
        _ => return None,
    })
}

/// Whether `text` is plain decimal notation: `-?digits(.digits)?`.
pub fn is_decimal_text(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(integer) && fraction.is_none_or(all_digits)
}

/// Checks that `value` belongs in a column of `column_type` and is within what MySQL can store.
/// `Null` fits every column (nullability is not checked: a NOT NULL column can still see NULL
/// in a row image captured across a DDL).
pub fn check_value(column_type: &ColumnType, value: &Value) -> Result<(), ValueCheckError> {
    let invalid = |reason| ValueCheckError::Invalid {
        value: value.kind(),
        reason,
    };
    let fits = match (column_type, value) {
        (_, Value::Null) => true,
        (_, Value::Int(v)) => match signed_range(column_type) {
            Some((min, max)) if (min..=max).contains(v) => true,
            Some(_) => return Err(invalid("out of the column type's range")),
            None => false,
        },
        (_, Value::UInt(v)) => match unsigned_max(column_type) {
            Some(max) if *v <= max => true,
            Some(_) => return Err(invalid("out of the column type's range")),
            None => false,
        },
        (ColumnType::Decimal { .. }, Value::Decimal(text)) => {
            if !is_decimal_text(text) {
                return Err(invalid("not plain decimal text"));
            }
            true
        }
        (ColumnType::Float, Value::Float(v)) => {
            if !v.is_finite() {
                return Err(invalid("NaN and infinities cannot be stored in MySQL"));
            }
            true
        }
        (ColumnType::Double, Value::Double(v)) => {
            if !v.is_finite() {
                return Err(invalid("NaN and infinities cannot be stored in MySQL"));
            }
            true
        }
        (ColumnType::Date, Value::Date(date)) => {
            date.check().map_err(invalid)?;
            true
        }
        (ColumnType::Time { .. }, Value::Time(time)) => {
            time.check().map_err(invalid)?;
            true
        }
        (ColumnType::DateTime { .. }, Value::DateTime(datetime)) => {
            datetime.check().map_err(invalid)?;
            true
        }
        (ColumnType::Timestamp { .. }, Value::Timestamp(micros)) => {
            if !(MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(micros) {
                return Err(invalid("outside years 0000..=9999"));
            }
            true
        }
        (ColumnType::Year, Value::Year(year)) => {
            // YEAR is one byte: 0 means 0000, 1..=255 mean 1901..=2155.
            if *year != 0 && !(1901..=2155).contains(year) {
                return Err(invalid("YEAR must be 0 or 1901..=2155"));
            }
            true
        }
        (
            ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. },
            Value::Text(_),
        ) => true,
        (
            ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. },
            Value::Bytes(_),
        ) => true,
        (ColumnType::Json, Value::Json(_)) => true,
        (ColumnType::Enum { .. }, Value::Enum(_)) => true,
        (ColumnType::Set { .. }, Value::Set(members)) => {
            // Comma-joined text ("a,b") must split back into the same members.
            if members.iter().any(|m| m.is_empty() || m.contains(',')) {
                return Err(invalid("SET members must be non-empty and contain no ','"));
            }
            true
        }
        (
            ColumnType::Bit {
                width: column_width,
            },
            Value::Bit { width, value },
        ) => {
            if width != column_width {
                return Err(invalid("width differs from the column's BIT width"));
            }
            if *width == 0 || *width > 64 {
                return Err(invalid("BIT width must be 1..=64"));
            }
            if *width < 64 && *value >> width != 0 {
                return Err(invalid("value has bits above the BIT width"));
            }
            true
        }
        (ColumnType::Geometry, Value::Geometry { .. }) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(ValueCheckError::TypeMismatch {
            value: value.kind(),
            column_type: column_type.type_name(),
        })
    }
}

impl TableSchema {
    /// Checks column types, unique column names and that primary-key columns exist.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut names = HashSet::with_capacity(self.columns.len());
        for column in &self.columns {
            column
                .column_type
                .check()
                .map_err(|reason| ValidationError::ColumnType {
                    table: self.table.clone(),
                    column: column.name.clone(),
                    column_type: column.column_type.to_string(),
                    reason,
                })?;
            if !names.insert(column.name.as_str()) {
                return Err(ValidationError::DuplicateColumn {
                    table: self.table.clone(),
                    column: column.name.clone(),
                });
            }
        }
        if let Some(missing) = self
            .primary_key
            .iter()
            .find(|k| !names.contains(k.as_str()))
        {
            return Err(ValidationError::UnknownPrimaryKeyColumn {
                table: self.table.clone(),
                column: missing.clone(),
            });
        }
        Ok(())
    }

    /// Checks that `row` has one value per column and each value fits its column.
    /// `image` ("before" / "after") only labels errors.
    pub fn validate_row(&self, row: &Row, image: &'static str) -> Result<(), ValidationError> {
        if row.values.len() != self.columns.len() {
            return Err(ValidationError::RowLength {
                table: self.table.clone(),
                image,
                expected: self.columns.len(),
                actual: row.values.len(),
            });
        }
        for (column, value) in self.columns.iter().zip(&row.values) {
            check_value(&column.column_type, value).map_err(|source| ValidationError::Value {
                table: self.table.clone(),
                column: column.name.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl ChangeEvent {
    /// Checks the schema, both row images against it, and that the images present match the
    /// operation (insert/read: after only; update: both; delete: before only).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.schema.validate()?;
        let (wants_before, wants_after) = self.op.expected_images();
        for (image, row, wanted) in [
            ("before", &self.before, wants_before),
            ("after", &self.after, wants_after),
        ] {
            match (row, wanted) {
                (Some(row), true) => self.schema.validate_row(row, image)?,
                (None, false) => {}
                (Some(_), false) | (None, true) => {
                    return Err(ValidationError::Image {
                        table: self.schema.table.clone(),
                        op: self.op,
                        image,
                        expectation: if wanted { "carry" } else { "not carry" },
                    })
                }
            }
        }
        Ok(())
    }
}
