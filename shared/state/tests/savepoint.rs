//! Savepoints and state locations.

use std::fs;
use std::path::PathBuf;

use cdc_state::{
    open_backend, read_savepoint, write_savepoint, Checkpoint, CheckpointError, CheckpointId,
    CheckpointKind, CheckpointStore, FormatError, LocalDirBackend, LocationError, ShardOffsets,
    StateLocation, SAVEPOINT_METADATA_FILE,
};

fn sample() -> Checkpoint {
    let mut checkpoint = Checkpoint::new("orders", 2);
    checkpoint.id = CheckpointId(17);
    checkpoint.created_at_ms = 1_714_000_000_123;
    let offsets: ShardOffsets = [("0", 5u64), ("1", 9)].into_iter().collect();
    checkpoint.put_state("bus", &offsets).unwrap();
    checkpoint
}

#[test]
fn savepoint_round_trip_through_directory_and_metadata_file() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = sample();
    let path = write_savepoint(&dir.path().join("savepoints"), &checkpoint).unwrap();
    assert_eq!(
        path,
        dir.path()
            .join("savepoints/savepoint-00000000000000000017-1714000000123"),
        "Flink-like layout"
    );
    assert!(path.join(SAVEPOINT_METADATA_FILE).is_file());

    let expected = Checkpoint {
        kind: CheckpointKind::Savepoint,
        ..checkpoint.clone()
    };
    assert_eq!(read_savepoint(&path).unwrap(), expected);
    assert_eq!(
        read_savepoint(&path.join(SAVEPOINT_METADATA_FILE)).unwrap(),
        expected
    );

    // Never overwritten.
    assert!(matches!(
        write_savepoint(&dir.path().join("savepoints"), &checkpoint),
        Err(CheckpointError::AlreadyExists { .. })
    ));
}

#[test]
fn corrupted_or_missing_savepoint_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_savepoint(dir.path(), &sample()).unwrap();
    let metadata = path.join(SAVEPOINT_METADATA_FILE);
    let good = fs::read(&metadata).unwrap();

    let mut flipped = good.clone();
    flipped[good.len() / 3] ^= 0x10;
    fs::write(&metadata, &flipped).unwrap();
    match read_savepoint(&path) {
        Err(CheckpointError::Corrupt { location, source }) => {
            assert_eq!(location, metadata.display().to_string());
            assert!(
                matches!(source, FormatError::ChecksumMismatch { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    fs::write(&metadata, &good[..good.len() - 1]).unwrap();
    assert!(matches!(
        read_savepoint(&metadata),
        Err(CheckpointError::Corrupt { .. })
    ));

    let missing = dir.path().join("savepoint-nope");
    match read_savepoint(&missing) {
        Err(error @ CheckpointError::Io { .. }) => {
            assert!(error.to_string().contains("savepoint-nope"), "{error}")
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn a_retained_checkpoint_file_reads_as_a_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(LocalDirBackend::open(dir.path()).unwrap());
    let id = store.save(&mut sample()).unwrap();
    let read = read_savepoint(&dir.path().join(cdc_state::checkpoint_key(id))).unwrap();
    assert_eq!(read.id, id);
    assert_eq!(read.kind, CheckpointKind::Checkpoint);
}

#[test]
fn state_locations_parse() {
    let local = |path: &str| StateLocation::Local(PathBuf::from(path));
    assert_eq!(
        StateLocation::parse("file:///opt/flink/checkpoints").unwrap(),
        local("/opt/flink/checkpoints")
    );
    assert_eq!(
        StateLocation::parse("FILE://localhost/opt/x").unwrap(),
        local("/opt/x")
    );
    assert_eq!(
        StateLocation::parse("file:/opt/x").unwrap(),
        local("/opt/x")
    );
    assert_eq!(
        StateLocation::parse("file:///a%20b/c%2Fd").unwrap(),
        local("/a b/c/d")
    );
    assert_eq!(
        StateLocation::parse("/var/lib/cdc").unwrap(),
        local("/var/lib/cdc")
    );
    assert_eq!(
        StateLocation::parse("relative/dir").unwrap(),
        local("relative/dir")
    );
    assert_eq!(
        StateLocation::parse("./odd://name").unwrap(),
        local("./odd://name")
    );

    let s3 = |bucket: &str, prefix: &str| StateLocation::S3 {
        bucket: bucket.into(),
        prefix: prefix.into(),
    };
    assert_eq!(
        StateLocation::parse("s3://bucket/checkpoints").unwrap(),
        s3("bucket", "checkpoints")
    );
    assert_eq!(
        StateLocation::parse("s3a://bkt/a/b/").unwrap(),
        s3("bkt", "a/b")
    );
    assert_eq!(StateLocation::parse("S3://bkt").unwrap(), s3("bkt", ""));
    for bad in [
        "s3://",
        "s3://Upper/x",
        "s3://b/x",
        "s3://bkt/a//b",
        "s3://bkt/../x",
        "s3://bkt/x?versionId=1",
    ] {
        match StateLocation::parse(bad) {
            Err(error @ LocationError::InvalidS3Uri { .. }) => {
                assert!(error.to_string().contains(bad), "{error}")
            }
            other => panic!("{bad}: expected InvalidS3Uri, got {other:?}"),
        }
    }
    match StateLocation::parse("hdfs://namenode/x") {
        Err(LocationError::UnsupportedScheme { scheme, .. }) => assert_eq!(scheme, "hdfs"),
        other => panic!("expected UnsupportedScheme, got {other:?}"),
    }
    for bad in [
        "file://remote-host/x",
        "file:relative",
        "file://",
        "file:///a%zz",
        "file:///a%+f",
        "file:///a?b",
    ] {
        assert!(
            matches!(
                StateLocation::parse(bad),
                Err(LocationError::InvalidFileUri { .. })
            ),
            "{bad} was accepted"
        );
    }
    assert!(matches!(
        StateLocation::parse(""),
        Err(LocationError::Empty)
    ));
    assert!("file:///x".parse::<StateLocation>().is_ok());
}

#[test]
fn open_backend_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new/checkpoints");
    let backend = open_backend(&format!("file://{}", target.display())).unwrap();
    assert!(target.is_dir());
    backend.put("k", b"v", cdc_state::PutMode::Create).unwrap();
    assert_eq!(fs::read(target.join("k")).unwrap(), b"v");
    // Opening an S3 location sends no request: without the `s3` feature it is refused,
    // with it the backend is built from the environment.
    let opened = open_backend("s3://bucket/x");
    if cfg!(feature = "s3") {
        assert!(opened.is_ok(), "{opened:?}");
    } else {
        match opened {
            Err(LocationError::Open { source, .. }) => {
                assert!(format!("{source:?}").contains("without S3 support"), "{source:?}")
            }
            other => panic!("expected Open error, got {other:?}"),
        }
    }
}
