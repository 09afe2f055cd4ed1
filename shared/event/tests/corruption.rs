//! Damaged or hostile binary batches produce typed errors, never panics.

mod common;

use std::sync::Arc;

use cdc_event::*;
use common::*;
use proptest::prelude::*;

fn sample_batch() -> Vec<u8> {
    let schema = Arc::new(TableSchema {
        table: TableId::new("shop", "orders"),
        version: 3,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: true }, false),
            ColumnDef::new(
                "note",
                ColumnType::VarChar {
                    length: 64,
                    charset: "utf8mb4".into(),
                },
                true,
            ),
            ColumnDef::new(
                "paid",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                true,
            ),
        ],
        primary_key: vec!["id".into()],
    });
    let row = |id: u64| {
        Row::new(vec![
            Value::UInt(id),
            Value::Text("héllo 😀".into()),
            Value::Decimal("12.50".into()),
        ])
    };
    let events: Vec<ChangeEvent> = (0..3)
        .map(|i| ChangeEvent {
            op: Op::Insert,
            schema: Arc::clone(&schema),
            before: None,
            after: Some(row(i)),
            position: Position::stream(ServerFlavor::MySql, "binlog.000042", 1_000)
                .with_event_index(i as u32),
            commit_ts_ms: 1_700_000_000_000,
            tx_id: Some("tx-9".into()),
            source_name: Arc::from("prod"),
            server_id: 7,
        })
        .collect();
    encode_batch(&events)
}

/// Recomputes the trailer checksum, so the damage reaches the record parser.
fn reseal(batch: &mut [u8]) {
    let body_end = batch.len() - 4;
    let crc = crc32fast::hash(&batch[..body_end]);
    batch[body_end..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn the_sample_batch_decodes() {
    assert_eq!(decode_batch(&sample_batch()).map(|e| e.len()), Ok(3));
}

#[test]
fn every_single_byte_change_is_detected() {
    let batch = sample_batch();
    for offset in 0..batch.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = batch.clone();
            damaged[offset] ^= mask;
            assert!(
                decode_batch(&damaged).is_err(),
                "flipping {mask:#04x} at offset {offset} went unnoticed"
            );
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let batch = sample_batch();
    for len in 0..batch.len() {
        let error = decode_batch(&batch[..len]).expect_err("truncated batch must not decode");
        assert!(
            matches!(
                error,
                DecodeError::TooShort { .. }
                    | DecodeError::ChecksumMismatch { .. }
                    | DecodeError::BadMagic { .. }
            ),
            "length {len}: unexpected {error}"
        );
    }
}

#[test]
fn header_errors_name_what_is_wrong() {
    let batch = sample_batch();
    let mut wrong_magic = batch.clone();
    wrong_magic[0] = b'X';
    assert!(matches!(
        decode_batch(&wrong_magic),
        Err(DecodeError::BadMagic { .. })
    ));
    let mut future = batch.clone();
    future[4] = 2;
    assert_eq!(
        decode_batch(&future),
        Err(DecodeError::UnsupportedVersion { version: 2 })
    );
    let mut flags = batch.clone();
    flags[5] = 1;
    assert_eq!(
        decode_batch(&flags),
        Err(DecodeError::UnsupportedFlags { flags: 1 })
    );
}

#[test]
fn oversized_lengths_are_rejected_before_allocating() {
    // Header, a source definition claiming a name of u64::MAX bytes, trailer.
    let mut batch = b"CDCB\x01\x00".to_vec();
    batch.push(2);
    batch.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    batch.extend_from_slice(&0u64.to_le_bytes());
    batch.extend_from_slice(&[0; 4]);
    reseal(&mut batch);
    assert!(matches!(
        decode_batch(&batch),
        Err(DecodeError::LengthTooLarge {
            what: "source name",
            length: u64::MAX,
            ..
        })
    ));
}

#[test]
fn overlong_varints_are_rejected() {
    let mut batch = b"CDCB\x01\x00".to_vec();
    batch.push(2);
    batch.extend_from_slice(&[0x80; 11]);
    batch.extend_from_slice(&0u64.to_le_bytes());
    batch.extend_from_slice(&[0; 4]);
    reseal(&mut batch);
    assert!(matches!(
        decode_batch(&batch),
        Err(DecodeError::VarintOverflow { .. })
    ));
}

#[test]
fn references_to_undefined_schemas_are_rejected() {
    // Header, then a change record (tag 3, op insert) naming schema 0 before any definition.
    let mut batch = b"CDCB\x01\x00".to_vec();
    batch.extend_from_slice(&[3, 0, 0]);
    batch.extend_from_slice(&1u64.to_le_bytes());
    batch.extend_from_slice(&[0; 4]);
    reseal(&mut batch);
    assert_eq!(
        decode_batch(&batch),
        Err(DecodeError::UndefinedReference {
            offset: 8,
            what: "schema",
            id: 0,
            defined: 0
        })
    );
}

#[test]
fn wrong_event_count_is_rejected() {
    let mut batch = sample_batch();
    let count_at = batch.len() - 12;
    batch[count_at] = 4;
    reseal(&mut batch);
    assert_eq!(
        decode_batch(&batch),
        Err(DecodeError::EventCountMismatch {
            declared: 4,
            decoded: 3
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_events(&bytes);
    }

    #[test]
    fn random_records_behind_a_valid_frame_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut batch = b"CDCB\x01\x00".to_vec();
        batch.extend_from_slice(&body);
        batch.extend_from_slice(&1u64.to_le_bytes());
        batch.extend_from_slice(&[0; 4]);
        reseal(&mut batch);
        let _ = decode_events(&batch);
    }

    /// Mutations of real batches get past the checksum (it is recomputed) and so exercise
    /// every bounds check in the record parser.
    #[test]
    fn resealed_mutations_of_real_batches_never_panic(
        events in prop::collection::vec(event(), 1..4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let batch = encode_events(&events);
        let mut body = batch[6..batch.len() - 12].to_vec();
        for (at, byte) in &edits {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = *byte;
            }
        }
        if truncate && !body.is_empty() {
            body.truncate(cut.index(body.len()));
        }
        let mut damaged = batch[..6].to_vec();
        damaged.extend_from_slice(&body);
        damaged.extend_from_slice(&batch[batch.len() - 12..]);
        reseal(&mut damaged);
        let _ = decode_events(&damaged);
    }

    #[test]
    fn flipping_any_byte_of_a_real_batch_is_detected(
        events in change_batch(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut batch = encode_batch(&events);
        let i = at.index(batch.len());
        batch[i] ^= mask;
        prop_assert!(decode_batch(&batch).is_err());
    }
}
