//! Lambda mode end to end: `datahub-relay` (target `lambda`) invokes `object-sink` through a
//! local Lambda service — the Invoke API the relay calls and the Runtime API the sink's
//! bootstrap polls (`cdc_lambda::LocalLambda`) — while a producer keeps putting change events
//! into `datahub-local`; the sink writes Parquet objects to a real S3-compatible server (moto).
//!
//! Two sandboxes die mid-invocation (`OBJECT_SINK_FAILPOINT`): one after saving its shard's
//! checkpoint but before completing the uploads, one after uploading but before saving. The
//! local service reports each as `Runtime.ExitError` when the next sandbox polls, the relay
//! retries the same batch, and the next sandbox handles it. Afterwards every produced row is
//! in exactly one committed object, no two objects of a shard overlap, and each failed
//! invocation was retried with the same batch: the after-save retry found its rows already
//! written (completing the earlier attempt's uploads), the after-prepare retry wrote them.
//!
//! The sandbox runs the `bootstrap` of the Lambda zip when `OBJECT_SINK_LAMBDA_ZIP` names one
//! (`deploy/lambda/build.sh object-sink`; the project's test command sets it), else this
//! package's debug binary.
//!
//! Binaries: `datahub-local` and `datahub-relay` from the same target directory
//! (`cargo build -p datahub-local -p datahub-relay` first; `scripts/test.sh` builds the
//! workspace).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cdc_lambda::{InvokeOutcome, LocalLambda};
use cdc_localdb::process::wait_until;
use common::*;
use serde_json::Value;

const FUNCTION: &str = "object-sink";

/// The function's `bootstrap`: unpacked from `OBJECT_SINK_LAMBDA_ZIP` into `dir`, or the
/// debug binary.
fn bootstrap(dir: &Path) -> PathBuf {
    let Some(zip) = std::env::var_os("OBJECT_SINK_LAMBDA_ZIP") else {
        return PathBuf::from(env!("CARGO_BIN_EXE_object-sink"));
    };
    // Python's zipfile: no unzip needed; it does not keep the mode bits, so set them after.
    let status = Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&zip).arg(dir).status().expect("python3 runs");
    assert!(status.success(), "unpacking {}", Path::new(&zip).display());
    let path = dir.join("bootstrap");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("bootstrap is executable");
    println!("bootstrap from {}", Path::new(&zip).display());
    path
}

/// A sandbox: the function's bootstrap under the local Runtime API, dying at `failpoint`.
fn sandbox(name: &'static str, bootstrap: &Path, env: &[(String, String)], failpoint: Option<&str>) -> cdc_localdb::process::Process {
    let mut env = env.to_vec();
    if let Some(point) = failpoint {
        env.push(("OBJECT_SINK_FAILPOINT".into(), point.into()));
    }
    let mut process = spawn(name, bootstrap, &env);
    wait_for(&mut process, "object sink running in Lambda mode");
    process
}

#[test]
fn the_relay_invokes_the_lambda_mode_sink_and_retried_invocations_duplicate_nothing() {
    cdc_telemetry::install_crypto_provider();
    let mut world = World::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let lambda = runtime.block_on(LocalLambda::start(FUNCTION, Duration::from_secs(60))).expect("local Lambda service");

    let mut sink_env = world.env("staging");
    sink_env.extend(lambda.bootstrap_env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    let mut relay_env = world.env("unused");
    relay_env.extend(
        [
            ("DATAHUB_CONSUMER_GROUP", "lambda-relay".to_owned()),
            ("RELAY_TARGET", "lambda".into()),
            ("RELAY_LAMBDA_ENDPOINT", lambda.invoke_endpoint()),
            ("RELAY_LAMBDA_FUNCTION_NAME", FUNCTION.into()),
            ("RELAY_BATCH_MAX_RECORDS", "50".into()),
            ("RELAY_BATCH_LINGER", "100".into()),
            ("RELAY_MAX_RETRIES", "5".into()),
            ("RELAY_RETRY_BACKOFF", "100".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );

    let bootstrap = bootstrap(world.dir.path());
    let mut first = sandbox("object-sink sandbox 1", &bootstrap, &sink_env, Some("after-save:3"));
    let mut relay = spawn("datahub-relay", &sibling_binary("datahub-relay"), &relay_env);
    wait_for(&mut relay, "datahub relay running");
    wait_for(&mut first, "aborting at after-save");
    first.kill();
    // The next sandbox polls, the open invocation fails with Runtime.ExitError, the relay retries.
    let mut second = sandbox("object-sink sandbox 2", &bootstrap, &sink_env, Some("after-prepare:2"));
    wait_for(&mut second, "aborting at after-prepare");
    second.kill();
    let mut third = sandbox("object-sink sandbox 3", &bootstrap, &sink_env, None);
    wait_for(&mut third, "batch committed");

    let total = world.stop_producing();
    let per_shard = total / SHARDS;
    // Caught up: each shard's last record is in a successful invocation's batch.
    let last_committed = |lambda: &LocalLambda| -> BTreeMap<String, u64> {
        let mut last = BTreeMap::new();
        for invocation in lambda.invocations() {
            if let InvokeOutcome::Success(answer) = &invocation.outcome {
                let shard = answer["shard"].as_str().unwrap_or_default().to_owned();
                let sequence = answer["lastSequence"].as_u64().unwrap_or_default();
                let entry = last.entry(shard).or_insert(0);
                *entry = sequence.max(*entry);
            }
        }
        last
    };
    let caught_up: BTreeMap<String, u64> = (0..SHARDS).map(|s| (s.to_string(), per_shard - 1)).collect();
    wait_until("the relay delivering every record to the sink", DEADLINE, || last_committed(&lambda) == caught_up).unwrap_or_else(|e| panic!("{e}"));
    let (status, log) = relay.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "datahub-relay exits 0 on SIGTERM, got {status}:\n{log}");

    // Each failed invocation was retried with the same batch, and the retry's answer shows
    // what the failed attempt had made durable.
    let invocations = lambda.invocations();
    let failed: Vec<&cdc_lambda::Invocation> = invocations.iter().filter(|i| matches!(&i.outcome, InvokeOutcome::FunctionError { .. })).collect();
    let error_types: Vec<&str> = failed
        .iter()
        .map(|i| match &i.outcome {
            InvokeOutcome::FunctionError { error_type, .. } => error_type.as_str(),
            InvokeOutcome::Success(_) => "",
        })
        .collect();
    assert_eq!(error_types, ["Runtime.ExitError", "Runtime.ExitError"], "the two sandboxes that died");
    let retry_of = |failed: &cdc_lambda::Invocation| -> Value {
        let key = |payload: &Value| (payload["shard"].clone(), payload["firstSequence"].clone(), payload["lastSequence"].clone());
        let position = invocations.iter().position(|i| i.request_id == failed.request_id).expect("the failed invocation is listed");
        let retry = invocations[position + 1..]
            .iter()
            .find(|i| key(&i.payload) == key(&failed.payload))
            .unwrap_or_else(|| panic!("no retry of {}", failed.request_id));
        match &retry.outcome {
            InvokeOutcome::Success(answer) => answer.clone(),
            other => panic!("the retry of {} failed: {other:?}", failed.request_id),
        }
    };
    let after_save = retry_of(failed[0]);
    assert_eq!(after_save["rows"], 0, "the checkpoint was saved: the retry only completes the uploads ({after_save})");
    assert_eq!(after_save["duplicates"], after_save["count"], "{after_save}");
    let after_prepare = retry_of(failed[1]);
    assert_eq!(after_prepare["rows"], after_prepare["count"], "nothing was saved: the retry writes the batch ({after_prepare})");

    check_invariants(&world.connection, &Default::default(), 0);
    let ids = committed_ids(&world.connection, &world.dir.path().join("copy"));
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(ids.len(), expected.len(), "rows committed through Lambda");
    assert_eq!(ids, expected, "every produced row exactly once");
    let (status, log) = third.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the sandbox exits 0 on SIGTERM, got {status}:\n{log}");
    println!(
        "Lambda mode: {total} rows through {} invocations ({} failed and retried) into {} objects, each exactly once",
        invocations.len(),
        failed.len(),
        object_keys(&world.connection).len()
    );
}
