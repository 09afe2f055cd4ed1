//! State locations as written in config: `file:///opt/flink/checkpoints`,
//! a plain path, or (later) `s3://bucket/prefix`.

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
}

impl StateLocation {
    /// Parses `file:///abs/path`, `file://localhost/abs/path`, `file:/abs/path`
    /// or a plain path (absolute or relative). `%XX` escapes in file URIs are
    /// decoded. `s3://`, `s3a://` and `s3n://` are recognised but not
    /// supported yet; other schemes are rejected.
    pub fn parse(uri: &str) -> Result<Self, LocationError> {
        if uri.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some(scheme) = scheme_of(uri) else {
            return Ok(Self::Local(PathBuf::from(uri)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => parse_file_uri(uri, &uri[scheme.len() + 1..]).map(Self::Local),
            "s3" | "s3a" | "s3n" => Err(LocationError::S3NotSupportedYet {
                uri: uri.to_owned(),
            }),
            _ => Err(LocationError::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Opens the backend for this location (creating a local directory if
    /// missing).
    pub fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        match self {
            Self::Local(path) => Ok(Arc::new(LocalDirBackend::open(path)?)),
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
