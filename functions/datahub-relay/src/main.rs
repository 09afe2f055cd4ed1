//! `datahub-relay`: consumes a DataHub subscription through its consumer group (replicas
//! share the shards; a replica that dies loses them to the others after the session
//! timeout) and delivers batches to the configured target (`relay.*` settings), committing
//! offsets only after the target acknowledged. See the library docs for the loop.
//!
//! Lambda mode (`AWS_LAMBDA_RUNTIME_API` set): each invocation relays for a bounded burst (see
//! [`run_lambda`]); a schedule invokes it.
//!
//! Health: `consumerGroup` is UP while this replica is a member of the group (DOWN while
//! joining and after the group refused it), so `/health/ready` reflects membership; the
//! details show the consumer id and the assigned shards.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cdc_config::{DatahubEndpoint, RelayTarget};
use cdc_datahub::{ConsumerOptions, DatahubClient, GroupConsumer, GroupConsumerOptions, MembershipState, TopicPolicy};
use cdc_runtime::{Function, FunctionArgs};
use clap::Parser;
use datahub_relay::{AwsCredentials, BatchPolicy, HttpTarget, LambdaTarget, RelayOptions, StdoutTarget, Target};

/// Relays a DataHub topic to an HTTP endpoint, an AWS Lambda function or stdout.
#[derive(Debug, Parser)]
#[command(name = "datahub-relay", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

/// Wait after a poll that found every held shard caught up.
const IDLE_WAIT: Duration = Duration::from_millis(200);
const HEALTH_CHECK: &str = "consumerGroup";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::DatahubRelay, &cli.common, run).await
}

/// The AWS credentials in the environment, if any (the Lambda target then signs).
fn aws_credentials() -> Option<AwsCredentials> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    Some(AwsCredentials { access_key_id: var("AWS_ACCESS_KEY_ID")?, secret_access_key: var("AWS_SECRET_ACCESS_KEY")?, session_token: var("AWS_SESSION_TOKEN") })
}

fn build_target(config: &cdc_config::RelayConfig) -> anyhow::Result<Target> {
    Ok(match config.target {
        RelayTarget::Http => {
            let url = config.http_url.clone().context("relay.http.url (RELAY_HTTP_URL) is required for the http target")?;
            Target::Http(HttpTarget::new(url, config.timeout())?)
        }
        RelayTarget::Lambda => {
            let function = config.lambda_function_name.clone().context("relay.lambda.functionName (RELAY_LAMBDA_FUNCTION_NAME) is required for the lambda target")?;
            let endpoint = config.lambda_endpoint_url();
            let credentials = aws_credentials();
            if credentials.is_none() {
                tracing::warn!("no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: Lambda invocations are not signed (fine for a local emulator only)");
            }
            Target::Lambda(LambdaTarget::new(&endpoint, &function, &config.lambda_region, credentials, config.timeout())?)
        }
        RelayTarget::Stdout => Target::Stdout(StdoutTarget),
    })
}

async fn run(function: Function) -> anyhow::Result<()> {
    let config = function.config().clone();
    let datahub = &config.datahub;
    let url = match &datahub.endpoint {
        Some(DatahubEndpoint::Remote(url)) => url.clone(),
        other => bail!("datahub-relay reads a DataHub topic: DATAHUB_ENDPOINT must be a DataHub or datahub-local URL, got {other:?}"),
    };
    let client = Arc::new(cdc_runtime::datahub_client(&url, datahub, datahub.max_retries, Duration::from_secs(120))?);
    let target = build_target(&config.relay)?;
    function.health().set_detail("target", target.describe().into());
    function.health().declare(HEALTH_CHECK);

    // The relay reads an existing topic; it never creates one.
    let base = ConsumerOptions::new(&datahub.project, &datahub.topic, &datahub.consumer_group).with_topic_policy(TopicPolicy::MustExist);
    let options = GroupConsumerOptions::new(base).with_session_timeout(config.relay.session_timeout());
    let relay_options = relay_options(&config);
    if let Some(env) = cdc_lambda::LambdaEnv::detect()? {
        return run_lambda(&function, &env, Burst { client, options, target, relay_options }).await;
    }
    // DataHub may come up after the relay (compose, Kubernetes): retry rather than crash-loop.
    let opened = function
        .open_retrying(
            "the DataHub topic",
            |error| function.health().set_down(HEALTH_CHECK, error),
            || GroupConsumer::open(client.clone(), options.clone()),
        )
        .await;
    let Some(mut consumer) = opened else { return Ok(()) };
    function.health().set_detail("subscription", consumer.subscription_id().into());
    let health_task = tokio::spawn(report_membership(consumer.watch_membership(), function.health().clone()));
    tracing::info!(project = %datahub.project, topic = %datahub.topic, subscription = consumer.subscription_id(), target = %target.describe(), "datahub relay running");

    let outcome = datahub_relay::run(&mut consumer, &target, &relay_options, Some(function.metrics()), function.shutdown()).await;
    // Leave the group either way, so the other replicas get the shards now; on a failure
    // nothing unacknowledged was committed, so they re-deliver it.
    if let Err(e) = consumer.close().await {
        tracing::warn!(error = format!("{e:#}"), "closing the consumer");
    }
    health_task.abort();
    let stats = outcome.context("relaying")?;
    tracing::info!(batches = stats.batches, records = stats.records, "datahub relay stopped");
    Ok(())
}

fn relay_options(config: &cdc_config::Config) -> RelayOptions {
    let relay = &config.relay;
    RelayOptions {
        project: config.datahub.project.clone(),
        topic: config.datahub.topic.clone(),
        batch: BatchPolicy {
            max_records: relay.batch_max_records as usize,
            max_bytes: usize::try_from(relay.batch_max_bytes).unwrap_or(usize::MAX),
            linger: relay.batch_linger(),
        },
        max_retries: relay.max_retries,
        retry_backoff: relay.retry_backoff(),
        idle_wait: IDLE_WAIT,
    }
}

/// What a Lambda-mode invocation relays with.
struct Burst {
    client: Arc<DatahubClient>,
    options: GroupConsumerOptions,
    target: Target,
    relay_options: RelayOptions,
}

impl Burst {
    /// Joins the group, relays for `duration` (or until the function stops), delivers and
    /// commits what is open, leaves the group.
    async fn run(&self, duration: Duration, stopping: &cdc_telemetry::Shutdown, metrics: &cdc_telemetry::PipelineMetrics) -> anyhow::Result<datahub_relay::RelayStats> {
        let mut consumer = GroupConsumer::open(self.client.clone(), self.options.clone()).await.context("joining the consumer group")?;
        let burst = cdc_telemetry::Shutdown::new();
        let timer = {
            let (burst, stopping) = (burst.clone(), stopping.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(duration) => {}
                    _ = stopping.wait() => {}
                }
                burst.trigger();
            })
        };
        let outcome = datahub_relay::run(&mut consumer, &self.target, &self.relay_options, Some(metrics), &burst).await;
        timer.abort();
        if let Err(e) = consumer.close().await {
            tracing::warn!(error = format!("{e:#}"), "closing the consumer");
        }
        outcome.context("relaying")
    }
}

/// The burst length when the invocation's event names none (`maxDurationMs`): a scheduled
/// invocation every minute, with room left in Lambda's default 3-minute limit used by
/// relayers.
const DEFAULT_BURST: Duration = Duration::from_secs(50);

/// Lambda mode: each invocation (a schedule's event, e.g. EventBridge every minute) is one
/// bounded burst of the long-lived loop: join the group, relay for `maxDurationMs` of the event
/// (default 50 s), deliver and commit what is open, leave the group, answer with what was
/// relayed. Offsets are committed only after the target acknowledged, as in the service, so a
/// burst that fails (the target keeps failing) leaves the rest for the next one.
async fn run_lambda(function: &Function, env: &cdc_lambda::LambdaEnv, burst: Burst) -> anyhow::Result<()> {
    function.health().set_detail("mode", "lambda".into());
    tracing::info!(target = %burst.target.describe(), "datahub relay running in Lambda mode");
    let burst = Arc::new(burst);
    let (stopping, metrics) = (function.shutdown().clone(), function.context().metrics().clone());
    let handler = move |event: serde_json::Value| {
        let (burst, stopping, metrics) = (burst.clone(), stopping.clone(), metrics.clone());
        async move {
            let duration = event.get("maxDurationMs").and_then(serde_json::Value::as_u64).map_or(DEFAULT_BURST, Duration::from_millis);
            let stats = burst.run(duration, &stopping, &metrics).await?;
            tracing::info!(batches = stats.batches, records = stats.records, "burst relayed");
            anyhow::Ok(serde_json::json!({"batches": stats.batches, "records": stats.records}))
        }
    };
    // SIGTERM ends the loop once the invocation in flight, if any, has answered.
    cdc_lambda::serve(env, handler, function.shutdown().wait())
        .await
        .map_err(|e| anyhow::anyhow!("Lambda Runtime API loop: {e}"))
}

/// Pushes the membership into `/health`: UP while a member.
async fn report_membership(mut membership: tokio::sync::watch::Receiver<cdc_datahub::Membership>, health: cdc_telemetry::Health) {
    loop {
        let m = membership.borrow_and_update().clone();
        match &m.state {
            MembershipState::Member => health.set_up(HEALTH_CHECK),
            MembershipState::Joining => health.set_down(HEALTH_CHECK, "joining the consumer group"),
            MembershipState::Stopped(reason) => health.set_down(HEALTH_CHECK, reason.clone()),
        }
        health.set_detail("consumerId", m.consumer_id.clone().map_or(serde_json::Value::Null, Into::into));
        health.set_detail("assignedShards", m.assigned.iter().cloned().collect::<Vec<_>>().into());
        if membership.changed().await.is_err() {
            return;
        }
    }
}
