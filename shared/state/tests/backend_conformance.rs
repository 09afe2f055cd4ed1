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
