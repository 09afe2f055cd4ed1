//! `cdc-pipeline`: every stage in one process on the embedded defaults, and the `demo`
//! command of the README.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::{Parser, Subcommand};

mod demo;

/// The whole pipeline in one process.
#[derive(Debug, Parser)]
#[command(name = "cdc-pipeline", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline (the default).
    Run,
    /// Start a throwaway MariaDB with a demo schema and workload and show what the pipeline
    /// captures from it. Needs no configuration.
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Demo(args) => match demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("demo failed: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run => {
            cdc_runtime::run(cdc_config::Role::CdcPipeline, &cli.common, |function| {
                cdc_runtime::stage_not_built(function, "the all-in-one pipeline")
            })
            .await
        }
    }
}
