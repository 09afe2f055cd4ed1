//! TLS to the source (`database.sslMode`) against a real MariaDB started with a certificate
//! made here by the `openssl` command: a CA, a server certificate for IP 127.0.0.1 and DNS
//! `localhost`, a client certificate, and a second CA the server certificate does not chain to.
//!
//! A name the certificate does not present is reached through a small TCP relay on 127.0.0.2
//! (all of 127.0.0.0/8 is the loopback interface), so no host-file entry is needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cdc_event::Event;
use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::{binlog_head, BinlogReader, BinlogReaderConfig, SourceError, SourceOptions, SslMode, TableSelector, TlsOptions};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

const DEADLINE: Duration = Duration::from_secs(30);

/// A directory of certificates, removed when dropped.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn make(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cdc-tls-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs { dir };
        certs.ca("ca");
        certs.ca("other-ca");
        certs.leaf(
            "server",
            "ca",
            "/CN=cdc test server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        certs.leaf(
            "client",
            "ca",
            "/CN=cdc test client",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        certs
    }

    fn ca(&self, name: &str) {
        openssl(
            &self.dir,
            &[
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", &format!("{name}.key"), "-out", &format!("{name}.pem"), "-days", "2",
                "-subj", &format!("/CN=cdc test {name}"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    fn leaf(&self, name: &str, ca: &str, subject: &str, extensions: &str) {
        std::fs::write(self.path(&format!("{name}.ext")), extensions).unwrap();
        openssl(
            &self.dir,
            &[
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", subject,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{ca}.pem"), "-CAkey",
                &format!("{ca}.key"), "-set_serial", "0x5eed", "-days", "2", "-extfile", &format!("{name}.ext"),
                "-out", &format!("{name}.pem"),
            ],
        );
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install -y openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A MariaDB with TLS on (or off), a `tls` account that REQUIRES SSL and an `x509` account
/// that REQUIRES X509, both with SELECT on everything.
fn server(certs: Option<&Certs>) -> LocalMariaDb {
    let extra_args = match certs {
        Some(c) => vec![
            format!("--ssl-ca={}", c.path("ca.pem").display()),
            format!("--ssl-cert={}", c.path("server.pem").display()),
            format!("--ssl-key={}", c.path("server.key").display()),
        ],
        None => Vec::new(),
    };
    let db = LocalMariaDb::start_with(LocalMariaDbOptions { extra_args, ..Default::default() }).expect("start MariaDB");
    db.execute(
        "CREATE USER 'tls'@'%' IDENTIFIED BY 'pw' REQUIRE SSL;
         CREATE USER 'x509'@'%' IDENTIFIED BY 'pw' REQUIRE X509;
         GRANT SELECT ON *.* TO 'tls'@'%';
         GRANT SELECT ON *.* TO 'x509'@'%';",
    )
    .expect("accounts");
    db
}

fn options(host: &str, port: u16, user: &str, password: &str, tls: TlsOptions) -> SourceOptions {
    SourceOptions { host: host.into(), port, user: user.into(), password: password.into(), schema: "mysql".into(), tls }
}

fn tls(mode: SslMode, certs: &Certs, root: &str, client: bool) -> TlsOptions {
    TlsOptions {
        mode,
        root_cert: Some(certs.path(root)),
        cert: client.then(|| certs.path("client.pem")),
        key: client.then(|| certs.path("client.key")),
    }
}

/// The session's `Ssl_cipher`: empty on a plain connection.
async fn cipher(conn: &mut Conn) -> String {
    let row: Option<(String, String)> = conn.query_first("SHOW STATUS LIKE 'Ssl_cipher'").await.unwrap();
    row.expect("Ssl_cipher row").1
}

async fn connect_err(opts: &SourceOptions) -> SourceError {
    match opts.connect().await {
        Ok(_) => panic!("{opts:?} connected"),
        Err(e) => e,
    }
}

/// Relays 127.0.0.2:<any> to `to`: the same server under an address its certificate does not
/// name. Returns the relay's port; the relay lives as long as the test's runtime.
async fn relay(to: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("bind 127.0.0.2");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn require_and_prefer_encrypt_and_disable_is_refused_by_a_require_ssl_account() {
    let certs = Certs::make("require");
    let db = server(Some(&certs));
    let port = db.port();

    for mode in [SslMode::Require, SslMode::Prefer] {
        let opts = options("127.0.0.1", port, "tls", "pw", TlsOptions { mode, ..Default::default() });
        let mut conn = opts.connect().await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        let cipher = cipher(&mut conn).await;
        assert!(!cipher.is_empty(), "{mode}: Ssl_cipher is empty");
        eprintln!("sslMode={mode}: Ssl_cipher={cipher}");
    }

    // require does not check the certificate: a CA that did not sign it is ignored.
    let opts = options("127.0.0.2", relay(port).await, "tls", "pw", tls(SslMode::Require, &certs, "other-ca.pem", false));
    let mut conn = opts.connect().await.expect("require ignores the CA and the name");
    assert!(!cipher(&mut conn).await.is_empty());

    let opts = options("127.0.0.1", port, "tls", "pw", TlsOptions::default());
    let err = connect_err(&opts).await;
    let text = err.to_string();
    eprintln!("sslMode=disable, REQUIRE SSL account: {text}");
    assert!(
        matches!(&err, SourceError::LoginRefused { source, .. } if matches!(&**source, mysql_async::Error::Server(e) if e.code == 1045)),
        "{err:?}"
    );
    assert!(text.contains("sslMode=disable") && text.contains("REQUIRE SSL"), "{text}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_name() {
    let certs = Certs::make("verify-ca");
    let db = server(Some(&certs));
    let port = db.port();
    let relayed = relay(port).await;

    for (host, port) in [("127.0.0.1", port), ("localhost", port), ("127.0.0.2", relayed)] {
        let opts = options(host, port, "tls", "pw", tls(SslMode::VerifyCa, &certs, "ca.pem", false));
        let mut conn = opts.connect().await.unwrap_or_else(|e| panic!("verify-ca to {host}: {e}"));
        assert!(!cipher(&mut conn).await.is_empty());
    }

    // A CA that did not sign the server certificate: refused, whatever the name.
    for (host, port) in [("127.0.0.1", port), ("127.0.0.2", relayed)] {
        let opts = options(host, port, "tls", "pw", tls(SslMode::VerifyCa, &certs, "other-ca.pem", false));
        let err = connect_err(&opts).await;
        let text = err.to_string();
        eprintln!("verify-ca, wrong CA, {host}: {text}");
        assert!(matches!(err, SourceError::TlsHandshake { .. }), "{err:?}");
        assert!(text.contains("sslMode=verify-ca") && text.contains(&format!("{host}:{port}")), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_name() {
    let certs = Certs::make("verify-full");
    let db = server(Some(&certs));
    let port = db.port();

    // Both names of the certificate's subjectAltName: the IP address and the DNS name.
    for host in ["127.0.0.1", "localhost"] {
        let opts = options(host, port, "tls", "pw", tls(SslMode::VerifyFull, &certs, "ca.pem", false));
        let mut conn = opts.connect().await.unwrap_or_else(|e| panic!("verify-full to {host}: {e}"));
        assert!(!cipher(&mut conn).await.is_empty());
    }

    let relayed = relay(port).await;
    let opts = options("127.0.0.2", relayed, "tls", "pw", tls(SslMode::VerifyFull, &certs, "ca.pem", false));
    let err = connect_err(&opts).await;
    let text = err.to_string();
    eprintln!("verify-full, name not in the certificate: {text}");
    assert!(matches!(err, SourceError::TlsHandshake { .. }), "{err:?}");
    assert!(
        text.contains(&format!("TLS handshake with 127.0.0.2:{relayed} failed (sslMode=verify-full)"))
            && text.contains("certificate not valid for name \"127.0.0.2\""),
        "{text}"
    );

    let opts = options("127.0.0.1", port, "tls", "pw", tls(SslMode::VerifyFull, &certs, "other-ca.pem", false));
    let err = connect_err(&opts).await;
    eprintln!("verify-full, wrong CA: {err}");
    assert!(matches!(err, SourceError::TlsHandshake { .. }), "{err:?}");
}

#[tokio::test]
async fn an_x509_account_needs_the_client_certificate() {
    let certs = Certs::make("x509");
    let db = server(Some(&certs));
    let port = db.port();

    for mode in [SslMode::Require, SslMode::VerifyFull] {
        let opts = options("127.0.0.1", port, "x509", "pw", tls(mode, &certs, "ca.pem", true));
        let mut conn = opts.connect().await.unwrap_or_else(|e| panic!("{mode} with a client certificate: {e}"));
        assert!(!cipher(&mut conn).await.is_empty());
        let subject: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
        assert_eq!(subject.as_deref(), Some("x509@%"));
    }

    let opts = options("127.0.0.1", port, "x509", "pw", tls(SslMode::VerifyFull, &certs, "ca.pem", false));
    let err = connect_err(&opts).await;
    let text = err.to_string();
    eprintln!("REQUIRE X509 account without a client certificate: {text}");
    assert!(
        matches!(&err, SourceError::LoginRefused { source, .. } if matches!(&**source, mysql_async::Error::Server(e) if e.code == 1045)),
        "{err:?}"
    );
    assert!(text.contains("sslMode=verify-full") && text.contains("database.sslCert"), "{text}");

    // A key that is not the certificate's.
    let mut mismatched = tls(SslMode::Require, &certs, "ca.pem", true);
    mismatched.key = Some(certs.path("server.key"));
    let err = connect_err(&options("127.0.0.1", port, "x509", "pw", mismatched)).await;
    let text = err.to_string();
    eprintln!("client key not matching the certificate: {text}");
    assert!(matches!(err, SourceError::TlsSetup { .. }), "{err:?}");
    assert!(text.contains("sslMode=require") && text.contains("client.pem") && text.contains("server.key"), "{text}");
}

#[tokio::test]
async fn the_binlog_stream_rides_tls() {
    let certs = Certs::make("binlog");
    let db = server(Some(&certs));
    // The reader's account can only log in over TLS, so both of its connections (catalogue and
    // binlog stream) must be encrypted for it to read anything.
    db.execute(&format!(
        "ALTER USER '{user}'@'%' REQUIRE SSL;
         CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, note TEXT);
         GRANT ALL ON shop.* TO '{user}'@'%';",
        user = db.user()
    ))
    .expect("schema");
    let mut opts = options("127.0.0.1", db.port(), db.user(), db.password(), tls(SslMode::VerifyFull, &certs, "ca.pem", false));
    opts.schema = "shop".into();

    let mut conn = opts.connect().await.expect("connect");
    assert!(!cipher(&mut conn).await.is_empty());
    let head = binlog_head(&mut conn, cdc_event::ServerFlavor::MariaDb).await.unwrap().expect("binlog on");
    let selector = TableSelector::new("shop", "orders", "").unwrap();
    let mut reader = BinlogReader::start(&opts, BinlogReaderConfig::new(4343, "tls-test", selector, head.file, head.position))
        .await
        .expect("start the reader over TLS");
    conn.query_drop("INSERT INTO shop.orders VALUES (1, 'over tls')").await.unwrap();

    let change = tokio::time::timeout(DEADLINE, async {
        loop {
            match reader.next_event().await.expect("next event") {
                Some(Event::Change(c)) => break c,
                Some(_) => {}
                None => panic!("stream ended"),
            }
        }
    })
    .await
    .expect("a row event within the deadline");
    assert_eq!(change.schema.table.table, "orders");
    assert_eq!(change.op, cdc_event::Op::Insert);
    eprintln!("row event over TLS: {:?} {}", change.op, change.schema.table);
}

#[tokio::test]
async fn without_tls_on_the_server_prefer_falls_back_and_the_other_modes_refuse() {
    let certs = Certs::make("plain");
    let db = server(None);
    let port = db.port();

    let opts = options("127.0.0.1", port, db.user(), db.password(), TlsOptions { mode: SslMode::Prefer, ..Default::default() });
    let mut conn = opts.connect().await.expect("prefer falls back to plain");
    assert_eq!(cipher(&mut conn).await, "");

    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let opts = options("127.0.0.1", port, db.user(), db.password(), tls(mode, &certs, "ca.pem", false));
        let err = connect_err(&opts).await;
        let text = err.to_string();
        eprintln!("{mode} to a server without TLS: {text}");
        assert!(matches!(err, SourceError::TlsNotOffered { .. }), "{err:?}");
        assert!(text.contains(&format!("sslMode={mode}")) && text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }
}

#[tokio::test]
async fn certificate_files_are_checked_and_named_before_connecting() {
    let certs = Certs::make("files");
    // Nothing listens on port 9: every failure here is found before any connection.
    let cases = [
        (
            TlsOptions { mode: SslMode::VerifyCa, root_cert: Some(certs.path("missing-ca.pem")), cert: None, key: None },
            format!("database.sslRootCert {}: cannot read", certs.path("missing-ca.pem").display()),
        ),
        (
            TlsOptions { mode: SslMode::VerifyFull, root_cert: Some(certs.path("ca.key")), cert: None, key: None },
            "no PEM certificate".to_string(),
        ),

        (
            TlsOptions {
                mode: SslMode::Require,
                root_cert: None,
                cert: Some(certs.path("client.pem")),
                key: Some(certs.path("client.pem")),
            },
            format!("database.sslKey {}: no PEM private key", certs.path("client.pem").display()),
        ),
    ];
    for (tls, expected) in cases {
        let mode = tls.mode;
        let err = connect_err(&options("127.0.0.1", 9, "u", "p", tls)).await;
        let text = err.to_string();
        eprintln!("{text}");
        assert!(matches!(err, SourceError::TlsFile { .. }), "{err:?}");
        assert!(text.contains(&expected) && text.contains(&format!("(sslMode={mode})")), "{text}");
    }

    let missing = [
        (TlsOptions { mode: SslMode::VerifyFull, root_cert: None, cert: None, key: None }, "database.sslRootCert is not set"),
        (
            TlsOptions { mode: SslMode::Require, root_cert: None, cert: Some(certs.path("client.pem")), key: None },
            "database.sslKey is not set",
        ),
    ];
    for (tls, expected) in missing {
        let mode = tls.mode;
        let err = connect_err(&options("127.0.0.1", 9, "u", "p", tls)).await;
        let text = err.to_string();
        eprintln!("{text}");
        assert!(matches!(err, SourceError::TlsSettingMissing { .. }), "{err:?}");
        assert!(text.contains(expected) && text.contains(&format!("sslMode={mode}")), "{text}");
    }
}
