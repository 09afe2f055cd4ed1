//! `cdc-capture`: reads row changes from OceanBase (MySQL mode, through its binlog service),
//! MySQL or MariaDB through the MySQL replication protocol.

use std::process::ExitCode;

use anyhow::Context;
use cdc_mysql::{CapturePlan, SourceOptions};
use cdc_runtime::{Function, FunctionArgs};
use clap::{Parser, Subcommand};

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
    Run,
    /// Connect, identify the server, run every pre-flight check, list the selected tables and
    /// the binlog head, then exit: 0 when the source is ready for capture, 1 otherwise.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    cdc_runtime::run(cdc_config::Role::CdcCapture, &cli.common, |function| async move {
        match command {
            Command::Run => run(function).await,
            Command::Check => check(function).await,
        }
    })
    .await
}

async fn gather(function: &Function) -> anyhow::Result<CapturePlan> {
    let database = &function.config().database;
    let source = SourceOptions::from_config(database)?;
    function.health().add_tcp_probe("database", source.address());
    let plan = CapturePlan::gather(&source, &database.tables, None).await?;
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
    let plan = gather(&function).await?;
    print!("{plan}");
    plan.preflight.context("the source is not ready for capture")
}

async fn run(function: Function) -> anyhow::Result<()> {
    let plan = gather(&function).await?;
    tracing::info!("capture plan:\n{plan}");
    plan.preflight.context("the source is not ready for capture")?;
    cdc_runtime::stage_not_built(function, "binlog streaming").await
}
