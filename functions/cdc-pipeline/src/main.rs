//! `cdc-pipeline`: every stage in one process on the embedded defaults (capture → embedded
//! DataHub-compatible log → file sink), and the `demo` command of the README.

use std::process::ExitCode;

use cdc_runtime::{FunctionArgs, RunArgs};
use clap::{Parser, Subcommand};

mod demo;
mod pipeline;

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
    Run(RunArgs),
    /// Start a throwaway MariaDB with a demo schema and workload, run the pipeline over it and
    /// leave Parquet files to query. Needs no configuration.
    Demo(demo::DemoArgs),
    /// Write the newest checkpoint as a savepoint (default under SAVEPOINT_DIR) and print its
    /// path, for `run --from-savepoint PATH`.
    Savepoint(cdc_runtime::SavepointArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Demo(args) => match demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("demo failed: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Savepoint(args) => {
            cdc_runtime::run_command(cdc_config::Role::CdcPipeline, &cli.common, |config| async move {
                cdc_runtime::take_savepoint(config, pipeline::JOB, &args).await
            })
            .await
        }
        Command::Run(run) => {
            cdc_runtime::run(cdc_config::Role::CdcPipeline, &cli.common, |function| async move {
                let options = pipeline::PipelineOptions { run, ..Default::default() };
                pipeline::run(function, options).await.map(|_| ())
            })
            .await
        }
    }
}
