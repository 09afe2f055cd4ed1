//! Column values and row images.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};

use super::table::TableSchema;

const MICROS_PER_SECOND: u64 = 1_000_000;
const MICROS_PER_MINUTE: u64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: u64 = 60 * MICROS_PER_MINUTE;

/// A MySQL DATE exactly as stored, including values that are not calendar dates: the zero date
/// `0000-00-00`, partial dates such as `2024-00-00` or `2024-05-00`, and (under
/// `ALLOW_INVALID_DATES`) `2024-02-31`. Valid values have year <= 9999, month <= 12, day <= 31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SqlDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl SqlDate {
    pub const ZERO: SqlDate = SqlDate {
        year: 0,
        month: 0,
        day: 0,
    };

    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// The calendar date, or `None` for zero, partial and invalid dates.
    pub fn to_naive(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(
            i32::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )
    }

    /// The inverse of [`SqlDate::to_naive`]; `None` outside years 0..=9999.
    pub fn from_naive(date: NaiveDate) -> Option<Self> {
        use chrono::Datelike;
        let year = u16::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        // month() and day() are 1..=12 and 1..=31 by chrono's invariants, so the casts are lossless.
        Some(Self::new(year, date.month() as u8, date.day() as u8))
    }

    /// Checks the component ranges MySQL can store (not calendar validity).
    pub fn check(self) -> Result<(), &'static str> {
        if self.year > 9999 {
            return Err("year above 9999");
        }
        if self.month > 12 {
            return Err("month above 12");
        }
        if self.day > 31 {
            return Err("day above 31");
        }
        Ok(())
    }
}

/// `YYYY-MM-DD`, zero-padded, as MySQL prints it.
impl fmt::Display for SqlDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Error parsing the MySQL text of a DATE, TIME or DATETIME.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} text {input:?}")]
#[non_exhaustive]
pub struct TemporalParseError {
    pub kind: &'static str,
    pub input: String,
}

fn parse_digits<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `.ffffff` style fractions of 1..=6 digits into microseconds.
fn parse_fraction_micros(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 6 {
        return None;
    }
    let digits: u32 = parse_digits(text)?;
    // Right-pad to 6 digits: ".5" is 500000 microseconds.
    Some(digits * 10u32.pow(6 - text.len() as u32))
}

fn parse_date_parts(text: &str) -> Option<SqlDate> {
    let mut parts = text.split('-');
    let year = parse_digits(parts.next()?)?;
    let month = parse_digits(parts.next()?)?;
    let day = parse_digits(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(SqlDate::new(year, month, day))
}

/// Parses `H+:MM:SS[.f{1,6}]` into (hours, minutes, seconds, micros).
fn parse_clock(text: &str) -> Option<(u16, u8, u8, u32)> {
    let (clock, micros) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, parse_fraction_micros(fraction)?),
        None => (text, 0),
    };
    let mut parts = clock.split(':');
    let hours = parse_digits(parts.next()?)?;
    let minutes = parse_digits(parts.next()?)?;
    let seconds = parse_digits(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some((hours, minutes, seconds, micros))
}

impl FromStr for SqlDate {
    type Err = TemporalParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_date_parts(text).ok_or_else(|| TemporalParseError {
            kind: "DATE",
            input: text.to_owned(),
        })
    }
}

/// A MySQL TIME: a signed duration of up to 838:59:59.999999, not a time of day.
/// `negative` with all-zero components is representable (and kept distinct) so that any value
/// built by capture survives the encodings unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlTime {
    pub negative: bool,
    pub hours: u16,
    pub minutes: u8,
    pub seconds: u8,
    pub micros: u32,
}

/// Largest hour count MySQL TIME accepts.
pub const MAX_TIME_HOURS: u16 = 838;

impl SqlTime {
    pub const fn new(negative: bool, hours: u16, minutes: u8, seconds: u8, micros: u32) -> Self {
        Self {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        }
    }

    /// The signed duration in microseconds (Debezium's MicroTime). Negative zero becomes 0.
    pub fn to_micros(self) -> i64 {
        let magnitude = i64::from(self.hours) * MICROS_PER_HOUR as i64
            + i64::from(self.minutes) * MICROS_PER_MINUTE as i64
            + i64::from(self.seconds) * MICROS_PER_SECOND as i64
            + i64::from(self.micros);
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Splits a signed microsecond duration; `None` if the hours do not fit in `u16`.
    pub fn from_micros(micros: i64) -> Option<Self> {
        let magnitude = micros.unsigned_abs();
        let hours = u16::try_from(magnitude / MICROS_PER_HOUR).ok()?;
        let rest = magnitude % MICROS_PER_HOUR;
        // Each remainder is below 60 (or 1_000_000), so the narrowing casts are lossless.
        Some(Self {
            negative: micros < 0,
            hours,
            minutes: (rest / MICROS_PER_MINUTE) as u8,
            seconds: (rest % MICROS_PER_MINUTE / MICROS_PER_SECOND) as u8,
            micros: (rest % MICROS_PER_SECOND) as u32,
        })
    }

    /// Whether every component is zero (regardless of sign).
    pub fn is_zero_magnitude(self) -> bool {
        self.hours == 0 && self.minutes == 0 && self.seconds == 0 && self.micros == 0
    }

    /// Checks the component ranges MySQL can store.
    pub fn check(self) -> Result<(), &'static str> {
        if self.hours > MAX_TIME_HOURS {
            return Err("hours above 838");
        }
        if self.minutes > 59 {
            return Err("minutes above 59");
        }
        if self.seconds > 59 {
            return Err("seconds above 59");
        }
        if u64::from(self.micros) >= MICROS_PER_SECOND {
            return Err("microseconds above 999999");
        }
        Ok(())
    }
}

/// `[-]HH:MM:SS[.ffffff]` (hours may have three digits); the fraction is printed only when
/// non-zero, always with six digits.
impl fmt::Display for SqlTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        write!(
            f,
            "{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl FromStr for SqlTime {
    type Err = TemporalParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (hours, minutes, seconds, micros) =
            parse_clock(unsigned).ok_or_else(|| TemporalParseError {
                kind: "TIME",
                input: text.to_owned(),
            })?;
        Ok(Self::new(negative, hours, minutes, seconds, micros))
    }
}

/// A MySQL DATETIME exactly as stored (no time zone), including zero and partial dates
/// (`0000-00-00 00:00:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SqlDateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl SqlDateTime {
    pub const ZERO: SqlDateTime = SqlDateTime {
        year: 0,
        month: 0,
        day: 0,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };

    pub const fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    ) -> Self {
        Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        }
    }

    pub fn date(self) -> SqlDate {
        SqlDate::new(self.year, self.month, self.day)
    }

    /// The calendar date-time, or `None` for zero, partial and invalid values.
    pub fn to_naive(self) -> Option<NaiveDateTime> {
        // chrono reads micros >= 1_000_000 as a leap second; MySQL has none.
        if u64::from(self.micros) >= MICROS_PER_SECOND {
            return None;
        }
        self.date().to_naive()?.and_hms_micro_opt(
            u32::from(self.hour),
            u32::from(self.minute),
            u32::from(self.second),
            self.micros,
        )
    }

    /// The inverse of [`SqlDateTime::to_naive`]; `None` outside years 0..=9999.
    pub fn from_naive(value: NaiveDateTime) -> Option<Self> {
        use chrono::Timelike;
        let date = SqlDate::from_naive(value.date())?;
        let micros = value.nanosecond() / 1_000;
        if u64::from(micros) >= MICROS_PER_SECOND || !value.nanosecond().is_multiple_of(1_000) {
            return None;
        }
        // hour/minute/second are below 60 by chrono's invariants.
        Some(Self::new(
            date.year,
            date.month,
            date.day,
            value.hour() as u8,
            value.minute() as u8,
            value.second() as u8,
            micros,
        ))
    }

    /// Checks the component ranges MySQL can store (not calendar validity).
    pub fn check(self) -> Result<(), &'static str> {
        self.date().check()?;
        if self.hour > 23 {
            return Err("hour above 23");
        }
        if self.minute > 59 {
            return Err("minute above 59");
        }
        if self.second > 59 {
            return Err("second above 59");
        }
        if u64::from(self.micros) >= MICROS_PER_SECOND {
            return Err("microseconds above 999999");
        }
        Ok(())
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`; the fraction is printed only when non-zero.
impl fmt::Display for SqlDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}:{:02}",
            self.date(),
            self.hour,
            self.minute,
            self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl FromStr for SqlDateTime {
    type Err = TemporalParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TemporalParseError {
            kind: "DATETIME",
            input: text.to_owned(),
        };
        let (date, clock) = text.split_once(' ').ok_or_else(error)?;
        let date = parse_date_parts(date).ok_or_else(error)?;
        let (hour, minute, second, micros) = parse_clock(clock).ok_or_else(error)?;
        let hour = u8::try_from(hour).map_err(|_| error())?;
        Ok(Self::new(
            date.year, date.month, date.day, hour, minute, second, micros,
        ))
    }
}

/// One column value, able to hold every MySQL / MariaDB / OceanBase value without loss.
///
/// Which variant belongs to which [`ColumnType`](super::ColumnType) (besides `Null`, allowed in
/// every column): signed integers -> `Int`, unsigned -> `UInt`, DECIMAL -> `Decimal`, FLOAT ->
/// `Float`, DOUBLE -> `Double`, DATE -> `Date`, TIME -> `Time`, DATETIME -> `DateTime`,
/// TIMESTAMP -> `Timestamp`, YEAR -> `Year`, CHAR/VARCHAR/TEXT -> `Text`, BINARY/VARBINARY/BLOB
/// -> `Bytes`, JSON -> `Json`, ENUM -> `Enum`, SET -> `Set`, BIT -> `Bit`, spatial ->
/// `Geometry`. [`check_value`](super::check_value) enforces it.
///
/// Equality compares floats by bit pattern, so `-0.0 != 0.0` and the round-trip tests see a
/// lost sign; this also makes `Eq` lawful. NaN and infinities cannot occur in MySQL columns.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text as MySQL prints it, e.g. `-12345.678900` (scale digits kept).
    Decimal(String),
    Date(SqlDate),
    Time(SqlTime),
    DateTime(SqlDateTime),
    /// Microseconds since the Unix epoch, UTC. MySQL's zero TIMESTAMP (`0000-00-00 00:00:00`)
    /// is stored in the binlog as 0 and therefore arrives as `Timestamp(0)`.
    Timestamp(i64),
    Year(u16),
    /// Character data, decoded from the column's charset to UTF-8 by capture.
    Text(String),
    Bytes(Vec<u8>),
    /// JSON document text.
    Json(String),
    /// The member name (not its index); `""` is MySQL's error value (index 0).
    Enum(String),
    /// Member names.
    Set(Vec<String>),
    /// BIT(width): the low `width` bits of `value`.
    Bit {
        width: u8,
        value: u64,
    },
    /// A spatial value: SRID and the Well-Known-Binary geometry (MySQL stores SRID + WKB).
    Geometry {
        srid: u32,
        wkb: Vec<u8>,
    },
}

impl Value {
    /// The variant name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "Int",
            Value::UInt(_) => "UInt",
            Value::Float(_) => "Float",
            Value::Double(_) => "Double",
            Value::Decimal(_) => "Decimal",
            Value::Date(_) => "Date",
            Value::Time(_) => "Time",
            Value::DateTime(_) => "DateTime",
            Value::Timestamp(_) => "Timestamp",
            Value::Year(_) => "Year",
            Value::Text(_) => "Text",
            Value::Bytes(_) => "Bytes",
            Value::Json(_) => "Json",
            Value::Enum(_) => "Enum",
            Value::Set(_) => "Set",
            Value::Bit { .. } => "Bit",
            Value::Geometry { .. } => "Geometry",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            // Bit patterns: "exactly the same value" includes the sign of zero.
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::DateTime(a), Value::DateTime(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Year(a), Value::Year(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Json(a), Value::Json(b)) => a == b,
            (Value::Enum(a), Value::Enum(b)) => a == b,
            (Value::Set(a), Value::Set(b)) => a == b,
            (
                Value::Bit {
                    width: wa,
                    value: va,
                },
                Value::Bit {
                    width: wb,
                    value: vb,
                },
            ) => wa == wb && va == vb,
            (Value::Geometry { srid: sa, wkb: wa }, Value::Geometry { srid: sb, wkb: wb }) => {
                sa == sb && wa == wb
            }
            _ => false,
        }
    }
}

impl Eq for Value {}

/// The column values of one row image, positional: `values[i]` belongs to
/// `schema.columns[i]`.
///
/// Rows carry no column names. The event carries an `Arc<TableSchema>` instead, so naming
/// columns (Debezium JSON, Parquet) costs one pointer per event, not one string per value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    pub values: Vec<Value>,
}

impl Row {
    pub fn new(values: Vec<Value>) -> Self {
        Self { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value of the column named `name` in `schema` (the schema this row belongs to).
    pub fn get_by_name(&self, schema: &TableSchema, name: &str) -> Option<&Value> {
        self.values.get(schema.column_index(name)?)
    }
}

impl From<Vec<Value>> for Row {
    fn from(values: Vec<Value>) -> Self {
        Self { values }
    }
}
