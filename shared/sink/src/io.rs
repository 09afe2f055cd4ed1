//! File-system primitives with retries: the retry policy, a retrying `Write`, durable
//! directory creation and directory fsync.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::SinkError;

/// Upper bound of one backoff pause, however many retries are configured.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Retries of failed file-system operations: `max_retries` more attempts after the first,
/// waiting `initial_backoff`, then twice as long each time (capped at 5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF)
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or `max_retries` retries
    /// are used up. The error names `action` and `path`.
    pub(crate) fn run<T>(
        &self,
        action: &'static str,
        path: &Path,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Result<T, SinkError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match op() {
                Ok(value) => return Ok(value),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => attempts -= 1,
                Err(e) if retryable(&e) && attempts <= self.max_retries => {
                    tracing::warn!(%action, path = %path.display(), attempt = attempts, error = %e, "file operation failed; retrying");
                    std::thread::sleep(self.backoff(attempts - 1));
                }
                Err(source) => {
                    return Err(SinkError::Io {
                        action,
                        path: path.to_path_buf(),
                        attempts,
                        source,
                    })
                }
            }
        }
    }
}

/// Errors that a retry cannot fix are returned at once; everything else (disk full, quota,
/// I/O errors of network file systems, ...) may be transient.
fn retryable(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::AlreadyExists
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::Unsupported
    )
}

/// A `Write` that retries failed `write`/`flush` calls with backoff.
///
/// Retrying at this level is safe because a failed `write(2)` on a regular file writes
/// nothing (a partial write is reported as a short count, not an error), so the byte stream
/// the format writer produces stays intact; a retry of a whole batch would not be, since the
/// Parquet writer's state after a failed write is unspecified.
pub(crate) struct RetryWriter<W> {
    inner: W,
    policy: RetryPolicy,
    path: PathBuf,
}

impl<W: Write> RetryWriter<W> {
    pub(crate) fn new(inner: W, policy: RetryPolicy, path: PathBuf) -> Self {
        Self {
            inner,
            policy,
            path,
        }
    }

    fn retry<T>(
        &mut self,
        action: &'static str,
        mut op: impl FnMut(&mut W) -> io::Result<T>,
    ) -> io::Result<T> {
        let Self {
            inner,
            policy,
            path,
        } = self;
        policy
            .run(action, path, || op(inner))
            .map_err(|error| match error {
                // Keep the kind (callers look at it) and put the attempt count into the text.
                SinkError::Io {
                    source, attempts, ..
                } => io::Error::new(
                    source.kind(),
                    format!("{source} (after {attempts} attempt(s))"),
                ),
                other => io::Error::other(other.to_string()),
            })
    }
}

impl<W: Write> Write for RetryWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.retry("write", |inner| inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.retry("flush", |inner| inner.flush())
    }
}

/// fsyncs a directory so the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(policy: &RetryPolicy, dir: &Path) -> Result<(), SinkError> {
    policy.run("fsync directory", dir, || File::open(dir)?.sync_all())
}

/// Creates `dir` and its missing parents, fsyncing the parent of each directory created, so
/// a file renamed into `dir` cannot vanish with its directory after a power loss.
pub(crate) fn create_dir_durable(policy: &RetryPolicy, dir: &Path) -> Result<(), SinkError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if path.as_os_str().is_empty() || path.is_dir() {
            break;
        }
        missing.push(path);
        cursor = path.parent();
    }
    policy.run("create directory", dir, || std::fs::create_dir_all(dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(policy, parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails the first `failures` calls, then accepts everything.
    struct Flaky {
        failures: u32,
        calls: u32,
        data: Vec<u8>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls <= self.failures {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(1),
        }
    }

    #[test]
    fn transient_write_errors_are_retried_without_losing_bytes() {
        let flaky = Flaky {
            failures: 2,
            calls: 0,
            data: Vec::new(),
        };
        let mut writer = RetryWriter::new(flaky, policy(3), PathBuf::from("/x/part"));
        writer.write_all(b"hello").unwrap();
        assert_eq!(writer.inner.data, b"hello");
        assert_eq!(writer.inner.calls, 3);
    }

    #[test]
    fn persistent_write_errors_fail_after_max_retries_with_the_count() {
        let flaky = Flaky {
            failures: u32::MAX,
            calls: 0,
            data: Vec::new(),
        };
        let mut writer = RetryWriter::new(flaky, policy(2), PathBuf::from("/x/part"));
        let error = writer.write_all(b"hello").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("after 3 attempt(s)"), "{error}");
        assert_eq!(writer.inner.calls, 3);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 100,
            initial_backoff: Duration::from_millis(100),
        };
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
        assert_eq!(p.backoff(60), MAX_BACKOFF);
    }
}
