//! Function binaries run as child processes by the process-level tests: their stderr drained
//! into a channel (a closed pipe would fail the child's writes), log lines awaited with a
//! deadline, SIGKILL and SIGTERM, and a kill on drop so a failing assertion leaves nothing
//! running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running child whose stderr lines are collected.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: Receiver<String>,
}

/// Errors of starting or watching a child process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    #[error("starting {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("{name} exited ({status}) before logging {needle:?}; its log:\n{log}")]
    Exited { name: String, status: String, needle: String, log: String },
    #[error("{name} logged no line with {needle:?} within {seconds} s; its log:\n{log}")]
    Timeout { name: String, needle: String, seconds: u64, log: String },
    #[error("signalling {name}: {source}")]
    Signal { name: String, source: std::io::Error },
}

impl Process {
    /// Starts `command` with its stderr piped and drained.
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> Result<Self, ProcessError> {
        let name = name.into();
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ProcessError::Spawn { name: name.clone(), source })?;
        let (tx, log) = std::sync::mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                // Keep draining after the receiver is gone: a closed pipe would fail the
                // child's writes.
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Self { name, child, log })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line containing `needle` and returns everything read up to it.
    pub fn wait_for_log(&mut self, needle: &str, within: Duration) -> Result<String, ProcessError> {
        let deadline = Instant::now() + within;
        let mut seen = String::new();
        loop {
            match self.log.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(needle) {
                        return Ok(seen);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        seen.extend(self.log.try_iter().map(|l| l + "\n"));
                        return Err(ProcessError::Exited {
                            name: self.name.clone(),
                            status: status.to_string(),
                            needle: needle.into(),
                            log: seen,
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(ProcessError::Timeout {
                            name: self.name.clone(),
                            needle: needle.into(),
                            seconds: within.as_secs(),
                            log: seen,
                        });
                    }
                }
            }
        }
    }

    /// Log lines received so far and not yet returned.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop), then the exit status and the rest of the log.
    pub fn terminate(mut self) -> Result<(ExitStatus, String), ProcessError> {
        let name = self.name.clone();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .map_err(|source| ProcessError::Signal { name: name.clone(), source })?;
        if !sent.success() {
            return Err(ProcessError::Signal { name, source: std::io::Error::other(format!("kill exited {sent}")) });
        }
        let status = self.child.wait().map_err(|source| ProcessError::Signal { name, source })?;
        let log = self.drain_log().join("\n");
        Ok((status, log))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 20 ms until it holds; `Err` names `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !condition() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {} s waiting for {what}", within.as_secs()));
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    Ok(())
}
