//! CheckpointStore: ids, retention, crash leftovers, corruption, fencing.

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use cdc_state::backend::TEMP_PREFIX;
use cdc_state::{
    checkpoint_key, encode_checkpoint, open_backend, Backend, BackendError, Checkpoint,
    CheckpointError, CheckpointId, CheckpointStore, FormatError, GetResult, LocalDirBackend,
    MemoryBackend, ObjectMeta, PutMode, ShardOffsets, Version,
};

fn retained(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn local_store(dir: &Path, keep: usize) -> CheckpointStore<LocalDirBackend> {
    CheckpointStore::new(LocalDirBackend::open(dir).unwrap()).with_retained_number(retained(keep))
}

/// A checkpoint whose state identifies what was saved.
fn checkpoint(epoch: u64, marker: u64) -> Checkpoint {
    let mut checkpoint = Checkpoint::new("orders", epoch);
    let offsets: ShardOffsets = [("0", marker)].into_iter().collect();
    checkpoint.put_state("bus", &offsets).unwrap();
    checkpoint
}

fn marker(checkpoint: &Checkpoint) -> u64 {
    checkpoint
        .state::<ShardOffsets>("bus")
        .unwrap()
        .unwrap()
        .get("0")
        .unwrap()
}

fn ids<B: Backend>(store: &CheckpointStore<B>) -> Vec<u64> {
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|entry| entry.id.0)
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".cdc-lock")
        .collect();
    names.sort();
    names
}

#[test]
fn ids_increase_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 5);
    assert!(store.load_latest().unwrap().is_none());
    for expected in 1..=3 {
        let mut next = checkpoint(1, expected * 10);
        assert_eq!(store.save(&mut next).unwrap(), CheckpointId(expected));
        assert_eq!(
            next.id,
            CheckpointId(expected),
            "save assigns the id to the checkpoint"
        );
    }
    let reopened = local_store(dir.path(), 5);
    let latest = reopened.load_latest().unwrap().unwrap();
    assert_eq!((latest.id, marker(&latest)), (CheckpointId(3), 30));
    assert_eq!(
        reopened.save(&mut checkpoint(1, 40)).unwrap(),
        CheckpointId(4)
    );
    assert_eq!(marker(&reopened.load(CheckpointId(2)).unwrap()), 20);
    assert!(matches!(
        reopened.load(CheckpointId(99)),
        Err(CheckpointError::NotFound { .. })
    ));
}

#[test]
fn retention_keeps_exactly_the_newest_retained_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 3);
    for marker in 1..=10 {
        store.save(&mut checkpoint(1, marker)).unwrap();
    }
    assert_eq!(ids(&store), [8, 9, 10]);
    assert_eq!(
        files_in(dir.path()),
        [8, 9, 10].map(|id| checkpoint_key(CheckpointId(id))),
        "exactly three files, no leftovers"
    );

    let memory = CheckpointStore::new(MemoryBackend::new()).with_retained_number(retained(3));
    for marker in 1..=10 {
        memory.save(&mut checkpoint(1, marker)).unwrap();
    }
    assert_eq!(ids(&memory), [8, 9, 10]);

    let default_store = CheckpointStore::new(MemoryBackend::new());
    for marker in 1..=4 {
        default_store.save(&mut checkpoint(1, marker)).unwrap();
    }
    assert_eq!(ids(&default_store), [4], "Flink's default retains one");
}

#[test]
fn crash_between_write_and_rename_loads_the_older_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 3);
    store.save(&mut checkpoint(1, 1)).unwrap();
    store.save(&mut checkpoint(1, 2)).unwrap();

    // Checkpoint 3 was written to its temporary file but never renamed.
    let mut unrenamed = checkpoint(1, 3);
    unrenamed.id = CheckpointId(3);
    let temp = dir.path().join(format!("{TEMP_PREFIX}4242-0"));
    fs::write(&temp, encode_checkpoint(&unrenamed).unwrap()).unwrap();
    // And checkpoint 4 is torn in place (a non-atomic writer, or a disk lie).
    let mut torn = checkpoint(1, 4);
    torn.id = CheckpointId(4);
    let bytes = encode_checkpoint(&torn).unwrap();
    fs::write(
        dir.path().join(checkpoint_key(torn.id)),
        &bytes[..bytes.len() * 2 / 3],
    )
    .unwrap();

    let report = store.load_latest_with_report().unwrap();
    let loaded = report.checkpoint.expect("the complete checkpoint 2");
    assert_eq!((loaded.id, marker(&loaded)), (CheckpointId(2), 2));
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].id, CheckpointId(4));
    assert!(
        matches!(report.skipped[0].error, FormatError::MissingTrailer),
        "{:?}",
        report.skipped[0].error
    );

    // The next save takes an id after the torn one and removes the temp file.
    assert_eq!(store.save(&mut checkpoint(1, 5)).unwrap(), CheckpointId(5));
    assert!(
        !temp.exists(),
        "the next save cleans the leftover temporary file"
    );
    assert_eq!(marker(&store.load_latest().unwrap().unwrap()), 5);
}

#[test]
fn corrupt_newest_checkpoint_is_skipped_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 5);
    for marker in 1..=3 {
        store.save(&mut checkpoint(1, marker)).unwrap();
    }
    let newest = dir.path().join(checkpoint_key(CheckpointId(3)));
    let good = fs::read(&newest).unwrap();

    // A flipped byte in the body.
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x04;
    fs::write(&newest, &flipped).unwrap();
    let (report, log) = capture_logs(|| store.load_latest_with_report().unwrap());
    assert_eq!(
        report.checkpoint.map(|checkpoint| checkpoint.id),
        Some(CheckpointId(2))
    );
    assert_eq!(report.skipped.len(), 1);
    assert!(matches!(
        report.skipped[0].error,
        FormatError::ChecksumMismatch { .. }
    ));
    assert_eq!(report.skipped[0].location, newest.display().to_string());
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("skipping corrupt checkpoint"), "{log}");
    assert!(
        log.contains(&newest.display().to_string()),
        "the warning names the file: {log}"
    );

    // A truncation.
    fs::write(&newest, &good[..good.len() - 10]).unwrap();
    let report = store.load_latest_with_report().unwrap();
    assert_eq!(
        report.checkpoint.map(|checkpoint| checkpoint.id),
        Some(CheckpointId(2))
    );
    assert_eq!(report.skipped.len(), 1);

    // A valid checkpoint under another id's name.
    fs::copy(dir.path().join(checkpoint_key(CheckpointId(1))), &newest).unwrap();
    let report = store.load_latest_with_report().unwrap();
    assert_eq!(
        report.checkpoint.map(|checkpoint| checkpoint.id),
        Some(CheckpointId(2))
    );
    assert!(matches!(
        report.skipped[0].error,
        FormatError::IdMismatch { .. }
    ));

    // Nothing valid at all: no checkpoint, never a corrupt one.
    for id in 1..=3 {
        fs::write(
            dir.path().join(checkpoint_key(CheckpointId(id))),
            b"CDC-CHECKPOINT v1\n{",
        )
        .unwrap();
    }
    let report = store.load_latest_with_report().unwrap();
    assert!(report.checkpoint.is_none());
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|skip| skip.id.0)
            .collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert!(matches!(
        store.load(CheckpointId(3)),
        Err(CheckpointError::Corrupt { .. })
    ));
}

#[test]
fn corrupt_checkpoints_do_not_count_towards_retention_and_age_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), 2);
    store.save(&mut checkpoint(1, 1)).unwrap();
    store.save(&mut checkpoint(1, 2)).unwrap();
    fs::write(dir.path().join(checkpoint_key(CheckpointId(2))), b"garbage").unwrap();

    store.save(&mut checkpoint(1, 3)).unwrap();
    assert_eq!(
        ids(&store),
        [1, 2, 3],
        "two valid (1, 3) retained; corrupt 2 kept for inspection"
    );
    store.save(&mut checkpoint(1, 4)).unwrap();
    assert_eq!(ids(&store), [3, 4]);
}

#[test]
fn fencing_rejects_older_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let leader = local_store(dir.path(), 10);
    leader.save(&mut checkpoint(5, 1)).unwrap();
    match leader.save(&mut checkpoint(4, 2)) {
        Err(CheckpointError::Fenced {
            ours: 4,
            current: 5,
        }) => {}
        other => panic!("expected Fenced {{ ours: 4, current: 5 }}, got {other:?}"),
    }

    // A zombie that never heard of epoch 5 is fenced by the stored checkpoint.
    let zombie = local_store(dir.path(), 10);
    match zombie.save(&mut checkpoint(3, 3)) {
        Err(CheckpointError::Fenced {
            ours: 3,
            current: 5,
        }) => {}
        other => panic!("expected Fenced {{ ours: 3, current: 5 }}, got {other:?}"),
    }

    // An HA lease with a newer epoch fences before anything is stored.
    let leased = local_store(dir.path(), 10).with_min_epoch(7);
    match leased.save(&mut checkpoint(6, 4)) {
        Err(CheckpointError::Fenced {
            ours: 6,
            current: 7,
        }) => {}
        other => panic!("expected Fenced {{ ours: 6, current: 7 }}, got {other:?}"),
    }
    assert_eq!(ids(&leader), [1], "fenced saves write nothing");

    leased.save(&mut checkpoint(7, 5)).unwrap();
    assert!(matches!(
        leader.save(&mut checkpoint(5, 6)),
        Err(CheckpointError::Fenced {
            ours: 5,
            current: 7
        })
    ));

    // Loading raises the fence to the loaded epoch.
    let restored = local_store(dir.path(), 10);
    assert_eq!(restored.min_epoch(), 0);
    restored.load_latest().unwrap();
    assert_eq!(restored.min_epoch(), 7);
}

/// A backend that runs a hook (once) just before the first `put`, to place
/// a competing write exactly between a store's id choice and its create.
struct BeforePut<B> {
    inner: B,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for BeforePut<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeforePut")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Backend for BeforePut<B> {
    fn get(&self, key: &str) -> Result<GetResult, BackendError> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.put(key, bytes, mode)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key)
    }
    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
        self.inner.cleanup_incomplete(prefix)
    }
    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }
}

#[test]
fn two_stores_racing_for_one_id_one_gets_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let winner = Arc::new(local_store(dir.path(), 10));
    winner.save(&mut checkpoint(1, 1)).unwrap();

    let competitor = Arc::clone(&winner);
    let loser = CheckpointStore::new(BeforePut {
        inner: LocalDirBackend::open(dir.path()).unwrap(),
        hook: Mutex::new(Some(Box::new(move || {
            assert_eq!(
                competitor.save(&mut checkpoint(1, 2)).unwrap(),
                CheckpointId(2)
            );
        }))),
    });
    match loser.save(&mut checkpoint(1, 99)) {
        Err(CheckpointError::AlreadyExists { id, location }) => {
            assert_eq!(id, CheckpointId(2));
            assert!(location.ends_with(&checkpoint_key(id)), "{location}");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        marker(&winner.load(CheckpointId(2)).unwrap()),
        2,
        "the winner's checkpoint was not overwritten"
    );
}

#[test]
fn concurrent_stores_never_write_an_id_twice() {
    const WRITERS: u64 = 4;
    const ROUNDS: u64 = 15;
    let dir = tempfile::tempdir().unwrap();
    let start = Barrier::new(WRITERS as usize);
    let saved: Vec<(u64, CheckpointId)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (dir, start) = (dir.path(), &start);
                scope.spawn(move || {
                    let store = local_store(dir, 1000);
                    let mut saved = Vec::new();
                    for round in 0..ROUNDS {
                        start.wait();
                        let tag = writer * 1000 + round;
                        match store.save(&mut checkpoint(1, tag)) {
                            Ok(id) => saved.push((tag, id)),
                            Err(CheckpointError::AlreadyExists { .. }) => {}
                            Err(error) => panic!("writer {writer}: {error:?}"),
                        }
                    }
                    saved
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    let mut seen_ids: Vec<CheckpointId> = saved.iter().map(|(_, id)| *id).collect();
    seen_ids.sort();
    seen_ids.dedup();
    assert_eq!(
        seen_ids.len(),
        saved.len(),
        "an id was reported saved twice: {saved:?}"
    );
    assert!(
        saved.len() as u64 >= ROUNDS,
        "at least one save wins each round"
    );
    let reader = local_store(dir.path(), 1000);
    for (tag, id) in saved {
        assert_eq!(
            marker(&reader.load(id).unwrap()),
            tag,
            "checkpoint {id} holds another writer's state"
        );
    }
}

#[test]
fn store_over_a_backend_opened_from_a_uri() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("file://{}/checkpoints/job-1", dir.path().display());
    let store = CheckpointStore::new(open_backend(&uri).unwrap());
    store.save(&mut checkpoint(1, 7)).unwrap();
    assert!(dir
        .path()
        .join("checkpoints/job-1")
        .join(checkpoint_key(CheckpointId(1)))
        .is_file());
    assert_eq!(marker(&store.load_latest().unwrap().unwrap()), 7);
}

/// Runs `f` with a tracing subscriber writing plain text into a buffer.
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let log = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (result, log)
}

#[test]
fn save_next_is_a_compare_and_swap_on_the_checkpoint_sequence() {
    let backend = std::sync::Arc::new(cdc_state::MemoryBackend::new());
    let zombie = CheckpointStore::new(backend.clone());
    let leader = CheckpointStore::new(backend.clone());
    let first = leader
        .save_next(&mut Checkpoint::new("job", 0), None)
        .unwrap();
    assert_eq!(first.0, 1);
    // A writer that never saw checkpoint 1 cannot save at all.
    assert!(matches!(
        zombie.save_next(&mut Checkpoint::new("job", 0), None),
        Err(cdc_state::CheckpointError::Conflict { expected: None, .. })
    ));
    let second = leader
        .save_next(&mut Checkpoint::new("job", 0), Some(first))
        .unwrap();
    assert_eq!(second.0, 2);
    // Both restored 1; the leader saved 2 first, so the zombie's successor of 1 is refused
    // and nothing of it is stored.
    let refused = zombie.save_next(&mut Checkpoint::new("job", 0), Some(first));
    match refused {
        Err(error @ cdc_state::CheckpointError::Conflict { .. }) => {
            assert!(error.to_string().contains("another writer"), "{error}")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        leader.load_latest().unwrap().map(|c| c.id),
        Some(second),
        "the zombie wrote nothing"
    );
}
