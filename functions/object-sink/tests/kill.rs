//! THE KILL TEST of the object sink: the real `object-sink` process reads a DataHub topic
//! (a real `datahub-local`) under a continuous producer and writes Parquet objects to a real
//! S3-compatible server (moto), with its checkpoints in the same bucket (`s3://`). It is
//! killed `CDC_KILL_ROUNDS` times (default 20): SIGKILLs at random moments after it has
//! committed a few checkpoints, and aborts at `OBJECT_SINK_FAILPOINT`s — between saving a
//! checkpoint and `CompleteMultipartUpload` (every other round), after uploading but before
//! saving, after completing but before committing DataHub offsets. After each kill, committed
//! objects never vanish and never overlap; after a final clean run that catches up with the
//! producer, pyarrow reads every produced row exactly once and no upload is left open.
//!
//! `CDC_KILL_SEED` replays a schedule. Binaries: `datahub-local` is taken from the same target
//! directory (`cargo build -p datahub-local` first; `scripts/test.sh` builds the workspace).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use cdc_localdb::process::wait_until;
use cdc_state::s3::list_uploads;

mod common;

use common::*;

#[derive(Debug, Clone)]
enum KillAt {
    /// SIGKILL once `n` checkpoints were committed and `k` more records were produced.
    Sigkill { checkpoints: u64, records: u64 },
    /// `OBJECT_SINK_FAILPOINT=<point>:<n>`: the process aborts itself there.
    Failpoint(&'static str, u64),
}

#[test]
fn killed_20_times_under_continuous_input_the_object_sink_commits_every_row_exactly_once() {
    let rounds = env_u64("CDC_KILL_ROUNDS", 20) as usize;
    let seed = env_u64("CDC_KILL_SEED", 0x0b1e_c75e_ed01);
    let mut rng = Rng(seed | 1);
    let mut world = World::start();
    let connection = world.connection.clone();
    let produced = world.produced.clone();
    let env = world.env("staging");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_object-sink"));

    let mut committed = BTreeSet::new();
    let mut schedule = Vec::new();
    for round in 0..rounds {
        let n = 1 + rng.below(3);
        let kill_at = match (round % 4, rng.below(2)) {
            // Every other round: checkpoint durable, uploads not yet completed.
            (1 | 3, _) => KillAt::Failpoint("after-save", n),
            (2, 0) => KillAt::Failpoint("after-prepare", n),
            (2, _) => KillAt::Failpoint("after-commit", n),
            _ => KillAt::Sigkill { checkpoints: n, records: rng.below(120) },
        };
        let mut env = env.clone();
        if let KillAt::Failpoint(point, n) = &kill_at {
            env.push(("OBJECT_SINK_FAILPOINT".into(), format!("{point}:{n}")));
        }
        let mut sink = spawn("object-sink", &binary, &env);
        wait_for(&mut sink, "object sink running");
        match &kill_at {
            KillAt::Failpoint(point, _) => {
                wait_for(&mut sink, &format!("aborting at {point}"));
            }
            KillAt::Sigkill { checkpoints, records } => {
                for _ in 0..*checkpoints {
                    wait_for(&mut sink, "checkpoint committed");
                }
                // Somewhere in the writes, uploads and checkpoints that follow.
                let target = produced.load(Ordering::SeqCst) + records;
                wait_until("more input", DEADLINE, || produced.load(Ordering::SeqCst) >= target).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        sink.kill();
        schedule.push(format!("{kill_at:?}"));
        committed = check_invariants(&connection, &committed, round);
    }
    let total = world.stop_producing();
    let per_shard = total / SHARDS;

    // The final run catches up with the producer, then stops gracefully.
    let mut sink = spawn("object-sink", &binary, &env);
    wait_for(&mut sink, "object sink running");
    let caught_up = (0..SHARDS).map(|s| format!("{s}={per_shard}")).collect::<Vec<_>>().join(",");
    wait_for(&mut sink, &format!("\"offsets\":\"{caught_up}\""));
    let (status, log) = sink.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "object-sink exits 0 on SIGTERM, got {status}:\n{log}");
    check_invariants(&connection, &committed, rounds);

    let client = connection.client().clone();
    let open = connection.block_on(async move { list_uploads(&client, BUCKET, "").await }).expect("runtime").expect("list uploads");
    assert!(open.is_empty(), "uploads left open: {open:?}");

    let ids = committed_ids(&connection, &world.dir.path().join("copy"));
    let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(duplicates, 0, "duplicated rows after {rounds} kills ({schedule:?})");
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(ids.len(), expected.len(), "row count after {rounds} kills ({schedule:?})");
    assert_eq!(ids, expected, "rows ({schedule:?})");
    eprintln!(
        "object-sink kill test: {rounds} kills ({schedule:?}); {total} rows in {} objects, each exactly once",
        object_keys(&connection).len()
    );
}

#[test]
fn a_second_instance_on_the_same_state_prefix_fences_the_first_which_completes_nothing_more() {
    let mut world = World::start();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_object-sink"));
    let mut first = spawn("object-sink A", &binary, &world.env("staging-a"));
    wait_for(&mut first, "object sink running");
    wait_for(&mut first, "checkpoint committed");

    // The replacement starts while the first is still running (a stuck pod and its successor).
    let mut second = spawn("object-sink B", &binary, &world.env("staging-b"));
    wait_for(&mut second, "object sink running");

    // The first one's next checkpoint commit is refused: it stops, without completing the
    // uploads of that checkpoint or committing offsets.
    let (status, log) = exit_status(first);
    assert!(!status.contains("exit status: 0"), "the fenced instance must fail, got {status}:\n{log}");
    let refused = log.lines().position(|l| l.contains("another instance is writing to the same checkpoint location"));
    let Some(refused) = refused else { panic!("no conflict error in the fenced instance's log:\n{log}") };
    assert!(log.contains("checkpoint commit refused (fenced)") && log.contains("conflict: checkpoint"), "{log}");
    assert!(
        !log.lines().skip(refused).any(|l| l.contains("checkpoint committed")),
        "the fenced instance committed after its conflict:\n{log}"
    );

    // The second one carries on alone and catches up with everything produced.
    let total = world.stop_producing();
    let per_shard = total / SHARDS;
    let caught_up = (0..SHARDS).map(|s| format!("{s}={per_shard}")).collect::<Vec<_>>().join(",");
    wait_for(&mut second, &format!("\"offsets\":\"{caught_up}\""));
    let (status, log) = second.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the second instance exits 0 on SIGTERM, got {status}:\n{log}");

    check_invariants(&world.connection, &BTreeSet::new(), 0);
    let ids = committed_ids(&world.connection, &world.dir.path().join("copy"));
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(ids, expected, "every row exactly once after the fencing");
    // The fenced instance's last uploads were never completed; a restart of the survivor
    // aborts them (its recovery), leaving nothing open.
    let mut restarted = spawn("object-sink B'", &binary, &world.env("staging-b"));
    wait_for(&mut restarted, "object sink running");
    let (status, _) = restarted.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let client = world.connection.client().clone();
    let open = world.connection.block_on(async move { list_uploads(&client, BUCKET, "").await }).expect("runtime").expect("list uploads");
    assert!(open.is_empty(), "uploads left open: {open:?}");
    assert_eq!(committed_ids(&world.connection, &world.dir.path().join("copy2")), expected);
}
