//! The pipeline's real topology as containers on the local Docker engine, one private network
//! per test (see `integration-tests/README.md`):
//!
//! * `containers_pipeline_equals_source`: MariaDB → cdc-capture → datahub-local → file-sink
//!   (Parquet on a bind-mounted host directory); the sink is killed and stopped mid-stream;
//!   the committed files, replayed, equal the table exactly (nothing lost, nothing twice).
//! * `containers_object_sink_equals_source`: the same with object-sink writing to an
//!   S3-compatible server container (s3s-fs); the committed objects, replayed, equal the table.
//!   `containers_object_sink_restarted_equals_source` adds the sink's kills and stops.
//! * `containers_relay_delivers_every_change`: datahub-relay (consumer group) delivering to an
//!   HTTP endpoint this test serves, killed and stopped mid-stream; every change arrives (at
//!   least once) and the deliveries, replayed, equal the table.
//!
//! Without a Docker engine each test prints `SKIPPED: no Docker engine` and passes.

use std::time::Instant;

use anyhow::{bail, Context};
use cdc_state::s3::{list_uploads, S3Connection, S3Options};
use integration_tests::images::{self, Needs, CDC_CAPTURE, DATAHUB_LOCAL, DATAHUB_RELAY, FILE_SINK, OBJECT_SINK};
use integration_tests::pipeline::{
    checkpoint_env, datahub_env, function, s3_server, start_source_and_capture, wait_for_equality, workload_with_restarts, SharedDir, Workload,
};
use integration_tests::receiver::HttpReceiver;
use integration_tests::replay::{committed_files, read_committed, replay_exactly_once, sequence_gaps};
use integration_tests::topology::Topology;
use integration_tests::docker_available;
use testcontainers::ImageExt;

/// Checks the engine and builds what is missing; false (after `SKIPPED: …`) without Docker.
fn prepare(functions: &[&'static str], s3: bool) -> bool {
    if !docker_available() {
        return false;
    }
    let needs = Needs { functions: functions.iter().map(|f| f.to_string()).collect(), mariadb: true, s3 };
    if let Err(e) = tokio::task::block_in_place(|| images::ensure(&needs)) {
        panic!("preparing the images: {e:#}");
    }
    true
}

fn pairs<const N: usize>(items: [(&str, &str); N]) -> Vec<(String, String)> {
    items.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_pipeline_equals_source() {
    if !prepare(&[DATAHUB_LOCAL, CDC_CAPTURE, FILE_SINK], false) {
        return;
    }
    let mut topology = Topology::new("files");
    let result = file_sink_pipeline(&mut topology).await;
    topology.finish(result);
}

async fn file_sink_pipeline(t: &mut Topology) -> anyhow::Result<()> {
    let started = Instant::now();
    let workload = Workload::from_env();
    let mut source = start_source_and_capture(t, 11).await?;
    let out = SharedDir::new()?;
    let mut env = datahub_env(t, "files");
    env.extend(checkpoint_env());
    env.extend(pairs([("OUTPUT_PATH", "/var/lib/cdc/output"), ("OUTPUT_FORMAT", "parquet")]));
    t.start(FILE_SINK, function(FILE_SINK, env).with_mount(out.mount("/var/lib/cdc/output")), &[]).await?;

    let restarts = workload_with_restarts(t, &mut source, FILE_SINK, workload, || Ok(committed_files(out.path()))).await?;
    let read = || replay_exactly_once(read_committed(out.path())?);
    let expected = wait_for_equality("the committed Parquet files, replayed", &source, read).await?;

    // A graceful stop exits 0 after a final checkpoint, leaves nothing in .inprogress and
    // adds nothing wrong.
    let code = t.stop(FILE_SINK).await?;
    if code != 0 {
        bail!("file-sink exited {code} on SIGTERM");
    }
    let inprogress: Vec<_> = std::fs::read_dir(out.path().join(".inprogress")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    if !inprogress.is_empty() {
        bail!("files left in .inprogress after a graceful stop: {inprogress:?}");
    }
    let rows = read_committed(out.path())?.len();
    if replay_exactly_once(read_committed(out.path())?)? != expected {
        bail!("the final checkpoint changed the committed files");
    }
    println!(
        "file-sink in containers: {} statements, file-sink restarts {restarts:?}; {rows} committed changes in {} Parquet files replay to the {} rows of the table; {:.1} s",
        source.statements,
        committed_files(out.path()),
        expected.len(),
        started.elapsed().as_secs_f64()
    );
    source.close().await;
    Ok(())
}

const S3: &str = "s3";
const S3_ACCESS_KEY: &str = "cdc-it-key";
const S3_SECRET_KEY: &str = "cdc-it-secret";
const BUCKET: &str = "lake";
const OUTPUT_PREFIX: &str = "cdc/out";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_object_sink_equals_source() {
    if !prepare(&[DATAHUB_LOCAL, CDC_CAPTURE, OBJECT_SINK], true) {
        return;
    }
    let mut topology = Topology::new("objects");
    let result = object_sink_pipeline(&mut topology, Workload::from_env().without_restarts()).await;
    topology.finish(result);
}

/// The object-sink variant with the sink killed and stopped mid-stream, as the file sink is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_object_sink_restarted_equals_source() {
    if !prepare(&[DATAHUB_LOCAL, CDC_CAPTURE, OBJECT_SINK], true) {
        return;
    }
    let mut topology = Topology::new("objects-restarts");
    let result = object_sink_pipeline(&mut topology, Workload::from_env()).await;
    topology.finish(result);
}

/// Keys under `prefix/`.
fn object_keys(s3: &S3Connection, prefix: &str) -> anyhow::Result<Vec<String>> {
    let client = s3.client().clone();
    let prefix = format!("{prefix}/");
    s3.block_on(async move {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("listing s3://{BUCKET}/{prefix}: {e}"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(keys),
            }
        }
    })?
}

/// Copies the committed objects not yet copied into `mirror` (committed objects never change).
fn mirror_objects(s3: &S3Connection, mirror: &std::path::Path) -> anyhow::Result<()> {
    for key in object_keys(s3, OUTPUT_PREFIX)? {
        let path = mirror.join(&key);
        if path.exists() {
            continue;
        }
        let client = s3.client().clone();
        let object = key.clone();
        let bytes = s3.block_on(async move {
            let response = client.get_object().bucket(BUCKET).key(&object).send().await.map_err(|e| anyhow::anyhow!("GET s3://{BUCKET}/{object}: {e}"))?;
            let body = response.body.collect().await.map_err(|e| anyhow::anyhow!("reading s3://{BUCKET}/{object}: {e}"))?;
            anyhow::Ok(body.into_bytes())
        })??;
        std::fs::create_dir_all(path.parent().context("object path has a parent")?)?;
        // Written aside and renamed: a reader never sees half an object.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &bytes)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(())
}

async fn object_sink_pipeline(t: &mut Topology, workload: Workload) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut source = start_source_and_capture(t, 12).await?;
    let port = t.start(S3, s3_server(S3_ACCESS_KEY, S3_SECRET_KEY), &[9000]).await?.host_port(9000).await?;
    let s3 = S3Options::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_region("us-east-1")
        .with_path_style(true)
        .with_credentials(S3_ACCESS_KEY, S3_SECRET_KEY)
        .connect()
        .context("connecting to the S3 container")?;
    s3.create_bucket(BUCKET).context("creating the bucket")?;

    let mut env = datahub_env(t, "objects");
    env.extend(checkpoint_env());
    let endpoint = format!("http://{}:9000", t.host(S3));
    env.extend(pairs([
        ("CHECKPOINT_DIR", "s3://lake/cdc/checkpoints"),
        ("OUTPUT_PATH", "s3://lake/cdc/out"),
        ("OUTPUT_FORMAT", "parquet"),
        ("S3_ENDPOINT", &endpoint),
        ("S3_REGION", "us-east-1"),
        ("S3_PATH_STYLE_ACCESS", "true"),
        ("S3_ACCESS_KEY", S3_ACCESS_KEY),
        ("S3_SECRET_KEY", S3_SECRET_KEY),
    ]));
    t.start(OBJECT_SINK, function(OBJECT_SINK, env), &[]).await?;

    let items = format!("{OUTPUT_PREFIX}/shop/items");
    let restarts = workload_with_restarts(t, &mut source, OBJECT_SINK, workload, || Ok(object_keys(&s3, &items)?.len())).await?;
    let mirror = tempfile::tempdir()?;
    let read = || {
        mirror_objects(&s3, mirror.path())?;
        replay_exactly_once(read_committed(&mirror.path().join(OUTPUT_PREFIX))?)
    };
    let expected = wait_for_equality("the committed objects, replayed", &source, read).await?;

    // A graceful stop exits 0 after a final checkpoint and leaves no multipart upload open
    // (where the server can list them: s3s-fs 0.14 answers 501).
    let code = t.stop(OBJECT_SINK).await?;
    if code != 0 {
        bail!("object-sink exited {code} on SIGTERM");
    }
    let client = s3.client().clone();
    let uploads = match s3.block_on(async move { list_uploads(&client, BUCKET, "").await })? {
        Ok(open) if !open.is_empty() => bail!("multipart uploads left open after a graceful stop: {open:?}"),
        Ok(_) => "no multipart upload left open".to_owned(),
        Err(e) if e.status() == Some(501) => "open uploads not checked (the server cannot list them)".to_owned(),
        Err(e) => return Err(anyhow::Error::new(e).context("listing multipart uploads")),
    };
    mirror_objects(&s3, mirror.path())?;
    let changes = read_committed(&mirror.path().join(OUTPUT_PREFIX))?;
    let rows = changes.len();
    if replay_exactly_once(changes)? != expected {
        bail!("the final checkpoint changed the committed objects");
    }
    println!(
        "object-sink in containers: {} statements, object-sink restarts {restarts:?}; {rows} committed changes in {} objects replay to the {} rows of the table; {uploads}; {:.1} s",
        source.statements,
        object_keys(&s3, &items)?.len(),
        expected.len(),
        started.elapsed().as_secs_f64()
    );
    source.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_relay_delivers_every_change() {
    if !prepare(&[DATAHUB_LOCAL, CDC_CAPTURE, DATAHUB_RELAY], false) {
        return;
    }
    let mut topology = Topology::new("relay");
    let result = relay_pipeline(&mut topology).await;
    topology.finish(result);
}

async fn relay_pipeline(t: &mut Topology) -> anyhow::Result<()> {
    let started = Instant::now();
    let workload = Workload::from_env();
    let mut source = start_source_and_capture(t, 13).await?;
    // The relay's container reaches the test through the network's gateway address.
    let receiver = HttpReceiver::start(t.gateway()?).await?;
    let mut env = datahub_env(t, "relay");
    let url = receiver.url();
    env.extend(pairs([
        ("RELAY_TARGET", "http"),
        ("RELAY_HTTP_URL", &url),
        ("RELAY_BATCH_MAX_RECORDS", "100"),
        ("RELAY_BATCH_LINGER", "200"),
        ("RELAY_RETRY_BACKOFF", "100"),
    ]));
    t.start(DATAHUB_RELAY, function(DATAHUB_RELAY, env), &[]).await?;

    let restarts = workload_with_restarts(t, &mut source, DATAHUB_RELAY, workload, || Ok(receiver.with(|r| r.changes.len()))).await?;
    let read = || {
        receiver.with(|r| {
            if !r.errors.is_empty() {
                bail!("the relay delivered batches the receiver could not take: {:?}", &r.errors[..r.errors.len().min(5)]);
            }
            Ok(r.table())
        })
    };
    let expected = wait_for_equality("the changes the relay delivered, replayed", &source, read).await?;
    let (batches, records, redelivered, gaps) = receiver.with(|r| (r.batches, r.records, r.redelivered, sequence_gaps(&r.sequences)));
    if !gaps.is_empty() {
        bail!("records never delivered: {gaps:?}");
    }
    println!(
        "datahub-relay in containers: {} statements, relay restarts {restarts:?}; {batches} batches, {records} records ({redelivered} delivered again) replay to the {} rows of the table; {:.1} s",
        source.statements,
        expected.len(),
        started.elapsed().as_secs_f64()
    );
    source.close().await;
    Ok(())
}
