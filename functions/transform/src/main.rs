//! `transform`: the transform stage.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::Parser;

/// the transform stage.
#[derive(Debug, Parser)]
#[command(name = "transform", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::Transform, &cli.common, |function| {
        cdc_runtime::stage_not_built(function, "the transform stage")
    })
    .await
}
