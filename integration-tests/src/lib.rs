//! The container integration suite's harness: the pipeline's real topology, every function in
//! its own container on a private Docker network, started with testcontainers from locally
//! built images (nothing is pulled).
//!
//! * [`images`]: image names from the environment and the one-time build of our own images;
//! * [`topology`]: the network and its containers, restarts, log waits, logs on failure;
//! * [`pipeline`]: the functions' containers and settings, and the scenario the tests share;
//! * [`source`]: the MariaDB side: set-up, the workload, the table as `SELECT` shows it;
//! * [`replay`]: committed changes (pyarrow over the sinks' Parquet, or the relay's Debezium
//!   envelopes) replayed in source-position order into the table they describe;
//! * [`receiver`]: the HTTP endpoint datahub-relay delivers to.
//!
//! Tests start with [`docker_available`] and return (after printing `SKIPPED: no Docker
//! engine`) when it is false.

pub mod images;
pub mod pipeline;
pub mod receiver;
pub mod replay;
pub mod source;
pub mod topology;

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long one wait for a condition (a log line, committed rows) may take.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The workspace root (this crate is one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("integration-tests has a parent").to_path_buf()
}

/// True when `docker info` answers; otherwise prints `SKIPPED: no Docker engine` (with the
/// reason) so the skip is visible in the test output.
pub fn docker_available() -> bool {
    match Command::new("docker").arg("info").arg("--format").arg("{{.ServerVersion}}").output() {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            println!("SKIPPED: no Docker engine (docker info: {})", String::from_utf8_lossy(&output.stderr).trim());
            false
        }
        Err(e) => {
            println!("SKIPPED: no Docker engine (cannot run docker: {e})");
            false
        }
    }
}

/// Runs the docker CLI; stdout on success, an error naming the command and its stderr
/// otherwise.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker").args(args).output().with_context(|| format!("running docker {}", args.join(" ")))?;
    if !output.status.success() {
        bail!("docker {} failed ({}): {}", args.join(" "), output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Polls `condition` every `every` until it is true; an error names `what` after `within`, or
/// the condition's own error.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, every: Duration, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await.with_context(|| format!("while waiting for {what}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", within.as_secs());
        }
        tokio::time::sleep(every).await;
    }
}

/// The status code `GET http://127.0.0.1:<port><path>` answers (HTTP/1.1, connection closed
/// after the answer; 5 s at most).
pub async fn http_status(port: u16, path: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("GET 127.0.0.1:{port}{path}: no answer within 5 s"))?
        .with_context(|| format!("GET 127.0.0.1:{port}{path}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("GET 127.0.0.1:{port}{path}: not an HTTP answer: {status_line:?}"))
}
