//! Positions: total order by (file sequence, offset, phase, event index) across binlog
//! rotation, and lossless text form for checkpoints.

mod common;

use std::cmp::Ordering;

use cdc_event::*;
use common::*;
use proptest::prelude::*;

/// The ordering rule restated independently of the implementation.
fn expected_key(p: &Position) -> (Option<u64>, u64, u8, u32) {
    let sequence = p
        .file
        .rsplit_once('.')
        .map(|(_, suffix)| suffix)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok());
    let phase = match p.phase {
        Phase::Snapshot => 0,
        Phase::Stream => 1,
    };
    (sequence, p.offset, phase, p.event_index)
}

/// Positions that often share files and offsets, so ties on every key part get exercised.
fn clustered_position() -> impl Strategy<Value = Position> {
    (
        flavor(),
        prop::sample::select(vec![
            "binlog.000009",
            "binlog.000010",
            "mysql-bin.000010",
            "binlog.1000000",
            "nosuffix",
        ]),
        0u64..4,
        proptest::option::of(gtid()),
        phase(),
        0u32..3,
    )
        .prop_map(
            |(flavor, file, offset, gtid, phase, event_index)| Position {
                flavor,
                file: file.to_owned(),
                offset,
                gtid,
                phase,
                event_index,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn display_and_from_str_round_trip(position in position()) {
        let text = position.to_string();
        let parsed: Position = text.parse().map_err(|e: PositionParseError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, position);
    }

    #[test]
    fn serde_uses_the_text_form(position in position()) {
        let json = serde_json::to_string(&position).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&json, &serde_json::to_string(&position.to_string()).unwrap());
        let back: Position = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, position);
    }

    #[test]
    fn order_follows_the_key_rule(a in clustered_position(), b in clustered_position()) {
        let by_key = expected_key(&a).cmp(&expected_key(&b));
        if by_key != Ordering::Equal {
            prop_assert_eq!(a.cmp(&b), by_key);
        }
    }

    #[test]
    fn order_is_total_and_consistent_with_eq(
        a in clustered_position(),
        b in clustered_position(),
        c in clustered_position(),
    ) {
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "(?s).{0,60}") {
        let _ = text.parse::<Position>();
        let _ = text.parse::<Gtid>();
    }

    #[test]
    fn parsing_near_miss_text_never_panics(position in position(), cut in 0usize..80, junk in "[ :#%a-z0-9-]{0,3}") {
        let text = position.to_string();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = format!("{}{}{}", &text[..cut], junk, &text[cut..]).parse::<Position>();
    }
}

fn at(file: &str, offset: u64, phase: Phase, event_index: u32) -> Position {
    Position::stream(ServerFlavor::MySql, file, offset)
        .with_phase(phase)
        .with_event_index(event_index)
}

#[test]
fn rotation_orders_by_file_sequence_not_text() {
    use Phase::*;
    let ordered = [
        at("binlog.000009", 999_999_999, Stream, 99),
        at("binlog.000010", 4, Snapshot, 0),
        at("binlog.000010", 4, Snapshot, 1),
        at("binlog.000010", 4, Stream, 0),
        at("binlog.000010", 4, Stream, 1),
        at("binlog.000010", 120, Snapshot, 0),
        at("binlog.999999", 4, Stream, 0),
        // Past 999999 MySQL continues with seven digits; text order would put this first.
        at("binlog.1000000", 4, Stream, 0),
    ];
    for pair in ordered.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{} should be before {}",
            pair[0],
            pair[1]
        );
    }
    let mut shuffled = ordered.to_vec();
    shuffled.reverse();
    shuffled.sort();
    assert_eq!(shuffled, ordered);
}

#[test]
fn snapshot_reads_at_p_come_before_the_transaction_starting_at_p() {
    let snapshot_read = at("binlog.000003", 1_000, Phase::Snapshot, 50_000);
    let first_stream_event = at("binlog.000003", 1_000, Phase::Stream, 0);
    assert!(snapshot_read < first_stream_event);
}

#[test]
fn text_form_is_readable() {
    let uuid: ServerUuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562"
        .parse()
        .expect("uuid");
    let position = at("binlog.000010", 4567, Phase::Stream, 3).with_gtid(Gtid::MySql {
        source_id: uuid,
        tag: None,
        transaction_id: 23,
    });
    assert_eq!(
        position.to_string(),
        "mysql binlog.000010:4567 stream#3 gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
    );
    let mariadb: Position = "mariadb mysql-bin.000002:889 snapshot#0 gtid=0-1-42"
        .parse()
        .expect("parses");
    assert_eq!(
        mariadb,
        Position::stream(ServerFlavor::MariaDb, "mysql-bin.000002", 889)
            .with_phase(Phase::Snapshot)
            .with_gtid(Gtid::MariaDb {
                domain_id: 0,
                server_id: 1,
                sequence: 42
            })
    );
    let tagged: Gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:blue_1:7"
        .parse()
        .expect("tagged GTID");
    assert_eq!(
        tagged.to_string(),
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:blue_1:7"
    );
    let odd_file = at("my bin%1.000001", 4, Phase::Stream, 0);
    assert_eq!(odd_file.to_string(), "mysql my%20bin%251.000001:4 stream#0");
}

#[test]
fn malformed_text_is_rejected_with_the_failing_part() {
    let cases = [
        ("", "shape"),
        ("mysql binlog.000001:4", "shape"),
        ("postgres binlog.000001:4 stream#0", "server flavor"),
        ("mysql binlog.000001 stream#0", "file:offset"),
        ("mysql binlog.000001:-4 stream#0", "offset"),
        ("mysql binlog.000001:4 streaming#0", "phase"),
        ("mysql binlog.000001:4 stream#x", "event index"),
        ("mysql binlog.000001:4 stream#4294967296", "event index"),
        ("mysql bin%2log.000001:4 stream#0", "file name escape"),
        ("mysql binlog.000001:4 stream#0 0-1-2", "gtid= prefix"),
        ("mysql binlog.000001:4 stream#0 gtid=zz:1", "gtid"),
        (
            "mysql binlog.000001:4 stream#0 gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:BAD:1",
            "gtid",
        ),
    ];
    for (text, part) in cases {
        let error = text.parse::<Position>().expect_err(text);
        let matches = match (&error, part) {
            (PositionParseError::Shape { .. }, "shape") => true,
            (PositionParseError::Gtid { .. }, "gtid") => true,
            (PositionParseError::InvalidPart { part: p, .. }, _) => *p == part,
            _ => false,
        };
        assert!(matches, "{text:?}: expected {part}, got {error}");
    }
}

#[test]
fn schema_versions_are_stable_fingerprints_of_columns_and_key() {
    use cdc_event::{ColumnDef, ColumnType, TableSchema};
    let columns = |names: &[&str]| -> Vec<ColumnDef> {
        names.iter().map(|n| ColumnDef::new(*n, ColumnType::Int { unsigned: false }, true)).collect()
    };
    let key = vec!["id".to_string()];
    let v1 = TableSchema::fingerprint(&columns(&["id", "a"]), &key);
    // Same input, same version: across calls, processes and restarts (no random state).
    assert_eq!(v1, TableSchema::fingerprint(&columns(&["id", "a"]), &key));
    assert!(v1 < 1 << 63);
    assert_ne!(v1, TableSchema::fingerprint(&columns(&["id", "a", "b"]), &key));
    assert_ne!(v1, TableSchema::fingerprint(&columns(&["id", "b"]), &key));
    assert_ne!(v1, TableSchema::fingerprint(&columns(&["id", "a"]), &["a".to_string()]));
    assert_ne!(TableSchema::fingerprint(&columns(&["ab", "c"]), &key), TableSchema::fingerprint(&columns(&["a", "bc"]), &key));
    let mut not_null = columns(&["id", "a"]);
    not_null[1].nullable = false;
    assert_ne!(v1, TableSchema::fingerprint(&not_null, &key));
}
