//! State locations as written in config: `file:///opt/flink/checkpoints`,
//! a plain path, or `s3://bucket/prefix` (opened with the `s3` feature).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::backend::{Backend, LocalDirBackend};
use crate::error::{BackendError, LocationError};

/// A parsed state location. Parsing is pure (no I/O), so config validation
/// can use it; [`open`](Self::open) touches storage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateLocation {
    /// A local directory.
    Local(PathBuf),
    /// An S3 (or S3-compatible) bucket and key prefix (no leading/trailing `/`).
    S3 { bucket: String, prefix: String },
}

impl StateLocation {
    /// Parses `file:///abs/path`, `file://localhost/abs/path`, `file:/abs/path`
    /// or a plain path (absolute or relative). `%XX` escapes in file URIs are
    /// decoded. `s3://bucket/prefix` (also `s3a://`, `s3n://`) names an S3 location; other
    /// schemes are rejected.
    pub fn parse(uri: &str) -> Result<Self, LocationError> {
        if uri.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some(scheme) = scheme_of(uri) else {
            return Ok(Self::Local(PathBuf::from(uri)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file_uri(uri, &uri[scheme.len() + 1..]).map(Self::Local),
            "s3" | "s3a" | "s3n" => parse_s3(uri),
            _ => Err(LocationError::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Opens the backend for this location (creating a local directory if
    /// missing). S3 settings come from the environment
    /// ([`S3Options::from_env`](crate::s3::S3Options::from_env)); use
    /// [`open_with`](Self::open_with) to pass them explicitly.
    pub fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        match self {
            Self::Local(path) => Ok(Arc::new(LocalDirBackend::open(path)?)),
            #[cfg(feature = "s3")]
            Self::S3 { .. } => self.open_with(&crate::s3::S3Options::from_env()),
            #[cfg(not(feature = "s3"))]
            Self::S3 { bucket, prefix } => Err(BackendError::Other {
                location: format!("s3://{bucket}/{prefix}"),
                source: "this binary was built without S3 support (cdc-state feature `s3`)".into(),
            }),
        }
    }

    /// Like [`open`](Self::open), with explicit S3 settings (ignored for local directories).
    #[cfg(feature = "s3")]
    pub fn open_with(
        &self,
        options: &crate::s3::S3Options,
    ) -> Result<Arc<dyn Backend>, BackendError> {
        match self {
            Self::Local(_) => self.open(),
            Self::S3 { bucket, prefix } => Ok(Arc::new(crate::s3::S3Backend::open(
                bucket, prefix, options,
            )?)),
        }
    }
}

impl FromStr for StateLocation {
    type Err = LocationError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        Self::parse(uri)
    }
}

/// Parses `uri` and opens its backend.
pub fn open_backend(uri: &str) -> Result<Arc<dyn Backend>, LocationError> {
    StateLocation::parse(uri)?
        .open()
        .map_err(|source| LocationError::Open {
            uri: uri.to_owned(),
            source,
        })
}

fn parse_s3(uri: &str) -> Result<StateLocation, LocationError> {
    let invalid = |reason| LocationError::InvalidS3Uri {
        uri: uri.to_owned(),
        reason,
    };
    let rest = uri.split_once("://").map_or("", |(_, rest)| rest);
    if rest.contains(['?', '#']) {
        return Err(invalid("query or fragment not allowed"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if !valid_bucket {
        return Err(invalid(
            "the bucket name must be 3-63 lower-case letters, digits, `-` or `.`",
        ));
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && crate::backend::validate_prefix(&format!("{prefix}/")).is_err() {
        return Err(invalid(
            "the prefix must be a relative path without empty, `.`, `..` or `.cdc-` segments",
        ));
    }
    Ok(StateLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
}

/// The URI scheme, if `uri` has one: `<scheme>://…`, or `file:` without
/// slashes-pair (`file:/path`, which Flink also writes). A path such as
/// `./a://b` has no valid scheme and stays a path.
fn scheme_of(uri: &str) -> Option<&str> {
    let end = uri.find(':')?;
    let scheme = &uri[..end];
    let valid = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        return None;
    }
    if uri[end..].starts_with("://") || scheme.eq_ignore_ascii_case("file") {
        Some(scheme)
    } else {
        None
    }
}

/// `rest` is what follows `file:`.
fn parse_file_uri(uri: &str, rest: &str) -> Result<PathBuf, LocationError> {
    let invalid = |reason| LocationError::InvalidFileUri {
        uri: uri.to_owned(),
        reason,
    };
    if rest.contains(['?', '#']) {
        return Err(invalid(
            "query or fragment not allowed (escape `?` and `#` as %3F and %23)",
        ));
    }
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (host, path) = match authority_and_path.find('/') {
                Some(slash) => authority_and_path.split_at(slash),
                None => (authority_and_path, ""),
            };
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(invalid(
                    "remote hosts are not supported; use file:///absolute/path",
                ));
            }
            path
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(invalid("the path must be absolute (file:///absolute/path)"));
    }
    let decoded = percent_decode(path).ok_or_else(|| invalid("malformed %-escape"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| invalid("%-escapes do not decode to UTF-8"))?;
    if decoded.contains('\0') {
        return Err(invalid("contains NUL"));
    }
    Ok(PathBuf::from(decoded))
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // from_str_radix alone would accept a sign (`%+f`).
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Some(decoded)
}
