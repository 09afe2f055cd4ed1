//! The object sink's storage (feature `s3`): committed files are objects in an S3 or
//! S3-compatible bucket, exactly once.
//!
//! # Protocol
//!
//! In-progress files are written locally (`{staging root}/.inprogress/`, never visible to
//! readers of the bucket), exactly as the file sink writes them. Then:
//!
//! 1. **Seal** (when a file rolls, and at every checkpoint): `CreateMultipartUpload` at the
//!    file's final key, `UploadPart` for each [`part size`](ObjectStorage::with_part_size)
//!    chunk of the local file, and the local file is deleted. The pending file in the
//!    checkpoint holds the key, the upload id and every part's ETag. An open multipart upload
//!    is invisible to readers; the bytes are durable in the store, so losing the local disk
//!    after a checkpoint loses nothing.
//! 2. The caller saves the checkpoint.
//! 3. **Commit**, only after the checkpoint is durable: `CompleteMultipartUpload` with
//!    `If-None-Match: *`. Idempotent: a refusal because the object exists (412), or an upload
//!    that is gone while the object exists (completed before a crash), is success; gone
//!    without the object is [`SinkError::PendingUploadMissing`].
//! 4. **Recovery**: the last checkpoint's pending uploads are completed as in 3; every other
//!    open upload under the prefix is aborted (written after that checkpoint — its records
//!    are read again), and the local staging directory is emptied.
//!
//! Every file is a multipart upload, even a small one (one part; only non-last parts must
//! reach S3's 5 MiB minimum). A single `PutObject` with `If-None-Match: *` at commit would
//! save two requests per small file, but then the bytes would wait for the commit on local
//! disk only; with multipart they are in the store when the checkpoint names them.
//!
//! The prefix must belong to this sink alone: recovery aborts every upload under it.
//!
//! Transient S3 errors (5xx, throttling, timeouts) are retried by the connection's retry
//! strategy (`OUTPUT_MAX_RETRIES` in the object-sink function); after that the sink stops
//! with [`SinkError::ObjectStore`], and nothing more is committed.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use cdc_state::s3::aws_sdk_s3::primitives::ByteStream;
use cdc_state::s3::aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cdc_state::s3::aws_sdk_s3::error::ProvideErrorMetadata;
use cdc_state::s3::{http_status, list_uploads, S3Connection, S3Error};
use cdc_state::{PendingFile, StateLocation, UploadedPart};

use crate::commit::clear_inprogress;
use crate::io::{create_dir_durable, RetryPolicy};
use crate::storage::{CommitOutcome, Storage};
use crate::SinkError;

/// S3's smallest part (all but the last part of an upload).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The default part size.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Committed files as objects under `s3://bucket/prefix/`.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    connection: S3Connection,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    part_size: usize,
    /// For the local staging files.
    retry: RetryPolicy,
    /// Whether recovery aborts the open uploads under the prefix (see [`Self::shared_prefix`]).
    abort_open_uploads: bool,
}

impl ObjectStorage {
    /// Objects of `bucket` under `prefix` (leading/trailing `/` ignored). Sends no request.
    pub fn new(connection: S3Connection, bucket: &str, prefix: &str, retry: RetryPolicy) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            connection,
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_size: DEFAULT_PART_SIZE,
            retry,
            abort_open_uploads: true,
        }
    }

    /// For writers that share the prefix and run concurrently (one per shard, as Lambda-mode
    /// invocations are): recovery aborts no open upload, since another writer's upload in
    /// flight cannot be told from an abandoned one. An abandoned upload stays invisible (it is
    /// never completed: no checkpoint names it) until the bucket's lifecycle rule
    /// (`AbortIncompleteMultipartUpload`) removes it.
    pub fn shared_prefix(mut self) -> Self {
        self.abort_open_uploads = false;
        self
    }

    /// Parses an `s3://bucket/prefix` output URL (as in `OUTPUT_PATH`).
    pub fn from_url(connection: S3Connection, url: &str, retry: RetryPolicy) -> Result<Self, SinkError> {
        match StateLocation::parse(url) {
            Ok(StateLocation::S3 { bucket, prefix }) => Ok(Self::new(connection, &bucket, &prefix, retry)),
            Ok(_) => Err(SinkError::Config {
                option: "path",
                reason: format!("{url:?} is not an s3:// URL"),
            }),
            Err(error) => Err(SinkError::Config {
                option: "path",
                reason: error.to_string(),
            }),
        }
    }

    /// Bytes per uploaded part (at least [`MIN_PART_SIZE`]).
    pub fn with_part_size(mut self, bytes: usize) -> Result<Self, SinkError> {
        if bytes < MIN_PART_SIZE {
            return Err(SinkError::Config {
                option: "part_size",
                reason: format!("{bytes} is below S3's minimum part size of {MIN_PART_SIZE} bytes"),
            });
        }
        self.part_size = bytes;
        Ok(self)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, empty or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn object_key(&self, final_key: &str) -> String {
        format!("{}{final_key}", self.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn request_error(&self, action: &'static str, key: &str, error: S3Error) -> SinkError {
        SinkError::ObjectStore {
            action,
            location: self.url(key),
            source: Box::new(error),
        }
    }

    /// Uploads `staged` to a new multipart upload at `key`; returns the upload id and parts.
    fn upload(&self, staged: &Path, key: &str) -> Result<(String, Vec<UploadedPart>), SinkError> {
        let mut file = self.retry.run("open staged file", staged, || File::open(staged))?;
        let client = self.connection.client().clone();
        let (bucket, object) = (self.bucket.clone(), key.to_owned());
        let created = self
            .connection
            .block_on(async move {
                client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(object)
                    .send()
                    .await
            })
            .map_err(|e| self.request_error("CreateMultipartUpload", key, e))?
            .map_err(|e| {
                self.request_error("CreateMultipartUpload", key, S3Error::request("CreateMultipartUpload", self.url(key), e))
            })?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(self.request_error(
                "CreateMultipartUpload",
                key,
                S3Error::Request {
                    operation: "CreateMultipartUpload",
                    location: self.url(key),
                    status: None,
                    code: None,
                    message: "the response has no upload id".into(),
                },
            ));
        };
        let mut parts = Vec::new();
        loop {
            let chunk = read_chunk(&self.retry, staged, &mut file, self.part_size)?;
            // An empty file is uploaded as one empty part: an upload needs at least one.
            if chunk.is_empty() && !parts.is_empty() {
                break;
            }
            let number = i32::try_from(parts.len() + 1).map_err(|_| SinkError::Config {
                option: "part_size",
                reason: "the file needs more than i32::MAX parts".into(),
            })?;
            let last = chunk.len() < self.part_size;
            let client = self.connection.client().clone();
            let (bucket, object, id) = (self.bucket.clone(), key.to_owned(), upload_id.clone());
            let uploaded = self
                .connection
                .block_on(async move {
                    client
                        .upload_part()
                        .bucket(bucket)
                        .key(object)
                        .upload_id(id)
                        .part_number(number)
                        .body(ByteStream::from(chunk))
                        .send()
                        .await
                })
                .map_err(|e| self.request_error("UploadPart", key, e))?
                .map_err(|e| self.request_error("UploadPart", key, S3Error::request("UploadPart", self.url(key), e)))?;
            parts.push(UploadedPart {
                number,
                etag: uploaded.e_tag().unwrap_or_default().to_owned(),
            });
            if last {
                break;
            }
        }
        Ok((upload_id, parts))
    }

    /// Whether the object `key` exists.
    fn exists(&self, key: &str) -> Result<bool, SinkError> {
        let client = self.connection.client().clone();
        let (bucket, object) = (self.bucket.clone(), key.to_owned());
        let result = self
            .connection
            .block_on(async move { client.head_object().bucket(bucket).key(object).send().await })
            .map_err(|e| self.request_error("HeadObject", key, e))?;
        match result {
            Ok(_) => Ok(true),
            Err(error) if http_status(&error) == Some(404) => Ok(false),
            Err(error) => Err(self.request_error("HeadObject", key, S3Error::request("HeadObject", self.url(key), error))),
        }
    }

    fn abort(&self, key: &str, upload_id: &str) -> Result<(), SinkError> {
        let client = self.connection.client().clone();
        let (bucket, object, id) = (self.bucket.clone(), key.to_owned(), upload_id.to_owned());
        let result = self
            .connection
            .block_on(async move {
                client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(object)
                    .upload_id(id)
                    .send()
                    .await
            })
            .map_err(|e| self.request_error("AbortMultipartUpload", key, e))?;
        match result {
            Ok(_) => Ok(()),
            // Already gone: what we wanted.
            Err(error) if http_status(&error) == Some(404) => Ok(()),
            Err(error) => Err(self.request_error(
                "AbortMultipartUpload",
                key,
                S3Error::request("AbortMultipartUpload", self.url(key), error),
            )),
        }
    }
}

/// Reads up to `size` bytes (fewer only at the end of the file).
fn read_chunk(retry: &RetryPolicy, path: &Path, file: &mut File, size: usize) -> Result<Vec<u8>, SinkError> {
    let mut chunk = Vec::with_capacity(size.min(1 << 20));
    retry.run("read staged file", path, || {
        chunk.clear();
        file.by_ref().take(size as u64).read_to_end(&mut chunk)
    })?;
    Ok(chunk)
}

/// How `CompleteMultipartUpload` ended.
enum Completion {
    Completed,
    /// 412: the object exists (If-None-Match).
    ObjectExists,
    /// 404: the upload is gone.
    UploadGone,
    /// 200 with a body the SDK could not read.
    Unparsed(S3Error),
    /// 403 on the completion: a real denial, or how some S3-compatible servers (s3s-fs) answer
    /// for an upload id that was already completed (AWS answers 404 NoSuchUpload).
    Denied(S3Error),
}

impl Storage for ObjectStorage {
    fn open(&mut self, staging_dir: &Path) -> Result<(), SinkError> {
        create_dir_durable(&self.retry, staging_dir)
    }

    fn seal(&mut self, staged: &Path, pending: &mut PendingFile) -> Result<(), SinkError> {
        let key = self.object_key(&pending.final_key);
        let (upload_id, parts) = self.upload(staged, &key)?;
        tracing::debug!(key = %key, upload_id = %upload_id, parts = parts.len(), "staged file uploaded; completes at the next checkpoint");
        pending.upload_id = Some(upload_id);
        pending.parts = parts;
        // The bytes are in the store now; a later recovery would delete the file anyway.
        self.retry.run("delete uploaded staging file", staged, || match std::fs::remove_file(staged) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        })?;
        Ok(())
    }

    fn sync_sealed(&mut self, _staging_dir: &Path) -> Result<(), SinkError> {
        // Each part upload was acknowledged by the store: nothing local to make durable.
        Ok(())
    }

    fn commit(&mut self, pending: &PendingFile) -> Result<CommitOutcome, SinkError> {
        let key = self.object_key(&pending.final_key);
        let Some(upload_id) = pending.upload_id.clone() else {
            return Err(SinkError::InvalidKey {
                key: pending.staging_key.clone(),
                reason: "a pending file without an upload id cannot be committed to an object store (checkpoint written by the file sink?)",
            });
        };
        let parts: Vec<CompletedPart> = pending
            .parts
            .iter()
            .map(|part| CompletedPart::builder().part_number(part.number).e_tag(&part.etag).build())
            .collect();
        let client = self.connection.client().clone();
        let (bucket, object, id) = (self.bucket.clone(), key.clone(), upload_id.clone());
        let at = self.url(&key);
        let completion = self
            .connection
            .block_on(async move {
                let result = client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(object)
                    .upload_id(id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    // Never replace an object: a second completion of the same file (or a
                    // zombie's file of the same name) must not overwrite the first.
                    .if_none_match("*")
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(Completion::Completed),
                    Err(error) => match http_status(&error) {
                        Some(412) => Ok(Completion::ObjectExists),
                        Some(404) => Ok(Completion::UploadGone),
                        Some(403) => Ok(Completion::Denied(S3Error::request("CompleteMultipartUpload", at, error))),
                        // A 200 the SDK could not parse (some S3-compatible servers name the
                        // result element differently): decided by whether the object exists.
                        Some(200) if error.code().is_none() => Ok(Completion::Unparsed(
                            S3Error::request("CompleteMultipartUpload", at, error),
                        )),
                        _ => Err(S3Error::request("CompleteMultipartUpload", at, error)),
                    },
                }
            })
            .map_err(|e| self.request_error("CompleteMultipartUpload", &key, e))?
            .map_err(|e| self.request_error("CompleteMultipartUpload", &key, e))?;
        match completion {
            Completion::Completed => Ok(CommitOutcome::Committed),
            Completion::ObjectExists => {
                // Completed before a crash (the name carries the offsets, so it holds the
                // same rows); the upload left over is garbage.
                self.abort(&key, &upload_id)?;
                Ok(CommitOutcome::AlreadyCommitted)
            }
            Completion::Unparsed(error) => {
                if self.exists(&key)? {
                    tracing::debug!(key = %key, error = %error, "completion answered 200 with an unreadable body; the object exists");
                    Ok(CommitOutcome::Committed)
                } else {
                    Err(self.request_error("CompleteMultipartUpload", &key, error))
                }
            }
            // Decided by the object: there, the upload was completed before (the name carries
            // the offsets, so it holds the same rows); absent, the denial is real.
            Completion::Denied(error) => {
                if self.exists(&key)? {
                    tracing::debug!(key = %key, error = %error, "completion denied, but the object exists: completed before");
                    Ok(CommitOutcome::AlreadyCommitted)
                } else {
                    Err(self.request_error("CompleteMultipartUpload", &key, error))
                }
            }
            Completion::UploadGone if self.exists(&key)? => Ok(CommitOutcome::AlreadyCommitted),
            Completion::UploadGone => Err(SinkError::PendingUploadMissing {
                location: self.url(&key),
                upload_id,
            }),
        }
    }

    fn discard_uncommitted(&mut self, staging_dir: &Path) -> Result<u64, SinkError> {
        let mut discarded = clear_inprogress(&self.retry, staging_dir)?;
        if !self.abort_open_uploads {
            return Ok(discarded);
        }
        let client = self.connection.client().clone();
        let (bucket, prefix) = (self.bucket.clone(), self.prefix.clone());
        let listed = self
            .connection
            .block_on(async move { list_uploads(&client, &bucket, &prefix).await })
            .map_err(|e| self.request_error("ListMultipartUploads", &self.prefix, e))?;
        let uploads = match listed {
            Ok(uploads) => uploads,
            // Servers that cannot list uploads (s3s-fs) leave the uncommitted ones invisible
            // but stored: a lifecycle rule (AbortIncompleteMultipartUpload) must remove them.
            Err(error) if error.status() == Some(501) => {
                tracing::warn!(location = %self.location(), error = %error, "the store cannot list multipart uploads; uncommitted uploads are left to the bucket's lifecycle rule");
                Vec::new()
            }
            Err(error) => return Err(self.request_error("ListMultipartUploads", &self.prefix, error)),
        };
        for upload in uploads {
            self.abort(&upload.key, &upload.upload_id)?;
            tracing::debug!(key = %upload.key, upload_id = %upload.upload_id, "aborted an uncommitted upload");
            discarded += 1;
        }
        Ok(discarded)
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}
