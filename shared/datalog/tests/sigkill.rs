//! Crash safety: a child process appends in a loop and prints every acknowledged sequence;
//! the parent kills it with SIGKILL at random moments, reopens the log, and checks that every
//! acknowledged record is there, in order, exactly once, and that nothing torn is served.
//!
//! The child is this same test binary, re-run with `DATALOG_SIGKILL_CHILD_DIR` set.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cdc_datalog::{AppendRecord, LogOptions, ShardLog};

const CHILD_ENV: &str = "DATALOG_SIGKILL_CHILD_DIR";
const KILLS: usize = 20;

fn options() -> LogOptions {
    // Small segments so kills also land around rolls.
    LogOptions::default().with_segment_bytes(32 * 1024)
}

/// Payload derived from the sequence, with varying length, so content can be checked.
fn payload(seq: u64) -> Vec<u8> {
    let len = (seq * 7919 % 900) as usize + 1;
    (0..len).map(|i| (seq as usize + i) as u8).collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough randomness for kill timing without a dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn sigkill_child_append_loop() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let log = ShardLog::open(&dir, 0, options()).expect("child opens the log");
    let mut rng = Rng(std::process::id() as u64 | 1);
    loop {
        let next = log.bounds().next;
        let n = (rng.next() % 20 + 1) as u64;
        let batch: Vec<AppendRecord> = (next..next + n).map(|s| AppendRecord::new(payload(s))).collect();
        let ack = log.append(&batch).expect("append");
        // Printed only after append returned: these are acknowledged.
        println!("ack {} {}", ack.first_sequence, ack.count);
    }
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    let mut acked_until = 0u64; // one past the highest acknowledged sequence
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "sigkill_child_append_loop", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a random number of acknowledgements (a condition, not a timer).
        let wait_for = rng.next() % 40 + 1;
        let mut seen = 0;
        while seen < wait_for {
            let line = lines.next().expect("child exited early").unwrap();
            // libtest may print "test name ... " on the same line before the first ack.
            let Some(rest) = line.rsplit_once("ack ").map(|(_, r)| r) else { continue };
            let mut parts = rest.split(' ').map(|p| p.parse::<u64>().unwrap());
            let (first, count) = (parts.next().unwrap(), parts.next().unwrap());
            acked_until = acked_until.max(first + count);
            seen += 1;
        }
        // SIGKILL: no destructors, no flush; possibly mid-write.
        child.kill().unwrap();
        // Acks printed before the kill landed still count.
        for line in lines.map_while(Result::ok) {
            if let Some((_, rest)) = line.rsplit_once("ack ") {
                let mut parts = rest.split(' ').map(|p| p.parse::<u64>().unwrap());
                let (first, count) = (parts.next().unwrap(), parts.next().unwrap());
                acked_until = acked_until.max(first + count);
            }
        }
        child.wait().unwrap();

        let log = ShardLog::open(dir.path(), 0, options()).unwrap();
        let next = log.bounds().next;
        assert!(next >= acked_until, "round {round}: log ends at {next} but {acked_until} were acknowledged");
        let records = log.read(0, usize::MAX, usize::MAX).unwrap();
        assert_eq!(records.len() as u64, next, "round {round}: every sequence exactly once");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.sequence, i as u64, "round {round}: in order");
            assert_eq!(r.payload, payload(i as u64), "round {round}: record {i} intact");
        }
    }
    assert!(acked_until > 0);
    eprintln!("{KILLS} kills, {acked_until} acknowledged records, all readable");
}
