//! Test certificates made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1, and
//! client certificates with chosen CNs, for TLS scenarios.

use std::path::{Path, PathBuf};
use std::process::Command;

use binlog_cluster::TlsSettings;

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
}

/// A throwaway PKI in a temporary directory.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
    /// The CA certificate.
    pub ca: PathBuf,
    /// A server certificate for `127.0.0.1` / `localhost` (CN `server`).
    pub server: Identity,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|err| anyhow::anyhow!("cannot run openssl: {err} (install Debian's openssl)"))?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// Creates the CA and the server certificate.
    pub fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::Builder::new().prefix("e2e-pki").tempdir()?;
        let mut args = vec!["req", "-x509"];
        args.extend(EC_KEY);
        args.extend([
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ]);
        openssl(dir.path(), &args)?;
        let ca = dir.path().join("ca.pem");
        let mut pki = Pki {
            dir,
            ca,
            server: Identity {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
        };
        pki.server = pki.issue(
            "server",
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        Ok(pki)
    }

    /// Issues a client certificate with subject CN `cn`.
    pub fn client(&self, cn: &str) -> anyhow::Result<Identity> {
        self.issue(&format!("client-{cn}"), cn, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, cn: &str, extensions: &str) -> anyhow::Result<Identity> {
        let dir = self.dir.path();
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&ext), extensions)?;
        let subject = format!("/O=test/CN={cn}");
        let mut args = vec!["req"];
        args.extend(EC_KEY);
        args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(dir, &args)?;
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
        )?;
        Ok(Identity {
            cert: dir.join(pem),
            key: dir.join(key),
        })
    }

    /// Client-side settings presenting `identity` (or no certificate).
    pub fn settings(&self, identity: Option<&Identity>) -> TlsSettings {
        TlsSettings {
            ssl_ca: Some(self.ca.clone()),
            ssl_cert: identity.map(|i| i.cert.clone()),
            ssl_key: identity.map(|i| i.key.clone()),
            cert_allowed_cn: Vec::new(),
        }
    }
}
