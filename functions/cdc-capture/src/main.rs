//! `cdc-capture`: reads row changes from OceanBase (MySQL mode, through its binlog service),
//! MySQL or MariaDB through the MySQL replication protocol.
//!
//! Long-lived (the default), bounded (`run --max-duration`, `--max-events`, for a scheduler
//! such as a Kubernetes CronJob), or in Lambda mode one bounded run per invocation (see
//! [`run_lambda`]). Checkpoints go to `CHECKPOINT_DIR`: a local directory or `s3://…`.

use std::process::ExitCode;

use anyhow::Context;
use cdc_event::Position;
use cdc_mysql::{CapturePlan, SourceOptions};
use cdc_runtime::{Function, FunctionArgs, RunArgs};
use clap::{Parser, Subcommand};

mod capture;

/// Change-data capture from a MySQL-protocol binlog.
#[derive(Debug, Parser)]
#[command(name = "cdc-capture", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the capture (the default).
    Run(RunArgs),
    /// Connect, identify the server, run every pre-flight check, list the selected tables and
    /// the binlog head, then exit: 0 when the source is ready for capture, 1 otherwise.
    Check,
    /// Write the newest checkpoint as a savepoint (default under SAVEPOINT_DIR) and print its
    /// path, for `run --from-savepoint PATH`.
    Savepoint(cdc_runtime::SavepointArgs),
}

/// The checkpoint job name of capture.
const JOB: &str = "cdc-capture";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let role = cdc_config::Role::CdcCapture;
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => cdc_runtime::run(role, &cli.common, |function| serve(function, args)).await,
        Command::Check => cdc_runtime::run(role, &cli.common, check).await,
        Command::Savepoint(args) => {
            cdc_runtime::run_command(role, &cli.common, |config| async move {
                cdc_runtime::take_savepoint(config, JOB, &args).await
            })
            .await
        }
    }
}

async fn gather(function: &Function, resume_file: Option<&str>) -> anyhow::Result<CapturePlan> {
    let database = &function.config().database;
    let source = SourceOptions::from_config(database)?;
    function.health().add_tcp_probe("database", source.address());
    let plan = CapturePlan::gather(&source, &database.tables, resume_file).await?;
    let health = function.health();
    health.set_detail("server", serde_json::to_value(&plan.server).unwrap_or_default());
    if let Some(head) = &plan.head {
        health.set_detail("binlogHead", serde_json::to_value(head).unwrap_or_default());
    }
    health.set_detail(
        "tables",
        plan.tables.iter().map(|t| format!("{}.{}", t.database, t.table)).collect::<Vec<_>>().into(),
    );
    Ok(plan)
}

async fn check(function: Function) -> anyhow::Result<()> {
    let plan = gather(&function, None).await?;
    print!("{plan}");
    plan.preflight.context("the source is not ready for capture")
}

/// A capture run, or in Lambda mode one bounded run per invocation.
async fn serve(function: Function, args: RunArgs) -> anyhow::Result<()> {
    match cdc_lambda::LambdaEnv::detect()? {
        Some(env) => run_lambda(function, &env, args).await,
        None => run(function, args).await,
    }
}

/// The burst length when neither the invocation's event (`maxDurationMs`) nor
/// `--max-duration` sets one: room for the final checkpoint in a 60-second function timeout
/// under a once-a-minute schedule.
const DEFAULT_BURST: std::time::Duration = std::time::Duration::from_secs(45);

/// Lambda mode: a schedule (EventBridge) invokes the function; each invocation is one bounded
/// run — restore the checkpoint (`CHECKPOINT_DIR`, `s3://…` in Lambda), stream for
/// `maxDurationMs` of the event (else `--max-duration`, else 45 s) or `maxEvents`, take the
/// final checkpoint, answer. Give the function a reserved concurrency of 1: two bursts at
/// once would both read the binlog (the checkpoint store's compare-and-swap keeps only one
/// state, but both would publish).
async fn run_lambda(function: Function, env: &cdc_lambda::LambdaEnv, args: RunArgs) -> anyhow::Result<()> {
    tracing::info!(function = %env.function_name, "capture running in Lambda mode");
    let handler = |event: serde_json::Value| {
        let (function, mut args) = (function.clone(), args.clone());
        async move {
            let number = |key: &str| event.get(key).and_then(serde_json::Value::as_u64);
            args.max_duration = number("maxDurationMs").map(std::time::Duration::from_millis).or(args.max_duration).or(Some(DEFAULT_BURST));
            args.max_events = number("maxEvents").or(args.max_events);
            let started = std::time::Instant::now();
            // Boxed: the capture future nested in the Runtime API loop's is too deep a type.
            Box::pin(run(function, args)).await?;
            anyhow::Ok(serde_json::json!({"status": "stopped at its limit", "seconds": started.elapsed().as_secs_f64()}))
        }
    };
    // SIGTERM ends the loop once the invocation in flight, if any, has answered.
    cdc_lambda::serve(env, handler, function.shutdown().wait())
        .await
        .map_err(|e| anyhow::anyhow!("Lambda Runtime API loop: {e}"))
}

async fn run(function: Function, args: RunArgs) -> anyhow::Result<()> {
    let mut checkpointer =
        cdc_runtime::Checkpointer::open(function.config(), JOB, function.context().metrics().clone())?;
    let restored = checkpointer.restore(args.from_savepoint.as_deref()).await?;
    let state: Option<cdc_mysql::CaptureState> = match &restored {
        Some(checkpoint) => checkpoint.state(cdc_mysql::CAPTURE_STATE).context("reading capture state from the checkpoint")?,
        None => None,
    };
    let resume_file = state.as_ref().map(|s| s.resume.file.clone());
    let plan = gather(&function, resume_file.as_deref()).await?;
    tracing::info!("capture plan:\n{plan}");
    plan.preflight.clone().context("the source is not ready for capture")?;

    if let Some(state) = &state {
        tracing::info!(resume = %state.resume, snapshot_in_progress = state.snapshot.is_some(), "resuming from the checkpoint");
    }
    let head = plan.head.as_ref().context("the server reports no binlog position")?;
    let head = Position::stream(plan.server.flavor, head.file.clone(), head.position);
    let limits = capture::RunLimits { max_duration: args.max_duration, max_events: args.max_events };
    capture::run(function, state, head, checkpointer, limits).await
}
