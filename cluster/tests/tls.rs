//! TLS between our clients and servers with certificates made by `openssl`: the control client
//! over HTTPS, and `cert-allowed-cn` admitting only listed client CNs.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::path::{Path, PathBuf};
use std::process::Command;

use binlog_cluster::TlsSettings;
use binlog_cluster::control::http_request;
use binlog_cluster::tls_server::{TlsListener, subject_common_names};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a certificate signed by it for `cn`, with the given extensions.
fn issue(dir: &Path, name: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/O=test/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key))
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    allowed: (PathBuf, PathBuf),
    denied: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    );
    let server = issue(
        dir.path(),
        "server",
        "pump",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let allowed = issue(
        dir.path(),
        "allowed",
        "binlogctl",
        "extendedKeyUsage=clientAuth\n",
    );
    let denied = issue(
        dir.path(),
        "denied",
        "intruder",
        "extendedKeyUsage=clientAuth\n",
    );
    Pki {
        ca: dir.path().join("ca.pem"),
        _dir: dir,
        server,
        allowed,
        denied,
    }
}

fn client(pki: &Pki, identity: Option<&(PathBuf, PathBuf)>) -> TlsSettings {
    TlsSettings {
        ssl_ca: Some(pki.ca.clone()),
        ssl_cert: identity.map(|(cert, _)| cert.clone()),
        ssl_key: identity.map(|(_, key)| key.clone()),
        cert_allowed_cn: Vec::new(),
    }
}

async fn serve(settings: TlsSettings) -> String {
    let config = settings.rustls_server_config().unwrap().unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
    tokio::spawn(axum::serve(TlsListener::new(tcp, config, settings), router).into_future());
    addr
}

#[tokio::test]
async fn cert_allowed_cn_admits_only_listed_clients() {
    let pki = pki();
    let server = TlsSettings {
        ssl_ca: Some(pki.ca.clone()),
        ssl_cert: Some(pki.server.0.clone()),
        ssl_key: Some(pki.server.1.clone()),
        cert_allowed_cn: vec!["binlogctl".into()],
    };
    let addr = serve(server).await;
    let url = format!("https://{addr}/ping");

    let (status, body) = http_request(&client(&pki, Some(&pki.allowed)), "GET", &url)
        .await
        .unwrap();
    assert_eq!((status, body.as_ref()), (200, b"pong".as_ref()));

    let denied = http_request(&client(&pki, Some(&pki.denied)), "GET", &url).await;
    assert!(
        denied.is_err(),
        "a client whose CN is not listed is refused"
    );
    let anonymous = http_request(&client(&pki, None), "GET", &url).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate is refused"
    );
    let plain = http_request(
        &TlsSettings::default(),
        "GET",
        &format!("http://{addr}/ping"),
    )
    .await;
    assert!(plain.is_err(), "plain HTTP is refused");
}

#[tokio::test]
async fn without_allowed_cns_any_tls_client_is_served() {
    let pki = pki();
    let server = TlsSettings {
        ssl_ca: Some(pki.ca.clone()),
        ssl_cert: Some(pki.server.0.clone()),
        ssl_key: Some(pki.server.1.clone()),
        cert_allowed_cn: Vec::new(),
    };
    let addr = serve(server).await;
    let (status, _) = http_request(&client(&pki, None), "GET", &format!("https://{addr}/ping"))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[test]
fn subject_cn_is_read_from_the_certificate() {
    let pki = pki();
    let pem = std::fs::read(&pki.allowed.0).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(subject_common_names(&cert), ["binlogctl"]);
    let ca = CertificateDer::from_pem_slice(&std::fs::read(&pki.ca).unwrap()).unwrap();
    assert_eq!(subject_common_names(&ca), ["test-ca"]);
    assert!(subject_common_names(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_empty());
}
