//! [`RecordBatchBuilder`]: change events of one (table, schema version) → Arrow record batches,
//! in the `flat` or the `envelope` shape (see [`crate::schema`]).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    StringBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::{i256, NullBuffer};
use arrow_schema::{DataType, Fields, SchemaRef};
use cdc_config::OutputShape;
use cdc_event::{ChangeEvent, Op, Row, TableSchema, Value};

use crate::error::BadValue;
use crate::schema::{shaped_schema, source_fields, Kind, AFTER_COLUMN};
use crate::FormatError;

/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// One typed Arrow builder per table column.
enum ColumnBuilder {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    D128(Decimal128Builder),
    D256(Decimal256Builder),
    Date(Date32Builder),
    Micros(TimestampMicrosecondBuilder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Geometry(BinaryBuilder, UInt32Builder),
}

impl ColumnBuilder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::I8 => Self::I8(Int8Builder::new()),
            Kind::I16 => Self::I16(Int16Builder::new()),
            Kind::I32 => Self::I32(Int32Builder::new()),
            Kind::I64 | Kind::Time => Self::I64(Int64Builder::new()),
            Kind::U8 => Self::U8(UInt8Builder::new()),
            Kind::U16 | Kind::Year => Self::U16(UInt16Builder::new()),
            Kind::U32 => Self::U32(UInt32Builder::new()),
            Kind::U64 | Kind::Bit => Self::U64(UInt64Builder::new()),
            Kind::F32 => Self::F32(Float32Builder::new()),
            Kind::F64 => Self::F64(Float64Builder::new()),
            Kind::Dec128 { .. } => {
                Self::D128(Decimal128Builder::new().with_data_type(kind.data_type()))
            }
            Kind::Dec256 { .. } => {
                Self::D256(Decimal256Builder::new().with_data_type(kind.data_type()))
            }
            Kind::Date => Self::Date(Date32Builder::new()),
            Kind::DateTime | Kind::Timestamp => {
                Self::Micros(TimestampMicrosecondBuilder::new().with_data_type(kind.data_type()))
            }
            Kind::Text | Kind::Enum | Kind::Set | Kind::Json => Self::Str(StringBuilder::new()),
            Kind::Binary => Self::Bin(BinaryBuilder::new()),
            Kind::Geometry => Self::Geometry(BinaryBuilder::new(), UInt32Builder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::I8(b) => b.append_null(),
            Self::I16(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::U8(b) => b.append_null(),
            Self::U16(b) => b.append_null(),
            Self::U32(b) => b.append_null(),
            Self::U64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::D128(b) => b.append_null(),
            Self::D256(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Micros(b) => b.append_null(),
            Self::Str(b) => b.append_null(),
            Self::Bin(b) => b.append_null(),
            Self::Geometry(wkb, srid) => {
                wkb.append_null();
                srid.append_null();
            }
        }
    }

    fn finish_into(&mut self, arrays: &mut Vec<ArrayRef>) {
        match self {
            Self::I8(b) => arrays.push(Arc::new(b.finish())),
            Self::I16(b) => arrays.push(Arc::new(b.finish())),
            Self::I32(b) => arrays.push(Arc::new(b.finish())),
            Self::I64(b) => arrays.push(Arc::new(b.finish())),
            Self::U8(b) => arrays.push(Arc::new(b.finish())),
            Self::U16(b) => arrays.push(Arc::new(b.finish())),
            Self::U32(b) => arrays.push(Arc::new(b.finish())),
            Self::U64(b) => arrays.push(Arc::new(b.finish())),
            Self::F32(b) => arrays.push(Arc::new(b.finish())),
            Self::F64(b) => arrays.push(Arc::new(b.finish())),
            Self::D128(b) => arrays.push(Arc::new(b.finish())),
            Self::D256(b) => arrays.push(Arc::new(b.finish())),
            Self::Date(b) => arrays.push(Arc::new(b.finish())),
            Self::Micros(b) => arrays.push(Arc::new(b.finish())),
            Self::Str(b) => arrays.push(Arc::new(b.finish())),
            Self::Bin(b) => arrays.push(Arc::new(b.finish())),
            Self::Geometry(wkb, srid) => {
                arrays.push(Arc::new(wkb.finish()));
                arrays.push(Arc::new(srid.finish()));
            }
        }
    }
}

/// A value checked and converted in the first pass, so that the second pass (which mutates the
/// builders) cannot fail half-way through a row and leave the columns of different lengths.
#[derive(Clone, Copy)]
enum Prepared {
    Null,
    /// NULL standing in for a zero / invalid temporal value (counted).
    Substituted,
    I(i64),
    U(u64),
    F32(f32),
    F64(f64),
    D128(i128),
    D256(i256),
    /// Text, bytes, set or geometry: appended straight from the event's value.
    Borrowed,
}

/// The envelope's extra builders: the before image and the `source` fields the flat shape
/// does not have.
struct EnvelopeParts {
    /// Field lists of the `before` / `after` structs and of `source`.
    image_fields: Fields,
    source_fields: Fields,
    before: Vec<ColumnBuilder>,
    before_valid: Vec<bool>,
    after_valid: Vec<bool>,
    name: StringBuilder,
    db: StringBuilder,
    table: StringBuilder,
    server_id: UInt32Builder,
    snapshot: BooleanBuilder,
    prepared_before: Vec<Prepared>,
}

/// Appends [`ChangeEvent`]s of one table and schema version in the `flat` or `envelope`
/// shape (see [`crate::schema`]) and hands out [`RecordBatch`]es.
pub struct RecordBatchBuilder {
    table: Arc<TableSchema>,
    table_name: String,
    arrow: SchemaRef,
    kinds: Vec<Kind>,
    /// Flat: the row image. Envelope: the after image.
    columns: Vec<ColumnBuilder>,
    envelope: Option<Box<EnvelopeParts>>,
    op: StringBuilder,
    ts_ms: Int64Builder,
    source_pos: StringBuilder,
    tx_id: StringBuilder,
    deleted: BooleanBuilder,
    rows: usize,
    /// Per column: values written as NULL because they have no Arrow value (zero dates).
    substituted: Vec<u64>,
    prepared: Vec<Prepared>,
    digits: String,
}

impl RecordBatchBuilder {
    /// A `flat` builder for `table` (its current version); fails on column-name clashes.
    pub fn new(table: Arc<TableSchema>) -> Result<Self, FormatError> {
        Self::with_shape(table, OutputShape::Flat)
    }

    /// A builder in the shape `options` ask for (`output.shape`).
    pub fn for_writer(table: Arc<TableSchema>, options: &crate::WriterOptions) -> Result<Self, FormatError> {
        Self::with_shape(table, options.shape)
    }

    /// A builder for `table` in `shape`; fails on column-name clashes.
    pub fn with_shape(table: Arc<TableSchema>, shape: OutputShape) -> Result<Self, FormatError> {
        let arrow: SchemaRef = Arc::new(shaped_schema(&table, shape)?);
        let kinds: Vec<Kind> = table
            .columns
            .iter()
            .map(|c| Kind::of(&c.column_type))
            .collect();
        let columns = kinds.iter().map(|k| ColumnBuilder::new(*k)).collect();
        let envelope = match shape {
            OutputShape::Flat => None,
            OutputShape::Envelope => {
                let image_fields = match arrow
                    .field_with_name(AFTER_COLUMN)
                    .map(|f| f.data_type().clone())
                {
                    Ok(DataType::Struct(fields)) => fields,
                    // envelope_schema always builds `after` as a struct.
                    _ => Fields::empty(),
                };
                Some(Box::new(EnvelopeParts {
                    image_fields,
                    source_fields: source_fields(),
                    before: kinds.iter().map(|k| ColumnBuilder::new(*k)).collect(),
                    before_valid: Vec::new(),
                    after_valid: Vec::new(),
                    name: StringBuilder::new(),
                    db: StringBuilder::new(),
                    table: StringBuilder::new(),
                    server_id: UInt32Builder::new(),
                    snapshot: BooleanBuilder::new(),
                    prepared_before: Vec::with_capacity(kinds.len()),
                }))
            }
        };
        Ok(Self {
            envelope,
            table_name: table.table.to_string(),
            substituted: vec![0; kinds.len()],
            prepared: Vec::with_capacity(kinds.len()),
            table,
            arrow,
            kinds,
            columns,
            op: StringBuilder::new(),
            ts_ms: Int64Builder::new(),
            source_pos: StringBuilder::new(),
            tx_id: StringBuilder::new(),
            deleted: BooleanBuilder::new(),
            rows: 0,
            digits: String::with_capacity(80),
        })
    }

    /// The Arrow schema of every batch this builder produces.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// The table schema this builder accepts events of.
    pub fn table_schema(&self) -> &Arc<TableSchema> {
        &self.table
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Per column name, how many values were written as NULL because Arrow has no value for
    /// them (zero / partial / invalid DATE and DATETIME, zero TIMESTAMP), since the builder was
    /// created. Only columns with a non-zero count are listed.
    pub fn substituted_nulls(&self) -> Vec<(&str, u64)> {
        self.table
            .columns
            .iter()
            .zip(&self.substituted)
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c.name.as_str(), *n))
            .collect()
    }

    /// The shape of the batches.
    pub fn shape(&self) -> OutputShape {
        if self.envelope.is_some() {
            OutputShape::Envelope
        } else {
            OutputShape::Flat
        }
    }

    /// Appends one event. Flat: the after image, or the before image with `_deleted = true`
    /// for a delete. Envelope: both images the operation carries. On error nothing is appended.
    pub fn append(&mut self, event: &ChangeEvent) -> Result<(), FormatError> {
        // Same Arc is the common case; otherwise compare identity and version.
        if !Arc::ptr_eq(&event.schema, &self.table)
            && (event.schema.table != self.table.table
                || event.schema.version != self.table.version)
        {
            return Err(FormatError::SchemaMismatch {
                table: self.table_name.clone(),
                version: self.table.version,
                event_table: event.schema.table.to_string(),
                event_version: event.schema.version,
            });
        }
        if self.envelope.is_some() {
            return self.append_envelope(event);
        }
        let (row, image) = match event.op {
            Op::Delete => (event.before.as_ref(), "before"),
            Op::Insert | Op::Update | Op::Read => (event.after.as_ref(), "after"),
        };
        let row = row.ok_or_else(|| FormatError::MissingImage {
            table: self.table_name.clone(),
            op: event.op.code(),
            image,
            position: event.position.to_string(),
        })?;
        if row.values.len() != self.kinds.len() {
            return Err(FormatError::RowLength {
                table: self.table_name.clone(),
                position: event.position.to_string(),
                expected: self.kinds.len(),
                actual: row.values.len(),
            });
        }

        // Pass 1: check and convert every value; nothing is mutated but scratch space.
        self.prepared.clear();
        for (index, value) in row.values.iter().enumerate() {
            let prepared = self.prepare(index, value, event)?;
            self.prepared.push(prepared);
        }

        // Pass 2: append; cannot fail.
        for (index, value) in row.values.iter().enumerate() {
            let prepared = self.prepared[index];
            if matches!(prepared, Prepared::Substituted) {
                self.substituted[index] += 1;
            }
            append_prepared(&mut self.columns[index], prepared, value);
        }
        self.op.append_value(event.op.code());
        self.ts_ms.append_value(event.commit_ts_ms);
        // Written straight into the builder's buffer: no String per event.
        let _ = write!(self.source_pos, "{}", event.position);
        self.source_pos.append_value("");
        self.tx_id.append_option(event.tx_id.as_deref());
        self.deleted.append_value(event.op == Op::Delete);
        self.rows += 1;
        Ok(())
    }

    /// Checks the images an operation needs and their lengths.
    fn image<'e>(
        &self,
        event: &'e ChangeEvent,
        row: Option<&'e Row>,
        needed: bool,
        image: &'static str,
    ) -> Result<Option<&'e Row>, FormatError> {
        match row {
            None if needed => Err(FormatError::MissingImage {
                table: self.table_name.clone(),
                op: event.op.code(),
                image,
                position: event.position.to_string(),
            }),
            Some(row) if row.values.len() != self.kinds.len() => Err(FormatError::RowLength {
                table: self.table_name.clone(),
                position: event.position.to_string(),
                expected: self.kinds.len(),
                actual: row.values.len(),
            }),
            row => Ok(row),
        }
    }

    fn append_envelope(&mut self, event: &ChangeEvent) -> Result<(), FormatError> {
        let (needs_before, needs_after) = event.op.expected_images();
        let before = self.image(event, event.before.as_ref(), needs_before, "before")?;
        let after = self.image(event, event.after.as_ref(), needs_after, "after")?;
        let Some(mut parts) = self.envelope.take() else {
            return Ok(());
        };
        // Pass 1 for both images before any builder is touched (see `append`).
        let result = (|| {
            parts.prepared_before.clear();
            for (index, value) in before.iter().flat_map(|r| r.values.iter()).enumerate() {
                let prepared = self.prepare(index, value, event)?;
                parts.prepared_before.push(prepared);
            }
            self.prepared.clear();
            for (index, value) in after.iter().flat_map(|r| r.values.iter()).enumerate() {
                let prepared = self.prepare(index, value, event)?;
                self.prepared.push(prepared);
            }
            Ok(())
        })();
        if let Err(error) = result {
            self.envelope = Some(parts);
            return Err(error);
        }
        // Pass 2: cannot fail.
        for (builders, valid, prepared, row) in [
            (&mut parts.before, &mut parts.before_valid, &parts.prepared_before, before),
            (&mut self.columns, &mut parts.after_valid, &self.prepared, after),
        ] {
            match row {
                Some(row) => {
                    for (index, value) in row.values.iter().enumerate() {
                        if matches!(prepared[index], Prepared::Substituted) {
                            self.substituted[index] += 1;
                        }
                        append_prepared(&mut builders[index], prepared[index], value);
                    }
                    valid.push(true);
                }
                None => {
                    builders.iter_mut().for_each(ColumnBuilder::append_null);
                    valid.push(false);
                }
            }
        }
        let table = &self.table.table;
        parts.name.append_value(&*event.source_name);
        parts.db.append_value(&table.database);
        parts.table.append_value(&table.table);
        parts.server_id.append_value(event.server_id);
        parts.snapshot.append_value(event.op == Op::Read);
        self.envelope = Some(parts);
        self.op.append_value(event.op.code());
        self.ts_ms.append_value(event.commit_ts_ms);
        let _ = write!(self.source_pos, "{}", event.position);
        self.source_pos.append_value("");
        self.tx_id.append_option(event.tx_id.as_deref());
        self.rows += 1;
        Ok(())
    }

    fn finish_envelope(&mut self, parts: &mut EnvelopeParts) -> Result<RecordBatch, FormatError> {
        let arrow_error = |source| FormatError::Arrow {
            table: self.table_name.clone(),
            source,
        };
        let image = |builders: &mut Vec<ColumnBuilder>, valid: &mut Vec<bool>| {
            let mut arrays = Vec::with_capacity(parts.image_fields.len());
            for column in builders.iter_mut() {
                column.finish_into(&mut arrays);
            }
            let nulls = NullBuffer::from(std::mem::take(valid));
            StructArray::try_new(parts.image_fields.clone(), arrays, Some(nulls))
        };
        let before = image(&mut parts.before, &mut parts.before_valid).map_err(arrow_error)?;
        let after = image(&mut self.columns, &mut parts.after_valid).map_err(arrow_error)?;
        let source_arrays: Vec<ArrayRef> = vec![
            Arc::new(parts.name.finish()),
            Arc::new(parts.db.finish()),
            Arc::new(parts.table.finish()),
            Arc::new(parts.server_id.finish()),
            Arc::new(self.ts_ms.finish()),
            Arc::new(self.source_pos.finish()),
            Arc::new(self.tx_id.finish()),
            Arc::new(parts.snapshot.finish()),
        ];
        let source =
            StructArray::try_new(parts.source_fields.clone(), source_arrays, None).map_err(arrow_error)?;
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(before),
            Arc::new(after),
            Arc::new(source),
            Arc::new(self.op.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(self.arrow.clone(), arrays).map_err(arrow_error)
    }

    /// The rows appended so far as one batch; the builder is empty afterwards and can go on.
    pub fn finish(&mut self) -> Result<RecordBatch, FormatError> {
        if let Some(mut parts) = self.envelope.take() {
            let result = self.finish_envelope(&mut parts);
            self.envelope = Some(parts);
            return result;
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.arrow.fields().len());
        for column in &mut self.columns {
            column.finish_into(&mut arrays);
        }
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.ts_ms.finish()));
        arrays.push(Arc::new(self.source_pos.finish()));
        arrays.push(Arc::new(self.tx_id.finish()));
        arrays.push(Arc::new(self.deleted.finish()));
        self.rows = 0;
        RecordBatch::try_new(self.arrow.clone(), arrays).map_err(|source| FormatError::Arrow {
            table: self.table_name.clone(),
            source,
        })
    }

    fn prepare(
        &mut self,
        index: usize,
        value: &Value,
        event: &ChangeEvent,
    ) -> Result<Prepared, FormatError> {
        let kind = self.kinds[index];
        let column = &self.table.columns[index];
        let bad = |reason: String| {
            FormatError::BadValue(Box::new(BadValue {
                table: self.table_name.clone(),
                column: column.name.clone(),
                column_type: column.column_type.to_string(),
                value_kind: value.kind(),
                position: event.position.to_string(),
                reason,
            }))
        };
        let out_of_range = |target: &str| bad(format!("out of range for {target}"));
        let prepared = match (kind, value) {
            (_, Value::Null) => {
                if !column.nullable {
                    return Err(FormatError::NullInNotNullColumn {
                        table: self.table_name.clone(),
                        column: column.name.clone(),
                        position: event.position.to_string(),
                    });
                }
                Prepared::Null
            }
            (Kind::I8, Value::Int(v)) => {
                i8::try_from(*v).map_err(|_| out_of_range("Int8"))?;
                Prepared::I(*v)
            }
            (Kind::I16, Value::Int(v)) => {
                i16::try_from(*v).map_err(|_| out_of_range("Int16"))?;
                Prepared::I(*v)
            }
            (Kind::I32, Value::Int(v)) => {
                i32::try_from(*v).map_err(|_| out_of_range("Int32"))?;
                Prepared::I(*v)
            }
            (Kind::I64, Value::Int(v)) => Prepared::I(*v),
            (Kind::U8, Value::UInt(v)) => {
                u8::try_from(*v).map_err(|_| out_of_range("UInt8"))?;
                Prepared::U(*v)
            }
            (Kind::U16, Value::UInt(v)) => {
                u16::try_from(*v).map_err(|_| out_of_range("UInt16"))?;
                Prepared::U(*v)
            }
            (Kind::U32, Value::UInt(v)) => {
                u32::try_from(*v).map_err(|_| out_of_range("UInt32"))?;
                Prepared::U(*v)
            }
            (Kind::U64, Value::UInt(v)) => Prepared::U(*v),
            (Kind::F32, Value::Float(v)) => Prepared::F32(*v),
            (Kind::F64, Value::Double(v)) => Prepared::F64(*v),
            (Kind::Dec128 { precision, scale }, Value::Decimal(text)) => {
                decimal_digits(text, precision, scale, &mut self.digits)
                    .map_err(|r| bad(r.into()))?;
                let v: i128 = self
                    .digits
                    .parse()
                    .map_err(|_| bad("not a decimal".into()))?;
                Prepared::D128(v)
            }
            (Kind::Dec256 { precision, scale }, Value::Decimal(text)) => {
                decimal_digits(text, precision, scale, &mut self.digits)
                    .map_err(|r| bad(r.into()))?;
                let v =
                    i256::from_string(&self.digits).ok_or_else(|| bad("not a decimal".into()))?;
                Prepared::D256(v)
            }
            (Kind::Date, Value::Date(d)) => match d.to_naive() {
                Some(date) => {
                    use chrono::Datelike;
                    Prepared::I(i64::from(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE))
                }
                None => Prepared::Substituted,
            },
            (Kind::DateTime, Value::DateTime(dt)) => match dt.to_naive() {
                Some(naive) => Prepared::I(naive.and_utc().timestamp_micros()),
                None => Prepared::Substituted,
            },
            // MySQL's zero TIMESTAMP is stored as 0; 1970-01-01 00:00:00 UTC itself is outside
            // TIMESTAMP's range (which starts one second later), so 0 is unambiguous.
            (Kind::Timestamp, Value::Timestamp(0)) => Prepared::Substituted,
            (Kind::Timestamp, Value::Timestamp(v)) => Prepared::I(*v),
            (Kind::Time, Value::Time(t)) => Prepared::I(t.to_micros()),
            (Kind::Year, Value::Year(y)) => Prepared::U(u64::from(*y)),
            (Kind::Text, Value::Text(_))
            | (Kind::Enum, Value::Enum(_))
            | (Kind::Json, Value::Json(_))
            | (Kind::Binary, Value::Bytes(_))
            | (Kind::Geometry, Value::Geometry { .. }) => Prepared::Borrowed,
            (Kind::Set, Value::Set(members)) => {
                // Joined with ','; a member containing ',' would split into two on reading.
                if members.iter().any(|m| m.contains(',')) {
                    return Err(bad("a SET member contains ','".into()));
                }
                Prepared::Borrowed
            }
            (Kind::Bit, Value::Bit { value, .. }) => Prepared::U(*value),
            _ => return Err(bad("value kind does not belong to this column type".into())),
        };
        Ok(prepared)
    }
}

/// Appends a value checked by `prepare`. Casts are lossless: `prepare` checked the ranges.
fn append_prepared(builder: &mut ColumnBuilder, prepared: Prepared, value: &Value) {
    use ColumnBuilder as B;
    use Prepared as P;
    match (builder, prepared) {
        (b, P::Null | P::Substituted) => b.append_null(),
        (B::I8(b), P::I(v)) => b.append_value(v as i8),
        (B::I16(b), P::I(v)) => b.append_value(v as i16),
        (B::I32(b), P::I(v)) => b.append_value(v as i32),
        (B::I64(b), P::I(v)) => b.append_value(v),
        (B::Date(b), P::I(v)) => b.append_value(v as i32),
        (B::Micros(b), P::I(v)) => b.append_value(v),
        (B::U8(b), P::U(v)) => b.append_value(v as u8),
        (B::U16(b), P::U(v)) => b.append_value(v as u16),
        (B::U32(b), P::U(v)) => b.append_value(v as u32),
        (B::U64(b), P::U(v)) => b.append_value(v),
        (B::F32(b), P::F32(v)) => b.append_value(v),
        (B::F64(b), P::F64(v)) => b.append_value(v),
        (B::D128(b), P::D128(v)) => b.append_value(v),
        (B::D256(b), P::D256(v)) => b.append_value(v),
        (B::Str(b), P::Borrowed) => match value {
            Value::Text(s) | Value::Enum(s) | Value::Json(s) => b.append_value(s),
            Value::Set(members) => {
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        let _ = b.write_str(",");
                    }
                    let _ = b.write_str(member);
                }
                b.append_value("");
            }
            _ => b.append_null(),
        },
        (B::Bin(b), P::Borrowed) => match value {
            Value::Bytes(bytes) => b.append_value(bytes),
            _ => b.append_null(),
        },
        (B::Geometry(wkb_b, srid_b), P::Borrowed) => match value {
            Value::Geometry { srid, wkb } => {
                wkb_b.append_value(wkb);
                srid_b.append_value(*srid);
            }
            _ => {
                wkb_b.append_null();
                srid_b.append_null();
            }
        },
        // `prepare` pairs every kind with exactly one Prepared shape, so this is unreachable;
        // a NULL keeps the columns aligned rather than panicking on a bug.
        (b, _) => b.append_null(),
    }
}

/// Turns MySQL decimal text (`-12345.678900`) into the unscaled integer digits for
/// DECIMAL(precision, scale) (`-12345678900` for scale 6) in `out`. Exact: never via floats.
fn decimal_digits(
    text: &str,
    precision: u8,
    scale: u8,
    out: &mut String,
) -> Result<(), &'static str> {
    out.clear();
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err("empty decimal text");
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("decimal text is not [-]digits[.digits]");
    }
    if frac_part.len() > usize::from(scale) {
        return Err("more fraction digits than the column scale");
    }
    let int_digits = int_part.trim_start_matches('0');
    if int_digits.len() + usize::from(scale) > usize::from(precision) {
        return Err("more digits than the column precision");
    }
    if negative {
        out.push('-');
    }
    out.push_str(int_digits);
    out.push_str(frac_part);
    for _ in frac_part.len()..usize::from(scale) {
        out.push('0');
    }
    if out.is_empty() || out == "-" {
        out.push('0');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decimal_digits;

    #[test]
    fn decimal_text_to_unscaled_digits() {
        let mut s = String::new();
        decimal_digits("-12345.678900", 12, 6, &mut s).unwrap();
        assert_eq!(s, "-12345678900");
        decimal_digits("0.5", 3, 2, &mut s).unwrap();
        assert_eq!(s, "50");
        decimal_digits("0", 3, 0, &mut s).unwrap();
        assert_eq!(s, "0");
        decimal_digits("-0", 3, 0, &mut s).unwrap();
        assert_eq!(s, "-0");
        assert!(decimal_digits("1.234", 5, 2, &mut s).is_err());
        assert!(decimal_digits("1234", 5, 2, &mut s).is_err());
        assert!(decimal_digits("1e5", 5, 0, &mut s).is_err());
        assert!(decimal_digits("", 5, 0, &mut s).is_err());
    }
}
