//! TLS for the client: rustls with the ring provider (as the MySQL connection uses; aws-lc-rs
//! would need cmake). The server certificate is verified by default against the Mozilla roots
//! compiled in (images without a system trust store still reach Alibaba Cloud), the system
//! store (which honours `SSL_CERT_FILE` / `SSL_CERT_DIR`) and any CA the caller adds;
//! `ssl_verify = false` accepts any certificate (still checking the handshake signatures).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Builds the rustls client configuration. `extra_roots_pem` are PEM CA certificates to trust
/// in addition to the built-in and system roots.
pub(crate) fn client_config(verify: bool, extra_roots_pem: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    // reqwest is built with rustls but no provider of its own (its default, aws-lc-rs, needs
    // cmake): a reqwest client built elsewhere in the process without a preconfigured TLS
    // config looks for the process default and panics without one. Installing ring there
    // (a no-op when a default exists) keeps such clients working once this one was built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    if !verify {
        return Ok(builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider))).with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        // A machine without a system store is normal (scratch images); the built-in roots
        // still apply.
        tracing::debug!(error = %e, "system trust store not (fully) loaded");
    }
    roots.add_parsable_certificates(native.certs);
    for (i, pem) in extra_roots_pem.iter().enumerate() {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("CA certificate {i}: not PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("CA certificate {i}: {e}"))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("CA certificate {i}: no CERTIFICATE block in the PEM"));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `datahub.sslVerify = false`: any certificate, any name. The handshake's signatures are
/// still checked, so the peer must hold the key of the certificate it presents.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS failure inside a transport error, if that is what it was. hyper and tokio-rustls
/// wrap rustls's error in `io::Error`s, whose `source()` skips the wrapped error, so an
/// `io::Error` is looked into through `get_ref()`.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        cur = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}
