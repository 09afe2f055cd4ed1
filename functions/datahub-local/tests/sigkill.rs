//! SIGKILL of `datahub-local` under a continuous producer: every record whose PutRecords
//! returned success is readable afterwards, in order, exactly once; a record whose put was in
//! flight at the kill appears at most once, in order; no torn record is ever returned.
//!
//! The server runs as a real process on one data directory. A producer task puts batches of
//! BLOB records with unique increasing payloads (`n:<counter>:<padding>`, padding derived from
//! the counter so a torn or mixed-up record cannot pass as valid) over two shards, and notes
//! which puts succeeded. The test SIGKILLs the server after a random number of successful puts,
//! restarts it on the same directory (on a new port), and hands the producer a client for the
//! new address. `DATAHUB_LOCAL_KILL_ROUNDS` (default 20) sets the kills;
//! `DATAHUB_LOCAL_KILL_SEED` replays a run (the seed is printed).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::client::{CursorType, PutRecord, RecordType, TopicSpec};
use cdc_datahub::{DatahubClient, RecordData};

const DEADLINE: Duration = Duration::from_secs(60);
const PROJECT: &str = "sigkill";
const TOPIC: &str = "blobs";
const SHARDS: u64 = 2;

/// The server process; SIGKILLed when dropped (a failing assertion must not leave it).
struct Server {
    child: Child,
    log: Receiver<String>,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_datahub-local"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MONITORING_PORT", "0")
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .env("DATAHUB_LOCAL_PORT", "0")
            .env("DATAHUB_LOCAL_BIND", "127.0.0.1")
            .env("DATAHUB_LOCAL_DATA_DIR", data_dir)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting datahub-local");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the receiver is gone: a closed pipe would fail the child's writes.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server { child, log, endpoint: String::new() };
        let line = server.wait_for_log("serving the DataHub API");
        let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
        server.endpoint = format!("http://{addr}");
        server
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = String::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let rest: Vec<String> = self.log.try_iter().collect();
                panic!("datahub-local exited ({status}) before logging {needle:?}:\n{seen}{}", rest.join("\n"));
            }
            match self.log.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => assert!(Instant::now() < deadline, "datahub-local: no log line with {needle:?}; got:\n{seen}"),
            }
        }
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

fn client(endpoint: &str) -> Arc<DatahubClient> {
    // No retries: a put either returned success or it did not; the test keeps the books.
    let c = DatahubClient::builder(endpoint).with_credentials("id", "key").with_max_retries(0).with_timeout(Duration::from_secs(20)).build().expect("client");
    Arc::new(c)
}

/// SplitMix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload of record `n`: its counter and a padding whose length and bytes follow from it.
fn payload(n: u64) -> Vec<u8> {
    let len = 8 + (n.wrapping_mul(7919) % 1500) as usize;
    let mut p = format!("n:{n}:").into_bytes();
    p.extend((0..len).map(|i| b'a' + ((n as usize + i) % 26) as u8));
    p
}

/// Decodes a payload back to its counter, or says why it is not one of ours (torn, mixed).
fn decode(bytes: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let rest = text.strip_prefix("n:").ok_or("no n: prefix")?;
    let n: u64 = rest.split(':').next().and_then(|s| s.parse().ok()).ok_or("no counter")?;
    if payload(n) != bytes {
        return Err(format!("counter {n} but {} bytes that are not its payload ({} expected)", bytes.len(), payload(n).len()));
    }
    Ok(n)
}

fn shard_of(n: u64) -> String {
    (n % SHARDS).to_string()
}

/// What the producer saw: each record's counter and whether its put returned success.
struct Books {
    records: Vec<(u64, bool)>,
    failed_puts: u64,
    ok_puts: u64,
}

/// Puts batches until `stop`; follows the client published on `clients`; counts acked records.
async fn produce(
    mut clients: tokio::sync::watch::Receiver<Arc<DatahubClient>>,
    acked: tokio::sync::watch::Sender<u64>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Books {
    let mut rng = Rng(seed ^ 0x5EED);
    let mut books = Books { records: Vec::new(), failed_puts: 0, ok_puts: 0 };
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let client = clients.borrow_and_update().clone();
        let size = 1 + rng.below(16);
        let batch: Vec<u64> = (next..next + size).collect();
        next += size;
        let records: Vec<PutRecord> = batch.iter().map(|&n| PutRecord::new(RecordData::Blob(payload(n))).with_shard(shard_of(n))).collect();
        match client.put_records(PROJECT, TOPIC, &records).await {
            Ok(failed) => {
                books.ok_puts += 1;
                let failed: std::collections::HashSet<usize> = failed.iter().map(|f| f.index).collect();
                let mut ok = 0;
                for (i, &n) in batch.iter().enumerate() {
                    books.records.push((n, !failed.contains(&i)));
                    ok += u64::from(!failed.contains(&i));
                }
                acked.send_modify(|a| *a += ok);
            }
            Err(_) => {
                books.failed_puts += 1;
                books.records.extend(batch.iter().map(|&n| (n, false)));
                // The server is probably gone: wait (bounded) for the next one's client, then
                // go on with whichever client is current.
                let _ = tokio::time::timeout(Duration::from_millis(500), clients.changed()).await;
            }
        }
    }
    books
}

#[test]
fn acknowledged_records_survive_sigkill_exactly_once_in_order() {
    let started = Instant::now();
    let rounds: u64 = std::env::var("DATAHUB_LOCAL_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("DATAHUB_LOCAL_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("DATAHUB_LOCAL_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    let mut server = Server::start(&data_dir);
    let first = client(&server.endpoint);
    rt.block_on(async {
        first.create_project(PROJECT, "sigkill test").await.expect("create project");
        let spec = TopicSpec { shard_count: SHARDS as u32, lifecycle: 7, record_type: RecordType::Blob, record_schema: None, comment: "t".into(), expand_mode: None };
        first.create_topic(PROJECT, TOPIC, &spec).await.expect("create topic");
    });

    let (client_tx, client_rx) = tokio::sync::watch::channel(first);
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0u64);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = rt.spawn(produce(client_rx, acked_tx, stop.clone(), seed));

    let wait_acked = |acked_rx: &mut tokio::sync::watch::Receiver<u64>, at_least: u64| {
        rt.block_on(async {
            tokio::time::timeout(DEADLINE, acked_rx.wait_for(|a| *a >= at_least))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {at_least} acknowledged records"))
                .map(|a| *a)
                .expect("the producer stopped")
        })
    };

    let mut acked_at_kill = Vec::new();
    for _ in 0..rounds {
        // Kill after a random number of further successful puts (records, here), mid-stream.
        let now = *acked_rx.borrow();
        let target = now + 1 + rng.below(60);
        acked_at_kill.push(wait_acked(&mut acked_rx, target));
        server.sigkill();
        server = Server::start(&data_dir);
        client_tx.send(client(&server.endpoint)).expect("producer alive");
    }
    // The producer must get going on the last server too.
    let now = *acked_rx.borrow();
    wait_acked(&mut acked_rx, now + 20);
    stop.store(true, Ordering::SeqCst);
    let books = rt.block_on(producer).expect("producer task");

    // Read every shard from OLDEST.
    let reader = client(&server.endpoint);
    let mut read: Vec<Vec<(i64, u64)>> = Vec::new();
    rt.block_on(async {
        for shard in 0..SHARDS {
            let shard = shard.to_string();
            let mut cursor = reader.get_cursor(PROJECT, TOPIC, &shard, CursorType::Oldest).await.expect("OLDEST cursor").cursor;
            let mut got = Vec::new();
            loop {
                let page = reader.get_records(PROJECT, TOPIC, &shard, &cursor, 1000).await.expect("GetRecords");
                if page.records.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
                for r in page.records {
                    let RecordData::Blob(bytes) = &r.data else { panic!("shard {shard} seq {}: not a BLOB", r.sequence) };
                    let n = decode(bytes).unwrap_or_else(|e| panic!("shard {shard} seq {}: torn record: {e}", r.sequence));
                    assert_eq!(shard_of(n), shard, "record {n} read from the wrong shard");
                    got.push((r.sequence, n));
                }
            }
            read.push(got);
        }
    });

    let mut acked_total = 0usize;
    let mut unacked_present = 0usize;
    let mut unacked_total = 0usize;
    for (shard, got) in read.iter().enumerate() {
        // Sequences are dense from 0 and counters strictly increase: in order, at most once.
        for (i, &(seq, _)) in got.iter().enumerate() {
            assert_eq!(seq, i as i64, "shard {shard}: sequence gap or repeat at index {i}");
        }
        for w in got.windows(2) {
            assert!(w[0].1 < w[1].1, "shard {shard}: record {} read after {} (out of order or duplicated)", w[1].1, w[0].1);
        }
        let present: std::collections::HashSet<u64> = got.iter().map(|&(_, n)| n).collect();
        let written: std::collections::HashMap<u64, bool> = books.records.iter().filter(|(n, _)| n % SHARDS == shard as u64).copied().collect();
        for &(_, n) in got {
            assert!(written.contains_key(&n), "shard {shard}: record {n} was never put");
        }
        for (&n, &acked) in &written {
            if acked {
                acked_total += 1;
                assert!(present.contains(&n), "shard {shard}: acknowledged record {n} is missing");
            } else {
                unacked_total += 1;
                unacked_present += usize::from(present.contains(&n));
            }
        }
    }
    println!(
        "{rounds} SIGKILLs (acked records at each kill: {acked_at_kill:?}); {} records put in {} successful and {} failed puts; \
         {acked_total} acknowledged, all present once and in order; {unacked_present} of {unacked_total} unacknowledged present; \
         {} records read; {:.1}s",
        books.records.len(),
        books.ok_puts,
        books.failed_puts,
        read.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(acked_total as u64, *acked_rx.borrow());
    drop(server);
}
