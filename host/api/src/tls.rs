//! HTTPS for `tessera serve`: rustls (ring, TLS 1.2 and 1.3), a certificate
//! read from PEM files again whenever they change, optional client
//! certificates for the ingest role. Never serves plain HTTP on a TLS port.
//!
//! The certificate is looked up at every handshake: two `stat`s of its files
//! (size, modification time, inode), and a reload when any of them changed,
//! so a renewed certificate serves the next connection without a restart.
//! A reload that fails (a half-written file, a key that does not match)
//! keeps the previous certificate and is logged; it is tried again when the
//! files change again. A reload also forgets the sessions clients could
//! resume, so that every client's next connection sees the new certificate.
//!
//! With a client CA, a client may present a certificate, which must then be
//! issued by that CA (or the handshake fails); one that presents none still
//! connects. Each connection carries [`TlsPeer`] (as axum's `ConnectInfo`),
//! and the authorization layer refuses an ingest token on a connection
//! without a verified client certificate.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::connect_info::Connected;
use axum::http::HeaderValue;
use axum::serve::IncomingStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::AppState;

/// `[tls]`: HTTPS on the server's port. Without a certificate the server
/// speaks plain HTTP (behind a proxy that terminates TLS, or on loopback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    /// Read again when it changes.
    pub cert_file: Option<PathBuf>,
    /// The private key of the certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Refuse to start without `cert_file` and `key_file`: a deployment
    /// that must never speak plain HTTP cannot lose its TLS settings
    /// silently.
    pub required: bool,
    /// The CAs (PEM) that issue the client certificates of partner systems
    /// pushing data: when set, ingest tokens are only accepted on
    /// connections that presented a certificate issued by one of them.
    pub client_ca_file: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age=…` on every answer over TLS, in
    /// seconds.
    pub hsts_max_age_s: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            required: false,
            client_ca_file: None,
            hsts_max_age_s: 365 * 24 * 60 * 60,
        }
    }
}

impl TlsConfig {
    /// Whether the server speaks HTTPS.
    pub fn is_on(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Whether ingest tokens need a client certificate.
    pub fn ingest_needs_client_certificate(&self) -> bool {
        self.is_on() && self.client_ca_file.is_some()
    }

    /// Checks that the settings go together; the reason names them.
    pub fn check(&self) -> Result<(), String> {
        for (name, path) in [
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("client_ca_file", &self.client_ca_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(format!("tls.{name} is empty: name a file or leave it out"));
            }
        }
        let named = |path: &Option<PathBuf>| path.is_some();
        match (named(&self.cert_file), named(&self.key_file)) {
            (true, false) => return Err("tls.cert_file is set but tls.key_file is not".into()),
            (false, true) => return Err("tls.key_file is set but tls.cert_file is not".into()),
            (false, false) if self.required => {
                return Err(
                    "tls.required is set but no certificate is: set tls.cert_file and \
                            tls.key_file (TESSERA_TLS_CERT_FILE, TESSERA_TLS_KEY_FILE)"
                        .into(),
                );
            }
            (false, false) if named(&self.client_ca_file) => {
                return Err(
                    "tls.client_ca_file needs TLS: set tls.cert_file and tls.key_file".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why TLS cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM; the message names it.
    File(String),
    /// rustls refused the configuration.
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File(message) | TlsError::Config(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TlsError {}

/// ring, as ureq's outbound client uses: aws-lc-rs (rustls' default, with
/// post-quantum key exchange, hence ring's deprecation in rustls 0.23.48)
/// needs a C toolchain and takes minutes to build.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key in two PEM files, checked to match.
fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates(cert_file)?;
    let key = std::fs::read(key_file)
        .map_err(|e| TlsError::File(format!("cannot read {}: {e}", key_file.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        TlsError::File(format!(
            "{} holds no PEM private key: {e}",
            key_file.display()
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError::File(format!(
            "the key in {} does not go with the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        ))
    })
}

/// Every certificate of a PEM file, at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path)
        .map_err(|e| TlsError::File(format!("cannot read {}: {e}", path.display())))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError::File(format!(
                "{} is not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(TlsError::File(format!(
            "{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        )));
    }
    Ok(certificates)
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// The server's certificate, from files that are read again when they
/// change ([`ResolvesServerCert`], asked at every handshake).
pub struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
    sessions: Arc<Sessions>,
}

/// Resumable TLS sessions (rustls' memory cache, 256 of them), emptied
/// when the certificate is reloaded: a resumed session skips the
/// certificate, and a renewal (perhaps after a key leaked) must reach
/// every client.
#[derive(Debug)]
struct Sessions {
    cache: Mutex<Arc<ServerSessionMemoryCache>>,
}

const SESSIONS: usize = 256;

impl Sessions {
    fn new() -> Self {
        Self {
            cache: Mutex::new(ServerSessionMemoryCache::new(SESSIONS)),
        }
    }

    fn cache(&self) -> Arc<ServerSessionMemoryCache> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn forget(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            ServerSessionMemoryCache::new(SESSIONS);
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

struct Current {
    key: Arc<CertifiedKey>,
    /// The files' stamps when they were last read, whether that worked.
    seen: [Option<Stamp>; 2],
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    /// Reads the files once; an error names the file and the problem.
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> Result<Self, TlsError> {
        let provider = provider();
        let seen = [stamp(&cert_file), stamp(&key_file)];
        let key = Arc::new(load_pair(&cert_file, &key_file, &provider)?);
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current: Mutex::new(Current { key, seen }),
            sessions: Arc::new(Sessions::new()),
        })
    }

    /// The certificate to present now, reloaded first if its files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = [stamp(&self.cert_file), stamp(&self.key_file)];
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if now != current.seen {
            current.seen = now;
            match load_pair(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    current.key = Arc::new(key);
                    self.sessions.forget();
                    tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                }
                Err(error) => tracing::warn!(
                    %error,
                    "the TLS certificate files changed but cannot be used; the previous \
                     certificate is still served"
                ),
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration of `[tls]`: TLS 1.3 and 1.2, HTTP/1.1, the
/// reloading certificate, and the client CA if there is one.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err(TlsError::Config(
            "TLS needs tls.cert_file and tls.key_file".into(),
        ));
    };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca_file)? {
                roots.add(certificate).map_err(|e| {
                    TlsError::File(format!(
                        "{} holds a certificate that cannot be a CA: {e}",
                        ca_file.display()
                    ))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(format!("tls.client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let resolver = Arc::new(ReloadingCertificate::new(
        cert_file.clone(),
        key_file.clone(),
    )?);
    let sessions = resolver.sessions.clone();
    let mut server = builder.with_cert_resolver(resolver);
    server.session_storage = sessions;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Who is at the other end of a TLS connection: axum's `ConnectInfo` of
/// the connections [`serve_tls`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsPeer {
    pub address: SocketAddr,
    /// The client presented a certificate, verified against the client CA.
    pub client_certificate: bool,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

/// Handshakes in progress at once; more connections wait in the kernel's
/// backlog.
const MAX_HANDSHAKES: usize = 512;
/// A client that has not finished its handshake (or, on plain HTTP, sent
/// its request head) within this long is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener of TLS connections for `axum::serve`: handshakes run in
/// tasks of their own, so that a slow client holds up nobody else.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (send, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), send));
        Ok(Self {
            ready,
            local,
            acceptor,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            address: self.local,
            client_certificate: false,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, TlsPeer)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, as axum does.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // TLS records of an answer go out as they are written.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, acceptor)).await;
            drop(permit);
            match shaken {
                Ok(Ok(Some(tls))) => {
                    let client_certificate = tls.get_ref().1.peer_certificates().is_some();
                    let peer = TlsPeer {
                        address,
                        client_certificate,
                    };
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Ok(None)) => tracing::debug!(%address, "plain HTTP on the TLS port refused"),
                Ok(Err(error)) => tracing::debug!(%address, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%address, "TLS handshake timed out"),
            }
        });
    }
}

/// The TLS handshake of one connection, or `None` when the client speaks
/// plain HTTP: it is answered 400 with a sentence saying to use https.
async fn handshake(
    stream: TcpStream,
    acceptor: TlsAcceptor,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    let peeked = stream.peek(&mut first).await?;
    // Every TLS connection starts with a handshake record (content type 22).
    if peeked == 1 && first[0] != 0x16 {
        if first[0].is_ascii_uppercase() {
            refuse_plain_http(stream).await?;
        }
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// Answers a plain HTTP request on the TLS port with 400, after reading its
/// head (closing with unread data would reset the connection before the
/// client reads the answer).
async fn refuse_plain_http(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let body = "{\"error\":{\"code\":\"https_required\",\"message\":\"this port speaks HTTPS \
                only: send the request to https:// instead of http://\"}}";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// Serves the application over TLS on `listener` until `shutdown`
/// completes, as [`crate::serve`] does over plain HTTP: requests in flight
/// finish and the vault is flushed. Every answer carries
/// `Strict-Transport-Security`.
pub async fn serve_tls<F>(
    listener: TcpListener,
    state: AppState,
    tls: Arc<ServerConfig>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let vault = state.vault.clone();
    let hsts = HeaderValue::from_str(&format!("max-age={}", state.config.tls.hsts_max_age_s))
        .map_err(std::io::Error::other)?;
    let app = crate::app(state).layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let hsts = hsts.clone();
            async move {
                response
                    .headers_mut()
                    .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts);
                response
            }
        },
    ));
    let listener = TlsListener::new(listener, tls)?;
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<TlsPeer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let flushed = tokio::task::spawn_blocking(move || vault.flush())
        .await
        .map_err(std::io::Error::other)?;
    served?;
    flushed.map_err(|error| std::io::Error::other(error.to_string()))
}
