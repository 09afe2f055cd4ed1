//! `file-sink`: the file sink.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::Parser;

/// the file sink.
#[derive(Debug, Parser)]
#[command(name = "file-sink", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::FileSink, &cli.common, |function| {
        cdc_runtime::stage_not_built(function, "the file sink")
    })
    .await
}
