//! TLS for the simulators: a server certificate (made by the test, e.g. with rcgen, from a CA
//! it generates) and an axum listener that speaks HTTPS with it.
//!
//! A handshake that fails (the client does not trust the certificate) is counted and the
//! connection dropped, as a real server would; it never reaches the handlers. Nothing here
//! generates or stores certificates, and nothing accepts a client without a full handshake.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server certificate chain and key for the simulators. Cheap to clone.
#[derive(Clone)]
pub struct SimTls {
    acceptor: TlsAcceptor,
    failed: Arc<AtomicU64>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

impl SimTls {
    /// A server identity from a certificate chain (leaf first) and its private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<SimTls, rustls::Error> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        Ok(SimTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            failed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How many TLS handshakes failed (a client that refused the certificate), over every
    /// server using this identity.
    pub fn failed_handshakes(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// The TLS handshake on an accepted connection, bounded in time.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(error = %e, "simulator TLS handshake failed");
                None
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                None
            }
        }
    }

    /// An axum listener serving HTTPS on `listener`: handshakes run in their own tasks, so a
    /// stuck client never blocks the others.
    pub(crate) fn listener(&self, listener: TcpListener) -> TlsListener {
        let addr = listener.local_addr();
        let (tx, rx) = mpsc::channel(64);
        let tls = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(stream) = tls.accept(tcp).await {
                        let _ = tx.send((stream, peer)).await;
                    }
                });
            }
        });
        TlsListener {
            rx,
            addr,
            task: task.abort_handle(),
        }
    }
}

/// An HTTPS listener for `axum::serve`.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: std::io::Result<SocketAddr>,
    task: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when aborted (on drop): wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.addr {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<SimTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            axum::serve(tls.listener(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
