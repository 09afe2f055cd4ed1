//! The checkpoint document, typed states and the checksummed file format.

use std::collections::BTreeMap;

use cdc_state::{
    decode_checkpoint, encode_checkpoint, Checkpoint, CheckpointError, CheckpointId,
    CheckpointKind, FormatError, PendingFile, ShardOffsets, SinkState,
};

fn sample() -> Checkpoint {
    let mut checkpoint = Checkpoint::new("orders-to-lake", 3);
    checkpoint.id = CheckpointId(42);
    checkpoint
        .put_state(
            "capture",
            &serde_json::json!({"binlog_file": "mysql-bin.000007", "position": 1234}),
        )
        .unwrap();
    checkpoint.put_state("sink", &sample_sink_state()).unwrap();
    checkpoint
}

fn sample_sink_state() -> SinkState {
    SinkState {
        pending: vec![
            PendingFile {
                staging_key: "out/.inprogress/part-0-7".into(),
                final_key: "out/dt=2024-05-01/part-0-7.parquet".into(),
                size_bytes: 1_048_576,
                record_count: 9_000,
                upload_id: None,
                parts: vec![],
            },
            PendingFile {
                staging_key: "staging/part-1-3".into(),
                final_key: "lake/part-1-3.parquet".into(),
                size_bytes: 5,
                record_count: 1,
                upload_id: Some("mpu-123".into()),
                parts: vec![cdc_state::UploadedPart {
                    number: 1,
                    etag: "\"5d41402abc4b2a76b9719d911017c592\"".into(),
                }],
            },
        ],
        offsets: [("0", 100u64), ("1", 7)].into_iter().collect(),
        committed_positions: BTreeMap::from([(
            "mysql-1".to_owned(),
            "mysql-bin.000007:1234".to_owned(),
        )]),
    }
}

#[test]
fn round_trip_preserves_every_field() {
    let checkpoint = sample();
    let decoded = decode_checkpoint(&encode_checkpoint(&checkpoint).unwrap()).unwrap();
    assert_eq!(decoded, checkpoint);
    assert_eq!(
        decoded.state::<SinkState>("sink").unwrap(),
        Some(sample_sink_state())
    );
}

#[test]
fn file_is_human_readable_with_magic_and_trailer() {
    let bytes = encode_checkpoint(&sample()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("CDC-CHECKPOINT v1\n{\n"), "{text}");
    assert!(text.contains("\"job\": \"orders-to-lake\""), "{text}");
    assert!(text.contains("\"kind\": \"checkpoint\""), "{text}");
    assert!(text.ends_with('\n'));
    let trailer = text.trim_end_matches('\n').rsplit('\n').next().unwrap();
    let body_len = text.len() - "CDC-CHECKPOINT v1\n".len() - trailer.len() - 2;
    assert!(trailer.starts_with("END crc32="), "{trailer}");
    assert!(
        trailer.ends_with(&format!(" len={body_len}")),
        "{trailer} (body is {body_len} bytes)"
    );
}

#[test]
fn every_single_byte_change_is_detected() {
    let bytes = encode_checkpoint(&sample()).unwrap();
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0x20, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[position] ^= mask;
            assert!(
                decode_checkpoint(&corrupt).is_err(),
                "flipping byte {position} with {mask:#04x} went undetected"
            );
        }
    }
}

#[test]
fn every_truncation_and_extension_is_detected() {
    let bytes = encode_checkpoint(&sample()).unwrap();
    for length in 0..bytes.len() {
        assert!(
            decode_checkpoint(&bytes[..length]).is_err(),
            "truncation to {length} bytes went undetected"
        );
    }
    let mut extended = bytes.clone();
    extended.extend_from_slice(b"garbage\n");
    assert!(
        decode_checkpoint(&extended).is_err(),
        "trailing garbage went undetected"
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let bytes = encode_checkpoint(&sample()).unwrap();

    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert!(matches!(
        decode_checkpoint(&wrong_magic),
        Err(FormatError::BadMagic)
    ));

    let newer = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("v1", "v2", 1);
    match decode_checkpoint(newer.as_bytes()) {
        Err(FormatError::UnsupportedVersion { version }) => assert_eq!(version, "v2"),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }

    let body_start = "CDC-CHECKPOINT v1\n".len();
    let mut flipped = bytes.clone();
    flipped[body_start + 5] ^= 0x01;
    assert!(matches!(
        decode_checkpoint(&flipped),
        Err(FormatError::ChecksumMismatch { .. })
    ));

    assert!(matches!(
        decode_checkpoint(&bytes[..bytes.len() / 2]),
        Err(FormatError::MissingTrailer)
    ));
}

#[test]
fn typed_state_helpers() {
    let checkpoint = sample();
    assert_eq!(checkpoint.state::<SinkState>("absent").unwrap(), None);
    match checkpoint.state::<ShardOffsets>("capture") {
        Err(error @ CheckpointError::OperatorState { .. }) => {
            assert!(error.to_string().contains("`capture`"), "{error}");
        }
        other => panic!("expected OperatorState, got {other:?}"),
    }
    assert_eq!(
        Checkpoint::new("j", 0)
            .with_kind(CheckpointKind::Savepoint)
            .kind,
        CheckpointKind::Savepoint
    );
}

#[test]
fn sink_state_json_shape_is_stable_and_tolerant() {
    let json = serde_json::to_value(sample_sink_state()).unwrap();
    assert_eq!(json["offsets"], serde_json::json!({"0": 100, "1": 7}));
    assert_eq!(
        json["committed_positions"]["mysql-1"],
        "mysql-bin.000007:1234"
    );
    assert!(
        json["pending"][0].get("upload_id").is_none(),
        "absent upload id is omitted"
    );
    assert_eq!(json["pending"][1]["upload_id"], "mpu-123");
    // Older checkpoints without newer fields still load.
    let empty: SinkState = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, SinkState::default());
}

#[test]
fn shard_offsets_never_move_backwards() {
    let mut offsets = ShardOffsets::new();
    assert!(offsets.advance("s1", 10));
    assert!(!offsets.advance("s1", 10), "same offset is not a change");
    assert!(
        !offsets.advance("s1", 5),
        "a late acknowledgement must not rewind"
    );
    assert_eq!(offsets.get("s1"), Some(10));
    assert!(offsets.advance("s1", 11));
    offsets.set("s1", 0);
    assert_eq!(offsets.get("s1"), Some(0));
    assert_eq!(offsets.get("s2"), None);
    assert_eq!(offsets.iter().collect::<Vec<_>>(), [("s1", 0)]);
}
