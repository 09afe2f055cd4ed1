//! cdc-datahub: Alibaba Cloud DataHub's HTTP protocol as pydatahub 2.29.0 speaks it.
//!
//! * [`server`]: the API over a [`cdc_datalog::Datalog`] — JSON and PB modes, LZ4/zlib/deflate
//!   request bodies, optional signature verification, DataHub's error bodies.
//! * [`client`]: a typed client — signing (§3), JSON mode, compression, retries with
//!   jittered backoff.
//! * [`sign`], [`codec`], [`pb`], [`model`]: the pieces both share.
//! * [`publisher`]: [`DatahubPublisher`], capture's `cdc_bus::Publisher` into a BLOB topic
//!   (Debezium JSON records routed by table + primary key, see [`partitioner`]).
//! * [`consumer`]: [`ShardConsumer`], reading every shard in order from given sequences and
//!   committing subscription offsets when the caller's output is durable.
//! * [`delivery`]: the JSON document a relayed batch travels as (relay → HTTP/Lambda targets).
//! * [`topic`]: checking (and on datahub-local creating) the topic, for both.
//! * [`group`]: consumer-group calls (join, heartbeat, sync, leave) on the client;
//!   [`group_consumer`]: [`GroupConsumer`], a group member reading its assigned shards and
//!   committing only what the caller acknowledged.

pub mod batch;
pub mod client;
pub mod codec;
pub mod consumer;
pub mod delivery;
pub mod group;
pub mod group_consumer;
pub mod model;
pub mod partitioner;
pub mod pb;
pub mod publisher;
pub mod schema;
pub mod server;
pub mod sign;
mod tls;
pub mod topic;

pub use client::{ClientError, DatahubClient, DatahubClientBuilder};
pub use codec::Compression;
pub use model::RecordData;
pub use server::{router, serve, ServerConfig};
pub use consumer::{ConsumeError, ConsumedRecord, ConsumerOptions, ShardConsumer, StartFrom};
pub use group::{GroupAssignment, GroupError, GroupErrorAction, JoinedGroup};
pub use group_consumer::{GroupConsumer, GroupConsumerOptions, Membership, MembershipState};
pub use publisher::{DatahubPublisher, PublishError, PublishStats, PublisherOptions, EVENT_KIND_ATTRIBUTE, SCHEMA_CHANGE_KIND};
pub use topic::{TopicError, TopicPolicy};
