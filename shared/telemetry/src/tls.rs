//! The process-wide rustls crypto provider.
//!
//! The workspace builds reqwest and rustls without a provider of their own choosing (rustls'
//! default, aws-lc-rs, needs cmake to build), so a process picks ring once, before it builds
//! any HTTP client: reqwest panics when a `Client` is built with no provider installed.

/// Installs ring as the process's default rustls provider; a no-op when one is installed.
/// Call it before building a `reqwest::Client` (cdc-runtime does at start-up).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (ours or the caller's): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
