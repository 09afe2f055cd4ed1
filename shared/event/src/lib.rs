//! The change event that travels from capture to sink, and its two encodings.
//!
//! - [`model`]: [`ChangeEvent`] (and [`Event`] for schema changes and heartbeats), [`Value`]
//!   able to hold every MySQL / MariaDB / OceanBase value without loss, [`TableSchema`], and the
//!   totally ordered source [`Position`] used to drop replayed events.
//! - [`debezium`]: Debezium-compatible JSON (JsonConverter with schemas) for files and
//!   consumers that speak Debezium.
//! - [`binary`]: a compact, checksummed batch encoding for the relay.
//!
//! Rows are positional `Vec<Value>`s; each event holds an `Arc<TableSchema>` shared by all
//! events of that table version, so column names are never copied per event.

pub mod binary;
pub mod debezium;
pub mod model;

pub use binary::{
    decode_batch, decode_events, encode_batch, encode_events, BatchEncoder, DecodeError,
};
pub use debezium::JsonDecodeError;
pub use model::*;
