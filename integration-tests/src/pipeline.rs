//! The functions as containers, with the settings of `deploy/compose/docker-compose.yml`
//! (short checkpoint intervals so a test commits often), and the scenario every test shares:
//! workload rounds with a function restarted in each, then a marker row, then the wait until
//! what was committed replays into exactly the source table.

use std::time::Duration;

use anyhow::bail;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::{GenericImage, ImageExt};

use crate::images::{self, CDC_CAPTURE, DATAHUB_LOCAL};
use crate::replay::diff;
use crate::source::{self, Source, Table, MARKER_ID};
use crate::topology::{function_image, Topology};
use crate::{env_usize, wait_until, DEADLINE};

pub const PROJECT: &str = "cdc_it";
pub const TOPIC: &str = "events";
/// Shards of the topic capture creates.
pub const SHARDS: &str = "4";
/// Checkpoint interval (ms) of every function: short, so files and offsets commit often.
pub const CHECKPOINT_INTERVAL_MS: &str = "500";
/// The DataHub API port of datahub-local inside the network.
pub const DATAHUB_PORT: u16 = 9091;
/// The ops port (`/health`, `/metrics`) of every function image (`MONITORING_PORT`).
pub const MONITORING_PORT: u16 = 8080;

/// The log line each function writes once it runs (the readiness condition).
pub fn ready_line(function: &str) -> &'static str {
    match function {
        "datahub-local" => "serving the DataHub API",
        "cdc-capture" => "streaming the binlog",
        "file-sink" => "file sink running",
        "object-sink" => "object sink running",
        "datahub-relay" => "datahub relay running",
        "transform" => "transform running",
        "cdc-pipeline" => "streaming the binlog",
        other => panic!("no ready line known for {other}"),
    }
}

/// A function's container request: its image, readiness, logs as text, and `env`.
pub fn function(function: &str, env: Vec<(String, String)>) -> testcontainers::ContainerRequest<GenericImage> {
    let mut request = function_image(&images::function_image(function), ready_line(function))
        .with_env_var("LOG_FORMAT", "text")
        .with_env_var("LOG_LEVEL", "info");
    for (key, value) in env {
        request = request.with_env_var(key, value);
    }
    request
}

/// How a DataHub client of the topology reaches datahub-local (as consumer group `group`).
pub fn datahub_env(topology: &Topology, group: &str) -> Vec<(String, String)> {
    [
        ("DATAHUB_ENDPOINT", format!("http://{}:{DATAHUB_PORT}", topology.host(DATAHUB_LOCAL))),
        ("DATAHUB_ACCESS_ID", "local-id".to_owned()),
        ("DATAHUB_ACCESS_KEY", "local-key".to_owned()),
        ("DATAHUB_PROJECT", PROJECT.to_owned()),
        ("DATAHUB_TOPIC", TOPIC.to_owned()),
        ("DATAHUB_CONSUMER_GROUP", group.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Checkpoints in the container's own file system (kept across its restarts).
pub fn checkpoint_env() -> Vec<(String, String)> {
    vec![
        ("CHECKPOINT_DIR".into(), "file:///var/lib/cdc/checkpoints".into()),
        ("CHECKPOINT_INTERVAL".into(), CHECKPOINT_INTERVAL_MS.into()),
        ("CHECKPOINT_MIN_PAUSE".into(), "0".into()),
    ]
}

/// datahub-local's settings: the DataHub API on [`DATAHUB_PORT`], the log in the image's
/// state directory.
pub fn datahub_local_env() -> Vec<(String, String)> {
    vec![("DATAHUB_LOCAL_PORT".into(), DATAHUB_PORT.to_string()), ("DATAHUB_LOCAL_DATA_DIR".into(), "/var/lib/datahub-local".into())]
}

/// cdc-capture's settings: the source of [`source::start`] into the topic on datahub-local.
pub fn capture_settings(topology: &Topology) -> Vec<(String, String)> {
    let mut env = datahub_env(topology, "capture");
    env.extend(source::capture_env(topology));
    env.extend(checkpoint_env());
    env.push(("DATAHUB_SHARD_COUNT".into(), SHARDS.into()));
    env
}

/// MariaDB, datahub-local and cdc-capture streaming the source's binlog into the topic.
pub async fn start_source_and_capture(topology: &mut Topology, seed: u64) -> anyhow::Result<Source> {
    let source = source::start(topology, &images::mariadb_image(), seed).await?;
    topology.start(DATAHUB_LOCAL, function(DATAHUB_LOCAL, datahub_local_env()), &[]).await?;
    let env = capture_settings(topology);
    topology.start(CDC_CAPTURE, function(CDC_CAPTURE, env), &[]).await?;
    Ok(source)
}

/// A host directory a container running as uid 10001 can write (bind-mounted as its output).
pub struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    pub fn new() -> anyhow::Result<SharedDir> {
        let dir = tempfile::Builder::new().prefix("cdc-it-").tempdir()?;
        // The images run as 10001. As root, hand the directory over; otherwise open it up.
        if std::os::unix::fs::chown(dir.path(), Some(10001), Some(10001)).is_err() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        Ok(SharedDir { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn mount(&self, target: &str) -> Mount {
        Mount::bind_mount(self.dir.path().display().to_string(), target)
    }
}

/// Sizes of a test's workload (environment: `CDC_IT_ROUNDS`, `CDC_IT_TRANSACTIONS`).
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Rounds, each with one restart of the function under test.
    pub rounds: usize,
    /// Transactions per round before the restart (1 to 5 statements each); half as many
    /// more follow before the restart, and as many after the last round.
    pub transactions: usize,
    /// Whether each round restarts the function under test (else it runs throughout).
    pub restarts: bool,
}

impl Workload {
    pub fn from_env() -> Workload {
        Workload { rounds: env_usize("CDC_IT_ROUNDS", 2), transactions: env_usize("CDC_IT_TRANSACTIONS", 300), restarts: true }
    }

    /// The same amount of work, with the function under test never restarted.
    pub fn without_restarts(self) -> Workload {
        Workload { restarts: false, ..self }
    }
}

/// The shared scenario. Each round runs transactions, waits until `progress` (how much the
/// function under test has committed or delivered) grows, runs more, then (unless
/// `workload.restarts` is false) restarts `role` mid-stream: killed (SIGKILL) in even rounds,
/// stopped (SIGTERM) in odd ones. After the last
/// round: more transactions and the marker row. Returns what happened, for the summary.
pub async fn workload_with_restarts(
    topology: &mut Topology,
    source: &mut Source,
    role: &str,
    workload: Workload,
    mut progress: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<Vec<String>> {
    let mut summary = Vec::new();
    for round in 0..workload.rounds {
        let before = progress()?;
        source.run_workload(workload.transactions).await?;
        wait_until(&format!("round {round}: {role} committing new changes"), DEADLINE, Duration::from_millis(250), || {
            let now = progress();
            async move { Ok(now? > before) }
        })
        .await?;
        source.run_workload(workload.transactions / 2).await?;
        topology.check_running().await?;
        let at = progress()?;
        if !workload.restarts {
            summary.push(format!("no restart at {at}"));
            continue;
        }
        if round % 2 == 0 {
            topology.kill_and_restart(role).await?;
            summary.push(format!("SIGKILL at {at}"));
        } else {
            topology.stop_and_restart(role).await?;
            summary.push(format!("SIGTERM at {at}"));
        }
        topology.wait_for_start_log(role, ready_line(role)).await?;
    }
    source.run_workload(workload.transactions).await?;
    source.insert_marker().await?;
    Ok(summary)
}

/// Waits until the marker row has arrived and `read` (what was committed, replayed) equals
/// the source table; fails with the difference. `read` errors (a change committed twice)
/// fail at once.
pub async fn wait_for_equality(what: &str, source: &Source, mut read: impl FnMut() -> anyhow::Result<Table>) -> anyhow::Result<Table> {
    let expected = source.table().await?;
    let mut last = Table::new();
    let outcome = wait_until(&format!("{what} to equal the table"), DEADLINE, Duration::from_secs(1), || {
        let replayed = read();
        let done = match replayed {
            Ok(table) => {
                let equal = table.contains_key(&MARKER_ID) && table == expected;
                last = table;
                Ok(equal)
            }
            Err(e) => Err(e),
        };
        async move { done }
    })
    .await;
    if let Err(e) = outcome {
        if !last.is_empty() || expected.is_empty() {
            bail!("{e:#}\n  {}", diff(&expected, &last));
        }
        return Err(e);
    }
    Ok(expected)
}

/// An S3-compatible server (`S3_IMAGE`, s3s-fs by default) with SigV4 credentials.
pub fn s3_server(access_key: &str, secret_key: &str) -> testcontainers::ContainerRequest<GenericImage> {
    let image = images::s3_image();
    GenericImage::new(image.name, image.tag)
        .with_wait_for(WaitFor::message_on_either_std("server is running"))
        .with_cmd(["--host", "0.0.0.0", "--port", "9000", "--access-key", access_key, "--secret-key", secret_key, "/data"])
        .with_env_var("RUST_LOG", "info")
}
