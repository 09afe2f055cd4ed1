//! The capture function's loop: batches of `cdc_mysql::CaptureStream` are published to the
//! bus, and only then is the stream's resume position committable; checkpoints store it, so a
//! crash replays at most the events after it, which carry positions at or below what was
//! already published and are dropped downstream.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cdc_bus::{JsonLinesBus, Publisher};
use cdc_config::{Config, DatahubEndpoint};
use cdc_event::{Event, Position};
use cdc_mysql::{BatchOptions, BinlogReaderConfig, CaptureState, CaptureStream, SourceOptions, Start, TableSelector, CAPTURE_STATE};
use cdc_runtime::{Checkpointer, Function};

/// Limits of a bounded run (a scheduler or function platform running capture in bursts).
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    pub max_duration: Option<Duration>,
    pub max_events: Option<u64>,
}

const HEARTBEAT: Duration = Duration::from_secs(1);

enum Bus {
    File(JsonLinesBus),
    /// DataHub or datahub-local. Connected at the first publish (`open` is synchronous); the
    /// reader's heartbeats reach the first publish within about a second of the start, so a
    /// wrong endpoint or a missing topic still stops capture right away.
    Remote(Box<RemoteBus>),
}

/// The DataHub publisher and what it needs to connect.
struct RemoteBus {
    client: std::sync::Arc<cdc_datahub::DatahubClient>,
    options: cdc_datahub::PublisherOptions,
    publisher: Option<cdc_datahub::DatahubPublisher>,
}

impl RemoteBus {
    fn new(url: &str, config: &Config) -> anyhow::Result<Self> {
        let datahub = &config.datahub;
        let client = cdc_runtime::datahub_client(url, datahub, datahub.max_retries, std::time::Duration::from_secs(120))?;
        // The shard count of a topic created on datahub-local; the service's topics are made by
        // operators. Read here until cdc-config has a `datahub.shardCount` row.
        let shard_count = match std::env::var("DATAHUB_SHARD_COUNT") {
            Ok(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .with_context(|| format!("DATAHUB_SHARD_COUNT={text}: expected a shard count from 1 to 256"))?,
            Err(_) => cdc_datahub::topic::DEFAULT_SHARD_COUNT,
        };
        let options = cdc_datahub::PublisherOptions::new(&datahub.project, &datahub.topic)
            .with_max_retries(datahub.max_retries)
            .with_topic_policy(cdc_datahub::TopicPolicy::CreateIfLocal {
                shard_count,
                lifecycle_days: cdc_datahub::topic::DEFAULT_LIFECYCLE_DAYS,
            });
        Ok(RemoteBus { client: std::sync::Arc::new(client), options, publisher: None })
    }

    async fn publish(&mut self, events: &[Event]) -> anyhow::Result<()> {
        let publisher = match &mut self.publisher {
            Some(publisher) => publisher,
            None => {
                let connected = cdc_datahub::DatahubPublisher::connect(self.client.clone(), self.options.clone())
                    .await
                    .context("connecting to DataHub")?;
                self.publisher.insert(connected)
            }
        };
        publisher.publish_events(events).await.context("publishing to DataHub")
    }
}

impl Bus {
    fn open(config: &Config) -> anyhow::Result<Self> {
        match &config.datahub.endpoint {
            Some(DatahubEndpoint::File(path)) => Ok(Bus::File(
                JsonLinesBus::open(path).with_context(|| format!("DATAHUB_ENDPOINT=file://{}", path.display()))?,
            )),
            Some(DatahubEndpoint::Remote(url)) => Ok(Bus::Remote(Box::new(RemoteBus::new(url, config)?))),
            Some(DatahubEndpoint::Embedded) | None => {
                bail!("cdc-capture needs DATAHUB_ENDPOINT (a DataHub URL or file:///path/events.jsonl)")
            }
        }
    }

    async fn publish(&mut self, events: &[Event]) -> anyhow::Result<()> {
        match self {
            Bus::File(bus) => bus.publish(events).await.context("publishing to the JSON-lines bus"),
            Bus::Remote(bus) => bus.publish(events).await,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs capture until shutdown, a limit, or an error.
/// `restored` is the checkpointed state; without one, capture starts as `database.snapshotMode`
/// says, streaming from `head` (the binlog head) or from a new snapshot's position.
pub async fn run(function: Function, restored: Option<CaptureState>, head: Position, mut checkpointer: Checkpointer, limits: RunLimits) -> anyhow::Result<()> {
    let config = function.config().clone();
    let source = SourceOptions::from_config(&config.database)?;
    let selector: TableSelector = config.database.tables.clone();
    let reader_config = BinlogReaderConfig::for_source(&source, &config.database, selector, &head)
        .with_heartbeat(HEARTBEAT);
    let mut bus = Bus::open(&config)?;
    let reader_server_id = reader_config.server_id;
    let start = Start::for_state(&config.database, &reader_config, restored.as_ref());
    let state = restored.unwrap_or_else(|| CaptureState::streaming_from(head));
    let resume = state.resume.clone();
    let mut stream = CaptureStream::start(source, reader_config, state, start, BatchOptions::default());
    function.health().set_up("binlog");
    function.health().set_detail("capture", stream.state().summary());
    tracing::info!(%resume, server_id = reader_server_id, "streaming the binlog");

    let metrics = function.metrics();
    let started = Instant::now();
    let mut published_changes: u64 = 0;
    let shutdown = function.shutdown().clone();
    let outcome: anyhow::Result<()> = loop {
        let limit_reached = limits.max_duration.is_some_and(|d| started.elapsed() >= d)
            || limits.max_events.is_some_and(|max| published_changes >= max);
        if limit_reached || shutdown.is_triggered() {
            break Ok(());
        }
        tokio::select! {
            biased;
            _ = shutdown.wait() => break Ok(()),
            batch = stream.next_batch() => {
                let batch = match batch {
                    Ok(Some(batch)) => batch,
                    Ok(None) => {
                        tracing::info!("initial snapshot complete (snapshot mode initial_only); stopping");
                        break Ok(());
                    }
                    Err(err) => break Err(anyhow::Error::new(err).context("capture")),
                };
                for event in &batch.events {
                    if let Event::Change(change) = event {
                        let lag_ms = (now_ms() - change.commit_ts_ms).max(0) as u64;
                        metrics.set_source_lag(Duration::from_millis(lag_ms));
                    }
                }
                let changes = batch.changes() as u64;
                metrics.add_collected("capture", changes);
                metrics.add_in(changes);
                if let Err(err) = bus.publish(&batch.events).await {
                    break Err(err);
                }
                stream.published(&batch);
                if batch.is_snapshot() {
                    // Required by the snapshot's resume rule: nothing beyond one batch may be
                    // published past the last checkpoint while snapshotting.
                    if let Err(err) = save(&mut checkpointer, stream.state()).await {
                        break Err(err.context("checkpoint after a snapshot batch"));
                    }
                }
                published_changes += changes;
                metrics.add_sent("capture", changes);
                metrics.add_out(changes);
                function.health().set_detail("capture", stream.state().summary());
            }
        }
        if checkpointer.is_due() {
            // A failed checkpoint is counted and logged; the previous one stays valid.
            let _ = save(&mut checkpointer, stream.state()).await;
        }
    };
    if outcome.is_ok() {
        save(&mut checkpointer, stream.state()).await.context("final checkpoint")?;
        tracing::info!(resume = %stream.state().resume, published_changes, "capture stopped");
    }
    outcome
}

async fn save(checkpointer: &mut Checkpointer, state: &CaptureState) -> anyhow::Result<()> {
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state(CAPTURE_STATE, state).context("encoding capture state")?;
    checkpointer.checkpoint(checkpoint).await.map(|_| ())
}
