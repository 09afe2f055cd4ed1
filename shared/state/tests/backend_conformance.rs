//! The one conformance suite, run against every backend, plus checks of
//! what only the directory backend has (files, temporary files).

use std::fs;

use cdc_state::backend::TEMP_PREFIX;
use cdc_state::{conformance, Backend, LocalDirBackend, MemoryBackend, PutMode};

fn assert_conforms(backend: &dyn Backend) {
    let failures = conformance::run_all(backend, "suite/");
    assert!(
        failures.is_empty(),
        "{backend:?} fails conformance: {failures:#?}"
    );
}

#[test]
fn memory_backend_conforms() {
    assert_conforms(&MemoryBackend::new());
}

#[test]
fn local_dir_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    assert_conforms(&LocalDirBackend::open(dir.path()).unwrap());
}

#[test]
fn local_dir_backend_conforms_in_a_root_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalDirBackend::open(dir.path().join("not/yet/created")).unwrap();
    assert_conforms(&backend);
}

#[test]
fn local_keys_are_plain_files_and_writes_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalDirBackend::open(dir.path()).unwrap();
    backend
        .put("a/b/value", b"hello", PutMode::Overwrite)
        .unwrap();
    backend.put("a/created", b"c", PutMode::Create).unwrap();
    let version = backend.get("a/b/value").unwrap().version;
    backend
        .put("a/b/value", b"updated", PutMode::Update(version))
        .unwrap();
    assert!(backend.put("a/created", b"again", PutMode::Create).is_err());

    assert_eq!(fs::read(dir.path().join("a/b/value")).unwrap(), b"updated");
    assert_eq!(fs::read(dir.path().join("a/created")).unwrap(), b"c");
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}

#[test]
fn local_leftover_temporary_files_are_invisible_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalDirBackend::open(dir.path()).unwrap();
    backend
        .put("nested/value", b"v", PutMode::Overwrite)
        .unwrap();
    // What a writer killed between write and rename leaves behind.
    fs::write(dir.path().join(format!("{TEMP_PREFIX}99999-0")), b"half").unwrap();
    fs::write(
        dir.path().join(format!("nested/{TEMP_PREFIX}99999-1")),
        b"half",
    )
    .unwrap();

    let keys: Vec<String> = backend
        .list("")
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect();
    assert_eq!(keys, ["nested/value"]);

    assert_eq!(backend.cleanup_incomplete("").unwrap(), 2);
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(backend.get("nested/value").unwrap().bytes, b"v");
}

#[test]
fn local_versions_are_valid_across_backend_instances() {
    // Another process (here: another instance) must be able to compare-and-
    // swap with a version this one read.
    let dir = tempfile::tempdir().unwrap();
    let first = LocalDirBackend::open(dir.path()).unwrap();
    let second = LocalDirBackend::open(dir.path()).unwrap();
    let version = first.put("k", b"1", PutMode::Create).unwrap();
    second
        .put("k", b"2", PutMode::Update(version.clone()))
        .unwrap();
    let refused = first.put("k", b"3", PutMode::Update(version));
    assert!(
        matches!(refused, Err(cdc_state::BackendError::Precondition { .. })),
        "{refused:?}"
    );
    assert_eq!(first.get("k").unwrap().bytes, b"2");
}

fn temp_files(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

/// The same suite on real S3-compatible servers started by the test: moto (required: the
/// test fails if `moto_server` is missing — `scripts/install-test-deps.sh` installs it) and
/// s3s-fs (skipped, with the reason printed, when it is not installed).
#[cfg(feature = "s3")]
mod s3 {
    use std::time::Duration;

    use cdc_state::conformance;
    use cdc_state::s3::testing::LocalS3Server;
    use cdc_state::s3::S3Backend;
    use cdc_state::{
        Backend, BackendError, Checkpoint, CheckpointError, CheckpointStore, PutMode,
    };

    const BUCKET: &str = "cdc-state-test";

    fn backend(server: &LocalS3Server, prefix: &str) -> S3Backend {
        let connection = server
            .connect_with_bucket(BUCKET)
            .unwrap_or_else(|e| panic!("{}: {e}", server.name()));
        S3Backend::new(connection, BUCKET, prefix).expect("valid prefix")
    }

    fn moto() -> LocalS3Server {
        LocalS3Server::moto().unwrap_or_else(|e| {
            panic!("{e} (install it with `pip install 'moto[server]'`, see scripts/install-test-deps.sh)")
        })
    }

    #[test]
    fn s3_backend_conforms_on_moto() {
        let server = moto();
        super::assert_conforms(&backend(&server, "state/run-1"));
        // At the bucket root too (no prefix to strip).
        super::assert_conforms(&backend(&server, ""));
    }

    #[test]
    fn s3_backend_conforms_on_s3s_fs() {
        if !LocalS3Server::installed("s3s-fs") {
            eprintln!(
                "SKIPPED s3_backend_conforms_on_s3s_fs: s3s-fs is not installed \
                 (cargo install s3s-fs --version 0.14.1 --features binary --locked)"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let server = LocalS3Server::s3s_fs(dir.path()).expect("s3s-fs starts");
        let backend = backend(&server, "state");
        // s3s-fs 0.14 checks a precondition and then writes, without holding a lock in
        // between: sequential conditional writes behave, concurrent ones can all win. That is
        // the server's limitation (moto and AWS serialise them), so those two cases are run
        // and reported, not asserted; every other case must pass.
        const RACY: [&str; 2] = ["concurrent_create_has_one_winner", "concurrent_update_loses_nothing"];
        let failures: Vec<_> = conformance::cases()
            .iter()
            .filter_map(|case| {
                let prefix = format!("suite/{}/", case.name);
                (case.run)(&backend, &prefix).err().map(|message| (case.name, message))
            })
            .collect();
        for (case, message) in failures.iter().filter(|(case, _)| RACY.contains(case)) {
            eprintln!("s3s-fs (known limitation, not asserted): {case}: {message}");
        }
        let real: Vec<_> = failures.iter().filter(|(case, _)| !RACY.contains(case)).collect();
        assert!(real.is_empty(), "s3s-fs fails conformance: {real:#?}");
    }

    #[test]
    fn s3_versions_are_etags_valid_across_connections_and_prefixes_isolate() {
        let server = moto();
        let first = backend(&server, "shared");
        let second = backend(&server, "shared/");
        let other = backend(&server, "other");
        let version = first.put("k", b"1", PutMode::Create).unwrap();
        assert!(version.as_str().starts_with('"'), "an ETag: {version}");
        second.put("k", b"2", PutMode::Update(version.clone())).unwrap();
        let refused = first.put("k", b"3", PutMode::Update(version));
        assert!(
            matches!(refused, Err(BackendError::Precondition { actual: Some(_), .. })),
            "{refused:?}"
        );
        assert_eq!(first.get("k").unwrap().bytes, b"2");
        assert!(matches!(other.get("k"), Err(BackendError::NotFound { .. })));
        assert!(other.list("").unwrap().is_empty());
        assert_eq!(first.locate("k"), format!("s3://{BUCKET}/shared/k"));
    }

    #[test]
    fn s3_cleanup_incomplete_aborts_only_stale_uploads_under_the_prefix() {
        let server = moto();
        let backend = backend(&server, "state");
        let connection = backend.connection().clone();
        let client = connection.client().clone();
        for key in ["state/chk-upload", "elsewhere/upload"] {
            let client = client.clone();
            connection
                .block_on(async move {
                    client
                        .create_multipart_upload()
                        .bucket(BUCKET)
                        .key(key)
                        .send()
                        .await
                })
                .unwrap()
                .unwrap();
        }
        // Uploads younger than the age may be someone's write in progress: kept. (moto reports
        // every upload as initiated in 2010, hence an age of a century here.)
        let patient = backend
            .clone()
            .with_stale_upload_age(Duration::from_secs(100 * 365 * 24 * 3600));
        assert_eq!(patient.cleanup_incomplete("").unwrap(), 0);
        let eager = backend.clone().with_stale_upload_age(Duration::ZERO);
        assert_eq!(eager.cleanup_incomplete("").unwrap(), 1);
        let remaining = connection
            .block_on(async move { cdc_state::s3::list_uploads(&client, BUCKET, "").await })
            .unwrap()
            .unwrap();
        let keys: Vec<&str> = remaining.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["elsewhere/upload"]);
    }

    #[test]
    fn s3_checkpoint_store_lets_only_one_of_two_writers_commit() {
        let server = moto();
        let first = CheckpointStore::new(backend(&server, "fenced"));
        let second = CheckpointStore::new(backend(&server, "fenced"));
        let restored = first
            .save_next(&mut Checkpoint::new("job", 0), None)
            .unwrap();
        // Both writers restored checkpoint 1; the first saves its successor.
        let saved = first
            .save_next(&mut Checkpoint::new("job", 0), Some(restored))
            .unwrap();
        assert_eq!(saved.0, 2);
        match second.save_next(&mut Checkpoint::new("job", 0), Some(restored)) {
            Err(CheckpointError::Conflict { expected, found, location }) => {
                assert_eq!((expected, found.0), (Some(restored), 2));
                assert!(location.starts_with("s3://"), "{location}");
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        assert_eq!(second.load_latest().unwrap().map(|c| c.id), Some(saved));
    }
}
