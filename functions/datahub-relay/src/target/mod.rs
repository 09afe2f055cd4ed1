//! Where batches go. Each target answers one delivery attempt: acknowledged, or an error
//! that says whether another attempt may succeed ([`DeliveryError::is_retryable`]). Retries
//! and their backoff are the relay's ([`crate::relay`]).

mod http;
mod lambda;
mod stdout;

pub use http::HttpTarget;
pub use lambda::{AwsCredentials, LambdaTarget};
pub use stdout::StdoutTarget;

/// A delivery attempt that was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The target answered with a non-2xx status.
    #[error("{target} answered HTTP {status}: {body}")]
    Status { target: String, status: u16, body: String },
    /// The Lambda function ran and failed (`X-Amz-Function-Error`).
    #[error("Lambda function {function} failed ({kind}): {body}")]
    FunctionError { function: String, kind: String, body: String },
    /// Connection, timeout or transfer failure.
    #[error("{target}: {source}")]
    Transport {
        target: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request could not be built or signed.
    #[error("{target}: cannot build the request: {reason}")]
    Request { target: String, reason: String },
    /// Writing to standard output failed.
    #[error("stdout: {0}")]
    Io(#[from] std::io::Error),
}

impl DeliveryError {
    /// 5xx, 408 and 429 answers, function errors, timeouts and connection failures may pass
    /// on another attempt; other 4xx answers and unbuildable requests will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            DeliveryError::FunctionError { .. } | DeliveryError::Transport { .. } => true,
            DeliveryError::Request { .. } | DeliveryError::Io(_) => false,
        }
    }
}

/// The configured target.
#[derive(Debug)]
pub enum Target {
    Http(HttpTarget),
    Lambda(LambdaTarget),
    Stdout(StdoutTarget),
}

impl Target {
    /// One delivery attempt of a batch's JSON body.
    pub async fn deliver(&self, body: &[u8]) -> Result<(), DeliveryError> {
        match self {
            Target::Http(t) => t.deliver(body).await,
            Target::Lambda(t) => t.deliver(body).await,
            Target::Stdout(t) => t.deliver(body),
        }
    }

    /// For logs and health details.
    pub fn describe(&self) -> String {
        match self {
            Target::Http(t) => format!("http {}", t.url()),
            Target::Lambda(t) => format!("lambda {}", t.function()),
            Target::Stdout(_) => "stdout".into(),
        }
    }
}

/// The HTTP client of the targets: TLS through rustls with the ring provider, trusting the
/// Mozilla roots compiled in (images without a system store) and the system's.
pub(crate) fn http_client(target: &str, timeout: std::time::Duration) -> Result<reqwest::Client, DeliveryError> {
    let request_err = |reason: String| DeliveryError::Request { target: target.to_string(), reason };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "system trust store not (fully) loaded");
    }
    roots.add_parsable_certificates(native.certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| request_err(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|source| DeliveryError::Transport { target: target.to_string(), source })
}

/// A short, printable excerpt of an answer body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    if body.len() > MAX {
        format!("{text}…")
    } else {
        text
    }
}
