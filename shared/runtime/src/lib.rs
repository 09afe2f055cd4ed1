//! The start-up every function binary shares, so each `main` is only wiring:
//!
//! 1. parse the common command line ([`FunctionArgs`]: `--config`, `--check-config`,
//!    `--print-config-reference`);
//! 2. load and validate the whole configuration for the function's [`Role`]; on any problem,
//!    print every problem at once and exit with code 2;
//! 3. start logging at `LOG_LEVEL` / `LOG_FORMAT`, log the redacted effective configuration;
//! 4. serve `/health`, `/health/live`, `/health/ready` and `/metrics` on `MONITORING_PORT`,
//!    and evaluate the guide's alerts there ([`alerting_options`]);
//! 5. run the function body until it returns or SIGTERM/SIGINT asks it to stop; a body error
//!    marks the process dead, is logged with its causes and exits with code 1.
//!
//! ```no_run
//! use cdc_runtime::{Function, FunctionArgs};
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: FunctionArgs,
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let cli = Cli::parse();
//!     cdc_runtime::run(cdc_config::Role::FileSink, &cli.common, |function: Function| async move {
//!         function.shutdown().wait().await;
//!         Ok(())
//!     })
//!     .await
//! }
//! ```

pub mod checkpoint;
mod datahub;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use cdc_config::{Config, Role};
use cdc_telemetry::{AlertRules, AlertingOptions, FunctionContext, Health, PipelineMetrics, Shutdown};

pub use checkpoint::Checkpointer;
pub use datahub::datahub_client;

/// The `s3.*` settings as S3 client options, with `OUTPUT_MAX_RETRIES` as the retry budget of
/// every request: for checkpoints in S3 and for the object sink's output.
#[cfg(feature = "s3")]
pub fn s3_options(config: &Config) -> cdc_state::s3::S3Options {
    let s3 = &config.s3;
    let mut options = cdc_state::s3::S3Options::new()
        .with_path_style(s3.path_style_access)
        .with_max_retries(config.output.max_retries);
    if let Some(endpoint) = &s3.endpoint {
        options = options.with_endpoint(endpoint.clone());
    }
    if let Some(region) = &s3.region {
        options = options.with_region(region.clone());
    }
    if let (Some(id), Some(secret)) = (&s3.access_key, &s3.secret_key) {
        options = options.with_credentials(id.expose(), secret.expose());
    }
    options
}

/// Exit code when the configuration is invalid (as `sysexits` EX_USAGE-like tools do: the
/// operator must change something before a restart can help).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when the function failed while running.
pub const EXIT_FAILURE: u8 = 1;

/// Command-line options every function accepts; `#[command(flatten)]` them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FunctionArgs {
    /// The YAML configuration file (default: `CONFIG_FILE`, else `./application.yml` when it
    /// exists). Environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print the effective (redacted) configuration and exit.
    #[arg(long, global = true)]
    pub check_config: bool,

    /// Print every setting (YAML key, environment variable, default, meaning) and exit.
    #[arg(long, global = true)]
    pub print_config_reference: bool,
}

/// Options of a bounded or restored run, shared by the functions that take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Stop cleanly (after a final checkpoint) once this long has passed, e.g. `90s`, `5m`.
    #[arg(long, value_parser = parse_duration)]
    pub max_duration: Option<std::time::Duration>,
    /// Stop cleanly (after a final checkpoint) once this many row changes went through.
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Start from this savepoint (a directory written by `savepoint`, or its `_metadata`)
    /// instead of the latest checkpoint.
    #[arg(long, value_name = "PATH")]
    pub from_savepoint: Option<PathBuf>,
}

/// Parses `90`, `90s`, `5m`, `2h` or `250ms`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let value: u64 = number.parse().map_err(|_| format!("expected a duration like 90s, 5m or 2h, got `{text}`"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(value.saturating_mul(3600))),
        other => Err(format!("unknown duration unit `{other}` in `{text}`: use ms, s, m or h")),
    }
}

/// What a running function gets: its validated configuration and its ops context.
#[derive(Debug, Clone)]
pub struct Function {
    config: Config,
    context: FunctionContext,
    ops_addr: SocketAddr,
}

impl Function {
    /// Runs `open` until it succeeds, waiting 0.5 s, 1 s, 2 s … (at most 30 s) between attempts:
    /// a dependency such as DataHub may come up after the function (compose, Kubernetes), and
    /// retrying keeps the process live where exiting would crash-loop it. Each failure is logged
    /// with `what` and handed to `on_error` (to show it in health). `None` when the function is
    /// asked to stop first; nothing was opened then, so there is nothing to checkpoint.
    pub async fn open_retrying<T, E, F, Fut>(&self, what: &str, mut on_error: impl FnMut(String), mut open: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        const FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
        const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
        let mut attempt = 0u32;
        loop {
            match open().await {
                Ok(opened) => return Some(opened),
                Err(e) => {
                    let wait = FIRST_WAIT.saturating_mul(1 << attempt.min(8)).min(LONGEST_WAIT);
                    attempt += 1;
                    let error = format!("{e:#}");
                    tracing::error!(%error, attempt, retry_in_ms = wait.as_millis() as u64, "cannot open {what}; retrying");
                    on_error(error);
                    tokio::select! {
                        _ = self.shutdown().wait() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Adds the `datahub` readiness probe: the topic answers GetTopic, asked through its own
    /// client without retries and with a short timeout (a health request must not hang).
    pub fn add_datahub_probe(&self, url: &str, project: &str, topic: &str) -> anyhow::Result<()> {
        let settings = &self.config.datahub;
        let probe = std::sync::Arc::new(datahub_client(url, settings, 0, std::time::Duration::from_secs(3))?);
        let (project, topic) = (project.to_owned(), topic.to_owned());
        self.health().add_probe("datahub", move || {
            let (probe, project, topic) = (probe.clone(), project.clone(), topic.clone());
            async move {
                match probe.get_topic(&project, &topic).await {
                    Ok(_) => cdc_telemetry::Status::Up,
                    Err(e) => cdc_telemetry::Status::down(e.to_string()),
                }
            }
        });
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn context(&self) -> &FunctionContext {
        &self.context
    }
    pub fn metrics(&self) -> &PipelineMetrics {
        self.context.metrics()
    }
    pub fn health(&self) -> &Health {
        self.context.health()
    }
    pub fn shutdown(&self) -> &Shutdown {
        self.context.shutdown()
    }
    /// Where the ops server listens (useful when `MONITORING_PORT=0` picked a free port).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }
}

/// Runs a function binary: see the crate documentation for the steps and exit codes.
pub async fn run<F, Fut>(role: Role, args: &FunctionArgs, body: F) -> ExitCode
where
    F: FnOnce(Function) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if args.print_config_reference {
        print!("{}", cdc_config::reference_markdown());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_process_env(role, args.config.clone()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{}: configuration invalid\n{err}", role.binary_name());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        println!("{}", serde_json::to_string_pretty(&config.redacted_json()).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    match serve(role, config, body).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line; logging may not be up yet.
            tracing::error!(error = format!("{err:#}"), "{} stopped with an error", role.binary_name());
            eprintln!("{}: {err:#}", role.binary_name());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A one-shot command of a function (`savepoint`): the same configuration loading, checks and
/// exit codes as [`run`], but no ops server (the function it operates on may be running on
/// this host and own `MONITORING_PORT`) and no signal handling. Errors exit with code 1.
pub async fn run_command<F, Fut>(role: Role, args: &FunctionArgs, body: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    cdc_telemetry::install_crypto_provider();
    let config = match Config::from_process_env(role, args.config.clone()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{}: configuration invalid\n{err}", role.binary_name());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _ = cdc_telemetry::init_logging(&config.logging);
    match body(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}: {err:#}", role.binary_name());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Options of the `savepoint` subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SavepointArgs {
    /// Where to write the savepoint (default: `SAVEPOINT_DIR`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `savepoint`: copies the newest valid checkpoint of `job` into a savepoint (as Flink's
/// savepoint of a running job, taken from its latest completed checkpoint; stop the function
/// with SIGTERM first for a savepoint of its final state) and prints the savepoint's path,
/// for `run --from-savepoint PATH`.
pub async fn take_savepoint(config: Config, job: &str, args: &SavepointArgs) -> anyhow::Result<()> {
    let registry = cdc_telemetry::prometheus::Registry::new();
    let metrics = std::sync::Arc::new(PipelineMetrics::new(&registry)?);
    let mut checkpointer = Checkpointer::open(&config, job, metrics)?;
    let latest = checkpointer
        .restore(None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no checkpoint of {job} in {} to take a savepoint from", config.state_backend.checkpoint_dir))?;
    let path = checkpointer.savepoint(latest, args.dir.as_deref()).await?;
    println!("{}", path.display());
    Ok(())
}

/// Steps 3–5 of [`run`] with a configuration the caller already loaded (the demo builds its
/// own): logging, ops server, the body until it returns or a signal stops it. Returns the
/// body's result.
pub async fn serve<F, Fut, T>(role: Role, config: Config, body: F) -> anyhow::Result<T>
where
    F: FnOnce(Function) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    // Before any HTTP client exists (DataHub, S3, Alertmanager, relay targets).
    cdc_telemetry::install_crypto_provider();
    // A second initialisation can only happen when a test embeds several functions in one
    // process; the first subscriber then keeps serving, which is what we want.
    if let Err(err) = cdc_telemetry::init_logging(&config.logging) {
        if !matches!(err, cdc_telemetry::TelemetryError::LoggingAlreadyInitialised) {
            return Err(err).context("setting up logging");
        }
    }
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
    tracing::info!(
        function = role.binary_name(),
        version = env!("CARGO_PKG_VERSION"),
        config = %config.redacted_json(),
        "Configuration validation passed"
    );

    let context = FunctionContext::builder(role.binary_name())
        .with_metrics_enabled(config.monitoring.metrics_enabled)
        .with_alerting(alerting_options(&config.monitoring))
        .with_signal_handlers()
        .build()
        .context("setting up metrics, health and signal handling")?;
    context.health().set_detail("function", role.binary_name().into());
    context.health().set_detail("version", env!("CARGO_PKG_VERSION").into());
    // 0.0.0.0: the kubelet and Prometheus reach the ops port from outside the container.
    let requested = SocketAddr::from(([0, 0, 0, 0], config.monitoring.port));
    let ops = context
        .start_ops_server(requested)
        .await
        .with_context(|| format!("starting the ops server on MONITORING_PORT={}", config.monitoring.port))?;
    let ops_addr = ops.local_addr();
    tracing::info!(%ops_addr, "serving /health, /health/live, /health/ready and /metrics");

    let function = Function { config, context: context.clone(), ops_addr };
    let outcome = body(function).await;
    if let Err(err) = &outcome {
        context.health().mark_dead(format!("{err:#}"));
    }
    context.shutdown().trigger();
    ops.stopped().await.context("ops server")?;
    outcome
}

/// The guide's five alerts with the thresholds of `monitoring.alerts.*`; evaluated next to the
/// ops server, shown in `/health` and `/metrics`, posted to `ALERTMANAGER_URL` when set.
pub fn alerting_options(monitoring: &cdc_config::MonitoringConfig) -> AlertingOptions {
    let rules = AlertRules::default()
        .with_latency_threshold_ms(monitoring.latency_threshold_ms as f64)
        .with_checkpoint_failure_rate(monitoring.checkpoint_failure_rate)
        .with_load_threshold(monitoring.load_threshold);
    monitoring
        .alertmanager_urls
        .iter()
        .fold(AlertingOptions::new(rules).with_interval(monitoring.alert_evaluation_interval()), |options, url| {
            options.with_alertmanager(url.clone())
        })
}

/// The body of a function whose stage is not part of this build yet: it validates its
/// configuration and serves the ops endpoints like every function, reports the stage DOWN in
/// `/health` (so `/health/ready` is 503 and no orchestrator routes work to it), and waits
/// for shutdown.
pub async fn stage_not_built(function: Function, what: &str) -> anyhow::Result<()> {
    let reason = format!("{what} is not built yet in this version");
    // Health first, then the log line: tests and operators read the line as "state is set".
    function.health().set_down("stage", reason.clone());
    tracing::warn!("{reason}; serving ops endpoints only");
    function.shutdown().wait().await;
    Ok(())
}
