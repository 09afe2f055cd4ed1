//! The YAML examples of the Flink deployment guide (配置参数详解, 安全配置, 输出优化, 日志级别调整)
//! load as written: they are the files users bring.

mod common;

use cdc_config::{Compression, HaMode, LogLevel, OutputFormat, Role, SslMode, StateBackend, TableSelector};
use common::{ok, Scratch};

/// The guide's examples merged into one document (YAML forbids repeating a top-level key).
const GUIDE_YAML: &str = r#"
database:
  host: oceanbase.example.com
  port: 2881
  username: cdc_user
  password: ${DATABASE_PASSWORD}
  schema: production_db
  tables: "orders,users,products"
  sslMode: require
  sslCert: ${CERTS}/client-cert.pem
  sslKey: ${CERTS}/client-key.pem
  sslRootCert: ${CERTS}/ca-cert.pem

datahub:
  endpoint: https://dh-cn-hangzhou.aliyuncs.com  # 使用HTTPS
  accessId: ${DATAHUB_ACCESS_ID}
  accessKey: ${DATAHUB_ACCESS_KEY}
  project: my-project
  topic: cdc-events
  consumerGroup: flink-consumer
  sslEnabled: true
  sslVerify: true

flink:
  parallelism: 8
  jobmanager:
    memory:
      process:
        size: 2048m
  taskmanager:
    memory:
      process:
        size: 4096m
    numberOfTaskSlots: 8
  checkpoint:
    interval: 180000  # 3分钟
    timeout: 600000   # 10分钟
    minPause: 60000   # 1分钟
    maxConcurrent: 1
    retainedNumber: 5
  stateBackend:
    type: rocksdb  # 或 hashmap
    checkpointDir: file:///data/checkpoints
    incremental: true          # 启用增量Checkpoint

highAvailability:
  enabled: true
  mode: zookeeper
  zookeeperQuorum: zk1:2181,zk2:2181,zk3:2181
  zookeeperPath: /flink-cluster
  storageDir: file:///data/ha
  jobManagerCount: 2

output:
  path: ${OUT}
  format: parquet
  rolling:
    sizeBytes: 536870912  # 512MB
    intervalMs: 1800000   # 30分钟
  compression: snappy
  maxRetries: 3
  batchSize: 10000             # 批量写入

monitoring:
  port: 8080
  metrics:
    enabled: true
  alerts:
    latencyThresholdMs: 30000  # 30秒
    checkpointFailureRate: 0.05  # 5%
    loadThreshold: 0.7  # 70%

logging:
  level:
    root: INFO
    com.realtime.pipeline: DEBUG
    org.apache.flink: INFO
  pattern: "%d{yyyy-MM-dd HH:mm:ss} [%thread] %-5level %logger{36} - %msg%n"
  file:
    path: ${LOGS}
    maxSize: 100MB
    maxHistory: 30

taskmanager:
  network:
    memory:
      min: 64mb
      max: 256mb
    numberOfBuffers: 2048
  memory:
    flink:
      size: 3456m
    managed:
      size: 1024m
    jvm-overhead:
      min: 192mb
      max: 512mb

source.parallelism: 4
"#;

#[test]
fn the_guides_examples_load() {
    let scratch = Scratch::new();
    let certs = scratch.path("certs");
    std::fs::create_dir(&certs).unwrap();
    for name in ["client-cert.pem", "client-key.pem", "ca-cert.pem"] {
        std::fs::write(certs.join(name), "pem").unwrap();
    }
    let certs = certs.display().to_string();
    let out = scratch.path("data").display().to_string();
    let logs = scratch.path("logs").display().to_string();
    let env = [
        ("DATABASE_PASSWORD", "pw"),
        ("DATAHUB_ACCESS_ID", "id"),
        ("DATAHUB_ACCESS_KEY", "key"),
        ("CERTS", certs.as_str()),
        ("OUT", out.as_str()),
        ("LOGS", logs.as_str()),
    ];
    let c = ok(scratch.load(Role::CdcPipeline, Some(GUIDE_YAML), &env));

    assert_eq!(c.database.tables, TableSelector::new(&c.database.schema, "orders,users,products", "").unwrap());
    assert!(c.database.tables.matches(&c.database.schema, "users"));
    assert!(!c.database.tables.matches(&c.database.schema, "payments"));
    assert_eq!(c.database.ssl_mode, SslMode::Require);
    assert_eq!(c.datahub.consumer_group, "flink-consumer");
    assert_eq!(c.flink.parallelism, 8);
    assert_eq!(c.flink.taskmanager_memory_bytes, 4096 << 20);
    assert_eq!(c.flink.task_slots, 8);
    assert_eq!(c.checkpoint.interval_ms, 180_000);
    assert_eq!(c.checkpoint.retained_number, 5);
    assert_eq!(c.state_backend.backend, StateBackend::Rocksdb);
    assert_eq!(c.state_backend.checkpoint_dir, "file:///data/checkpoints");
    assert_eq!(c.high_availability.mode, HaMode::Zookeeper);
    assert_eq!(c.high_availability.storage_dir, "file:///data/ha");
    assert_eq!(c.output.format, OutputFormat::Parquet);
    assert_eq!(c.output.compression, Compression::Snappy);
    assert_eq!(c.output.rolling_interval_ms, 1_800_000);
    assert_eq!(c.monitoring.load_threshold, 0.7);
    assert_eq!(c.logging.level, LogLevel::Info);
    assert_eq!(c.logging.targets.get("com.realtime.pipeline"), Some(&LogLevel::Debug));
    assert_eq!(c.logging.filter_directives(), "info,com.realtime.pipeline=debug,org.apache.flink=info");
    assert_eq!(c.logging.file_max_size_bytes, 100 << 20);

    // The Flink-only tuning keys are accepted with a warning each, as is the logback pattern.
    for key in ["taskmanager.network.memory.min", "taskmanager.memory.jvm-overhead.max", "source.parallelism", "flink.stateBackend.incremental"] {
        assert!(c.warnings.iter().any(|w| w.contains(&format!("'{key}'"))), "no warning for {key}: {:#?}", c.warnings);
    }
    assert!(c.warnings.iter().any(|w| w.contains("logging.pattern")), "{:#?}", c.warnings);
}

#[test]
fn parallelism_default_is_an_alias_of_flink_parallelism() {
    let scratch = Scratch::new();
    let c = ok(scratch.load(Role::DatahubLocal, Some("parallelism.default: 12\n"), &[]));
    assert_eq!(c.flink.parallelism, 12);
    let c = ok(scratch.load(Role::DatahubLocal, Some("state:\n  savepoints:\n    dir: file:///sp\n"), &[("PARALLELISM_DEFAULT", "16")]));
    assert_eq!(c.flink.parallelism, 16, "the guide's own example: env PARALLELISM_DEFAULT wins");
    assert_eq!(c.state_backend.savepoint_dir, "file:///sp");
}
