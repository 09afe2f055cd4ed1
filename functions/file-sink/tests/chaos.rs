//! Chaos across the multi-process pipeline: MariaDB → `cdc-capture` → `datahub-local` (topic
//! `events`) → `transform` (topic `clean`, masking `accounts.secret`) → `file-sink` (Parquet
//! files); and from `clean` also `datahub-relay` → a local Lambda service → `object-sink` in
//! Lambda mode (Parquet objects in a moto S3 bucket). Both outputs are checked.
//!
//! A workload of small random transactions (inserts, updates, deletes on two tables, and
//! half-way an `ALTER TABLE ... ADD COLUMN` that later writes use) runs continuously while,
//! every 2-5 s, a stage picked at random is SIGKILLed and restarted with the same data
//! directories and port (a killed Lambda sandbox is replaced by a new one, as the service
//! does; its open invocation fails and the relay retries it). Afterwards every stage is running, marker rows go in, and once the
//! sink has committed them and every stage stopped gracefully, the committed files replayed
//! in `_source_pos` order must equal the tables exactly, with no position committed twice.
//!
//! `CHAOS_SECONDS` (default 20) is the length of the chaos window, `CHAOS_SEED` repeats a run
//! (the seed is printed). Binaries are the workspace build's (`cargo build -p file-sink -p
//! cdc-capture -p datahub-local -p transform`), found next to `CARGO_BIN_EXE_file-sink`.
//! A failed run leaves its directory (data, checkpoints, each stage's log) for a post-mortem.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cdc_lambda::LocalLambda;
use cdc_localdb::LocalMariaDb;
use cdc_state::s3::testing::{LocalS3Server, ACCESS_KEY, SECRET_KEY};
use cdc_state::s3::S3Connection;
use common::{ChaosSettings, Stage, Workload};

const BUCKET: &str = "lake";
const OBJECTS_PREFIX: &str = "out";

fn binary(name: &str) -> std::path::PathBuf {
    common::sibling_binary(env!("CARGO_BIN_EXE_file-sink"), name)
}

#[test]
fn every_stage_stays_exact_under_random_sigkills_and_a_schema_change() {
    let settings = ChaosSettings::from_env();
    let started = Instant::now();
    let dir = common::work_dir("file-sink-chaos-");
    let out = dir.join("out");
    let db = LocalMariaDb::start().expect("MariaDB starts");
    db.execute(&format!("CREATE DATABASE shop; {}; {}", common::ITEMS_DDL, common::ACCOUNTS_DDL)).expect("schema");
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, common::TRANSFORM_RULES).expect("rules file");

    // datahub-local keeps its port across restarts: the other stages' endpoint is fixed.
    let port = common::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut capture_env = common::datahub_env(&endpoint, "events", "capture");
    capture_env.extend(common::capture_env(&db, &dir.join("capture-checkpoints")));
    let mut transform_env = common::datahub_env(&endpoint, "events", "transform");
    transform_env.extend([
        ("TRANSFORM_CONFIG".to_owned(), rules.display().to_string()),
        ("TRANSFORM_OUTPUT_TOPIC".to_owned(), "clean".to_owned()),
        ("CHECKPOINT_DIR".to_owned(), common::file_url(&dir.join("transform-checkpoints"))),
    ]);
    let mut sink_env = common::datahub_env(&endpoint, "clean", "files");
    sink_env.extend(common::sink_env(&out, &dir.join("sink-checkpoints")));
    // The Lambda path: the relay reads `clean` in its own consumer group and invokes the sink.
    let s3 = LocalS3Server::moto().unwrap_or_else(|e| panic!("{e} (pip install 'moto[server]')"));
    let connection = s3.connect_with_bucket(BUCKET).expect("bucket");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let lambda = runtime.block_on(LocalLambda::start("object-sink", Duration::from_secs(60))).expect("local Lambda service");
    let mut relay_env = common::datahub_env(&endpoint, "clean", "lambda-relay");
    relay_env.extend(
        [
            ("RELAY_TARGET", "lambda".to_owned()),
            ("RELAY_LAMBDA_ENDPOINT", lambda.invoke_endpoint()),
            ("RELAY_LAMBDA_FUNCTION_NAME", "object-sink".into()),
            ("RELAY_BATCH_MAX_RECORDS", "200".into()),
            ("RELAY_BATCH_LINGER", "200".into()),
            // A killed sandbox fails its invocation; the relay waits for the next one.
            ("RELAY_MAX_RETRIES", "10".into()),
            ("RELAY_RETRY_BACKOFF", "200".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut lambda_sink_env = common::datahub_env(&endpoint, "clean", "unused");
    lambda_sink_env.extend(
        [
            ("OUTPUT_PATH", format!("s3://{BUCKET}/{OBJECTS_PREFIX}")),
            ("OUTPUT_FORMAT", "parquet".into()),
            ("CHECKPOINT_DIR", format!("s3://{BUCKET}/checkpoints")),
            ("S3_ENDPOINT", s3.endpoint().to_owned()),
            ("S3_REGION", "us-east-1".into()),
            ("S3_PATH_STYLE_ACCESS", "true".into()),
            ("S3_ACCESS_KEY", ACCESS_KEY.into()),
            ("S3_SECRET_KEY", SECRET_KEY.into()),
            ("S3_STAGING_DIR", dir.join("lambda-staging").display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    lambda_sink_env.extend(lambda.bootstrap_env().into_iter().map(|(k, v)| (k.to_owned(), v)));

    let mut stages = vec![
        Stage::new("datahub-local", binary("datahub-local"), common::datahub_local_env(&dir.join("datahub"), port), "serving the DataHub API", &dir),
        Stage::new("cdc-capture", binary("cdc-capture"), capture_env, "streaming the binlog", &dir),
        Stage::new("transform", binary("transform"), transform_env, "transform running", &dir),
        Stage::new("file-sink", binary("file-sink"), sink_env, "file sink running", &dir),
        Stage::new("datahub-relay", binary("datahub-relay"), relay_env, "datahub relay running", &dir),
        Stage::new("object-sink (Lambda)", binary("object-sink"), lambda_sink_env, "object sink running in Lambda mode", &dir),
    ];
    for stage in &mut stages {
        stage.start();
    }
    common::wait_for_checkpoint("cdc-capture", &dir.join("capture-checkpoints"));

    let mut workload = Workload::new(settings.seed, true);
    let report = common::run_chaos(&db, &mut stages, &mut workload, &settings);

    common::insert_markers(&db);
    common::wait_for_markers(&out, &mut stages);
    let copy = dir.join("objects");
    let mut downloaded = BTreeSet::new();
    common::wait_supervised(&mut stages, "every marker row in committed objects", || {
        download_new(&connection, &copy, &mut downloaded);
        common::markers_committed(&copy.join(OBJECTS_PREFIX))
    });
    // Graceful stops, consumers before the log: the sink's final checkpoint commits its last
    // files completely (a reader could otherwise catch a checkpoint's files half renamed).
    for name in ["cdc-capture", "transform", "file-sink", "datahub-relay", "object-sink (Lambda)", "datahub-local"] {
        stages.iter_mut().filter(|s| s.name == name).for_each(Stage::terminate);
    }
    let (rows, files) = common::assert_exact(&db, &out, common::ACCOUNTS_MASKED);
    common::print_report(&report, rows, files, started.elapsed());
    download_new(&connection, &copy, &mut downloaded);
    let (rows, objects) = common::assert_exact(&db, &copy.join(OBJECTS_PREFIX), common::ACCOUNTS_MASKED);
    let failed = lambda.invocations().iter().filter(|i| !matches!(i.outcome, cdc_lambda::InvokeOutcome::Success(_))).count();
    println!("chaos: Lambda path exact too: {rows} committed rows in {objects} objects; {} invocations, {failed} failed and retried", lambda.invocations().len());
    // Passed: nothing to look at afterwards.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Copies the committed objects not copied yet into `dir` (same keys as paths): objects are
/// never rewritten, so a key once copied is final.
fn download_new(connection: &S3Connection, dir: &Path, downloaded: &mut BTreeSet<String>) {
    let client = connection.client().clone();
    let keys: Vec<String> = connection
        .block_on(async move {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = client.list_objects_v2().bucket(BUCKET).prefix(format!("{OBJECTS_PREFIX}/")).set_continuation_token(token).send().await.expect("list objects");
                keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => return keys,
                }
            }
        })
        .expect("S3 runtime");
    for key in keys {
        if downloaded.contains(&key) {
            continue;
        }
        let client = connection.client().clone();
        let object = key.clone();
        let bytes = connection
            .block_on(async move { client.get_object().bucket(BUCKET).key(object).send().await.expect("get object").body.collect().await.expect("object body").into_bytes() })
            .expect("S3 runtime");
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().expect("a key has a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write the copy");
        downloaded.insert(key);
    }
}
