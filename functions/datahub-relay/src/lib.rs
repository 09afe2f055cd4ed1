//! datahub-relay: a DataHub subscription, read through a consumer group, delivered in
//! batches to an HTTP endpoint, an AWS Lambda function or stdout; offsets are committed only
//! for batches the target acknowledged.
//!
//! * [`batch`]: per-shard batches (count, bytes, linger) and their JSON body;
//! * [`target`]: one delivery attempt per target, and which failures may be retried;
//! * [`relay`]: the loop (poll → batch → deliver with retries → acknowledge → commit).
//!
//! The binary (`main.rs`) is wiring: configuration, clients, health, metrics.

pub mod batch;
pub mod relay;
pub mod target;

pub use batch::{Batch, BatchPolicy, Batcher};
pub use relay::{run, RelayError, RelayOptions, RelayStats, STAGE};
pub use target::{AwsCredentials, DeliveryError, HttpTarget, LambdaTarget, StdoutTarget, Target};
