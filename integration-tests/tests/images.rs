//! Every function's image (one per crate under `functions/`), run as a container on a private
//! network with the least real environment under which it stays up: MariaDB for cdc-capture and
//! cdc-pipeline, datahub-local for the DataHub clients, an S3-compatible server (s3s-fs) for
//! object-sink, a rules file for transform. For each, `/health/live` must answer 200 through
//! its published ops port and the process the host sees (`docker top`) must run as uid 10001,
//! not root; the image sizes are printed beside the 25 MB aim (printed, not asserted).
//!
//! A new crate under `functions/` makes this test fail until it says how that function runs
//! (see [`settings`]), so no image goes unchecked.
//!
//! Without a Docker engine the test prints `SKIPPED: no Docker engine` and passes.

use std::time::Duration;

use anyhow::{bail, Context};
use cdc_state::s3::{S3Connection, S3Options};
use integration_tests::images::{self, ImageRef, Needs, CDC_CAPTURE, CDC_PIPELINE, DATAHUB_LOCAL, DATAHUB_RELAY, FILE_SINK, OBJECT_SINK, TRANSFORM};
use integration_tests::pipeline::{self, capture_settings, checkpoint_env, datahub_env, datahub_local_env, s3_server, SharedDir, MONITORING_PORT};
use integration_tests::topology::Topology;
use integration_tests::{docker, docker_available, http_status, source, wait_until};
use testcontainers::core::AccessMode;
use testcontainers::ImageExt;

/// The size every image should stay under (printed beside each size, not asserted).
const AIM_BYTES: u64 = 25_000_000;
/// The non-root user the images run as (`deploy/images/build.sh`).
const IMAGE_UID: &str = "10001";
/// How long a started function may take to answer `/health/live` with 200.
const LIVE_DEADLINE: Duration = Duration::from_secs(30);

/// Started first, in this order: datahub-local is every DataHub client's server, and
/// cdc-capture creates the topic (with its shard count) before the readers open it.
const FIRST: [&str; 2] = [DATAHUB_LOCAL, CDC_CAPTURE];

const S3: &str = "s3";
const S3_ACCESS_KEY: &str = "cdc-it-key";
const S3_SECRET_KEY: &str = "cdc-it-secret";
const BUCKET: &str = "lake";
/// Where transform's rules directory is mounted (read-only).
const RULES_DIR: &str = "/etc/cdc-transform";
const RULES: &str = "rules:\n  - table: shop.items\n    rename: goods\n";
/// cdc-pipeline reads the same source as cdc-capture (4343), as another replica.
const PIPELINE_SERVER_ID: &str = "4344";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_image_answers_health_live_as_a_non_root_process() {
    if !docker_available() {
        return;
    }
    let functions = images::functions().unwrap_or_else(|e| panic!("{e:#}"));
    let needs = Needs { functions: functions.clone(), mariadb: true, s3: true };
    if let Err(e) = tokio::task::block_in_place(|| images::ensure(&needs)) {
        panic!("preparing the images: {e:#}");
    }
    let mut topology = Topology::new("images");
    let result = check_every_image(&mut topology, functions).await;
    topology.finish(result);
}

/// What the test found for one function.
struct Checked {
    function: String,
    image: ImageRef,
    bytes: u64,
    uids: Vec<String>,
    live: u16,
}

async fn check_every_image(t: &mut Topology, mut functions: Vec<String>) -> anyhow::Result<()> {
    // A stable sort: FIRST in its order, then the rest by name.
    functions.sort_by_key(|f| FIRST.iter().position(|first| first == f).unwrap_or(FIRST.len()));
    let source = source::start(t, &images::mariadb_image(), 21).await?;
    let rules = SharedDir::new()?;
    std::fs::write(rules.path().join("rules.yml"), RULES).context("writing transform's rules")?;
    // Kept until the end: the bucket's client (its runtime is dropped with it).
    let mut s3: Option<S3Connection> = None;

    for function in &functions {
        if function == OBJECT_SINK {
            s3 = Some(start_s3(t).await?);
        }
        let mut request = pipeline::function(function, settings(t, function)?);
        if function == TRANSFORM {
            request = request.with_mount(rules.mount(RULES_DIR).with_access_mode(AccessMode::ReadOnly));
        }
        t.start(function, request, &[MONITORING_PORT]).await?;
    }

    let mut checked = Vec::new();
    for function in &functions {
        let service = t.service(function);
        let port = service.host_port(MONITORING_PORT).await?;
        let waited = wait_until(&format!("{function}: /health/live answering 200"), LIVE_DEADLINE, Duration::from_millis(250), || async move {
            Ok(matches!(http_status(port, "/health/live").await, Ok(200)))
        })
        .await;
        if let Err(e) = waited {
            bail!("{e:#} (last answer: {:?})", http_status(port, "/health/live").await);
        }
        let uids = process_uids(service.id()).with_context(|| format!("the processes of {function}"))?;
        if uids.is_empty() {
            bail!("docker top shows no process in {function}");
        }
        if let Some(uid) = uids.iter().find(|uid| uid.as_str() != IMAGE_UID) {
            let what = if uid == "0" { "root" } else { "not the image's user" };
            bail!("{function}: a process runs as uid {uid} ({what}; expected {IMAGE_UID}), every uid: {uids:?}");
        }
        let image = images::function_image(function);
        let bytes = images::image_size(&image)?;
        checked.push(Checked { function: function.clone(), image, bytes, uids, live: 200 });
    }
    // Every function is still up after the checks (none was on its way out when it answered).
    t.check_running().await?;

    print_table(&checked);
    drop(s3);
    source.close().await;
    Ok(())
}

/// The least real environment under which `function` starts and stays up on this topology.
fn settings(t: &Topology, function: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = match function {
        DATAHUB_LOCAL => return Ok(datahub_local_env()),
        CDC_CAPTURE => return Ok(capture_settings(t)),
        DATAHUB_RELAY => {
            let mut env = datahub_env(t, "relay");
            env.extend(pairs([("RELAY_TARGET", "stdout")]));
            env
        }
        TRANSFORM => {
            let mut env = datahub_env(t, "transform");
            env.extend(pairs([("TRANSFORM_CONFIG", &format!("{RULES_DIR}/rules.yml")), ("TRANSFORM_OUTPUT_TOPIC", "events-transformed")]));
            env
        }
        FILE_SINK => {
            let mut env = datahub_env(t, "files");
            env.extend(checkpoint_env());
            env
        }
        OBJECT_SINK => {
            let mut env = datahub_env(t, "objects");
            let endpoint = format!("http://{}:9000", t.host(S3));
            env.extend(pairs([
                ("CHECKPOINT_DIR", &format!("s3://{BUCKET}/cdc/checkpoints")),
                ("OUTPUT_PATH", &format!("s3://{BUCKET}/cdc/out")),
                ("S3_ENDPOINT", &endpoint),
                ("S3_REGION", "us-east-1"),
                ("S3_PATH_STYLE_ACCESS", "true"),
                ("S3_ACCESS_KEY", S3_ACCESS_KEY),
                ("S3_SECRET_KEY", S3_SECRET_KEY),
            ]));
            return Ok(env);
        }
        CDC_PIPELINE => {
            // The embedded log (cdc-pipeline's default endpoint) and the file sink in one
            // process, reading the same source as cdc-capture.
            let mut env: Vec<(String, String)> = source::capture_env(t).into_iter().filter(|(k, _)| k != "DATABASE_SERVER_ID").collect();
            env.extend(pairs([("DATABASE_SERVER_ID", PIPELINE_SERVER_ID)]));
            env.extend(checkpoint_env());
            env
        }
        other => bail!(
            "functions/{other} has no settings in this test: add the environment it needs to start (and its ready line to pipeline::ready_line) so its image is checked too"
        ),
    };
    // The sinks' output (file-sink, cdc-pipeline) in the image's state directory.
    if matches!(function, FILE_SINK | CDC_PIPELINE) {
        env.extend(pairs([("OUTPUT_PATH", "/var/lib/cdc/output")]));
    }
    Ok(env)
}

/// The S3-compatible server, and the bucket object-sink writes to (created from the test over
/// the published port).
async fn start_s3(t: &mut Topology) -> anyhow::Result<S3Connection> {
    let port = t.start(S3, s3_server(S3_ACCESS_KEY, S3_SECRET_KEY), &[9000]).await?.host_port(9000).await?;
    let s3 = S3Options::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_region("us-east-1")
        .with_path_style(true)
        .with_credentials(S3_ACCESS_KEY, S3_SECRET_KEY)
        .connect()
        .context("connecting to the S3 container")?;
    s3.create_bucket(BUCKET).context("creating the bucket")?;
    Ok(s3)
}

/// The uid of every process in the container, as the host sees them (`docker top`).
fn process_uids(container: &str) -> anyhow::Result<Vec<String>> {
    let text = docker(&["top", container, "-eo", "pid,uid"])?;
    Ok(text.lines().skip(1).filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned)).collect())
}

fn print_table(checked: &[Checked]) {
    let aim_mb = AIM_BYTES as f64 / 1e6;
    println!("function images: /health/live and process uid checked; sizes printed beside the {aim_mb:.0} MB aim (not asserted)");
    println!("{:<14} {:<30} {:>9} {:>7} {:<9} {:<6} /health/live", "FUNCTION", "IMAGE", "SIZE", "AIM", "UNDER AIM", "UID");
    for c in checked {
        println!(
            "{:<14} {:<30} {:>6.1} MB {:>4.0} MB {:<9} {:<6} {}",
            c.function,
            c.image.reference(),
            c.bytes as f64 / 1e6,
            aim_mb,
            if c.bytes < AIM_BYTES { "yes" } else { "no" },
            c.uids.join(","),
            c.live
        );
    }
}

fn pairs<const N: usize>(items: [(&str, &str); N]) -> Vec<(String, String)> {
    items.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}
