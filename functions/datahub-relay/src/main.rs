//! `datahub-relay`: the DataHub relay.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::Parser;

/// the DataHub relay.
#[derive(Debug, Parser)]
#[command(name = "datahub-relay", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::DatahubRelay, &cli.common, |function| {
        cdc_runtime::stage_not_built(function, "the DataHub relay")
    })
    .await
}
