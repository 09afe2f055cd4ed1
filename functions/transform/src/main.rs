//! `transform`: change events from one DataHub topic, through the transform rules, into
//! another.
//!
//! 1. Read every shard of `datahub.topic` with the consumer group `datahub.consumerGroup`,
//!    from the subscription's committed offsets (a stateless stage needs no checkpoint of its
//!    own: the offsets are its whole state).
//! 2. Decode each record (Debezium JSON) and apply the rules (`transform.config`, see
//!    cdc-transform): a transformed event is published to `transform.outputTopic`; a filtered
//!    one is dropped; one that cannot be decoded or transformed is put, unchanged, to
//!    `transform.dlqTopic` with attributes `cdc.dlq.stage`, `cdc.dlq.error`, `cdc.dlq.shard`
//!    and `cdc.dlq.sequence`.
//! 3. Only after both puts were acknowledged are the input offsets of the batch committed.
//!
//! A crash between 2 and 3 publishes the batch again after the restart (at least once): the
//! events keep their source positions and are routed to the same shards, so the file sink
//! drops the repeats by (source, shard) position. Dead letters may repeat likewise.
//! To replay dead letters after fixing the rules, run a transform with the fixed rules whose
//! `datahub.topic` is the DLQ topic: its records are the original ones.
//!
//! Lambda mode (`AWS_LAMBDA_RUNTIME_API` set): `datahub-relay` reads the input topic and
//! invokes this function with one shard's batch at a time; step 2 runs per invocation and the
//! answer, once both puts were acknowledged, is what lets the relay commit the input offsets.
//!
//! Records that are not row changes (`cdc.event=schema_change`) are not forwarded: each
//! transformed event carries its own output schema.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cdc_config::DatahubEndpoint;
use cdc_datahub::client::PutRecord;
use cdc_datahub::partitioner::{route_hash, ShardMap};
use cdc_datahub::topic::{ensure_topic, TopicPolicy};
use cdc_datahub::{
    ConsumedRecord, ConsumerOptions, DatahubClient, DatahubPublisher, PublisherOptions, RecordData, ShardConsumer,
    EVENT_KIND_ATTRIBUTE,
};
use cdc_event::Event;
use cdc_runtime::{Function, FunctionArgs};
use cdc_transform::{TransformOptions, Transformer};
use clap::Parser;

/// Reads change events from a DataHub topic, applies the transform rules, publishes them to
/// another topic.
#[derive(Debug, Parser)]
#[command(name = "transform", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

/// The stage label of this function's metrics.
const STAGE: &str = "transform";
/// Wait after a poll that found every shard caught up.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Attributes of a dead-letter record.
const DLQ_STAGE_ATTRIBUTE: &str = "cdc.dlq.stage";
const DLQ_ERROR_ATTRIBUTE: &str = "cdc.dlq.error";
const DLQ_SHARD_ATTRIBUTE: &str = "cdc.dlq.shard";
const DLQ_SEQUENCE_ATTRIBUTE: &str = "cdc.dlq.sequence";
/// Reasons are cut to this many characters in the attribute (the record itself is whole).
const MAX_REASON_CHARS: usize = 2000;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::Transform, &cli.common, run).await
}

fn load_rules(config: &cdc_config::Config) -> anyhow::Result<Transformer> {
    let Some(path) = &config.transform.config else {
        bail!("TRANSFORM_CONFIG is required");
    };
    let mut options = TransformOptions::new();
    if let Some(salt) = &config.transform.hash_salt {
        options = options.with_hash_salt(salt.expose().as_bytes());
    }
    let loaded = Transformer::load(path, &options).map_err(|e| anyhow::anyhow!("{e}"))?;
    for warning in &loaded.warnings {
        tracing::warn!(rules = %path.display(), "{warning}");
    }
    Ok(loaded.transformer)
}

/// Where dead letters go: raw records with the reason in attributes.
struct DeadLetters {
    client: Arc<DatahubClient>,
    project: String,
    topic: String,
    shards: ShardMap,
    max_retries: u32,
}

impl DeadLetters {
    /// Puts `records`, re-sending the ones the server rejected; fails after `max_retries`.
    async fn put(&self, mut records: Vec<PutRecord>) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        while !records.is_empty() {
            let failed = self
                .client
                .put_records(&self.project, &self.topic, &records)
                .await
                .with_context(|| format!("putting dead letters to {}.{}", self.project, self.topic))?;
            if failed.is_empty() {
                return Ok(());
            }
            attempt += 1;
            if attempt > self.max_retries {
                bail!("{} dead letter(s) rejected by {}.{}: {}: {}", failed.len(), self.project, self.topic, failed[0].code, failed[0].message);
            }
            let mut retry = Vec::with_capacity(failed.len());
            for f in &failed {
                if let Some(record) = records.get(f.index) {
                    retry.push(record.clone());
                }
            }
            records = retry;
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
        }
        Ok(())
    }

    fn record(&self, record: &ConsumedRecord, event: Option<&Event>, stage: &str, reason: &str) -> PutRecord {
        // Routed like the event would be, so dead letters of one key stay in order.
        let shard = match event {
            Some(event) => self.shards.shard_for(route_hash(event)).to_owned(),
            None => self.shards.shard_ids().next().unwrap_or("0").to_owned(),
        };
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let mut out = PutRecord::new(RecordData::Blob(record.payload.clone()))
            .with_shard(shard)
            .with_attribute(DLQ_STAGE_ATTRIBUTE, stage)
            .with_attribute(DLQ_ERROR_ATTRIBUTE, reason)
            .with_attribute(DLQ_SHARD_ATTRIBUTE, &*record.shard)
            .with_attribute(DLQ_SEQUENCE_ATTRIBUTE, record.sequence.to_string());
        for (k, v) in &record.attributes {
            out = out.with_attribute(k.clone(), v.clone());
        }
        out
    }
}

/// The transform of one batch: rules, where outputs and dead letters go. Used by the
/// long-lived loop (batches it polled) and by Lambda mode (batches the relay delivered).
struct Stage {
    transformer: Transformer,
    publisher: DatahubPublisher,
    dead_letters: DeadLetters,
}

/// What [`Stage::process`] did with a batch.
#[derive(Debug, Default)]
struct Processed {
    /// The next sequence per input shard: what to commit once the outputs are durable.
    next: BTreeMap<Arc<str>, u64>,
    published: u64,
    filtered: u64,
    dead_lettered: u64,
}

impl Stage {
    /// Transforms `records` and publishes the results and dead letters; returns once both puts
    /// were acknowledged (outputs first: the caller commits input offsets only after this).
    async fn process(&mut self, records: &[ConsumedRecord], metrics: &cdc_telemetry::PipelineMetrics) -> anyhow::Result<Processed> {
        metrics.add_in(records.len() as u64);
        metrics.add_collected(STAGE, records.len() as u64);
        let mut processed = Processed::default();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for record in records {
            processed.next.insert(record.shard.clone(), record.sequence + 1);
            if record.attributes.contains_key(EVENT_KIND_ATTRIBUTE) {
                tracing::debug!(shard = %record.shard, sequence = record.sequence, "not a row change; not forwarded");
                continue;
            }
            let event = match cdc_event::debezium::from_slice(&record.payload) {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(shard = %record.shard, sequence = record.sequence, error = %e, "record is not a Debezium change event; sent to the dead-letter topic");
                    dead.push(self.dead_letters.record(record, None, "decode", &e.to_string()));
                    continue;
                }
            };
            match self.transformer.apply(&event) {
                Ok(Some(transformed)) => out.push(Event::Change(transformed)),
                Ok(None) => processed.filtered += 1,
                Err(error) => {
                    tracing::warn!(shard = %record.shard, sequence = record.sequence, table = %event.schema.table, %error, "record failed the transform; sent to the dead-letter topic");
                    dead.push(self.dead_letters.record(record, Some(&Event::Change(event)), cdc_transform::DLQ_STAGE, &error.to_string()));
                }
            }
        }
        self.publisher.publish_events(&out).await.context("publishing transformed events")?;
        processed.dead_lettered = dead.len() as u64;
        self.dead_letters.put(dead).await?;
        processed.published = out.len() as u64;
        metrics.add_out(processed.published);
        metrics.add_sent(STAGE, processed.published);
        metrics.add_dead_lettered(processed.dead_lettered);
        metrics.add_failed(STAGE, processed.dead_lettered);
        tracing::debug!(read = records.len(), published = processed.published, filtered = processed.filtered, dead_lettered = processed.dead_lettered, "batch transformed");
        Ok(processed)
    }
}

async fn run(function: Function) -> anyhow::Result<()> {
    let config = function.config().clone();
    let datahub = &config.datahub;
    let url = match &datahub.endpoint {
        Some(DatahubEndpoint::Remote(url)) => url.clone(),
        other => bail!("transform reads and writes DataHub topics: DATAHUB_ENDPOINT must be a DataHub or datahub-local URL, got {other:?}"),
    };
    let Some(output_topic) = config.transform.output_topic.clone() else {
        bail!("TRANSFORM_OUTPUT_TOPIC is required");
    };
    let output_project = config.transform.output_project.clone();
    let dlq_topic = config.transform.dlq_topic.clone().unwrap_or_else(|| format!("{output_topic}-dlq"));
    let transformer = load_rules(&config)?;
    let client = Arc::new(cdc_runtime::datahub_client(&url, datahub, datahub.max_retries, Duration::from_secs(120))?);
    let lambda = cdc_lambda::LambdaEnv::detect()?;

    // `datahub`: the topic answers.
    function.add_datahub_probe(&url, &datahub.project, &datahub.topic)?;

    // DataHub may come up after this function: retry opening rather than crash-loop. In Lambda
    // mode the relay reads the input topic; only the outputs are opened here.
    let consumer_options = ConsumerOptions::new(&datahub.project, &datahub.topic, &datahub.consumer_group);
    let publisher_options = PublisherOptions::new(&output_project, &output_topic).with_max_retries(datahub.max_retries);
    let opened = function
        .open_retrying(
            "the DataHub topics",
            |error| function.health().set_detail("datahubError", error.into()),
            || async {
                let consumer = match lambda {
                    Some(_) => None,
                    None => Some(ShardConsumer::open(client.clone(), consumer_options.clone(), std::iter::empty()).await?),
                };
                let publisher = DatahubPublisher::connect(client.clone(), publisher_options.clone()).await?;
                let shards = ensure_topic(&client, &output_project, &dlq_topic, TopicPolicy::default()).await?;
                anyhow::Ok((consumer, publisher, shards))
            },
        )
        .await;
    let Some((consumer, publisher, shards)) = opened else { return Ok(()) };
    let dead_letters = DeadLetters {
        client: client.clone(),
        project: output_project.clone(),
        topic: dlq_topic.clone(),
        shards,
        max_retries: datahub.max_retries,
    };
    function.health().remove_detail("datahubError");
    let mut stage = Stage { transformer, publisher, dead_letters };
    if let Some(env) = &lambda {
        tracing::info!(output = %format!("{output_project}.{output_topic}"), dlq = %format!("{output_project}.{dlq_topic}"), "transform running in Lambda mode");
        return run_lambda(&function, env, stage).await;
    }
    let mut consumer = consumer.context("the input topic's consumer (opened outside Lambda mode)")?;
    function.health().set_detail("subscription", consumer.subscription_id().into());
    tracing::info!(
        input = %format!("{}.{}", datahub.project, datahub.topic),
        output = %format!("{output_project}.{output_topic}"),
        dlq = %format!("{output_project}.{dlq_topic}"),
        subscription = consumer.subscription_id(),
        "transform running"
    );

    let shutdown = function.shutdown().clone();
    let metrics = function.metrics();
    loop {
        let records = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            polled = consumer.poll() => polled.context("reading DataHub")?,
        };
        function.health().heartbeat();
        if records.is_empty() {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(IDLE_WAIT) => {}
            }
            continue;
        }
        // Outputs first, offsets last: a failure here leaves the offsets where they were.
        let processed = stage.process(&records, metrics).await?;
        if let Err(e) = consumer.commit(processed.next.iter().map(|(s, n)| (&**s, *n))).await {
            // The outputs are durable; an uncommitted offset only means a repeat after a
            // restart, which the sink drops. Retried with the next batch.
            tracing::warn!(error = format!("{e:#}"), "committing input offsets failed");
        }
    }
    tracing::info!(published = stage.publisher.stats().records, "transform stopped");
    Ok(())
}

/// Lambda mode: each invocation is one batch the relay delivered
/// ([`cdc_datahub::delivery`]); the answer comes once its outputs are acknowledged, so the
/// relay commits the input offsets only then. A retried invocation publishes the batch again
/// (at least once, as a restart of the long-lived stage does): the events keep their source
/// positions and shards, so the sink drops the repeats.
async fn run_lambda(function: &Function, env: &cdc_lambda::LambdaEnv, stage: Stage) -> anyhow::Result<()> {
    let stage = Arc::new(tokio::sync::Mutex::new(stage));
    let metrics = function.context().metrics().clone();
    let handler = move |event: serde_json::Value| {
        let (stage, metrics) = (stage.clone(), metrics.clone());
        async move {
            let batch = cdc_datahub::delivery::DeliveredBatch::from_value(event).context("the invocation's event")?;
            let processed = stage.lock().await.process(&batch.records, &metrics).await?;
            anyhow::Ok(serde_json::json!({
                "shard": &*batch.shard,
                "firstSequence": batch.first_sequence,
                "lastSequence": batch.last_sequence,
                "count": batch.records.len(),
                "published": processed.published,
                "filtered": processed.filtered,
                "deadLettered": processed.dead_lettered,
            }))
        }
    };
    // SIGTERM ends the loop once the invocation in flight, if any, has answered.
    cdc_lambda::serve(env, handler, function.shutdown().wait())
        .await
        .map_err(|e| anyhow::anyhow!("Lambda Runtime API loop: {e}"))
}
