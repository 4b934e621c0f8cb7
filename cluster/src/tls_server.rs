//! The server side of `[security]`: a TLS listener for the HTTP/gRPC port that requires and
//! verifies client certificates when `cert-allowed-cn` is set and admits only peers whose
//! certificate subject CN is listed — the original's rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::tls::{TlsError, TlsSettings};

/// Time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsSettings {
    /// The rustls server configuration (ALPN h2 and http/1.1); `None` when TLS is off.
    pub fn rustls_server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let Some(ca) = &self.ssl_ca else {
            return Ok(None);
        };
        let (cert, key) = match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => (cert, key),
            (cert, key) => {
                return Err(TlsError::HalfIdentity {
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.cert_allowed_cn.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in Self::certificates("ssl-ca", ca)? {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|err| TlsError::Rustls(rustls::Error::General(err.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder.with_single_cert(
            Self::certificates("ssl-cert", cert)?,
            Self::private_key(key)?,
        )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// Whether a verified peer may talk to us: always when `cert-allowed-cn` is empty, else when
    /// a certificate of its chain has a listed subject CN.
    pub fn peer_allowed(&self, chain: &[CertificateDer<'_>]) -> bool {
        self.cert_allowed_cn.is_empty()
            || chain.iter().any(|cert| {
                subject_common_names(cert)
                    .iter()
                    .any(|cn| self.cert_allowed_cn.iter().any(|allowed| allowed == cn))
            })
    }
}

/// A TLS listener for `axum::serve`: handshakes each connection (with a timeout) and drops
/// clients whose certificate CN is not allowed.
///
/// Handshakes run concurrently in their own tasks, so a client that connects and then stalls
/// (or a slow one) never holds up the others; at most [`MAX_PENDING_HANDSHAKES`] are in
/// progress at once. Dropping the listener stops accepting and closes the port.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: Option<SocketAddr>,
}

/// Handshakes in progress at once; further connections wait in the kernel's backlog.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

impl TlsListener {
    /// Wraps a bound listener and starts accepting on it (so it must be called within a Tokio
    /// runtime).
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        settings: TlsSettings,
    ) -> TlsListener {
        Self::with_handshake_timeout(tcp, config, settings, HANDSHAKE_TIMEOUT)
    }

    /// [`TlsListener::new`] with another time limit for each client's handshake.
    pub fn with_handshake_timeout(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        settings: TlsSettings,
        handshake_timeout: Duration,
    ) -> TlsListener {
        let local_addr = tcp.local_addr().ok();
        let (handed, ready) = mpsc::channel(MAX_PENDING_HANDSHAKES);
        let handshaker = Handshaker {
            acceptor: TlsAcceptor::from(config),
            settings: Arc::new(settings),
            timeout: handshake_timeout,
        };
        tokio::spawn(accept_loop(tcp, handshaker, handed));
        TlsListener { ready, local_addr }
    }
}

#[derive(Clone)]
struct Handshaker {
    acceptor: TlsAcceptor,
    settings: Arc<TlsSettings>,
    timeout: Duration,
}

impl Handshaker {
    async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let stream = tokio::time::timeout(self.timeout, self.acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|err| format!("TLS handshake failed: {err}"))?;
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        if !self.settings.peer_allowed(chain) {
            return Err(format!(
                "client certificate CN {:?} is not in cert-allowed-cn {:?}",
                chain.first().map(subject_common_names).unwrap_or_default(),
                self.settings.cert_allowed_cn
            ));
        }
        Ok(stream)
    }
}

/// Accepts connections and hands each to its own handshake task, until the listener is dropped.
async fn accept_loop(
    tcp: TcpListener,
    handshaker: Handshaker,
    handed: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let (permit, accepted) = tokio::select! {
            () = handed.closed() => return,
            accepted = async {
                let permit = pending.clone().acquire_owned().await;
                (permit, tcp.accept().await)
            } => accepted,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { return };
        let (mut tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        crate::shutdown::set_nodelay(&mut tcp);
        let handshaker = handshaker.clone();
        let handed = handed.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match handshaker.handshake(tcp).await {
                Ok(stream) => {
                    let _ = handed.send((stream, peer)).await;
                }
                Err(reason) => tracing::warn!(%peer, %reason, "rejected a TLS client"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.local_addr
            .ok_or_else(|| std::io::Error::other("the TLS listener's address is unknown"))
    }
}

/// The subject CNs of a DER certificate (empty when it cannot be read).
pub fn subject_common_names(cert: &CertificateDer<'_>) -> Vec<String> {
    der::subject_common_names(cert.as_ref()).unwrap_or_default()
}

/// Just enough DER to find a certificate's subject CN; rustls verifies the certificate itself.
mod der {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const VERSION: u8 = 0xa0;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

    /// Splits one TLV off `input`: (tag, value, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[count..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (found, value, rest) = tlv(input)?;
        (found == tag).then_some((value, rest))
    }

    pub(super) fn subject_common_names(cert: &[u8]) -> Option<Vec<String>> {
        let (certificate, _) = expect(cert, SEQUENCE)?;
        let (mut tbs, _) = expect(certificate, SEQUENCE)?;
        if tbs.first() == Some(&VERSION) {
            tbs = tlv(tbs)?.2;
        }
        // serialNumber, signature, issuer, validity, then subject.
        for _ in 0..4 {
            tbs = tlv(tbs)?.2;
        }
        let (mut subject, _) = expect(tbs, SEQUENCE)?;
        let mut names = Vec::new();
        while !subject.is_empty() {
            let (mut set, rest) = expect(subject, SET)?;
            subject = rest;
            while !set.is_empty() {
                let (attribute, rest) = expect(set, SEQUENCE)?;
                set = rest;
                let (oid, value) = expect(attribute, OID)?;
                if oid == COMMON_NAME {
                    let (_, text, _) = tlv(value)?;
                    names.push(String::from_utf8_lossy(text).into_owned());
                }
            }
        }
        Some(names)
    }
}
