//! The HTTP/1.1 server loop: hyper's connection builder with the limits `axum::serve` does not
//! expose — a deadline for the request line and headers (`JANUA_HEADER_READ_TIMEOUT`: a client
//! that sends them byte by byte is disconnected, slowloris) and a bound on their size
//! (`JANUA_HEADER_LIMIT`: 431 beyond) — WebSocket upgrades, and a graceful shutdown as
//! `axum::serve`'s (stop accepting, let each connection finish its request in flight).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::http::ws::socket::Listener;

/// What the loop enforces on every connection.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    /// Bytes of the request line and headers (hyper's read buffer; at least 8192).
    pub header_limit: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for the connections'
/// requests in flight to finish.
pub async fn serve(
    listener: Listener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a receiver; the loop waits for all of them to be dropped.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router.clone().map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            req.map(Body::new)
        });
        let service = TowerToHyperService::new(service);
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.header_limit.max(8192));
            let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => log_end(r),
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await);
                }
            }
            drop(done);
        });
    }
    // Closing the listener refuses new connections while the ones in flight finish.
    drop(listener);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

fn log_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        // A client gone, a header deadline or size passed: the client's doing, not the server's.
        tracing::debug!(error = %e, "connection ended");
    }
}
