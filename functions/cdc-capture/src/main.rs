//! `cdc-capture`: reads row changes from OceanBase (MySQL mode, through its binlog service),
//! MySQL or MariaDB through the MySQL replication protocol.

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
        Command::Run(args) => cdc_runtime::run(role, &cli.common, |function| run(function, args)).await,
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
