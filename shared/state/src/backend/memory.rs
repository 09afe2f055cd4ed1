//! An in-memory backend for tests of callers. Versions are generation
//! numbers, unlike the content hashes of [`super::LocalDirBackend`], which
//! keeps callers (and the conformance suite) honest about treating versions
//! as opaque.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{validate_key, validate_prefix, Backend, GetResult, ObjectMeta, PutMode, Version};
use crate::error::BackendError;

#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, Stored>,
    /// Incremented on every write; never reused, so a version is unique.
    last_generation: u64,
}

#[derive(Debug)]
struct Stored {
    bytes: Vec<u8>,
    version: Version,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every update below is a single map operation, so a panic while
        // the lock was held cannot have left the map half-changed.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<GetResult, BackendError> {
        validate_key(key)?;
        match self.inner().objects.get(key) {
            Some(stored) => Ok(GetResult {
                bytes: stored.bytes.clone(),
                version: stored.version.clone(),
            }),
            None => Err(BackendError::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
        validate_key(key)?;
        let mut inner = self.inner();
        let current = inner.objects.get(key).map(|stored| &stored.version);
        match &mode {
            PutMode::Overwrite => {}
            PutMode::Create => {
                if current.is_some() {
                    return Err(BackendError::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
            }
            PutMode::Update(expected) => {
                if current != Some(expected) {
                    return Err(BackendError::Precondition {
                        key: key.to_owned(),
                        expected: expected.clone(),
                        actual: current.cloned(),
                    });
                }
            }
        }
        inner.last_generation += 1;
        let version = Version::new(format!("gen-{}", inner.last_generation));
        inner.objects.insert(
            key.to_owned(),
            Stored {
                bytes: bytes.to_vec(),
                version: version.clone(),
            },
        );
        Ok(version)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        validate_prefix(prefix)?;
        // BTreeMap iteration is already sorted by key.
        Ok(self
            .inner()
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, stored)| ObjectMeta {
                key: key.clone(),
                size: stored.bytes.len() as u64,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        validate_key(key)?;
        self.inner().objects.remove(key);
        Ok(())
    }

    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
        validate_prefix(prefix)?;
        // Writes are a single map insert: nothing is ever left incomplete.
        Ok(0)
    }

    fn locate(&self, key: &str) -> String {
        format!("memory:{key}")
    }
}
