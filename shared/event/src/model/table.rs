//! Table identity, column types and table schemas.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A table, named by its database (MySQL "schema") and table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId {
    pub database: String,
    pub table: String,
}

impl TableId {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            table: table.into(),
        }
    }
}

/// Prints `db.table`. Not parsed back: both parts may themselves contain dots.
impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// The storage class of TEXT and BLOB columns (TINY-, plain, MEDIUM-, LONG-).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LobSize {
    /// TINYTEXT / TINYBLOB: up to 255 bytes.
    Tiny,
    /// TEXT / BLOB: up to 65,535 bytes.
    Regular,
    /// MEDIUMTEXT / MEDIUMBLOB: up to 16 MiB - 1.
    Medium,
    /// LONGTEXT / LONGBLOB: up to 4 GiB - 1.
    Long,
}

impl LobSize {
    /// The SQL keyword prefix of this size (`TINY`, ``, `MEDIUM`, `LONG`).
    pub fn prefix(self) -> &'static str {
        match self {
            LobSize::Tiny => "TINY",
            LobSize::Regular => "",
            LobSize::Medium => "MEDIUM",
            LobSize::Long => "LONG",
        }
    }
}

/// A MySQL / MariaDB / OceanBase (MySQL mode) column type with the parameters that matter for
/// reproducing its values exactly. Display width of integers (`INT(11)`) is deliberately absent:
/// it never changes a value.
///
/// Not `#[non_exhaustive]` on purpose: every consumer in the workspace must handle every type,
/// and a new type should break their `match` at compile time rather than fall into a default arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    TinyInt {
        unsigned: bool,
    },
    SmallInt {
        unsigned: bool,
    },
    MediumInt {
        unsigned: bool,
    },
    Int {
        unsigned: bool,
    },
    BigInt {
        unsigned: bool,
    },
    /// DECIMAL(precision, scale): precision 1..=65, scale 0..=30 and at most precision.
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    Date,
    /// TIME(fsp), fsp = fractional seconds digits 0..=6.
    Time {
        fsp: u8,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Year,
    /// CHAR(length) in characters, with the column's character set name (e.g. `utf8mb4`).
    Char {
        length: u32,
        charset: String,
    },
    VarChar {
        length: u32,
        charset: String,
    },
    Text {
        size: LobSize,
        charset: String,
    },
    /// BINARY(length) in bytes.
    Binary {
        length: u32,
    },
    VarBinary {
        length: u32,
    },
    Blob {
        size: LobSize,
    },
    Json,
    /// ENUM with its member names in definition order (index 1 is `values[0]`).
    Enum {
        values: Vec<String>,
    },
    /// SET with its member names in definition order (bit 0 is `values[0]`).
    Set {
        values: Vec<String>,
    },
    /// BIT(width), width 1..=64.
    Bit {
        width: u8,
    },
    /// Any spatial type (GEOMETRY, POINT, POLYGON, ...): values are SRID + WKB either way.
    Geometry,
}

/// Largest DECIMAL precision MySQL accepts.
pub const MAX_DECIMAL_PRECISION: u8 = 65;
/// Largest DECIMAL scale MySQL accepts.
pub const MAX_DECIMAL_SCALE: u8 = 30;
/// Largest fractional-seconds precision of TIME / DATETIME / TIMESTAMP.
pub const MAX_FSP: u8 = 6;

impl ColumnType {
    /// The SQL type name without parameters, with ` UNSIGNED` for unsigned integers
    /// (e.g. `BIGINT UNSIGNED`, `VARCHAR`, `MEDIUMBLOB`). This is also the text of Debezium's
    /// `__debezium.source.column.type` parameter.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnType::TinyInt { unsigned: false } => "TINYINT",
            ColumnType::TinyInt { unsigned: true } => "TINYINT UNSIGNED",
            ColumnType::SmallInt { unsigned: false } => "SMALLINT",
            ColumnType::SmallInt { unsigned: true } => "SMALLINT UNSIGNED",
            ColumnType::MediumInt { unsigned: false } => "MEDIUMINT",
            ColumnType::MediumInt { unsigned: true } => "MEDIUMINT UNSIGNED",
            ColumnType::Int { unsigned: false } => "INT",
            ColumnType::Int { unsigned: true } => "INT UNSIGNED",
            ColumnType::BigInt { unsigned: false } => "BIGINT",
            ColumnType::BigInt { unsigned: true } => "BIGINT UNSIGNED",
            ColumnType::Decimal { .. } => "DECIMAL",
            ColumnType::Float => "FLOAT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Date => "DATE",
            ColumnType::Time { .. } => "TIME",
            ColumnType::DateTime { .. } => "DATETIME",
            ColumnType::Timestamp { .. } => "TIMESTAMP",
            ColumnType::Year => "YEAR",
            ColumnType::Char { .. } => "CHAR",
            ColumnType::VarChar { .. } => "VARCHAR",
            ColumnType::Text { size, .. } => match size {
                LobSize::Tiny => "TINYTEXT",
                LobSize::Regular => "TEXT",
                LobSize::Medium => "MEDIUMTEXT",
                LobSize::Long => "LONGTEXT",
            },
            ColumnType::Binary { .. } => "BINARY",
            ColumnType::VarBinary { .. } => "VARBINARY",
            ColumnType::Blob { size } => match size {
                LobSize::Tiny => "TINYBLOB",
                LobSize::Regular => "BLOB",
                LobSize::Medium => "MEDIUMBLOB",
                LobSize::Long => "LONGBLOB",
            },
            ColumnType::Json => "JSON",
            ColumnType::Enum { .. } => "ENUM",
            ColumnType::Set { .. } => "SET",
            ColumnType::Bit { .. } => "BIT",
            ColumnType::Geometry => "GEOMETRY",
        }
    }

    /// Whether this is an integer type declared UNSIGNED.
    pub fn is_unsigned_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::TinyInt { unsigned: true }
                | ColumnType::SmallInt { unsigned: true }
                | ColumnType::MediumInt { unsigned: true }
                | ColumnType::Int { unsigned: true }
                | ColumnType::BigInt { unsigned: true }
        )
    }

    /// The character set of character columns.
    pub fn charset(&self) -> Option<&str> {
        match self {
            ColumnType::Char { charset, .. }
            | ColumnType::VarChar { charset, .. }
            | ColumnType::Text { charset, .. } => Some(charset),
            _ => None,
        }
    }

    /// Checks the type's parameters against MySQL's limits; the error says which limit.
    pub fn check(&self) -> Result<(), &'static str> {
        match self {
            ColumnType::Decimal { precision, scale } => {
                if *precision == 0 || *precision > MAX_DECIMAL_PRECISION {
                    return Err("DECIMAL precision must be 1..=65");
                }
                if *scale > MAX_DECIMAL_SCALE || scale > precision {
                    return Err("DECIMAL scale must be 0..=30 and at most the precision");
                }
            }
            ColumnType::Time { fsp }
            | ColumnType::DateTime { fsp }
            | ColumnType::Timestamp { fsp }
                if *fsp > MAX_FSP =>
            {
                return Err("fractional seconds precision must be 0..=6");
            }
            ColumnType::Bit { width } if *width == 0 || *width > 64 => {
                return Err("BIT width must be 1..=64");
            }
            ColumnType::Enum { values } if values.len() > 65_535 => {
                return Err("ENUM has more than 65535 members");
            }
            ColumnType::Set { values } => {
                if values.len() > 64 {
                    return Err("SET has more than 64 members");
                }
                // The comma is SET's value separator in MySQL text and in Debezium's EnumSet.
                if values.iter().any(|v| v.contains(',')) {
                    return Err("SET member names cannot contain ','");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn write_quoted_list(f: &mut fmt::Formatter<'_>, values: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "'{}'", v.replace('\'', "''"))?;
    }
    f.write_str(")")
}

/// SQL-like text of the type, e.g. `DECIMAL(10,2)`, `VARCHAR(255) CHARACTER SET utf8mb4`.
impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            ColumnType::Time { fsp }
            | ColumnType::DateTime { fsp }
            | ColumnType::Timestamp { fsp } => {
                write!(f, "{}({fsp})", self.type_name())
            }
            ColumnType::Char { length, charset } | ColumnType::VarChar { length, charset } => {
                write!(f, "{}({length}) CHARACTER SET {charset}", self.type_name())
            }
            ColumnType::Text { charset, .. } => {
                write!(f, "{} CHARACTER SET {charset}", self.type_name())
            }
            ColumnType::Binary { length } | ColumnType::VarBinary { length } => {
                write!(f, "{}({length})", self.type_name())
            }
            ColumnType::Enum { values } | ColumnType::Set { values } => {
                f.write_str(self.type_name())?;
                write_quoted_list(f, values)
            }
            ColumnType::Bit { width } => write!(f, "BIT({width})"),
            _ => f.write_str(self.type_name()),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, column_type: ColumnType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            column_type,
            nullable,
        }
    }
}

/// The columns of a table at one schema version. Row values are positional: `Row::values[i]`
/// belongs to `columns[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableSchema {
    pub table: TableId,
    /// Increases with every DDL that changes the table; (table, version) names one schema.
    pub version: u64,
    pub columns: Vec<ColumnDef>,
    /// Primary-key column names in key order; empty for tables without a primary key.
    pub primary_key: Vec<String>,
}

impl TableSchema {
    /// The schema version of a column list and key: a stable 63-bit fingerprint (FNV-1a over
    /// each column's name, SQL type and nullability, then the key). Every process and every
    /// restart gives the same schema the same version and different schemas different ones,
    /// without a counter that would have to be checkpointed: a capture restarted after a DDL,
    /// and a snapshot and a binlog reader describing the same table, agree on versions.
    pub fn fingerprint(columns: &[ColumnDef], primary_key: &[String]) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0100_0000_01b3;
        let mut hash = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
            }
            // A separator, so ("ab", "c") and ("a", "bc") differ.
            hash = (hash ^ 0xff).wrapping_mul(PRIME);
        };
        for column in columns {
            feed(column.name.as_bytes());
            feed(format!("{:?}", column.column_type).as_bytes());
            feed(if column.nullable { b"null" } else { b"not null" });
        }
        feed(b"primary key");
        for key in primary_key {
            feed(key.as_bytes());
        }
        // 63 bits: stays a positive number for readers that parse versions as signed (Java).
        hash >> 1
    }

    /// The position of the column named `name`, compared exactly (case-sensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}
