//! Two `datahub-relay` processes in one consumer group, a SIGKILL, and at-least-once delivery.
//!
//! `datahub-local` runs as a process with a 4-shard topic; a producer puts records with
//! unique ids into every shard continuously. Two relays (`/a` and `/b` on the test's HTTP
//! target, so each delivery names its replica) share the shards. Once both deliver, B is
//! SIGKILLed; A must take B's shards over (deliver records of each of them past the last one
//! B delivered). The producer then stops, and the target must have seen every produced record
//! at least once. The takeover time (kill → A delivering all of B's shards) is printed.
//!
//! The same file runs the relay in Lambda mode: bounded bursts, one per invocation.
//!
//! Binaries: `CARGO_BIN_EXE_datahub-relay`, and `datahub-local` from the same directory
//! (`cargo build -p datahub-local -p datahub-relay` first).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use cdc_datahub::client::{PutRecord, RecordType, TopicSpec};
use cdc_datahub::{DatahubClient, RecordData};
use cdc_localdb::process::Process;

const DEADLINE: Duration = Duration::from_secs(90);
const PROJECT: &str = "relay_e2e";
const TOPIC: &str = "events";
const SHARDS: u32 = 4;

/// One record as the target received it.
#[derive(Debug, Clone)]
struct Delivered {
    replica: String,
    shard: String,
    sequence: u64,
    id: u64,
}

#[derive(Default)]
struct Target {
    delivered: Mutex<Vec<Delivered>>,
}

impl Target {
    fn snapshot(&self) -> Vec<Delivered> {
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn receive(State(t): State<Arc<Target>>, UrlPath(replica): UrlPath<String>, body: axum::body::Bytes) -> StatusCode {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return StatusCode::BAD_REQUEST };
    let shard = v["shard"].as_str().unwrap_or_default().to_string();
    let mut got = Vec::new();
    for r in v["records"].as_array().into_iter().flatten() {
        let (Some(sequence), Some(id)) = (r["sequence"].as_u64(), r["data"]["id"].as_u64()) else { return StatusCode::BAD_REQUEST };
        got.push(Delivered { replica: replica.clone(), shard: shard.clone(), sequence, id });
    }
    t.delivered.lock().unwrap_or_else(|p| p.into_inner()).extend(got);
    StatusCode::OK
}

fn sibling_binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_datahub-relay")).with_file_name(name)
}

fn spawn(name: &str, binary: &Path, env: &[(&str, String)]) -> Process {
    assert!(binary.exists(), "{} is missing: cargo build -p datahub-local -p datahub-relay first", binary.display());
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MONITORING_PORT", "0")
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null());
    Process::spawn(name, &mut command).unwrap_or_else(|e| panic!("{e}"))
}

/// A relay of group `relays` delivering to `{target}/{name}`.
fn relay_env(name: &str, datahub: &str, target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATAHUB_ENDPOINT", datahub.to_string()),
        ("DATAHUB_ACCESS_ID", "local-id".into()),
        ("DATAHUB_ACCESS_KEY", "local-key".into()),
        ("DATAHUB_PROJECT", PROJECT.into()),
        ("DATAHUB_TOPIC", TOPIC.into()),
        ("DATAHUB_CONSUMER_GROUP", "relays".into()),
        ("RELAY_TARGET", "http".into()),
        ("RELAY_HTTP_URL", format!("{target}/{name}")),
        ("RELAY_BATCH_LINGER", "100".into()),
    ]
}

fn start_relay(name: &str, datahub: &str, target: &str) -> Process {
    let mut env = relay_env(name, datahub, target);
    env.extend([
        ("RELAY_BATCH_MAX_RECORDS", "50".into()),
        ("RELAY_MAX_RETRIES", "3".into()),
        // datahub-local's minimum; a replica is declared dead after this much silence.
        ("RELAY_SESSION_TIMEOUT", "6000".into()),
    ]);
    let mut relay = spawn(&format!("datahub-relay {name}"), &sibling_binary("datahub-relay"), &env);
    relay.wait_for_log("datahub relay running", DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    relay
}

/// Applies the `held` shard list a relay logged last (`reading shards`).
fn follow_held(relay: &Process, held: &mut BTreeSet<String>) {
    for line in relay.drain_log() {
        if !line.contains("reading shards") {
            continue;
        }
        // JSON log: `"held":"[\"0\", \"2\"]"` (the Debug form of the list).
        let Some(list) = line.split("\"held\":\"[").nth(1).and_then(|rest| rest.split(']').next()) else { continue };
        *held = list.split(',').map(|s| s.trim_matches(|c: char| c == '\\' || c == '"' || c == ' ').to_string()).filter(|s| !s.is_empty()).collect();
    }
}

/// `datahub-local` on a free port with its data under `dir`: the process and its API URL.
fn start_datahub(dir: &Path) -> (Process, String) {
    let mut datahub = spawn(
        "datahub-local",
        &sibling_binary("datahub-local"),
        &[("DATAHUB_LOCAL_PORT", "0".into()), ("DATAHUB_LOCAL_BIND", "127.0.0.1".into()), ("DATAHUB_LOCAL_DATA_DIR", dir.join("datahub").display().to_string())],
    );
    let seen = datahub.wait_for_log("serving the DataHub API", DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    let line = seen.lines().last().unwrap_or_default();
    let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
    let endpoint = format!("http://{addr}");
    (datahub, endpoint)
}

async fn create_topic(client: &DatahubClient) {
    client.create_project(PROJECT, "relay test").await.unwrap();
    let spec = TopicSpec { shard_count: SHARDS, lifecycle: 1, record_type: RecordType::Blob, comment: String::new(), record_schema: None, expand_mode: None };
    client.create_topic(PROJECT, TOPIC, &spec).await.unwrap();
}

/// The HTTP target on 127.0.0.1: what it received, and its base URL (`/{replica}` names the
/// deliverer).
fn serve_target(rt: &tokio::runtime::Runtime) -> (Arc<Target>, String) {
    let target = Arc::new(Target::default());
    let url = rt.block_on(async {
        let app = axum::Router::new().route("/{replica}", axum::routing::post(receive)).with_state(target.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    });
    (target, url)
}

fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    if let Err(e) = cdc_localdb::process::wait_until(what, DEADLINE, condition) {
        panic!("{e}");
    }
}

#[test]
fn a_killed_relay_replicas_shards_are_taken_over_and_every_record_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (_datahub, endpoint) = start_datahub(dir.path());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = Arc::new(DatahubClient::builder(&endpoint).with_credentials("local-id", "local-key").build().unwrap());
    rt.block_on(create_topic(&client));

    let (target, target_url) = serve_target(&rt);

    // The producer: one record per shard per round; an id counts as produced once its put
    // succeeded.
    let produced = Arc::new(Mutex::new(BTreeSet::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (client, produced, stop) = (client.clone(), produced.clone(), stop.clone());
        rt.spawn(async move {
            let mut next_id = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<u64> = (next_id..next_id + u64::from(SHARDS)).collect();
                let puts: Vec<PutRecord> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| PutRecord::new(RecordData::Blob(format!("{{\"id\":{id}}}").into_bytes())).with_shard(i.to_string()))
                    .collect();
                next_id += u64::from(SHARDS);
                if let Ok(failed) = client.put_records(PROJECT, TOPIC, &puts).await {
                    let failed: BTreeSet<usize> = failed.iter().map(|f| f.index).collect();
                    let mut p = produced.lock().unwrap_or_else(|p| p.into_inner());
                    p.extend(ids.iter().enumerate().filter(|(i, _)| !failed.contains(i)).map(|(_, id)| *id));
                }
                // Pacing of the workload, not synchronisation.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let a = start_relay("a", &endpoint, &target_url);
    let b = start_relay("b", &endpoint, &target_url);
    // What each replica reads, from its log (the consumer logs the shards it reads whenever
    // that set changes).
    let all: BTreeSet<String> = (0..SHARDS).map(|s| s.to_string()).collect();
    let (mut held_a, mut held_b) = (BTreeSet::new(), BTreeSet::new());
    wait_until("the group splitting the shards between A and B", || {
        follow_held(&a, &mut held_a);
        follow_held(&b, &mut held_b);
        !held_a.is_empty() && !held_b.is_empty() && held_a.is_disjoint(&held_b) && held_a.union(&held_b).cloned().collect::<BTreeSet<_>>() == all
    });
    let shards_of = |replica: &str, from: usize| -> BTreeSet<String> {
        target.snapshot().into_iter().skip(from).filter(|d| d.replica == replica).map(|d| d.shard).collect()
    };
    let split_at = target.snapshot().len();
    wait_until("both replicas delivering records of their own shards", || held_a.is_subset(&shards_of("a", split_at)) && held_b.is_subset(&shards_of("b", split_at)));
    println!("the group's plan: A reads {held_a:?}, B reads {held_b:?}");

    let killed_at = Instant::now();
    b.kill();
    let after_kill = target.snapshot().len();
    let b_last: BTreeMap<String, u64> = target.snapshot().into_iter().filter(|d| d.replica == "b").fold(BTreeMap::new(), |mut m, d| {
        let e = m.entry(d.shard).or_insert(0);
        *e = (*e).max(d.sequence);
        m
    });
    wait_until("A taking over B's shards", || {
        let got = target.snapshot();
        held_b.iter().all(|shard| {
            let last = b_last.get(shard).copied().unwrap_or(0);
            got[after_kill..].iter().any(|d| d.replica == "a" && &d.shard == shard && d.sequence > last)
        })
    });
    let takeover = killed_at.elapsed();
    follow_held(&a, &mut held_a);
    assert_eq!(held_a, all, "A reads every shard after the takeover");

    stop.store(true, Ordering::SeqCst);
    rt.block_on(producer).unwrap();
    let produced = produced.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!produced.is_empty());
    wait_until("every produced record delivered", || {
        let ids: BTreeSet<u64> = target.snapshot().into_iter().map(|d| d.id).collect();
        produced.is_subset(&ids)
    });
    let delivered = target.snapshot();
    let unique: BTreeSet<u64> = delivered.iter().map(|d| d.id).collect();
    assert!(produced.is_subset(&unique));

    let (status, log) = a.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "datahub-relay a exits 0 on SIGTERM, got {status}:\n{log}");
    println!(
        "takeover after SIGKILL of replica b (shards {held_b:?}): {:.2} s (session timeout 6 s); {} records produced, {} deliveries ({} duplicates)",
        takeover.as_secs_f64(),
        produced.len(),
        delivered.len(),
        delivered.len() - unique.len()
    );
}

/// Lambda mode: the relay's bootstrap runs under a local Lambda service and each invocation
/// (what a schedule would send) relays one bounded burst to the HTTP target. A second burst
/// delivers only what arrived since: the first committed its offsets before answering.
#[test]
fn in_lambda_mode_each_invocation_relays_one_burst_and_commits_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_datahub, endpoint) = start_datahub(dir.path());
    cdc_telemetry::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = Arc::new(DatahubClient::builder(&endpoint).with_credentials("local-id", "local-key").build().unwrap());
    let put = |ids: std::ops::Range<u64>| {
        rt.block_on(async {
            let puts: Vec<PutRecord> = ids.map(|id| PutRecord::new(RecordData::Blob(format!("{{\"id\":{id}}}").into_bytes())).with_shard((id % u64::from(SHARDS)).to_string())).collect();
            let failed = client.put_records(PROJECT, TOPIC, &puts).await.unwrap();
            assert!(failed.is_empty(), "{failed:?}");
        })
    };
    rt.block_on(create_topic(&client));
    let (target, target_url) = serve_target(&rt);
    let lambda = rt.block_on(cdc_lambda::LocalLambda::start("relay", Duration::from_secs(60))).unwrap();
    let mut env = relay_env("lambda", &endpoint, &target_url);
    env.extend(lambda.bootstrap_env());
    let mut bootstrap = spawn("datahub-relay (Lambda)", &sibling_binary("datahub-relay"), &env);
    bootstrap.wait_for_log("datahub relay running in Lambda mode", DEADLINE).unwrap_or_else(|e| panic!("{e}"));

    let invoke = |payload: serde_json::Value| -> serde_json::Value {
        match rt.block_on(lambda.invoke(&payload)) {
            cdc_lambda::InvokeOutcome::Success(answer) => answer,
            failed => panic!("the burst failed: {failed:?}"),
        }
    };
    put(0..40);
    let first = invoke(serde_json::json!({"maxDurationMs": 2500}));
    assert_eq!(first["records"], 40, "{first}");
    put(40..65);
    let second = invoke(serde_json::json!({"maxDurationMs": 2500}));
    assert_eq!(second["records"], 25, "only what arrived since the first burst: {second}");

    let ids: Vec<u64> = target.snapshot().into_iter().map(|d| d.id).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 65, "each record delivered once over the two bursts");
    assert_eq!(unique, (0..65).collect::<BTreeSet<u64>>());
    let (status, log) = bootstrap.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{log}");
}
