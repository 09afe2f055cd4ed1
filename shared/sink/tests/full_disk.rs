//! THE FULL-DISK TEST: the sink's output root is a tiny tmpfs. After one good checkpoint the
//! disk is filled up; the next writes are retried (`max_retries` 3), then the sink stops with
//! an error naming the file and the attempt count, and nothing of the failed checkpoint is
//! visible. Once space is freed, a new sink recovers from the last good checkpoint, the input
//! is replayed from the checkpointed offsets, and the committed files (read back with
//! pyarrow) hold every input row exactly once.
//!
//! Needs root (or CAP_SYS_ADMIN) to mount the tmpfs: without it the test prints
//! `SKIPPED: cannot mount tmpfs: ...` and passes. Needs `python3` with `pyarrow`.

mod common;

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cdc_sink::{FileSink, Record, SinkError, SinkOptions, INPROGRESS_DIR};
use common::*;

const TOTAL: i64 = 400;
/// Rows committed by the first (good) checkpoint.
const FIRST: i64 = 100;

/// A mounted tmpfs, unmounted on drop (also when the test panics).
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (e.g. a file still open after a panic): detach it lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Fills the file system of `path` to the last byte; returns the bytes written.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create filler");
    let mut written = 0u64;
    for chunk in [64 * 1024, 4096, 1] {
        let buf = vec![0xA5u8; chunk];
        loop {
            match file.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    file.sync_all().ok();
    written
}

/// `TOTAL` inserts on shard `s0` at offsets `0..TOTAL` (ids `1..=TOTAL`), over two hours.
fn input() -> Vec<Record> {
    let schema = table("orders", 1, false);
    (1..=TOTAL)
        .map(|id| {
            let ts = HOUR_06 + (id - 1) * (2 * HOUR_MS / TOTAL);
            Record::new("s0", (id - 1) as u64, insert(&schema, "src", id, ts))
        })
        .collect()
}

fn sink_options(root: &Path) -> SinkOptions {
    SinkOptions::new(
        root,
        cdc_config::OutputFormat::Parquet,
        cdc_config::Compression::Snappy,
    )
    .and_then(|o| o.with_batch_size(16))
    .expect("valid options")
    .with_max_retries(3)
    .with_retry_backoff(Duration::from_millis(5))
}

#[test]
fn a_full_disk_is_retried_then_stops_the_sink_and_loses_nothing_once_space_is_freed() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mount_point = dir.path().join("disk");
    std::fs::create_dir(&mount_point).expect("mount point");
    let _mount = match TmpfsMount::mount(&mount_point, "512k") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("SKIPPED: cannot mount tmpfs: {reason}");
            return;
        }
    };
    let root = &mount_point.join("out");
    let input = input();

    // 1. A good checkpoint: ids 1..=FIRST committed.
    let mut sink = FileSink::new(sink_options(root));
    sink.recover(None).expect("recover");
    for record in &input[..FIRST as usize] {
        sink.write(record.clone())
            .expect("write before the disk is full");
    }
    let good = sink.prepare_checkpoint().expect("prepare");
    sink.commit(&good).expect("commit");
    assert_eq!(good.offsets.get("s0"), Some(FIRST as u64));
    for file in &good.pending {
        let on_disk = std::fs::metadata(root.join(&file.final_key)).expect("committed file");
        assert_eq!(on_disk.len(), file.size_bytes, "{}", file.final_key);
    }
    let committed_before = visible_files(root);
    assert!(!committed_before.is_empty());
    assert_eq!(pyarrow_ids(root, ""), (1..=FIRST).collect::<Vec<_>>());
    println!("checkpoint 1 committed: {committed_before:?}");

    // 2. The disk fills up (outside the output directory, so readers never see the filler).
    let filler = mount_point.join("filler");
    let filled = fill_disk(&filler);
    println!("filler ate the remaining {filled} bytes of the 512 KiB tmpfs");

    // 3. Writing on: some write or the prepare fails after the retries, and the sink stops.
    let failed_at = Instant::now();
    let mut failure = None;
    for record in &input[FIRST as usize..] {
        if let Err(error) = sink.write(record.clone()) {
            failure = Some(("write", error));
            break;
        }
    }
    let (phase, error) = match failure {
        Some(f) => f,
        None => (
            "prepare_checkpoint",
            sink.prepare_checkpoint()
                .expect_err("no space left: the checkpoint cannot be prepared"),
        ),
    };
    let text = error.to_string();
    println!("{phase} failed after {:?}: {text}", failed_at.elapsed());
    assert!(
        matches!(error, SinkError::Io { .. } | SinkError::Write { .. }),
        "{error:?}"
    );
    if let SinkError::Io { attempts, .. } = &error {
        assert_eq!(*attempts, 4, "{text}");
    }
    let inprogress = root.join(INPROGRESS_DIR);
    assert!(
        text.contains(&inprogress.display().to_string()),
        "the error names the in-progress file: {text}"
    );
    assert!(
        text.contains("after 4 attempt(s)"),
        "1 attempt + 3 retries: {text}"
    );
    assert!(
        text.to_lowercase().contains("no space left"),
        "the cause is in the message: {text}"
    );
    // Three backoffs of 5, 10 and 20 ms happened before the sink gave up.
    assert!(failed_at.elapsed() >= Duration::from_millis(35));
    assert!(sink.is_failed());
    assert!(
        matches!(sink.prepare_checkpoint(), Err(SinkError::Failed { .. })),
        "a stopped sink takes no checkpoint"
    );
    // Nothing of the failed checkpoint became visible.
    assert_eq!(visible_files(root), committed_before);
    assert_eq!(pyarrow_ids(root, ""), (1..=FIRST).collect::<Vec<_>>());
    drop(sink); // the process stops

    // 4. Space is freed; a restart recovers from the last good checkpoint and replays.
    std::fs::remove_file(&filler).expect("free space");
    let mut sink = FileSink::new(sink_options(root));
    let offsets = sink
        .recover(Some(&good))
        .expect("recover after space is freed");
    let resume = offsets.get("s0").expect("checkpointed offset of s0");
    assert_eq!(resume, FIRST as u64);
    assert!(
        all_files(&inprogress).is_empty(),
        "leftovers of the failed run are deleted: {:?}",
        all_files(&inprogress)
    );
    for record in input.iter().filter(|r| r.offset >= resume) {
        sink.write(record.clone())
            .expect("write after space is freed");
    }
    let state = sink.prepare_checkpoint().expect("prepare");
    assert_eq!(state.offsets.get("s0"), Some(TOTAL as u64));
    let report = sink.commit(&state).expect("commit");
    println!(
        "after freeing space: {} file(s) committed, {:?} now visible",
        report.renamed,
        visible_files(root)
    );

    // Every input row exactly once.
    assert_eq!(pyarrow_ids(root, ""), (1..=TOTAL).collect::<Vec<_>>());
    assert!(all_files(&inprogress).is_empty());
    println!("took {:?}", started.elapsed());
}
