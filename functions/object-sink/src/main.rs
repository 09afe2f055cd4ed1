//! `object-sink`: the object-store sink.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::Parser;

/// the object-store sink.
#[derive(Debug, Parser)]
#[command(name = "object-sink", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::ObjectSink, &cli.common, |function| {
        cdc_runtime::stage_not_built(function, "the object-store sink")
    })
    .await
}
