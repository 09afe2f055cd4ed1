//! A backend over a local directory.
//!
//! Durability: every write goes to a temporary file in the target's
//! directory, is fsynced, then renamed (or, for `Create`, hard-linked) into
//! place, and the directory is fsynced so the new name survives a power cut.
//! A crash leaves either the old value or the new one, plus possibly a
//! temporary file that `cleanup_incomplete` removes.
//!
//! Concurrency: all mutations (`put`, `delete`, `cleanup_incomplete`) hold an
//! exclusive `flock` on `<root>/.cdc-lock` from before the temporary file is
//! created until the rename. That makes `Update` a real compare-and-swap
//! across threads and processes, and means any temporary file seen while
//! holding the lock belongs to a dead writer (the kernel drops the lock of a
//! killed process), so clean-up never removes a live write. Writes to one
//! root are serialised, which is fine for checkpoint-rate traffic. Readers
//! take no lock: renames are atomic. `flock` is advisory and unreliable on
//! some network file systems; use a local disk.
//!
//! Versions are a 64-bit FNV-1a hash of the content plus its length. A
//! content version means "the bytes you read are still the bytes stored",
//! which is exactly what a whole-value compare-and-swap needs (an A→B→A
//! change is indistinguishable, and harmless, for the same reason).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    validate_key, validate_prefix, Backend, GetResult, ObjectMeta, PutMode, Version,
    RESERVED_PREFIX,
};
use crate::error::BackendError;

/// Name prefix of temporary files (never a valid key segment, so they never
/// show up in `list`).
pub const TEMP_PREFIX: &str = ".cdc-tmp-";

const LOCK_FILE: &str = ".cdc-lock";

/// Distinguishes temporary files of concurrent writes in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A backend storing each key as a file under a root directory.
#[derive(Debug, Clone)]
pub struct LocalDirBackend {
    root: PathBuf,
}

impl LocalDirBackend {
    /// Opens (creating it if missing) the directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BackendError> {
        let root = root.into();
        // Absolute, so error messages and `locate` stay meaningful if the
        // working directory changes.
        let root =
            std::path::absolute(&root).map_err(|source| io_error("resolve", &root, source))?;
        fs::create_dir_all(&root).map_err(|source| io_error("create directory", &root, source))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        // Keys are validated relative `/`-separated paths, which `join`
        // appends component by component on Unix.
        self.root.join(key)
    }

    /// Takes the exclusive lock of this root; released when the file is
    /// dropped (closed), or by the kernel if the process dies.
    fn lock(&self) -> Result<File, BackendError> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| io_error("open lock file", &path, source))?;
        // A fresh open file description per call: flock conflicts between
        // descriptions even within one process, so threads exclude each
        // other too.
        file.lock()
            .map_err(|source| io_error("lock", &path, source))?;
        Ok(file)
    }

    /// Creates `dir` and any missing parents below the root, fsyncing each
    /// parent so the new directory entries are durable.
    fn ensure_dir(&self, dir: &Path) -> Result<(), BackendError> {
        let mut missing = Vec::new();
        let mut current = dir;
        while current != self.root && !current.is_dir() {
            missing.push(current);
            match current.parent() {
                Some(parent) => current = parent,
                None => break,
            }
        }
        for dir in missing.into_iter().rev() {
            match fs::create_dir(dir) {
                Ok(()) => {}
                // Created concurrently by another writer: just as good.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(io_error("create directory", dir, source)),
            }
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Walks the directory subtree that can hold keys starting with
    /// `prefix`, calling `visit(relative_dir, file_name, path)` for every
    /// regular file (including reserved ones, which the caller filters).
    fn walk(
        &self,
        prefix: &str,
        mut visit: impl FnMut(&str, &str, &Path, &fs::Metadata),
    ) -> Result<(), BackendError> {
        let base = prefix.rfind('/').map_or("", |end| &prefix[..=end]);
        let mut pending = vec![base.to_owned()];
        while let Some(relative) = pending.pop() {
            let dir = self.root.join(&relative);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Missing base, or a directory removed while we walk: no keys.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error("read directory", &dir, source)),
            };
            for entry in entries {
                let entry = entry.map_err(|source| io_error("read directory", &dir, source))?;
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    tracing::warn!(path = %path.display(), "ignoring a file whose name is not UTF-8");
                    continue;
                };
                let metadata = match entry.metadata() {
                    Ok(metadata) => metadata,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(io_error("stat", &path, source)),
                };
                if metadata.is_dir() {
                    if name.starts_with(RESERVED_PREFIX) {
                        continue;
                    }
                    let child = format!("{relative}{name}/");
                    // Descend only where keys can still match the prefix.
                    if child.starts_with(prefix) || prefix.starts_with(&child) {
                        pending.push(child);
                    }
                } else if metadata.is_file() {
                    visit(&relative, &name, &path, &metadata);
                }
                // Symlinks and special files are never written by us: skipped.
            }
        }
        Ok(())
    }
}

impl Backend for LocalDirBackend {
    fn get(&self, key: &str) -> Result<GetResult, BackendError> {
        validate_key(key)?;
        let path = self.path_of(key);
        match read_if_exists(&path)? {
            Some(bytes) => {
                let version = content_version(&bytes);
                Ok(GetResult { bytes, version })
            }
            None => Err(BackendError::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
        validate_key(key)?;
        let target = self.path_of(key);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir)?;

        let _lock = self.lock()?;
        // Checked before writing anything, so losers of a race fail fast
        // without an fsync. The lock makes the check stick until the rename.
        match &mode {
            PutMode::Overwrite => {}
            PutMode::Create => {
                if target.symlink_metadata().is_ok() {
                    return Err(BackendError::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
            }
            PutMode::Update(expected) => {
                let actual = read_if_exists(&target)?.map(|bytes| content_version(&bytes));
                if actual.as_ref() != Some(expected) {
                    return Err(BackendError::Precondition {
                        key: key.to_owned(),
                        expected: expected.clone(),
                        actual,
                    });
                }
            }
        }

        let temp = TempFile::write(&dir, bytes)?;
        match mode {
            PutMode::Create => {
                // link(2) fails with EEXIST instead of replacing: the atomic
                // no-replace primitive, correct even against writers that
                // ignore our lock.
                match fs::hard_link(&temp.path, &target) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(BackendError::AlreadyExists {
                            key: key.to_owned(),
                        });
                    }
                    Err(source) => return Err(io_error("link into place", &target, source)),
                }
                temp.remove()?;
            }
            PutMode::Overwrite | PutMode::Update(_) => {
                fs::rename(&temp.path, &target)
                    .map_err(|source| io_error("rename into place", &target, source))?;
                temp.disarm();
            }
        }
        sync_dir(&dir)?;
        Ok(content_version(bytes))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        validate_prefix(prefix)?;
        let mut objects = Vec::new();
        self.walk(prefix, |relative, name, _path, metadata| {
            if name.starts_with(RESERVED_PREFIX) {
                return;
            }
            let key = format!("{relative}{name}");
            if key.starts_with(prefix) {
                objects.push(ObjectMeta {
                    key,
                    size: metadata.len(),
                });
            }
        })?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        validate_key(key)?;
        let path = self.path_of(key);
        let _lock = self.lock()?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if is_absent(&error) => return Ok(()),
            Err(source) => return Err(io_error("delete", &path, source)),
        }
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
        validate_prefix(prefix)?;
        // Under the lock no write is in progress, so every temporary file is
        // a dead writer's leftover.
        let _lock = self.lock()?;
        let mut leftovers = Vec::new();
        self.walk(prefix, |_relative, name, path, _metadata| {
            if name.starts_with(TEMP_PREFIX) {
                leftovers.push(path.to_path_buf());
            }
        })?;
        let mut removed = 0;
        for path in leftovers {
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the temporary file of an incomplete write");
                    removed += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("remove temporary file", &path, source)),
            }
        }
        Ok(removed)
    }

    fn locate(&self, key: &str) -> String {
        self.path_of(key).display().to_string()
    }
}

/// A temporary file that is removed on drop unless renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates a fresh temporary file in `dir` holding `bytes`, fsynced.
    fn write(dir: &Path, bytes: &[u8]) -> Result<Self, BackendError> {
        let pid = std::process::id();
        // `create_new` never reuses a name, e.g. one left by a crashed
        // process that had the same pid.
        let (path, mut file) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(io_error("create temporary file", &path, source)),
            }
        };
        let temp = Self { path, armed: true };
        file.write_all(bytes)
            .map_err(|source| io_error("write temporary file", &temp.path, source))?;
        file.sync_all()
            .map_err(|source| io_error("fsync temporary file", &temp.path, source))?;
        Ok(temp)
    }

    fn disarm(mut self) {
        self.armed = false;
    }

    fn remove(mut self) -> Result<(), BackendError> {
        self.armed = false;
        fs::remove_file(&self.path)
            .map_err(|source| io_error("remove temporary file", &self.path, source))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            if let Err(error) = fs::remove_file(&self.path) {
                // Not fatal: `cleanup_incomplete` removes it later.
                tracing::warn!(path = %self.path.display(), %error, "could not remove temporary file");
            }
        }
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, BackendError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if is_absent(&error) => Ok(None),
        Err(source) => Err(io_error("read", path, source)),
    }
}

/// A missing file, or a directory where a key would be (then no value is
/// stored under that key, as in an object store).
fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
    )
}

/// Makes a rename, link or unlink in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| io_error("fsync directory", dir, source))
}

fn content_version(bytes: &[u8]) -> Version {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    });
    Version::new(format!("{hash:016x}-{}", bytes.len()))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> BackendError {
    BackendError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
