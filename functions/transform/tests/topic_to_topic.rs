//! The transform function end to end: events published to topic A come out of topic B with
//! the rules applied (table and column renames, a dropped column, a keyed hash checked
//! against Python's hmac, a redaction, a row filter, an excluded table), the record the rules
//! cannot evaluate lands in the dead-letter topic with its reason, and after a restart
//! nothing is published twice (input offsets were committed after the puts). The same rules
//! run in Lambda mode too: `datahub-relay` invokes the function's bootstrap through a local
//! Lambda service (Invoke API + Runtime API) and the outputs are the same.
//!
//! DataHub is the real server (cdc-datahub over cdc-datalog) in this test's process on
//! 127.0.0.1:0; the function is this package's binary.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::{ConsumedRecord, ConsumerOptions, DatahubClient, DatahubPublisher, PublisherOptions, ServerConfig, ShardConsumer};
use cdc_datalog::{Datalog, LogOptions};
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Event, LobSize, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use cdc_localdb::process::Process;

const DEADLINE: Duration = Duration::from_secs(120);
const PROJECT: &str = "tx_fn";
const SALT: &str = "a-test-salt-of-more-than-16-chars";

const RULES: &str = r#"
tables:
  exclude: ["shop.audit_*"]
rules:
  - table: shop.customers
    rename: clients
    columns: {exclude: [notes], rename: {email: email_hash}}
    mask: {email: hash, phone: redact}
    filter: "status != 'deleted'"
  - table: shop.orders
    filter: "ref >= 1000"
"#;

fn schema(table: &str, columns: Vec<ColumnDef>) -> Arc<TableSchema> {
    let primary_key = vec!["id".to_owned()];
    let version = TableSchema::fingerprint(&columns, &primary_key);
    Arc::new(TableSchema { table: TableId::new("shop", table), version, columns, primary_key })
}

fn varchar(name: &str) -> ColumnDef {
    ColumnDef::new(name, ColumnType::VarChar { length: 64, charset: "utf8mb4".into() }, true)
}

fn customers() -> Arc<TableSchema> {
    schema(
        "customers",
        vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: true }, false),
            varchar("email"),
            varchar("phone"),
            varchar("status"),
            ColumnDef::new("notes", ColumnType::Text { size: LobSize::Regular, charset: "utf8mb4".into() }, true),
        ],
    )
}

fn insert(schema: &Arc<TableSchema>, values: Vec<Value>, n: u64) -> Event {
    Event::Change(ChangeEvent {
        op: Op::Insert,
        schema: schema.clone(),
        before: None,
        after: Some(Row::new(values)),
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", 1000 + n),
        commit_ts_ms: 1_715_932_800_000,
        tx_id: None,
        source_name: Arc::from("src"),
        server_id: 1,
    })
}

fn customer(id: u64, status: &str) -> Event {
    let text = |s: String| Value::Text(s);
    insert(
        &customers(),
        vec![Value::UInt(id), text(format!("user{id}@example.com")), text(format!("+65 555 {id:04}")), text(status.into()), text("secret notes".into())],
        id,
    )
}

fn order(id: i64, reference: &str) -> Event {
    let orders = schema("orders", vec![ColumnDef::new("id", ColumnType::Int { unsigned: false }, false), varchar("ref")]);
    insert(&orders, vec![Value::Int(id), Value::Text(reference.into())], 100 + id as u64)
}

fn audit(id: i64) -> Event {
    let audit = schema("audit_log", vec![ColumnDef::new("id", ColumnType::Int { unsigned: false }, false)]);
    insert(&audit, vec![Value::Int(id)], 200 + id as u64)
}

/// HMAC-SHA256 hex by Python's standard library: an independent judge of the hash mask.
fn python_hmac(message: &str) -> String {
    let output = Command::new("python3")
        .args(["-c", "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())", SALT, message])
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

struct Harness {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    endpoint: String,
    client: Arc<DatahubClient>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(Datalog::open(dir.path().join("datahub"), LogOptions::default()).expect("datalog"));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(cdc_datahub::serve(listener, ServerConfig::new(log), async move {
            let _ = stopped.await;
        }));
        let client = Arc::new(DatahubClient::builder(&endpoint).with_credentials("id", "key").build().expect("client"));
        Harness { rt, dir, endpoint, client, _stop: stop }
    }

    fn publish(&self, events: Vec<Event>) {
        self.rt.block_on(async {
            let mut publisher = DatahubPublisher::connect(self.client.clone(), PublisherOptions::new(PROJECT, "raw")).await.expect("topic");
            publisher.publish_events(&events).await.expect("published");
        });
    }

    fn start_transform(&self) -> Process {
        self.start_transform_with(&[], "transform running")
    }

    /// The function with `extra` variables (the Lambda environment), once it logged `ready`.
    fn start_transform_with(&self, extra: &[(&str, String)], ready: &str) -> Process {
        let rules = self.dir.path().join("rules.yml");
        std::fs::write(&rules, RULES).expect("rules");
        let mut command = Command::new(env!("CARGO_BIN_EXE_transform"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MONITORING_PORT", "0")
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .env("DATAHUB_ENDPOINT", &self.endpoint)
            .env("DATAHUB_ACCESS_ID", "id")
            .env("DATAHUB_ACCESS_KEY", "key")
            .env("DATAHUB_PROJECT", PROJECT)
            .env("DATAHUB_TOPIC", "raw")
            .env("DATAHUB_CONSUMER_GROUP", "transform")
            .env("TRANSFORM_CONFIG", &rules)
            .env("TRANSFORM_HASH_SALT", SALT)
            .env("TRANSFORM_OUTPUT_TOPIC", "clean")
            .env("CHECKPOINT_DIR", format!("file://{}", self.dir.path().join("checkpoints").display()))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null());
        let mut process = Process::spawn("transform", &mut command).unwrap_or_else(|e| panic!("{e}"));
        process.wait_for_log(ready, DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        process
    }

    fn reader(&self, topic: &str) -> ShardConsumer {
        self.rt
            .block_on(ShardConsumer::open(self.client.clone(), ConsumerOptions::new(PROJECT, topic, "checker"), std::iter::empty()))
            .expect("reader")
    }

    /// Reads until `done` holds for everything read so far, then until the topic is drained.
    fn read_until(&self, reader: &mut ShardConsumer, got: &mut Vec<ConsumedRecord>, done: impl Fn(&[ConsumedRecord]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let batch = self.rt.block_on(reader.poll()).expect("poll");
            let empty = batch.is_empty();
            got.extend(batch);
            if empty && done(got) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out; read so far: {} records", got.len());
            if empty {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn decode(records: &[ConsumedRecord]) -> Vec<ChangeEvent> {
    records.iter().map(|r| cdc_event::debezium::from_slice(&r.payload).expect("Debezium JSON")).collect()
}

#[test]
fn events_move_from_topic_a_to_topic_b_with_the_rules_applied() {
    let h = Harness::start();
    h.publish(workload());
    let transform = h.start_transform();

    let (mut out_reader, mut out, mut dlq_reader) = check_rules_applied(&h);
    // Restart: the committed offsets hold, so only the new record comes out.
    let (status, log) = transform.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "transform exits 0 on SIGTERM:\n{log}");
    let transform = h.start_transform();
    h.publish(vec![customer(6, "active")]);
    h.read_until(&mut out_reader, &mut out, |got| got.len() >= 5);
    let events = decode(&out);
    assert_eq!(events.len(), 5, "nothing republished after the restart: {events:?}");
    let last = events.iter().find(|e| e.after.as_ref().unwrap().values[0] == Value::UInt(6));
    assert!(last.is_some(), "customer 6 arrived");
    let (status, log) = transform.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{log}");
    let mut more = Vec::new();
    h.read_until(&mut dlq_reader, &mut more, |_| true);
    assert!(more.is_empty(), "no dead letter repeated: {more:?}");
}

/// The workload of [`workload`] came out of `clean` and `clean-dlq` with the rules applied;
/// returns the readers (at the end of both topics) and what `clean` held.
fn check_rules_applied(h: &Harness) -> (ShardConsumer, Vec<ConsumedRecord>, ShardConsumer) {
    let mut out_reader = h.reader("clean");
    let mut out = Vec::new();
    h.read_until(&mut out_reader, &mut out, |got| got.len() >= 4);
    let events = decode(&out);
    let mut clients: BTreeMap<u64, &ChangeEvent> = BTreeMap::new();
    let mut orders = Vec::new();
    for e in &events {
        match e.schema.table.table.as_str() {
            "clients" => {
                let Some(Value::UInt(id)) = e.after.as_ref().and_then(|r| r.values.first()) else { panic!("id: {e:?}") };
                assert!(clients.insert(*id, e).is_none(), "client {id} published twice");
            }
            "orders" => orders.push(e),
            other => panic!("unexpected table {other}: {e:?}"),
        }
    }
    assert_eq!(clients.keys().copied().collect::<Vec<_>>(), [1, 3, 4], "deleted customers are filtered out");
    assert_eq!(orders.len(), 1, "only ref 1200 passes: {orders:?}");
    assert_eq!(orders[0].after.as_ref().unwrap().values[1], Value::Text("1200".into()));

    let client = clients[&3];
    assert_eq!(client.schema.table, TableId::new("shop", "clients"));
    let names: Vec<&str> = client.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email_hash", "phone", "status"], "notes dropped, email renamed");
    let values = &client.after.as_ref().unwrap().values;
    assert_eq!(values[1], Value::Text(python_hmac("user3@example.com")), "HMAC-SHA256 with the salt");
    assert_eq!(values[2], Value::Text("***".into()));
    assert_eq!(values[3], Value::Text("active".into()));
    assert_ne!(client.schema.version, customers().version, "a new schema version");

    // The order the rules cannot evaluate is in the dead-letter topic, unchanged, with why.
    let mut dlq_reader = h.reader("clean-dlq");
    let mut dead = Vec::new();
    h.read_until(&mut dlq_reader, &mut dead, |got| !got.is_empty());
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(letter.attributes.get("cdc.dlq.stage").map(String::as_str), Some("transform"));
    let reason = letter.attributes.get("cdc.dlq.error").cloned().unwrap_or_default();
    assert!(reason.contains("'N/A'") && reason.contains("not a number"), "{reason}");
    let original = cdc_event::debezium::from_slice(&letter.payload).expect("the original record");
    assert_eq!(original.schema.table, TableId::new("shop", "orders"));
    assert_eq!(original.after.as_ref().unwrap().values[1], Value::Text("N/A".into()));

    (out_reader, out, dlq_reader)
}

/// Customers (two filtered out), an excluded table, orders (one the filter cannot evaluate).
fn workload() -> Vec<Event> {
    vec![
        customer(1, "active"),
        customer(2, "deleted"),
        customer(3, "active"),
        audit(1),
        order(1, "N/A"),
        order(2, "1200"),
        order(3, "7"),
        customer(4, "vip"),
        customer(5, "deleted"),
    ]
}

#[test]
fn the_same_rules_run_as_a_lambda_function_the_relay_invokes() {
    let h = Harness::start();
    let lambda = h.rt.block_on(cdc_lambda::LocalLambda::start("transform", Duration::from_secs(60))).expect("local Lambda service");
    let bootstrap = h.start_transform_with(&lambda.bootstrap_env(), "transform running in Lambda mode");
    h.publish(workload());
    let relay_binary = std::path::Path::new(env!("CARGO_BIN_EXE_transform")).with_file_name("datahub-relay");
    assert!(relay_binary.exists(), "{} is missing: cargo build -p datahub-relay first", relay_binary.display());
    let mut command = Command::new(relay_binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MONITORING_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("DATAHUB_ENDPOINT", &h.endpoint)
        .env("DATAHUB_ACCESS_ID", "id")
        .env("DATAHUB_ACCESS_KEY", "key")
        .env("DATAHUB_PROJECT", PROJECT)
        .env("DATAHUB_TOPIC", "raw")
        .env("DATAHUB_CONSUMER_GROUP", "relay")
        .env("RELAY_TARGET", "lambda")
        .env("RELAY_LAMBDA_ENDPOINT", lambda.invoke_endpoint())
        .env("RELAY_LAMBDA_FUNCTION_NAME", "transform")
        .env("RELAY_BATCH_LINGER", "50")
        .stdout(Stdio::null());
    let mut relay = Process::spawn("datahub-relay", &mut command).unwrap_or_else(|e| panic!("{e}"));
    relay.wait_for_log("datahub relay running", DEADLINE).unwrap_or_else(|e| panic!("{e}"));

    check_rules_applied(&h);
    let invocations = lambda.invocations();
    assert!(!invocations.is_empty());
    for invocation in &invocations {
        let cdc_lambda::InvokeOutcome::Success(answer) = &invocation.outcome else { panic!("failed invocation: {invocation:?}") };
        assert_eq!(answer["count"], invocation.payload["count"], "{answer}");
    }
    let published: u64 = invocations.iter().filter_map(|i| match &i.outcome {
        cdc_lambda::InvokeOutcome::Success(answer) => answer["published"].as_u64(),
        _ => None,
    }).sum();
    assert_eq!(published, 4, "three clients and one order published");
    let (status, log) = relay.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{log}");
    let (status, log) = bootstrap.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{log}");
}
