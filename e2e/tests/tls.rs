//! TLS between our clients and servers with certificates made by `openssl`: the control client
//! over HTTPS, and `cert-allowed-cn` admitting only listed client CNs.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::time::Duration;

use binlog_cluster::TlsSettings;
use binlog_cluster::control::http_request;
use binlog_cluster::tls_server::{TlsListener, subject_common_names};
use e2e::pki::Pki;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

async fn serve(settings: TlsSettings) -> String {
    serve_with_handshake_timeout(settings, Duration::from_secs(10)).await
}

async fn serve_with_handshake_timeout(settings: TlsSettings, timeout: Duration) -> String {
    let config = settings.rustls_server_config().unwrap().unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
    let listener = TlsListener::with_handshake_timeout(tcp, config, settings, timeout);
    tokio::spawn(axum::serve(listener, router).into_future());
    addr
}

#[tokio::test]
async fn cert_allowed_cn_admits_only_listed_clients() {
    let pki = Pki::new().unwrap();
    let server = TlsSettings {
        cert_allowed_cn: vec!["binlogctl".into()],
        ..pki.settings(Some(&pki.server))
    };
    let addr = serve(server).await;
    let url = format!("https://{addr}/ping");

    let allowed = pki.client("binlogctl").unwrap();
    let (status, body) = http_request(&pki.settings(Some(&allowed)), "GET", &url)
        .await
        .unwrap();
    assert_eq!((status, body.as_ref()), (200, b"pong".as_ref()));

    let intruder = pki.client("intruder").unwrap();
    let denied = http_request(&pki.settings(Some(&intruder)), "GET", &url).await;
    assert!(
        denied.is_err(),
        "a client whose CN is not listed is refused"
    );
    let anonymous = http_request(&pki.settings(None), "GET", &url).await;
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
    let pki = Pki::new().unwrap();
    let server = pki.settings(Some(&pki.server));
    let addr = serve(server).await;
    let (status, _) = http_request(&pki.settings(None), "GET", &format!("https://{addr}/ping"))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

/// Clients that connect and never start their handshake must not hold up the others. Their
/// handshake time limit is an hour here: were handshakes done one after another, the client
/// below would wait behind them until its own 30 s guard fails the test.
#[tokio::test]
async fn stalled_clients_do_not_hold_up_the_others() {
    let pki = Pki::new().unwrap();
    let addr =
        serve_with_handshake_timeout(pki.settings(Some(&pki.server)), Duration::from_secs(3600))
            .await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let served = tokio::time::timeout(
        Duration::from_secs(30),
        http_request(&pki.settings(None), "GET", &format!("https://{addr}/ping")),
    )
    .await;
    let (status, body) = served
        .expect("served while 3 clients stall their handshakes")
        .unwrap();
    assert_eq!((status, body.as_ref()), (200, b"pong".as_ref()));
    drop(stalled);
}

#[test]
fn subject_cn_is_read_from_the_certificate() {
    let pki = Pki::new().unwrap();
    let pem = std::fs::read(&pki.client("binlogctl").unwrap().cert).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(subject_common_names(&cert), ["binlogctl"]);
    let ca = CertificateDer::from_pem_slice(&std::fs::read(&pki.ca).unwrap()).unwrap();
    assert_eq!(subject_common_names(&ca), ["test-ca"]);
    assert!(subject_common_names(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_empty());
}

/// The whole chain over TLS: pump ↔ pd-sim (PD and etcd API), TiDB-like client → pump gRPC,
/// binlogctl → PD and → the pump's HTTP API, with `cert-allowed-cn` on the pump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_pump_serves_allowed_clients_and_binlogctl_commands_it() {
    use binlog_cluster::{NodeKind, NodeState, PdClient, Registry};
    use binlog_proto::binlog::{Binlog, BinlogType, WriteBinlogReq, pump_client::PumpClient};
    use prost::Message;

    let pki = Pki::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let etcd = e2e::Etcd::start().unwrap();
    let pd_sim =
        e2e::PdSimProcess::start_with_tls(etcd.url(), &dir.path().join("pd.log"), Some(&pki))
            .unwrap();
    let config = dir.path().join("pump.toml");
    std::fs::write(
        &config,
        format!(
            "[security]\nssl-ca = \"{}\"\nssl-cert = \"{}\"\nssl-key = \"{}\"\ncert-allowed-cn = [\"binlogctl\", \"tidb\"]\n",
            pki.ca.display(),
            pki.server.cert.display(),
            pki.server.key.display()
        ),
    )
    .unwrap();
    let mut pump = e2e::PumpProcess::start(
        &pd_sim.url(),
        dir.path(),
        "pump-tls",
        &[&format!("-config={}", config.display())],
    )
    .unwrap();

    let binlogctl_identity = pki.client("binlogctl").unwrap();
    let tls = pki.settings(Some(&binlogctl_identity));
    let urls = vec![pd_sim.url()];
    let pd = PdClient::connect(&urls, &tls).await.unwrap();
    let registry = Registry::connect(&urls, &tls).await.unwrap();
    let online = e2e::wait_until(std::time::Duration::from_secs(20), || {
        futures::executor::block_on(registry.get(NodeKind::Pump, "pump-tls"))
            .is_ok_and(|s| s.state == NodeState::Online)
    });
    assert!(
        online,
        "the pump registered through TLS PD:\n{}",
        pump.log_tail()
    );

    // A TiDB-like client with an allowed certificate writes over gRPC with TLS.
    let tidb = pki.client("tidb").unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("https://{}", pump.addr))
        .unwrap()
        .tls_config(
            pki.settings(Some(&tidb))
                .grpc_client_config()
                .unwrap()
                .unwrap(),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = PumpClient::new(channel);
    let start = pd.get_ts().await.unwrap();
    let prewrite = Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts: start,
        ..Default::default()
    };
    client
        .write_binlog(WriteBinlogReq {
            cluster_id: pd.cluster_id(),
            payload: prewrite.encode_to_vec(),
        })
        .await
        .unwrap();

    // HTTPS: the allowed CN gets /status, another CN is turned away.
    let url = format!("https://{}/status", pump.addr);
    let (status, _) = http_request(&tls, "GET", &url).await.unwrap();
    assert_eq!(status, 200);
    let intruder = pki.client("intruder").unwrap();
    assert!(
        http_request(&pki.settings(Some(&intruder)), "GET", &url)
            .await
            .is_err()
    );

    // binlogctl over TLS: list, then pause the pump through its HTTPS API.
    let binlogctl = |cmd: &[&str]| {
        std::process::Command::new(e2e::bin_path("binlogctl"))
            .arg(format!("-pd-urls={}", pd_sim.url()))
            .arg(format!("-ssl-ca={}", pki.ca.display()))
            .arg(format!("-ssl-cert={}", binlogctl_identity.cert.display()))
            .arg(format!("-ssl-key={}", binlogctl_identity.key.display()))
            .args(cmd)
            .output()
            .unwrap()
    };
    let listed = tokio::task::block_in_place(|| binlogctl(&["-cmd", "pumps"]));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("NodeID: pump-tls"),
        "{listed:?}"
    );
    let paused =
        tokio::task::block_in_place(|| binlogctl(&["-cmd", "pause-pump", "-node-id", "pump-tls"]));
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    let exited = pump
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("the pump stops after pause");
    assert!(exited.success());
    assert_eq!(
        registry
            .get(NodeKind::Pump, "pump-tls")
            .await
            .unwrap()
            .state,
        NodeState::Paused
    );
}
