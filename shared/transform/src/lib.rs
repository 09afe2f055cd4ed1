//! Declarative transforms of change events, between the bus and the sinks.
//!
//! A rules file (YAML, see [`spec`]) says which tables pass, renames tables and columns,
//! drops columns, masks values (keyed hash, redaction, truncation) and filters rows with a
//! small predicate language ([`predicate`]). [`Transformer::load`] validates it at start-up
//! and reports every problem at once; [`Transformer::apply`] maps one
//! [`ChangeEvent`](cdc_event::ChangeEvent) to `Some(event)`, `None` (filtered out), or a
//! [`TransformError`] naming the reason — a record is never dropped silently.
//!
//! The output event's [`TableSchema`](cdc_event::TableSchema) describes the output columns
//! (renamed, dropped, masked types: `hash` → `CHAR(64)`, `redact` → `VARCHAR(marker)`,
//! `truncate` → `VARCHAR(N)`), and its version is a new fingerprint that also covers the
//! masks, the filter and the hash key: changing any of them starts new files in the sinks.
//!
//! ```
//! use cdc_transform::{Transformer, TransformOptions};
//!
//! let rules = "rules:\n  - table: shop.customers\n    mask: {email: hash}\n    filter: \"country = 'SG'\"\n";
//! let options = TransformOptions::new().with_hash_salt("a long and secret salt");
//! let loaded = Transformer::from_yaml(rules, &options).expect("valid rules");
//! assert_eq!(loaded.warnings.len(), 1); // shop.customers is checked when its first event arrives
//! ```

#![forbid(unsafe_code)]

mod error;
mod mask;
mod pattern;
pub mod predicate;
pub mod spec;
mod transformer;

pub use error::{EvalError, ParseError, Problem, SpecError, TransformError};
pub use mask::{Mask, DEFAULT_REDACT_MARKER, HASH_HEX_LEN};
pub use pattern::TablePattern;
pub use predicate::Predicate;
pub use spec::{Rule, TableRename, TransformSpec};
pub use transformer::{Loaded, TransformOptions, Transformer};

/// The dead-letter stage name of records that fail the transform.
pub const DLQ_STAGE: &str = "transform";
