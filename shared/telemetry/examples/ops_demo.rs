//! Serves the ops endpoints with some synthetic traffic, for trying the guide's commands:
//! `cargo run -p cdc-telemetry --example ops_demo -- --monitoring-port 8080`, then
//! `curl -s localhost:8080/metrics?format=json | jq '.records.in.rate'`. Ctrl-C stops it.

use std::time::Duration;

use cdc_telemetry::{init_logging, FunctionContext, TelemetryArgs};
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> Result<(), cdc_telemetry::TelemetryError> {
    let cli = Cli::parse();
    init_logging(&cli.telemetry.log_level, cli.telemetry.log_format)?;
    let ctx = FunctionContext::builder("ops-demo")
        .with_metrics_enabled(cli.telemetry.metrics_enabled)
        .with_signal_handlers()
        .build()?;
    let ops = ctx.start_ops_server(cli.telemetry.ops_addr()).await?;
    tracing::info!(addr = %ops.local_addr(), "try /health, /health/ready, /metrics");
    ctx.health().set_up("database");
    ctx.health().set_up("datahub");

    let metrics = ctx.metrics().clone();
    let shutdown = ctx.shutdown().clone();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n: u64 = 0;
    while !shutdown.is_triggered() {
        tokio::select! {
            _ = tick.tick() => {
                metrics.add_in(100);
                metrics.add_collected("capture", 100);
                metrics.add_sent("capture", 99);
                metrics.add_failed("capture", 1);
                metrics.add_dead_lettered(1);
                metrics.add_out(99);
                n += 1;
                // A spread of latencies so p50 and p99 differ.
                metrics.observe_latency(Duration::from_millis(20 + (n * 37) % 100));
                ctx.health().heartbeat();
            }
            () = shutdown.wait() => {}
        }
    }
    ops.stopped().await
}
