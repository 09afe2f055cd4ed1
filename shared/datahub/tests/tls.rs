//! HTTPS with certificate verification (`datahub.sslVerify`): the real server behind a TLS
//! front (tokio-rustls, ring) whose certificate comes from a throwaway CA made by rcgen.

// Only the server half of the helpers: no Python here.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use cdc_datahub::{ClientError, DatahubClient};
use common::TestServer;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

/// A CA, and a server certificate it signed for `names`.
fn pki(names: &[&str]) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "cdc test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap().signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), cert: cert.der().clone(), key: key.serialize_der() }
}

/// Terminates TLS on 127.0.0.1:0 and forwards each connection to `backend`. Handshakes the
/// client refuses just end that connection.
async fn tls_front(pki: &Pki, backend: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_the_server_certificate_unless_told_not_to() {
    let server = TestServer::start(Some(("id", "key"))).await;
    let good = pki(&["localhost", "127.0.0.1"]);
    let (addr, front) = tls_front(&good, server.addr).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let builder = || DatahubClient::builder(&endpoint).with_credentials("id", "key");

    // Verification on, the CA given: works, signed requests and all.
    let trusted = builder().with_root_certificate_pem(good.ca_pem.clone()).build().unwrap();
    trusted.create_project("tls_ok", "over TLS").await.unwrap();
    assert_eq!(trusted.list_projects().await.unwrap(), vec!["tls_ok"]);
    assert_eq!(trusted.is_datahub_local(), Some(true));

    // Verification on (the default), CA unknown: refused at once, naming the problem.
    let untrusting = builder().build().unwrap();
    let e = untrusting.list_projects().await.unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("invalid peer certificate") && msg.contains("UnknownIssuer"), "{msg}");
    assert!(msg.contains("sslVerify"), "the message says what to do: {msg}");
    assert!(!e.is_retryable(), "a refused certificate is not retried");

    // Verification off: the same server is accepted.
    let lax = builder().with_ssl_verify(false).build().unwrap();
    assert_eq!(lax.list_projects().await.unwrap(), vec!["tls_ok"]);
    front.abort();

    // The CA is trusted but the certificate names another host: refused, saying so.
    let other = pki(&["datahub.invalid"]);
    let (addr, front) = tls_front(&other, server.addr).await;
    let c = DatahubClient::builder(format!("https://127.0.0.1:{}", addr.port())).with_root_certificate_pem(other.ca_pem.clone()).build().unwrap();
    let e = c.list_projects().await.unwrap_err();
    assert!(e.to_string().contains("not valid for name \"127.0.0.1\""), "{e}");
    front.abort();

    // A PEM without a certificate is a build error, not a silent no-op.
    let e = DatahubClient::builder(&endpoint).with_root_certificate_pem("not a pem").build().unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    server.stop().await;
}
