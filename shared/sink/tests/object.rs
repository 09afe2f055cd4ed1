//! The object sink's two-phase commit against a real S3-compatible server (moto, started by
//! each test): formats read back by pyarrow, invisibility before the commit, recovery,
//! idempotent commits, fencing between two instances, multipart parts, and retries of
//! failing requests. Needs `moto_server` and `python3` with `pyarrow` (the tests fail, not
//! skip, without them; `scripts/install-test-deps.sh` installs both).
#![cfg(feature = "s3")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_config::{Compression, OutputFormat};
use cdc_sink::object::{ObjectStorage, MIN_PART_SIZE};
use cdc_sink::{CommitOutcome, FileSink, Record, SinkError, SinkOptions, Storage};
use cdc_state::s3::{S3Backend, S3Connection, S3Options};
use cdc_state::{Checkpoint, CheckpointError, CheckpointStore, PendingFile, SinkState};
use common::objects::{download, get, keys, moto, pyarrow_rows, uploads};
use common::{input, visible_files};

const BUCKET: &str = "cdc-sink-test";

fn options(staging: &Path, format: OutputFormat, compression: Compression) -> SinkOptions {
    SinkOptions::new(staging, format, compression)
        .and_then(|o| o.with_batch_size(4))
        .map(|o| o.with_retry_backoff(Duration::from_millis(1)))
        .expect("valid options")
}

fn object_sink(connection: &S3Connection, prefix: &str, staging: &Path, format: OutputFormat, compression: Compression) -> FileSink {
    let options = options(staging, format, compression);
    let storage = ObjectStorage::new(connection.clone(), BUCKET, prefix, options.retry_policy());
    FileSink::with_storage(options, Box::new(storage))
}

fn write_all(sink: &mut FileSink, records: &[Record]) {
    for record in records {
        sink.write(record.clone()).expect("write");
    }
}

/// Ids the input holds, sorted.
fn input_ids(records: &[Record]) -> Vec<i64> {
    let mut ids: Vec<i64> = records
        .iter()
        .map(|r| match r.event.after.as_ref().map(|row| &row.values[0]) {
            Some(cdc_event::Value::Int(id)) => *id,
            other => panic!("unexpected id {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn every_format_is_committed_once_and_reads_back_equal_with_the_file_sinks_layout() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let cases = [
        (OutputFormat::Parquet, Compression::Snappy, "parquet", "snappy"),
        (OutputFormat::Parquet, Compression::Zstd, "parquet", "zstd"),
        (OutputFormat::Json, Compression::None, "json", "none"),
        (OutputFormat::Json, Compression::Gzip, "json", "gzip"),
        (OutputFormat::Csv, Compression::None, "csv", "none"),
        (OutputFormat::Csv, Compression::Zstd, "csv", "zstd"),
    ];
    let records = input();
    for (format, compression, format_name, compression_name) in cases {
        let case = format!("{format_name}-{compression_name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("lake/{case}");
        let mut sink = object_sink(&connection, &prefix, &dir.path().join("staging"), format, compression);
        assert_eq!(sink.recover(None).expect("recover").len(), 0);
        write_all(&mut sink, &records);

        let state = sink.prepare_checkpoint().expect("prepare");
        assert!(!state.pending.is_empty());
        for pending in &state.pending {
            assert!(pending.upload_id.is_some() && !pending.parts.is_empty(), "{case}: {pending:?}");
        }
        // Uploaded but not completed: invisible to readers, and nothing left staged locally.
        assert_eq!(keys(&connection, BUCKET, &prefix), Vec::<String>::new(), "{case}");
        assert_eq!(uploads(&connection, BUCKET, &prefix).len(), state.pending.len(), "{case}");
        assert_eq!(common::all_files(&dir.path().join("staging/.inprogress")), Vec::<String>::new(), "{case}");

        let report = sink.commit(&state).expect("commit");
        assert_eq!(report.renamed, state.pending.len(), "{case}");
        assert!(uploads(&connection, BUCKET, &prefix).is_empty(), "{case}: uploads left open");

        // The same input through the local file sink names the same files.
        let local = dir.path().join("local");
        let mut file_sink = FileSink::new(options(&local, format, compression));
        file_sink.recover(None).expect("recover");
        write_all(&mut file_sink, &records);
        let local_state = file_sink.prepare_checkpoint().expect("prepare");
        file_sink.commit(&local_state).expect("commit");
        let object_names: Vec<String> = keys(&connection, BUCKET, &prefix)
            .into_iter()
            .map(|k| k[prefix.len() + 1..].to_owned())
            .collect();
        assert_eq!(object_names, visible_files(&local), "{case}: layout");

        let copy = download(&connection, BUCKET, &format!("{prefix}/"), &dir.path().join("copy"));
        let (files, rows) = pyarrow_rows(&copy, format_name, compression_name);
        assert_eq!(files, object_names, "{case}");
        let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, input_ids(&records), "{case}: rows read back");
        let mut positions: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        let mut expected: Vec<String> = records.iter().map(|r| r.event.position.to_string()).collect();
        positions.sort();
        expected.sort();
        assert_eq!(positions, expected, "{case}: positions read back");
        // And byte for byte what the file sink wrote (Parquet footers carry a creation time).
        if format != OutputFormat::Parquet {
            for name in &object_names {
                let object = get(&connection, BUCKET, &format!("{prefix}/{name}"));
                let local_bytes = std::fs::read(local.join(name)).expect("local file");
                assert!(object == local_bytes, "{case}: {name} differs from the file sink's");
            }
        }
    }
}

#[test]
fn recovery_completes_the_checkpointed_uploads_and_aborts_the_later_ones() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = dir.path().join("staging");
    let prefix = "recovery";
    let records = input();
    let (first, second) = records.split_at(12);

    let mut sink = object_sink(&connection, prefix, &staging, OutputFormat::Parquet, Compression::Snappy);
    sink.recover(None).expect("recover");
    write_all(&mut sink, first);
    let checkpointed = sink.prepare_checkpoint().expect("prepare");
    // The checkpoint is durable here; the process dies before completing its uploads, after
    // uploading the next files and staging more rows locally.
    write_all(&mut sink, second);
    let _not_checkpointed = sink.prepare_checkpoint().expect("prepare");
    write_all(&mut sink, &records[..2]);
    drop(sink);
    assert!(keys(&connection, BUCKET, prefix).is_empty());
    let open_before = uploads(&connection, BUCKET, prefix).len();
    assert!(open_before > checkpointed.pending.len());

    let mut restarted = object_sink(&connection, prefix, &staging, OutputFormat::Parquet, Compression::Snappy);
    let resume = restarted.recover(Some(&checkpointed)).expect("recover");
    assert_eq!(resume.get("s0"), Some(12));
    assert_eq!(restarted.stats().files_committed as usize, checkpointed.pending.len());
    assert!(uploads(&connection, BUCKET, prefix).is_empty(), "later uploads aborted");
    let copy = download(&connection, BUCKET, &format!("{prefix}/"), &dir.path().join("copy1"));
    let (_, rows) = pyarrow_rows(&copy, "parquet", "snappy");
    let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, input_ids(first));

    // Reading resumes from offset 12 (the bus replays it, and also re-delivers earlier ones).
    write_all(&mut restarted, &records[8..]);
    let state = restarted.prepare_checkpoint().expect("prepare");
    restarted.commit(&state).expect("commit");
    let copy = download(&connection, BUCKET, &format!("{prefix}/"), &dir.path().join("copy2"));
    let (_, rows) = pyarrow_rows(&copy, "parquet", "snappy");
    let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, input_ids(&records), "every row exactly once");
}

#[test]
fn commit_is_idempotent_and_a_vanished_upload_is_an_error_naming_it() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = dir.path().join("staging");
    let mut sink = object_sink(&connection, "idem", &staging, OutputFormat::Json, Compression::None);
    sink.recover(None).expect("recover");
    write_all(&mut sink, &input());
    let state = sink.prepare_checkpoint().expect("prepare");
    let n = state.pending.len();
    assert_eq!(sink.commit(&state).expect("commit").renamed, n);
    let objects = |c: &S3Connection| -> Vec<Vec<u8>> { keys(c, BUCKET, "idem/").iter().map(|k| get(c, BUCKET, k)).collect() };
    let committed = objects(&connection);
    assert_eq!(committed.len(), n);
    // Completing again succeeds (S3 and moto may answer a repeated completion with 200, or
    // refuse it because the object exists) and changes nothing.
    let again = sink.commit(&state).expect("second commit");
    assert_eq!(again.renamed + again.already_committed, n);
    // A restart from the same checkpoint finds everything committed.
    let mut restarted = object_sink(&connection, "idem", &staging, OutputFormat::Json, Compression::None);
    restarted.recover(Some(&state)).expect("recover");
    let stats = restarted.stats();
    assert_eq!((stats.files_committed + stats.files_already_committed) as usize, n);
    assert!(objects(&connection) == committed, "a repeated commit changed the objects");
    assert!(uploads(&connection, BUCKET, "idem").is_empty());

    // An upload that is gone while its object does not exist: the data is lost, say so.
    let mut storage = ObjectStorage::new(connection.clone(), BUCKET, "idem", sink.options().retry_policy());
    let staged = dir.path().join("lost.jsonl");
    std::fs::write(&staged, b"{}\n").expect("staged file");
    let mut lost = PendingFile {
        staging_key: ".inprogress/lost.jsonl".into(),
        final_key: "never/written.jsonl".into(),
        size_bytes: 3,
        record_count: 1,
        upload_id: None,
        parts: Vec::new(),
    };
    storage.seal(&staged, &mut lost).expect("seal");
    // What a recovery of another checkpoint does to an upload it does not know.
    restarted.recover(Some(&state)).expect("recover again");
    assert!(uploads(&connection, BUCKET, "idem").is_empty());
    // AWS answers 404 NoSuchUpload (→ PendingUploadMissing); moto 5.2 fails with a 500
    // (KeyError) instead. Either way: an error naming the object, and no object appears.
    match storage.commit(&lost) {
        Err(error @ (SinkError::PendingUploadMissing { .. } | SinkError::ObjectStore { .. })) => {
            assert!(error.to_string().contains("s3://cdc-sink-test/idem/never/written.jsonl"), "{error}")
        }
        other => panic!("expected an error naming the lost upload, got {other:?}"),
    }
    assert!(!keys(&connection, BUCKET, "idem/never").iter().any(|k| k.ends_with("written.jsonl")));
}

#[test]
fn of_two_instances_on_one_state_prefix_only_the_first_to_checkpoint_commits() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = "fenced/out";
    let state_backend = |connection: &S3Connection| S3Backend::new(connection.clone(), BUCKET, "fenced/state").expect("backend");
    let records = input();

    // Checkpoint 1: the first half committed by an earlier instance.
    let store = CheckpointStore::new(state_backend(&connection));
    let mut earlier = object_sink(&connection, prefix, &dir.path().join("s0"), OutputFormat::Parquet, Compression::Snappy);
    earlier.recover(None).expect("recover");
    write_all(&mut earlier, &records[..12]);
    let state = earlier.prepare_checkpoint().expect("prepare");
    let mut checkpoint = Checkpoint::new("object-sink", 0);
    checkpoint.put_state("sink", &state).expect("state");
    let first = store.save_next(&mut checkpoint, None).expect("save");
    earlier.commit(&state).expect("commit");

    // Two instances restore checkpoint 1 and both read on (e.g. a stuck old pod and its
    // replacement), each with its own client and staging directory.
    let restore = |staging: &str| {
        let connection = server.options().connect().expect("connect");
        let store = CheckpointStore::new(state_backend(&connection));
        let last = store.load_latest().expect("load").expect("checkpoint 1");
        let sink_state: SinkState = last.state("sink").expect("decode").expect("sink state");
        let mut sink = object_sink(&connection, prefix, &dir.path().join(staging), OutputFormat::Parquet, Compression::Snappy);
        let resume = sink.recover(Some(&sink_state)).expect("recover");
        (store, sink, last.id, resume)
    };
    let (store_a, mut sink_a, previous_a, resume_a) = restore("a");
    let (store_b, mut sink_b, previous_b, resume_b) = restore("b");
    assert_eq!((previous_a, previous_b), (first, first));
    assert_eq!(resume_a.get("s0"), Some(12));
    assert_eq!(resume_b.get("s0"), Some(12));
    write_all(&mut sink_a, &records[12..]);
    write_all(&mut sink_b, &records[12..]);
    let state_a = sink_a.prepare_checkpoint().expect("prepare a");
    let state_b = sink_b.prepare_checkpoint().expect("prepare b");

    let mut checkpoint_a = Checkpoint::new("object-sink", 0);
    checkpoint_a.put_state("sink", &state_a).expect("state");
    store_a.save_next(&mut checkpoint_a, Some(previous_a)).expect("a saves first");
    sink_a.commit(&state_a).expect("a commits");

    let mut checkpoint_b = Checkpoint::new("object-sink", 0);
    checkpoint_b.put_state("sink", &state_b).expect("state");
    match store_b.save_next(&mut checkpoint_b, Some(previous_b)) {
        Err(CheckpointError::Conflict { found, .. }) => assert_eq!(found.0, 2),
        other => panic!("the second instance's checkpoint must conflict, got {other:?}"),
    }
    // B stops here without completing: its uploads stay open and invisible.
    let open: Vec<String> = uploads(&connection, BUCKET, prefix).into_iter().map(|u| u.upload_id).collect();
    for pending in &state_b.pending {
        assert!(open.contains(pending.upload_id.as_ref().expect("upload id")), "B's upload was completed");
    }
    let copy = download(&connection, BUCKET, &format!("{prefix}/"), &dir.path().join("copy"));
    let (_, rows) = pyarrow_rows(&copy, "parquet", "snappy");
    let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, input_ids(&records), "every row exactly once: A's, not B's");

    // B restarts from the newest checkpoint (A's): its stale uploads are aborted.
    let (_, _, previous, _) = restore("b");
    assert_eq!(previous.0, 2);
    assert!(uploads(&connection, BUCKET, prefix).is_empty());
}

#[test]
fn a_large_file_is_uploaded_in_parts_and_committed_byte_for_byte() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let staged = dir.path().join("big.bin");
    // Two full parts and a tail; bytes that differ per position so a misordered part shows.
    let bytes: Vec<u8> = (0..2 * MIN_PART_SIZE + 12_345).map(|i| (i % 251) as u8).collect();
    std::fs::write(&staged, &bytes).expect("staged file");
    let options = options(dir.path(), OutputFormat::Json, Compression::None);
    let mut storage = ObjectStorage::new(connection.clone(), BUCKET, "big", options.retry_policy())
        .with_part_size(MIN_PART_SIZE)
        .expect("part size");
    let mut pending = PendingFile {
        staging_key: ".inprogress/big.bin".into(),
        final_key: "t/part-big.bin".into(),
        size_bytes: bytes.len() as u64,
        record_count: 1,
        upload_id: None,
        parts: Vec::new(),
    };
    storage.seal(&staged, &mut pending).expect("seal");
    assert_eq!(pending.parts.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(!staged.exists(), "the staged copy is deleted once uploaded");
    assert_eq!(storage.commit(&pending).expect("commit"), CommitOutcome::Committed);
    assert!(get(&connection, BUCKET, "big/t/part-big.bin") == bytes, "object differs from the staged file");
    storage.commit(&pending).expect("completing again is success");
    // Once the upload is gone (aborted by a recovery), the existing object makes it committed.
    let mut gone = pending.clone();
    gone.upload_id = Some("no-such-upload".into());
    assert_eq!(storage.commit(&gone).expect("gone upload"), CommitOutcome::AlreadyCommitted);
    assert!(get(&connection, BUCKET, "big/t/part-big.bin") == bytes, "a repeated commit changed the object");
    assert!(ObjectStorage::new(connection, BUCKET, "x", options.retry_policy()).with_part_size(1024).is_err());
}

/// A server that answers every request with 503 SlowDown, counting requests per method.
struct Throttling {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

fn throttling_server() -> Throttling {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            let mut line = String::new();
            // Request line and headers, then the body, so the client sees a full exchange.
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counter.fetch_add(1, Ordering::SeqCst);
            let xml = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    Throttling { endpoint, requests }
}

#[test]
fn throttling_is_retried_with_backoff_up_to_max_retries_then_the_sink_stops() {
    let server = throttling_server();
    let retries = 2;
    let connection = S3Options::new()
        .with_endpoint(server.endpoint.clone())
        .with_region("us-east-1")
        .with_path_style(true)
        .with_credentials("k", "s")
        .with_max_retries(retries)
        .with_initial_backoff(Duration::from_millis(5))
        .connect()
        .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = object_sink(&connection, "down", &dir.path().join("staging"), OutputFormat::Json, Compression::None);
    // Recovery lists the open uploads: the first request to fail.
    match sink.recover(None) {
        Err(error @ SinkError::ObjectStore { .. }) => {
            let text = format!("{error}");
            assert!(text.contains("ListMultipartUploads") && text.contains("503"), "{text}");
        }
        other => panic!("expected ObjectStore error, got {other:?}"),
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), retries as usize + 1, "1 attempt + {retries} retries");
    // Nothing committed means nothing to resume from: the caller exits without touching offsets.
    assert!(matches!(sink.prepare_checkpoint(), Err(SinkError::NotRecovered)));

    // The same for an upload at a checkpoint, once the sink runs.
    let mut running = FileSink::with_storage(
        options(&dir.path().join("staging2"), OutputFormat::Json, Compression::None),
        Box::new(LocalThenThrottled::new(&connection)),
    );
    running.recover(None).expect("recover (local part)");
    let before = server.requests.load(Ordering::SeqCst);
    // The first file to be uploaded (a roll while writing, or the checkpoint) fails.
    let first_error = input()
        .into_iter()
        .map(|record| running.write(record).map(|_| ()))
        .chain(std::iter::once_with(|| Ok(())))
        .find_map(Result::err)
        .or_else(|| running.prepare_checkpoint().err());
    match first_error {
        Some(error @ SinkError::ObjectStore { .. }) => {
            assert!(error.to_string().contains("CreateMultipartUpload"), "{error}")
        }
        other => panic!("expected ObjectStore error, got {other:?}"),
    }
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, retries as usize + 1);
    assert!(running.is_failed());
    assert!(matches!(running.commit(&SinkState::default()), Err(SinkError::Failed { .. })));
}

/// Object storage whose recovery skips the store, so a sink can start against a failing one.
struct LocalThenThrottled(ObjectStorage);

impl LocalThenThrottled {
    fn new(connection: &S3Connection) -> Self {
        let policy = options(Path::new("/unused"), OutputFormat::Json, Compression::None).retry_policy();
        Self(ObjectStorage::new(connection.clone(), BUCKET, "down", policy))
    }
}

impl Storage for LocalThenThrottled {
    fn open(&mut self, staging_dir: &Path) -> Result<(), SinkError> {
        self.0.open(staging_dir)
    }
    fn seal(&mut self, staged: &Path, pending: &mut PendingFile) -> Result<(), SinkError> {
        self.0.seal(staged, pending)
    }
    fn sync_sealed(&mut self, staging_dir: &Path) -> Result<(), SinkError> {
        self.0.sync_sealed(staging_dir)
    }
    fn commit(&mut self, pending: &PendingFile) -> Result<CommitOutcome, SinkError> {
        self.0.commit(pending)
    }
    fn discard_uncommitted(&mut self, _staging_dir: &Path) -> Result<u64, SinkError> {
        Ok(0)
    }
    fn location(&self) -> String {
        self.0.location()
    }
}

#[test]
fn dead_letter_replay_refuses_an_object_store_output() {
    let server = moto();
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = object_sink(&connection, "replay", &dir.path().join("staging"), OutputFormat::Json, Compression::None);
    sink.recover(None).expect("recover");
    assert!(sink.local_root().is_none());
    match sink.replay_dead_letters(|letter| letter.as_recorded()) {
        Err(error @ SinkError::Config { .. }) => assert!(error.to_string().contains("s3://cdc-sink-test/replay/"), "{error}"),
        other => panic!("expected a Config error, got {other:?}"),
    }
}

/// s3s-fs answers 403 AccessDenied, not AWS's 404 NoSuchUpload, to completing an upload that
/// was completed already: a restart from a checkpoint whose uploads were completed (after every
/// graceful stop) must still recover, deciding by whether the object exists.
#[test]
fn a_restart_after_a_completed_checkpoint_recovers_against_s3s_fs_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("s3s-data");
    std::fs::create_dir_all(&data).expect("s3s-fs data directory");
    let server = cdc_state::s3::testing::LocalS3Server::s3s_fs(&data).unwrap_or_else(|e| panic!("{e} (cargo install s3s-fs --features binary)"));
    let connection = server.connect_with_bucket(BUCKET).expect("bucket");
    let staging = dir.path().join("staging");
    let mut sink = object_sink(&connection, "restart", &staging, OutputFormat::Json, Compression::None);
    sink.recover(None).expect("recover");
    write_all(&mut sink, &input());
    let state = sink.prepare_checkpoint().expect("prepare");
    let n = state.pending.len();
    assert_eq!(sink.commit(&state).expect("commit").renamed, n);
    let committed = keys(&connection, BUCKET, "restart/");
    assert_eq!(committed.len(), n);

    let mut restarted = object_sink(&connection, "restart", &staging, OutputFormat::Json, Compression::None);
    restarted.recover(Some(&state)).expect("a restart recovers from the completed checkpoint");
    let stats = restarted.stats();
    assert_eq!((stats.files_committed + stats.files_already_committed) as usize, n);
    assert_eq!(keys(&connection, BUCKET, "restart/"), committed, "nothing was added or removed");
}
