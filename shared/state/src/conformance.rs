//! The conformance suite every [`Backend`] must pass (after object_store's
//! `integration.rs`): the same cases run against the directory backend, the
//! in-memory backend and, later, S3.
//!
//! The cases return `Err(description)` instead of panicking, so this module
//! is ordinary library code; a test runs them all and fails with every
//! description:
//!
//! ```
//! let backend = cdc_state::MemoryBackend::new();
//! let failures = cdc_state::conformance::run_all(&backend, "conformance/");
//! assert!(failures.is_empty(), "{failures:#?}");
//! ```

use std::sync::Barrier;
use std::thread;

use crate::backend::{Backend, PutMode};
use crate::error::BackendError;

/// One named check. `run(backend, prefix)` must only touch keys under
/// `prefix`, which is empty in the backend when the case starts.
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub run: fn(&dyn Backend, &str) -> Result<(), String>,
}

/// A failed case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub case: &'static str,
    pub message: String,
}

/// All cases.
pub fn cases() -> &'static [Case] {
    &[
        Case {
            name: "get_missing_is_not_found",
            run: get_missing_is_not_found,
        },
        Case {
            name: "overwrite_round_trip",
            run: overwrite_round_trip,
        },
        Case {
            name: "create_only_if_absent",
            run: create_only_if_absent,
        },
        Case {
            name: "update_compare_and_swap",
            run: update_compare_and_swap,
        },
        Case {
            name: "list_by_prefix",
            run: list_by_prefix,
        },
        Case {
            name: "delete_is_idempotent",
            run: delete_is_idempotent,
        },
        Case {
            name: "invalid_keys_rejected",
            run: invalid_keys_rejected,
        },
        Case {
            name: "concurrent_create_has_one_winner",
            run: concurrent_create_has_one_winner,
        },
        Case {
            name: "concurrent_update_loses_nothing",
            run: concurrent_update_loses_nothing,
        },
        Case {
            name: "cleanup_incomplete_keeps_values",
            run: cleanup_incomplete_keeps_values,
        },
    ]
}

/// Runs every case, each under `<prefix><case name>/`, and returns the
/// failures (empty when the backend conforms).
pub fn run_all(backend: &dyn Backend, prefix: &str) -> Vec<Failure> {
    cases()
        .iter()
        .filter_map(|case| {
            let case_prefix = format!("{prefix}{}/", case.name);
            (case.run)(backend, &case_prefix)
                .err()
                .map(|message| Failure {
                    case: case.name,
                    message,
                })
        })
        .collect()
}

macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// `Ok` value of a backend call, or a description of the unexpected error.
fn ok<T>(result: Result<T, BackendError>, what: &str) -> Result<T, String> {
    result.map_err(|error| format!("{what}: unexpected error {error:?}"))
}

fn get_missing_is_not_found(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}missing");
    match backend.get(&key) {
        Err(BackendError::NotFound { key: named }) => {
            check!(named == key, "NotFound names `{named}`, expected `{key}`");
            Ok(())
        }
        other => Err(format!(
            "get of a missing key: expected NotFound, got {other:?}"
        )),
    }
}

fn overwrite_round_trip(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}nested/dir/value");
    let first: Vec<u8> = (0..=255u8).collect();
    let written = ok(backend.put(&key, &first, PutMode::Overwrite), "first put")?;
    let read = ok(backend.get(&key), "get after put")?;
    check!(
        read.bytes == first,
        "get returned different bytes than were put"
    );
    check!(
        read.version == written,
        "get version {} != put version {}",
        read.version,
        written
    );

    let second = b"second value".to_vec();
    let rewritten = ok(backend.put(&key, &second, PutMode::Overwrite), "overwrite")?;
    check!(
        rewritten != written,
        "version did not change when the content changed"
    );
    let read = ok(backend.get(&key), "get after overwrite")?;
    check!(read.bytes == second, "overwrite did not replace the value");
    check!(
        read.version == rewritten,
        "get version {} != overwrite version {}",
        read.version,
        rewritten
    );

    let empty_key = format!("{prefix}empty");
    ok(
        backend.put(&empty_key, b"", PutMode::Overwrite),
        "put of an empty value",
    )?;
    let read = ok(backend.get(&empty_key), "get of an empty value")?;
    check!(
        read.bytes.is_empty(),
        "empty value read back as {} bytes",
        read.bytes.len()
    );
    Ok(())
}

fn create_only_if_absent(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}created");
    let version = ok(
        backend.put(&key, b"first", PutMode::Create),
        "create of an absent key",
    )?;
    match backend.put(&key, b"second", PutMode::Create) {
        Err(BackendError::AlreadyExists { key: named }) => {
            check!(
                named == key,
                "AlreadyExists names `{named}`, expected `{key}`"
            );
        }
        other => {
            return Err(format!(
                "second create: expected AlreadyExists, got {other:?}"
            ))
        }
    }
    let read = ok(backend.get(&key), "get after the refused create")?;
    check!(read.bytes == b"first", "a refused create changed the value");
    check!(
        read.version == version,
        "a refused create changed the version"
    );

    // Create is allowed again once the key is deleted.
    ok(backend.delete(&key), "delete")?;
    ok(
        backend.put(&key, b"again", PutMode::Create),
        "create after delete",
    )?;
    Ok(())
}

fn update_compare_and_swap(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}cas");
    let v1 = ok(backend.put(&key, b"one", PutMode::Overwrite), "initial put")?;
    let v2 = ok(
        backend.put(&key, b"two", PutMode::Update(v1.clone())),
        "update with the current version",
    )?;
    let read = ok(backend.get(&key), "get after update")?;
    check!(
        read.bytes == b"two" && read.version == v2,
        "update did not store its value and version"
    );

    match backend.put(&key, b"stale", PutMode::Update(v1.clone())) {
        Err(BackendError::Precondition {
            key: named,
            expected,
            actual,
        }) => {
            check!(
                named == key,
                "Precondition names `{named}`, expected `{key}`"
            );
            check!(
                expected == v1,
                "Precondition reports expected {expected}, sent {v1}"
            );
            check!(
                actual.as_ref() == Some(&v2),
                "Precondition reports actual {actual:?}, stored {v2}"
            );
        }
        other => {
            return Err(format!(
                "update with a stale version: expected Precondition, got {other:?}"
            ))
        }
    }
    let read = ok(backend.get(&key), "get after the refused update")?;
    check!(read.bytes == b"two", "a refused update changed the value");

    let missing = format!("{prefix}missing");
    match backend.put(&missing, b"x", PutMode::Update(v2)) {
        Err(BackendError::Precondition { actual: None, .. }) => {}
        other => {
            return Err(format!(
            "update of a missing key: expected Precondition with no actual version, got {other:?}"
        ))
        }
    }
    check!(
        matches!(backend.get(&missing), Err(BackendError::NotFound { .. })),
        "a refused update of a missing key created it"
    );
    Ok(())
}

fn list_by_prefix(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let keys = ["b/c", "a", "bb", "b/d/e"];
    for key in keys {
        let key = format!("{prefix}{key}");
        ok(backend.put(&key, key.as_bytes(), PutMode::Overwrite), "put")?;
    }
    let listed = ok(backend.list(prefix), "list of the case prefix")?;
    let names: Vec<&str> = listed.iter().map(|object| object.key.as_str()).collect();
    let expected: Vec<String> = ["a", "b/c", "b/d/e", "bb"]
        .iter()
        .map(|key| format!("{prefix}{key}"))
        .collect();
    check!(
        names == expected,
        "list({prefix}) = {names:?}, expected {expected:?} (sorted)"
    );
    for object in &listed {
        check!(
            object.size == object.key.len() as u64,
            "size of {} is {}, expected {}",
            object.key,
            object.size,
            object.key.len()
        );
    }

    // A plain string prefix, as in S3: `b` matches `b/…` and `bb`.
    let partial = ok(
        backend.list(&format!("{prefix}b")),
        "list of a partial segment",
    )?;
    let names: Vec<&str> = partial.iter().map(|object| object.key.as_str()).collect();
    let expected: Vec<String> = ["b/c", "b/d/e", "bb"]
        .iter()
        .map(|key| format!("{prefix}{key}"))
        .collect();
    check!(
        names == expected,
        "list({prefix}b) = {names:?}, expected {expected:?}"
    );

    let directory = ok(
        backend.list(&format!("{prefix}b/")),
        "list of a directory prefix",
    )?;
    check!(
        directory.len() == 2,
        "list({prefix}b/) returned {} keys, expected 2",
        directory.len()
    );

    let none = ok(
        backend.list(&format!("{prefix}nothing/here/")),
        "list of an absent prefix",
    )?;
    check!(
        none.is_empty(),
        "list of an absent prefix returned {none:?}"
    );
    Ok(())
}

fn delete_is_idempotent(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}doomed");
    ok(backend.put(&key, b"x", PutMode::Overwrite), "put")?;
    ok(backend.delete(&key), "delete")?;
    check!(
        matches!(backend.get(&key), Err(BackendError::NotFound { .. })),
        "get after delete did not return NotFound"
    );
    let listed = ok(backend.list(prefix), "list after delete")?;
    check!(listed.is_empty(), "deleted key still listed: {listed:?}");
    ok(backend.delete(&key), "delete of a missing key")?;
    Ok(())
}

fn invalid_keys_rejected(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let invalid = [
        String::new(),
        "/absolute".to_owned(),
        "../escape".to_owned(),
        format!("{prefix}../../escape"),
        format!("{prefix}a/../b"),
        format!("{prefix}./a"),
        format!("{prefix}a//b"),
        format!("{prefix}trailing/"),
        format!("{prefix}.cdc-reserved"),
        format!("{prefix}nul\0byte"),
        format!("{prefix}{}", "x".repeat(1100)),
    ];
    for key in &invalid {
        let shown = key.chars().take(60).collect::<String>();
        check!(
            matches!(
                backend.put(key, b"x", PutMode::Overwrite),
                Err(BackendError::InvalidKey { .. })
            ),
            "put accepted the invalid key {shown:?}"
        );
        check!(
            matches!(backend.get(key), Err(BackendError::InvalidKey { .. })),
            "get accepted the invalid key {shown:?}"
        );
        check!(
            matches!(backend.delete(key), Err(BackendError::InvalidKey { .. })),
            "delete accepted the invalid key {shown:?}"
        );
    }
    for bad_prefix in ["/abs", "../", "a/../"] {
        check!(
            matches!(
                backend.list(bad_prefix),
                Err(BackendError::InvalidKey { .. })
            ),
            "list accepted the invalid prefix {bad_prefix:?}"
        );
    }
    Ok(())
}

fn concurrent_create_has_one_winner(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    const WRITERS: usize = 16;
    let key = format!("{prefix}contended");
    let start = Barrier::new(WRITERS);
    let outcomes: Vec<Result<Result<(), BackendError>, String>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (key, start) = (&key, &start);
                scope.spawn(move || {
                    start.wait();
                    backend
                        .put(key, format!("writer {writer}").as_bytes(), PutMode::Create)
                        .map(|_| ())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| "a writer thread panicked".to_owned())
            })
            .collect()
    });
    let mut winners = Vec::new();
    for (writer, outcome) in outcomes.into_iter().enumerate() {
        match outcome? {
            Ok(()) => winners.push(writer),
            Err(BackendError::AlreadyExists { .. }) => {}
            Err(error) => return Err(format!("writer {writer}: unexpected error {error:?}")),
        }
    }
    check!(
        winners.len() == 1,
        "{} concurrent creates succeeded ({winners:?}), expected exactly 1",
        winners.len()
    );
    let read = ok(backend.get(&key), "get after the race")?;
    let expected = format!("writer {}", winners[0]);
    check!(
        read.bytes == expected.as_bytes(),
        "stored value is not the winner's ({expected})"
    );
    Ok(())
}

fn concurrent_update_loses_nothing(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    const WRITERS: usize = 4;
    const INCREMENTS: u64 = 10;
    let key = format!("{prefix}counter");
    ok(backend.put(&key, b"0", PutMode::Create), "create counter")?;
    let start = Barrier::new(WRITERS);
    let results: Vec<Result<(), String>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (key, start) = (&key, &start);
                scope.spawn(move || {
                    start.wait();
                    for _ in 0..INCREMENTS {
                        increment(backend, key)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err("a writer thread panicked".to_owned()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<(), String>>()?;
    let read = ok(backend.get(&key), "get counter")?;
    let expected = (WRITERS as u64 * INCREMENTS).to_string();
    check!(
        read.bytes == expected.as_bytes(),
        "counter is {:?} after {} compare-and-swap increments: updates were lost",
        String::from_utf8_lossy(&read.bytes),
        expected
    );
    Ok(())
}

/// Read-modify-write of a decimal counter, retried until the
/// compare-and-swap succeeds.
pub fn increment(backend: &dyn Backend, key: &str) -> Result<(), String> {
    loop {
        let current = ok(backend.get(key), "get counter")?;
        let value: u64 = std::str::from_utf8(&current.bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                format!(
                    "counter holds {:?}",
                    String::from_utf8_lossy(&current.bytes)
                )
            })?;
        match backend.put(
            key,
            (value + 1).to_string().as_bytes(),
            PutMode::Update(current.version),
        ) {
            Ok(_) => return Ok(()),
            // Lost the race to another writer: re-read and retry.
            Err(BackendError::Precondition { .. }) => {}
            Err(error) => return Err(format!("update counter: unexpected error {error:?}")),
        }
    }
}

fn cleanup_incomplete_keeps_values(backend: &dyn Backend, prefix: &str) -> Result<(), String> {
    let key = format!("{prefix}kept");
    ok(backend.put(&key, b"kept", PutMode::Overwrite), "put")?;
    ok(backend.cleanup_incomplete(prefix), "cleanup_incomplete")?;
    let read = ok(backend.get(&key), "get after cleanup")?;
    check!(
        read.bytes == b"kept",
        "cleanup_incomplete changed a completed value"
    );
    Ok(())
}
