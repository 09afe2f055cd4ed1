//! `datahub-local`: the embedded DataHub-compatible log server.

use std::process::ExitCode;

use cdc_runtime::FunctionArgs;
use clap::Parser;

/// the embedded DataHub-compatible log server.
#[derive(Debug, Parser)]
#[command(name = "datahub-local", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::DatahubLocal, &cli.common, |function| {
        cdc_runtime::stage_not_built(function, "the embedded DataHub-compatible log server")
    })
    .await
}
