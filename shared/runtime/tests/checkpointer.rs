//! The checkpoint coordinator against a real checkpoint directory.

use std::sync::Arc;
use std::time::Duration;

use cdc_config::{Config, ConfigFile, LoadOptions, Role};
use cdc_runtime::Checkpointer;
use cdc_telemetry::prometheus::Registry;
use cdc_telemetry::PipelineMetrics;

fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let checkpoints = format!("file://{}", dir.join("checkpoints").display());
    let savepoints = format!("file://{}", dir.join("savepoints").display());
    let mut env = vec![
        ("CHECKPOINT_DIR".to_string(), checkpoints),
        ("SAVEPOINT_DIR".to_string(), savepoints),
        ("CHECKPOINT_RETAINED_NUMBER".to_string(), "2".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(LoadOptions::new(Role::DatahubLocal).with_file(ConfigFile::None).with_env(env)).unwrap()
}

fn metrics() -> (Registry, Arc<PipelineMetrics>) {
    let registry = Registry::new();
    let metrics = Arc::new(PipelineMetrics::new(&registry).unwrap());
    (registry, metrics)
}

fn counter(registry: &Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()).sum())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn checkpoints_are_durable_retained_counted_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[("CHECKPOINT_INTERVAL", "3600000"), ("CHECKPOINT_MIN_PAUSE", "1000")]);
    let (registry, metrics) = metrics();
    let mut checkpointer = Checkpointer::open(&config, "test-job", metrics.clone()).unwrap();
    assert!(checkpointer.restore(None).await.unwrap().is_none(), "a first start has nothing to restore");
    assert!(!checkpointer.is_due(), "as in Flink, the first checkpoint waits one interval");

    for offset in [10u64, 20, 30] {
        let mut checkpoint = checkpointer.new_checkpoint();
        checkpoint.put_state("capture", &offset).unwrap();
        checkpointer.checkpoint(checkpoint).await.unwrap();
    }
    // The next one waits for the (one hour) interval.
    assert!(!checkpointer.is_due());
    assert!(checkpointer.next_due() > std::time::Instant::now() + Duration::from_secs(3000));
    assert_eq!(counter(&registry, "flink_checkpoint_total"), 3.0);
    assert_eq!(counter(&registry, "flink_checkpoint_failed"), 0.0);
    let kept = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("chk-"))
        .count();
    assert_eq!(kept, 2, "CHECKPOINT_RETAINED_NUMBER=2");

    let mut reopened = Checkpointer::open(&config, "test-job", metrics).unwrap();
    let restored = reopened.restore(None).await.unwrap().expect("latest checkpoint");
    assert_eq!(restored.state::<u64>("capture").unwrap(), Some(30));
}

#[tokio::test]
async fn a_savepoint_is_restorable_in_place_of_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[]);
    let (_registry, metrics) = metrics();
    let mut checkpointer = Checkpointer::open(&config, "job", metrics.clone()).unwrap();
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state("sink", &"savepointed").unwrap();
    let savepoint = checkpointer.savepoint(checkpoint, None).await.unwrap();
    assert!(savepoint.starts_with(dir.path().join("savepoints")), "{savepoint:?}");

    let mut later = checkpointer.new_checkpoint();
    later.put_state("sink", &"checkpointed").unwrap();
    checkpointer.checkpoint(later).await.unwrap();

    let mut restarted = Checkpointer::open(&config, "job", metrics).unwrap();
    let from_savepoint = restarted.restore(Some(&savepoint)).await.unwrap().unwrap();
    assert_eq!(from_savepoint.state::<String>("sink").unwrap().as_deref(), Some("savepointed"));
    let err = restarted.restore(Some(&dir.path().join("no-such-savepoint"))).await.unwrap_err();
    assert!(format!("{err:#}").contains("no-such-savepoint"), "{err:#}");
}

#[tokio::test]
async fn a_checkpoint_dir_that_cannot_be_created_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let mut config = config(dir.path(), &[]);
    config.state_backend.checkpoint_dir = format!("file://{}/below", file.display());
    let (_registry, metrics) = metrics();
    let err = Checkpointer::open(&config, "job", metrics).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("a-file/below"), "{text}");
}

#[test]
fn durations_take_the_units_operators_write() {
    use cdc_runtime::parse_duration;
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("5 minutes").unwrap_err().contains("unit"));
    assert!(parse_duration("soon").is_err());
}
