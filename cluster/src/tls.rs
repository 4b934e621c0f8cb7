//! TLS settings (`ssl-ca`, `ssl-cert`, `ssl-key`, `cert-allowed-cn`), loaded once and turned into
//! the client configurations of gRPC (PD, pumps, drainers), etcd and the HTTP control API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// Makes ring the process's rustls crypto provider, once. Libraries that pick the default
/// provider (tonic's TLS) would otherwise fail when the build enables a second provider through
/// feature unification (test dependencies pull aws-lc-rs). Idempotent.
pub fn use_ring_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err only when another provider was installed first; that one is used then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The `[security]` section shared by every component. TLS is on iff `ssl_ca` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA bundle that signs the cluster's certificates.
    pub ssl_ca: Option<PathBuf>,
    /// This node's certificate (PEM), presented to peers that require client certificates.
    pub ssl_cert: Option<PathBuf>,
    /// The key of `ssl_cert` (PEM).
    pub ssl_key: Option<PathBuf>,
    /// When non-empty, servers accept only clients whose certificate CN is listed.
    pub cert_allowed_cn: Vec<String>,
}

/// A TLS file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which setting the file came from.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no usable PEM item.
    #[error("{what} {path} holds no PEM {expected}")]
    Pem {
        /// Which setting the file came from.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was expected in it.
        expected: &'static str,
    },
    /// `ssl-cert` and `ssl-key` must be given together.
    #[error("ssl-cert and ssl-key must be set together (ssl-cert: {cert:?}, ssl-key: {key:?})")]
    HalfIdentity {
        /// The configured certificate.
        cert: Option<PathBuf>,
        /// The configured key.
        key: Option<PathBuf>,
    },
    /// rustls refused the material.
    #[error("invalid TLS material: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsSettings {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.ssl_ca.is_some()
    }

    /// `https` when TLS is on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() { "https" } else { "http" }
    }

    fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    }

    fn identity_paths(&self) -> Result<Option<(&Path, &Path)>, TlsError> {
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (cert, key) => Err(TlsError::HalfIdentity {
                cert: cert.clone(),
                key: key.clone(),
            }),
        }
    }

    /// The client configuration for tonic channels and the etcd client (which uses the same type);
    /// `None` when TLS is off.
    pub fn grpc_client_config(
        &self,
    ) -> Result<Option<tonic::transport::ClientTlsConfig>, TlsError> {
        use_ring_provider();
        let Some(ca) = &self.ssl_ca else {
            return Ok(None);
        };
        let mut config = tonic::transport::ClientTlsConfig::new().ca_certificate(
            tonic::transport::Certificate::from_pem(Self::read("ssl-ca", ca)?),
        );
        if let Some((cert, key)) = self.identity_paths()? {
            config = config.identity(tonic::transport::Identity::from_pem(
                Self::read("ssl-cert", cert)?,
                Self::read("ssl-key", key)?,
            ));
        }
        Ok(Some(config))
    }

    pub(crate) fn certificates(
        what: &'static str,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = Self::read(what, path)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(TlsError::Pem {
                what,
                path: path.to_owned(),
                expected: "certificate",
            });
        }
        Ok(certs)
    }

    pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
        let pem = Self::read("ssl-key", path)?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
            what: "ssl-key",
            path: path.to_owned(),
            expected: "private key",
        })
    }

    /// A rustls client configuration for plain HTTPS (the control API); `None` when TLS is off.
    pub fn rustls_client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        let Some(ca) = &self.ssl_ca else {
            return Ok(None);
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in Self::certificates("ssl-ca", ca)? {
            roots.add(cert)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match self.identity_paths()? {
            Some((cert, key)) => builder.with_client_auth_cert(
                Self::certificates("ssl-cert", cert)?,
                Self::private_key(key)?,
            )?,
            None => builder.with_no_client_auth(),
        };
        Ok(Some(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_a_ca() {
        let settings = TlsSettings::default();
        assert!(!settings.enabled());
        assert_eq!(settings.scheme(), "http");
        assert!(settings.grpc_client_config().unwrap().is_none());
        assert!(settings.rustls_client_config().unwrap().is_none());
    }

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            ssl_ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = settings.rustls_client_config().unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read ssl-ca /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let settings = TlsSettings {
            ssl_ca: Some(ca.clone()),
            ..Default::default()
        };
        let err = settings.rustls_client_config().unwrap_err().to_string();
        assert_eq!(
            err,
            format!("ssl-ca {} holds no PEM certificate", ca.display())
        );
    }

    #[test]
    fn cert_without_key_is_refused() {
        let settings = TlsSettings {
            ssl_ca: Some("/x".into()),
            ssl_cert: Some("/c".into()),
            ..Default::default()
        };
        assert!(matches!(
            settings.identity_paths(),
            Err(TlsError::HalfIdentity { .. })
        ));
    }
}
