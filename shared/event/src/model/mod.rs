//! The change-event model: tables, values, positions and events.

mod event;
mod position;
mod table;
mod validate;
mod value;

pub use event::{ChangeEvent, Event, HeartbeatEvent, Op, SchemaChangeEvent};
pub use position::{
    binlog_file_sequence, Gtid, GtidParseError, Phase, Position, PositionParseError, ServerFlavor,
    ServerUuid,
};
pub use table::{
    ColumnDef, ColumnType, LobSize, TableId, TableSchema, MAX_DECIMAL_PRECISION, MAX_DECIMAL_SCALE,
    MAX_FSP,
};
pub use validate::{
    check_value, is_decimal_text, ValidationError, ValueCheckError, MAX_TIMESTAMP_MICROS,
    MIN_TIMESTAMP_MICROS,
};
pub use value::{Row, SqlDate, SqlDateTime, SqlTime, TemporalParseError, Value, MAX_TIME_HOURS};
