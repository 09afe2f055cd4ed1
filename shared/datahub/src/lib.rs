//! cdc-datahub: Alibaba Cloud DataHub's HTTP protocol as pydatahub 2.29.0 speaks it.
//!
//! * [`server`]: the API over a [`cdc_datalog::Datalog`] — JSON and PB modes, LZ4/zlib/deflate
//!   request bodies, optional signature verification, DataHub's error bodies.
//! * [`client`]: a typed client — signing (§3), JSON mode, compression, retries with
//!   jittered backoff.
//! * [`sign`], [`codec`], [`pb`], [`model`]: the pieces both share.

pub mod client;
pub mod codec;
pub mod model;
pub mod pb;
pub mod server;
pub mod sign;

pub use client::{ClientError, DatahubClient, DatahubClientBuilder};
pub use codec::Compression;
pub use model::RecordData;
pub use server::{router, serve, ServerConfig};
