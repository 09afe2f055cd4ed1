//! Real crashes and real processes: this test binary re-runs itself as a
//! child (selected by an environment variable) that is SIGKILLed mid-save,
//! and as several children racing compare-and-swap updates.

use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cdc_state::backend::TEMP_PREFIX;
use cdc_state::{
    conformance, Backend, BackendError, Checkpoint, CheckpointStore, GetResult, LocalDirBackend,
    ObjectMeta, PutMode, Version,
};

const SAVE_LOOP_DIR: &str = "CDC_STATE_TEST_SAVE_LOOP_DIR";
const CAS_DIR: &str = "CDC_STATE_TEST_CAS_DIR";
const CAS_INCREMENTS: u64 = 25;
const RETAINED: usize = 3;
/// Enough kills inside writes that a non-atomic write shows up as a torn
/// checkpoint (a deliberately broken `put` was caught within ~16 of them).
const ROUNDS: u64 = 24;

/// About 1 MiB, so a write takes long enough for kills to land inside it.
fn payload(seed: u64) -> Vec<String> {
    (0..40_000)
        .map(|i| format!("record-{seed}-{i:08}"))
        .collect()
}

fn store(dir: &Path) -> CheckpointStore<LocalDirBackend> {
    CheckpointStore::new(LocalDirBackend::open(dir).unwrap())
        .with_retained_number(NonZeroUsize::new(RETAINED).unwrap())
}

fn spawn_self(test: &str, env: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Announces each write on stdout just before it starts, so the parent can
/// aim its kill inside a write rather than between saves.
#[derive(Debug)]
struct AnnouncePuts(LocalDirBackend);

impl Backend for AnnouncePuts {
    fn get(&self, key: &str) -> Result<GetResult, BackendError> {
        self.0.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
        println!("writing {key}");
        self.0.put(key, bytes, mode)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.0.delete(key)
    }
    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
        self.0.cleanup_incomplete(prefix)
    }
    fn locate(&self, key: &str) -> String {
        self.0.locate(key)
    }
}

/// Child mode: save checkpoints forever, announcing each write and
/// acknowledging each save on stdout. A no-op in the normal test run.
#[test]
fn child_save_loop() {
    let Some(dir) = std::env::var_os(SAVE_LOOP_DIR) else {
        return;
    };
    let store = CheckpointStore::new(AnnouncePuts(LocalDirBackend::open(dir).unwrap()))
        .with_retained_number(NonZeroUsize::new(RETAINED).unwrap());
    let mut seed = u64::from(std::process::id()) * 1_000_000;
    loop {
        seed += 1;
        let mut checkpoint = Checkpoint::new("crash-test", 1);
        checkpoint.put_state("payload", &payload(seed)).unwrap();
        checkpoint.put_state("seed", &seed).unwrap();
        let id = store.save(&mut checkpoint).unwrap();
        println!("saved {id}");
    }
}

#[test]
fn sigkill_during_saves_never_leaves_a_torn_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut last_acknowledged = 0;
    let mut rounds_with_leftover_temp = 0;
    for round in 0..ROUNDS {
        let mut child = KillOnDrop(spawn_self("child_save_loop", SAVE_LOOP_DIR, dir.path()));
        let stdout = child.0.stdout.take().unwrap();
        // Wait for one or two acknowledged saves, then kill: in most rounds
        // as soon as the next write starts (the kill lands inside the write),
        // in every fourth right after the acknowledgement (it lands in
        // retention or between saves).
        let wanted = round % 2 + 1;
        let kill_inside_write = round % 4 != 0;
        let mut acknowledged = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("saved ") {
                last_acknowledged = id.parse::<u64>().unwrap();
                acknowledged += 1;
                if acknowledged == wanted && !kill_inside_write {
                    break;
                }
            } else if line.starts_with("writing ") && acknowledged == wanted {
                break;
            }
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        assert_eq!(
            acknowledged, wanted,
            "round {round}: the child stopped before acknowledging {wanted} saves"
        );

        if has_temp_files(dir.path()) {
            rounds_with_leftover_temp += 1;
        }
        let report = store(dir.path()).load_latest_with_report().unwrap();
        assert!(
            report.skipped.is_empty(),
            "round {round}: a torn checkpoint is visible: {:?}",
            report.skipped
        );
        let latest = report
            .checkpoint
            .expect("a checkpoint after the first acknowledged save");
        assert!(
            latest.id.0 >= last_acknowledged,
            "round {round}: acknowledged checkpoint {last_acknowledged} lost; latest is {}",
            latest.id
        );
        let seed: u64 = latest.state("seed").unwrap().unwrap();
        assert_eq!(
            latest.state::<Vec<String>>("payload").unwrap(),
            Some(payload(seed))
        );
    }

    // A fresh writer continues after the crashes and cleans up after them.
    let survivor = store(dir.path());
    let id = survivor
        .save(&mut Checkpoint::new("crash-test", 1))
        .unwrap();
    assert!(id.0 > last_acknowledged);
    assert!(
        !has_temp_files(dir.path()),
        "the save after the crashes removed every temporary file"
    );
    assert_eq!(survivor.list().unwrap().len(), RETAINED);
    eprintln!("kills that left a temporary file behind: {rounds_with_leftover_temp} of {ROUNDS}");
}

/// Child mode: increment a shared counter by compare-and-swap.
#[test]
fn child_cas_increments() {
    let Some(dir) = std::env::var_os(CAS_DIR) else {
        return;
    };
    let backend = LocalDirBackend::open(dir).unwrap();
    for _ in 0..CAS_INCREMENTS {
        conformance::increment(&backend, "counter").unwrap();
    }
    println!("done");
}

#[test]
fn update_is_a_compare_and_swap_across_processes() {
    const PROCESSES: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalDirBackend::open(dir.path()).unwrap();
    backend.put("counter", b"0", PutMode::Create).unwrap();
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_self("child_cas_increments", CAS_DIR, dir.path()))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a child failed: {:?}",
            output.status
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("done"));
    }
    let counter = backend.get("counter").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&counter.bytes),
        (PROCESSES * CAS_INCREMENTS).to_string(),
        "increments were lost between processes"
    );
}

/// Kills the endless child loop even if an assertion fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already dead after a normal round: errors are expected here.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn has_temp_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX)
    })
}
