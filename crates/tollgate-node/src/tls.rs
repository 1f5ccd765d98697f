//! TLS for the REST API (rustls with the ring provider, HTTP/1.1), and the agent's own
//! self-signed certificate.
//!
//! Why a certificate of its own: a node usually has no name a public CA would certify, and
//! an operator without one would fall back to plain HTTP, sending the token and every UUID
//! in clear. So when no certificate is configured the agent creates a self-signed one on its
//! first start, keeps it next to its state file (the same certificate after every restart)
//! and prints its SHA-256 fingerprint; the service pins exactly that certificate
//! ([`crate::pin`]).
//!
//! Why a listener of our own: `axum::serve` takes any [`axum::serve::Listener`]. Handshakes run
//! in their own tasks with a deadline and finished streams are handed over through a channel,
//! so one slow or silent client can neither block other connections nor pile up forever.

use std::io;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::pin::CertFingerprint;

const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// File names of the generated pair, in the state file's directory.
pub const GENERATED_CERT: &str = "tls-cert.pem";
pub const GENERATED_KEY: &str = "tls-key.pem";

/// How the agent serves its API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSetting {
    /// Plain HTTP (`--plaintext`): only on loopback or behind a tunnel.
    Off,
    /// The operator's certificate and key (`--tls-cert`/`--tls-key`).
    Files(TlsFiles),
    /// The agent's own self-signed certificate, created on first start in this directory
    /// (the state file's); the default of the command line.
    SelfSigned { dir: PathBuf },
}

impl TlsSetting {
    pub fn is_on(&self) -> bool {
        !matches!(self, TlsSetting::Off)
    }
}

/// PEM files of the server certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server configuration for `setting` (None for plain HTTP) and the fingerprint of the
/// certificate it presents; creates the self-signed pair when it does not exist yet.
pub(crate) fn resolve(
    setting: &TlsSetting,
    listen: SocketAddr,
) -> Result<Option<(Arc<ServerConfig>, CertFingerprint)>, String> {
    let files = match setting {
        TlsSetting::Off => return Ok(None),
        TlsSetting::Files(files) => files.clone(),
        TlsSetting::SelfSigned { dir } => {
            let files = generated_files(dir);
            if create_self_signed(&files, listen)? {
                tracing::info!(
                    cert = %files.cert.display(),
                    "created a self-signed TLS certificate (kept across restarts; delete both files to make a new one)"
                );
            }
            files
        }
    };
    let config = server_config(&files)?;
    let fingerprint = fingerprint_of(&files.cert)?;
    Ok(Some((config, fingerprint)))
}

/// Where the self-signed pair lives for a state directory.
pub(crate) fn generated_files(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join(GENERATED_CERT),
        key: dir.join(GENERATED_KEY),
    }
}

/// Creates the self-signed pair unless both files exist; true when it created them. One file
/// without the other is refused: the operator decides whether the old key is gone.
fn create_self_signed(files: &TlsFiles, listen: SocketAddr) -> Result<bool, String> {
    match (files.cert.exists(), files.key.exists()) {
        (true, true) => return Ok(false),
        (false, false) => {}
        (has_cert, _) => {
            let (present, missing) = if has_cert {
                (&files.cert, &files.key)
            } else {
                (&files.key, &files.cert)
            };
            return Err(format!(
                "{} exists but {} does not: restore it, or delete {} so that a new certificate is created (then put its fingerprint into the service's catalog, agent_cert_sha256)",
                present.display(),
                missing.display(),
                present.display()
            ));
        }
    }
    // Names a client may check when it does not pin; a pinning client ignores them.
    let mut names = vec!["tollgate-node".to_owned(), "localhost".to_owned()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let generate = || -> Result<(String, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tollgate-node");
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) =
        generate().map_err(|e| format!("cannot create a self-signed certificate: {e}"))?;
    // The key first and private; the certificate last, so a crash in between leaves a key
    // without a certificate, which the next start reports instead of silently replacing.
    write_new(&files.key, key_pem.as_bytes(), 0o600)?;
    write_new(&files.cert, cert_pem.as_bytes(), 0o644)?;
    Ok(true)
}

/// Writes a file that must not exist yet, durably, with `mode`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let context = |e: io::Error| {
        format!(
            "cannot write {} (the directory of --state-file / TOLLGATE_NODE_STATE_FILE must exist and be writable): {e}",
            path.display()
        )
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(context)?;
    file.write_all(contents).map_err(context)?;
    file.sync_all().map_err(context)
}

/// The SHA-256 fingerprint of the first (end-entity) certificate in a PEM file.
pub(crate) fn fingerprint_of(cert: &Path) -> Result<CertFingerprint, String> {
    let certs = read_certs(cert)?;
    let first = certs
        .first()
        .ok_or_else(|| format!("no certificate found in {}", cert.display()))?;
    Ok(CertFingerprint::of_der(first.as_ref()))
}

/// Reads the PEM files; errors name the file and the flag to fix.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a PEM private key from {} (--tls-key / TOLLGATE_NODE_TLS_KEY): {e}",
            files.key.display()
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "the key {} does not fit the certificate {} (--tls-key / --tls-cert): {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let context = || format!("{} (--tls-cert / TOLLGATE_NODE_TLS_CERT)", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", context()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate in {}: {e}", context()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", context()));
    }
    Ok(certs)
}

/// A TLS listener for `axum::serve`.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `stop`, handshaking each connection in its own task.
    pub(crate) fn spawn(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        stop: CancellationToken,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = tcp.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The acceptor stopped: no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
