//! The storage backend trait: a small, synchronous key/value store with
//! object_store-style conditional writes.
//!
//! The shape is chosen so an S3 implementation is direct: `get` returns the
//! ETag as the [`Version`], [`PutMode::Create`] is `If-None-Match: *`,
//! [`PutMode::Update`] is `If-Match: <etag>`, `list` is `ListObjectsV2` with a
//! string prefix, `delete` is idempotent like S3's `DeleteObject`, and
//! `cleanup_incomplete` aborts stale multipart uploads.
//!
//! Calls block; async callers wrap them in `spawn_blocking`.

mod local;
mod memory;

use std::fmt;
use std::sync::Arc;

pub use local::{LocalDirBackend, TEMP_PREFIX};
pub use memory::MemoryBackend;

use crate::error::BackendError;

/// Key segments starting with this are reserved for a backend's own files
/// (temporary files, the lock file) and rejected as user keys, so a key can
/// never collide with them and `list` can skip them by name.
pub const RESERVED_PREFIX: &str = ".cdc-";

/// Longest accepted key, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// An opaque version token of a stored value (an ETag, a content hash, a
/// generation number). Only compare it for equality and hand it back in
/// [`PutMode::Update`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Wraps a backend-specific token (for example an S3 ETag).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a `put` treats an existing value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Write unconditionally.
    Overwrite,
    /// Write only if the key does not exist, else [`BackendError::AlreadyExists`].
    Create,
    /// Write only if the stored version is this one, else
    /// [`BackendError::Precondition`] (also when the key is missing).
    Update(Version),
}

/// A value and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// One listed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// A key/value store with conditional writes.
///
/// Keys are `/`-separated relative paths (see [`validate_key`]). Every
/// implementation must pass [`crate::conformance`].
pub trait Backend: Send + Sync + fmt::Debug {
    /// Reads a value, or [`BackendError::NotFound`].
    fn get(&self, key: &str) -> Result<GetResult, BackendError>;

    /// Writes a value atomically (readers see the old or the new bytes, never
    /// a mix) and durably, subject to `mode`. Returns the new version.
    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError>;

    /// All keys starting with `prefix` (a plain string prefix, as in S3),
    /// sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError>;

    /// Removes a key. Removing a missing key succeeds (as in S3), so retries
    /// and concurrent clean-ups are harmless.
    fn delete(&self, key: &str) -> Result<(), BackendError>;

    /// Removes leftovers of writes that never completed (temporary files of
    /// a crashed writer; on S3, stale multipart uploads) under `prefix`.
    /// Returns how many were removed. Must not disturb a write in progress.
    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError>;

    /// A human-readable location of `key` for logs and errors (a path or
    /// URL). Never parsed.
    fn locate(&self, key: &str) -> String;
}

/// Checks that `key` is a relative, normalised path that stays inside the
/// backend's root: non-empty, at most [`MAX_KEY_LEN`] bytes, no leading `/`,
/// no empty, `.` or `..` segments, no NUL, no segment starting with
/// [`RESERVED_PREFIX`].
pub fn validate_key(key: &str) -> Result<(), BackendError> {
    let invalid = |reason| BackendError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid("longer than 1024 bytes"));
    }
    if key.starts_with('/') {
        return Err(invalid(
            "absolute path; keys are relative to the backend root",
        ));
    }
    key.split('/')
        .try_for_each(|segment| validate_segment(segment).map_err(invalid))
}

/// Checks a `list`/`cleanup_incomplete` prefix: empty, or like a key except
/// that the last (partial) segment may be anything, including empty.
pub fn validate_prefix(prefix: &str) -> Result<(), BackendError> {
    let invalid = |reason| BackendError::InvalidKey {
        key: prefix.to_owned(),
        reason,
    };
    if prefix.starts_with('/') {
        return Err(invalid(
            "absolute path; prefixes are relative to the backend root",
        ));
    }
    if prefix.contains('\0') {
        return Err(invalid("contains NUL"));
    }
    match prefix.rfind('/') {
        Some(end) => prefix[..end]
            .split('/')
            .try_for_each(|segment| validate_segment(segment).map_err(invalid)),
        None => Ok(()),
    }
}

fn validate_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        Err("empty path segment (leading, trailing or doubled `/`)")
    } else if segment == "." || segment == ".." {
        Err("`.` or `..` segment; keys must not escape the backend root")
    } else if segment.contains('\0') {
        Err("contains NUL")
    } else if segment.starts_with(RESERVED_PREFIX) {
        Err("segment starts with the reserved `.cdc-` prefix")
    } else {
        Ok(())
    }
}

// Forwarding impls so a store can hold a backend by value, by reference or
// shared (`Arc<dyn Backend>` from `open_backend`).
macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
        impl<B: Backend + ?Sized> Backend for $ty {
            fn get(&self, key: &str) -> Result<GetResult, BackendError> {
                (**self).get(key)
            }
            fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
                (**self).put(key, bytes, mode)
            }
            fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
                (**self).list(prefix)
            }
            fn delete(&self, key: &str) -> Result<(), BackendError> {
                (**self).delete(key)
            }
            fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
                (**self).cleanup_incomplete(prefix)
            }
            fn locate(&self, key: &str) -> String {
                (**self).locate(key)
            }
        }
    )*};
}

forward_backend!(&B, Box<B>, Arc<B>);
