//! `TableSchema` + metadata columns → Arrow `Schema`, in the `flat` shape.
//!
//! The flat shape is one row per change: the after image (the before image for deletes, with
//! `_deleted = true`), then the metadata columns.
//!
//! | MySQL type | Arrow type | notes |
//! | --- | --- | --- |
//! | TINYINT / SMALLINT / MEDIUMINT / INT / BIGINT | Int8 / Int16 / Int32 / Int32 / Int64 | |
//! | ... UNSIGNED | UInt8 / UInt16 / UInt32 / UInt32 / UInt64 | |
//! | DECIMAL(p,s), p ≤ 38 | Decimal128(p,s) | exact; text is parsed, never via float |
//! | DECIMAL(p,s), p > 38 | Decimal256(p,s) | |
//! | FLOAT / DOUBLE | Float32 / Float64 | |
//! | DATE | Date32 | zero / partial / invalid dates → NULL, counted (see below) |
//! | DATETIME(fsp) | Timestamp(Microsecond, None) | wall-clock, no zone; zero → NULL, counted |
//! | TIMESTAMP(fsp) | Timestamp(Microsecond, "UTC") | zero (stored as 0) → NULL, counted |
//! | TIME(fsp) | Int64 | signed microseconds (TIME is ±838h, beyond Time64); `cdc.unit` |
//! | YEAR | UInt16 | |
//! | CHAR / VARCHAR / TEXT / ENUM | Utf8 | ENUM as member name |
//! | SET | Utf8 | member names joined by `,` (MySQL forbids `,` in members) |
//! | JSON | Utf8 | `ARROW:extension:name = arrow.json` |
//! | BINARY / VARBINARY / BLOB | Binary | |
//! | BIT(w) | UInt64 | `cdc.bit_width` |
//! | GEOMETRY | Binary (WKB) + companion `<name>__srid` UInt32 | SRID is per value in MySQL |
//!
//! Every data field carries `cdc.source_type` (the full MySQL type text, e.g.
//! `DECIMAL(65,30)`, `ENUM('a','b')`, `VARCHAR(64) CHARACTER SET utf8mb4`), so nothing about
//! the source type is lost even where the Arrow type is wider.
//!
//! **Zero dates.** MySQL's `0000-00-00`, partial dates (`2024-05-00`) and invalid ones under
//! `ALLOW_INVALID_DATES` have no Date32 / Timestamp value. They are written as NULL — never a
//! made-up date — and counted per column by
//! [`RecordBatchBuilder::substituted_nulls`](crate::RecordBatchBuilder::substituted_nulls); the
//! fields are therefore always nullable and carry `cdc.invalid_temporal = null`. A sink that
//! must keep them can read the count and record it (e.g. as Parquet key-value metadata).
//!
//! **Shapes** ([`OutputShape`], `output.shape`): `flat` ([`arrow_schema`]) is described above and
//! below; `envelope` ([`envelope_schema`]) is Debezium's layout: `before` and `after` are
//! nullable structs of the data fields above (NULL when the operation has no such image),
//! `source` is a struct `{name, db, table, server_id, ts_ms, position, tx_id, snapshot}` and
//! `op` the one-letter code. Schema metadata says `cdc.shape = envelope`.
//!
//! Metadata columns: `_op` (Utf8 `c`/`u`/`d`/`r`), `_ts_ms` (Int64 commit time, ms),
//! `_source_pos` (Utf8, the Position text), `_tx_id` (Utf8, nullable), `_deleted` (Boolean).
//! Schema metadata: `cdc.table`, `cdc.table.database`, `cdc.table.name`, `cdc.schema_version`,
//! `cdc.primary_key` (JSON array), `cdc.shape = flat`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use cdc_config::OutputShape;
use cdc_event::{ColumnDef, ColumnType, TableSchema};

use crate::FormatError;

/// `_op`: Debezium's one-letter operation code.
pub const OP_COLUMN: &str = "_op";
/// `_ts_ms`: commit time in the source, ms since the epoch.
pub const TS_MS_COLUMN: &str = "_ts_ms";
/// `_source_pos`: the event's Position text.
pub const SOURCE_POS_COLUMN: &str = "_source_pos";
/// `_tx_id`: transaction id (GTID text), nullable.
pub const TX_ID_COLUMN: &str = "_tx_id";
/// `_deleted`: true for deletes (the row holds the before image).
pub const DELETED_COLUMN: &str = "_deleted";
/// The metadata column names, in the order they follow the data columns.
pub const METADATA_COLUMNS: [&str; 5] = [
    OP_COLUMN,
    TS_MS_COLUMN,
    SOURCE_POS_COLUMN,
    TX_ID_COLUMN,
    DELETED_COLUMN,
];

/// Envelope shape: the before image (a struct of the data fields), NULL for inserts and reads.
pub const BEFORE_COLUMN: &str = "before";
/// Envelope shape: the after image, NULL for deletes.
pub const AFTER_COLUMN: &str = "after";
/// Envelope shape: the source struct.
pub const SOURCE_COLUMN: &str = "source";
/// Envelope shape: Debezium's one-letter operation code.
pub const ENVELOPE_OP_COLUMN: &str = "op";
/// Envelope shape: the field of `source` holding the Position text.
pub const SOURCE_POSITION_FIELD: &str = "position";

/// Suffix of the SRID companion column of a GEOMETRY column.
pub const SRID_SUFFIX: &str = "__srid";
/// Field metadata key: the MySQL column type text.
pub const SOURCE_TYPE_KEY: &str = "cdc.source_type";
/// Schema metadata key: `db.table`.
pub const TABLE_KEY: &str = "cdc.table";
/// Schema metadata key: the schema version.
pub const SCHEMA_VERSION_KEY: &str = "cdc.schema_version";

/// How one MySQL column is stored; shared by the schema mapping and the batch builder so the
/// two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Dec128 { precision: u8, scale: u8 },
    Dec256 { precision: u8, scale: u8 },
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Text,
    Enum,
    Set,
    Json,
    Binary,
    Bit,
    Geometry,
}

impl Kind {
    pub(crate) fn of(column_type: &ColumnType) -> Kind {
        use ColumnType as T;
        match column_type {
            T::TinyInt { unsigned: false } => Kind::I8,
            T::TinyInt { unsigned: true } => Kind::U8,
            T::SmallInt { unsigned: false } => Kind::I16,
            T::SmallInt { unsigned: true } => Kind::U16,
            T::MediumInt { unsigned: false } | T::Int { unsigned: false } => Kind::I32,
            T::MediumInt { unsigned: true } | T::Int { unsigned: true } => Kind::U32,
            T::BigInt { unsigned: false } => Kind::I64,
            T::BigInt { unsigned: true } => Kind::U64,
            // Decimal128 holds 38 digits; MySQL goes to 65.
            T::Decimal { precision, scale } if *precision <= 38 => Kind::Dec128 {
                precision: *precision,
                scale: *scale,
            },
            T::Decimal { precision, scale } => Kind::Dec256 {
                precision: *precision,
                scale: *scale,
            },
            T::Float => Kind::F32,
            T::Double => Kind::F64,
            T::Date => Kind::Date,
            T::Time { .. } => Kind::Time,
            T::DateTime { .. } => Kind::DateTime,
            T::Timestamp { .. } => Kind::Timestamp,
            T::Year => Kind::Year,
            T::Char { .. } | T::VarChar { .. } | T::Text { .. } => Kind::Text,
            T::Binary { .. } | T::VarBinary { .. } | T::Blob { .. } => Kind::Binary,
            T::Json => Kind::Json,
            T::Enum { .. } => Kind::Enum,
            T::Set { .. } => Kind::Set,
            T::Bit { .. } => Kind::Bit,
            T::Geometry => Kind::Geometry,
        }
    }

    pub(crate) fn data_type(self) -> DataType {
        match self {
            Kind::I8 => DataType::Int8,
            Kind::I16 => DataType::Int16,
            Kind::I32 => DataType::Int32,
            Kind::I64 | Kind::Time => DataType::Int64,
            Kind::U8 => DataType::UInt8,
            Kind::U16 | Kind::Year => DataType::UInt16,
            Kind::U32 => DataType::UInt32,
            Kind::U64 | Kind::Bit => DataType::UInt64,
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            // Scale is at most 30 (checked by ColumnType::check), so the i8 cast is lossless.
            Kind::Dec128 { precision, scale } => DataType::Decimal128(precision, scale as i8),
            Kind::Dec256 { precision, scale } => DataType::Decimal256(precision, scale as i8),
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Text | Kind::Enum | Kind::Set | Kind::Json => DataType::Utf8,
            Kind::Binary | Kind::Geometry => DataType::Binary,
        }
    }

    /// Temporal kinds whose invalid values become NULL (so their fields are always nullable).
    pub(crate) fn may_substitute_null(self) -> bool {
        matches!(self, Kind::Date | Kind::DateTime | Kind::Timestamp)
    }
}

/// The Arrow fields of one table column: one, or two for GEOMETRY (WKB + SRID).
pub fn column_fields(column: &ColumnDef) -> Vec<Field> {
    let kind = Kind::of(&column.column_type);
    let mut metadata =
        HashMap::from([(SOURCE_TYPE_KEY.to_owned(), column.column_type.to_string())]);
    match kind {
        Kind::Time => {
            metadata.insert("cdc.unit".into(), "microseconds".into());
        }
        Kind::Date | Kind::DateTime | Kind::Timestamp => {
            metadata.insert("cdc.invalid_temporal".into(), "null".into());
        }
        Kind::Json => {
            metadata.insert("ARROW:extension:name".into(), "arrow.json".into());
            metadata.insert("ARROW:extension:metadata".into(), String::new());
        }
        Kind::Bit => {
            if let ColumnType::Bit { width } = column.column_type {
                metadata.insert("cdc.bit_width".into(), width.to_string());
            }
        }
        Kind::Set => {
            metadata.insert("cdc.separator".into(), ",".into());
        }
        Kind::Geometry => {
            metadata.insert("cdc.encoding".into(), "wkb".into());
            metadata.insert(
                "cdc.srid_column".into(),
                format!("{}{SRID_SUFFIX}", column.name),
            );
        }
        _ => {}
    }
    let nullable = column.nullable || kind.may_substitute_null();
    let mut fields =
        vec![Field::new(&column.name, kind.data_type(), nullable).with_metadata(metadata)];
    if kind == Kind::Geometry {
        fields.push(
            Field::new(
                format!("{}{SRID_SUFFIX}", column.name),
                DataType::UInt32,
                column.nullable,
            )
            .with_metadata(HashMap::from([(
                "cdc.srid_of".to_owned(),
                column.name.clone(),
            )])),
        );
    }
    fields
}

/// The metadata fields appended after the data columns.
pub fn metadata_fields() -> [Field; 5] {
    [
        Field::new(OP_COLUMN, DataType::Utf8, false),
        Field::new(TS_MS_COLUMN, DataType::Int64, false),
        Field::new(SOURCE_POS_COLUMN, DataType::Utf8, false),
        Field::new(TX_ID_COLUMN, DataType::Utf8, true),
        Field::new(DELETED_COLUMN, DataType::Boolean, false),
    ]
}

/// The flat Arrow schema of `table`: data columns, then [`METADATA_COLUMNS`].
///
/// Fails when a column name clashes with a metadata or companion column name.
pub fn arrow_schema(table: &TableSchema) -> Result<Schema, FormatError> {
    let mut fields: Vec<Field> = Vec::with_capacity(table.columns.len() + METADATA_COLUMNS.len());
    for column in &table.columns {
        fields.extend(column_fields(column));
    }
    fields.extend(metadata_fields());
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    for field in &fields {
        if !seen.insert(field.name().as_str()) {
            return Err(FormatError::ColumnNameClash {
                table: table.table.to_string(),
                column: field.name().clone(),
            });
        }
    }
    Ok(Schema::new_with_metadata(fields, table_metadata(table, OutputShape::Flat)))
}

/// [`arrow_schema`] in an `Arc`.
pub fn arrow_schema_ref(table: &TableSchema) -> Result<Arc<Schema>, FormatError> {
    arrow_schema(table).map(Arc::new)
}

/// The Arrow schema of `table` in `shape`.
pub fn shaped_schema(table: &TableSchema, shape: OutputShape) -> Result<Schema, FormatError> {
    match shape {
        OutputShape::Flat => arrow_schema(table),
        OutputShape::Envelope => envelope_schema(table),
    }
}

/// The fields of the envelope's `source` struct.
pub fn source_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("db", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("server_id", DataType::UInt32, false),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new(SOURCE_POSITION_FIELD, DataType::Utf8, false),
        Field::new("tx_id", DataType::Utf8, true),
        Field::new("snapshot", DataType::Boolean, false),
    ])
}

/// The envelope Arrow schema of `table`: `before`, `after` (nullable structs of the data
/// fields), `source` (struct) and `op`.
///
/// Fails when two data fields share a name (a column named like another's SRID companion).
pub fn envelope_schema(table: &TableSchema) -> Result<Schema, FormatError> {
    let mut fields: Vec<Field> = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        fields.extend(column_fields(column));
    }
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    for field in &fields {
        if !seen.insert(field.name().as_str()) {
            return Err(FormatError::ColumnNameClash {
                table: table.table.to_string(),
                column: field.name().clone(),
            });
        }
    }
    let image = DataType::Struct(Fields::from(fields));
    let top = vec![
        Field::new(BEFORE_COLUMN, image.clone(), true),
        Field::new(AFTER_COLUMN, image, true),
        Field::new(SOURCE_COLUMN, DataType::Struct(source_fields()), false),
        Field::new(ENVELOPE_OP_COLUMN, DataType::Utf8, false),
    ];
    Ok(Schema::new_with_metadata(top, table_metadata(table, OutputShape::Envelope)))
}

fn table_metadata(table: &TableSchema, shape: OutputShape) -> HashMap<String, String> {
    let primary_key = serde_json::to_string(&table.primary_key).unwrap_or_default();
    HashMap::from([
        (TABLE_KEY.to_owned(), table.table.to_string()),
        ("cdc.table.database".to_owned(), table.table.database.clone()),
        ("cdc.table.name".to_owned(), table.table.table.clone()),
        (SCHEMA_VERSION_KEY.to_owned(), table.version.to_string()),
        ("cdc.primary_key".to_owned(), primary_key),
        ("cdc.shape".to_owned(), shape.as_str().to_owned()),
    ])
}
