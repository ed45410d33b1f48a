//! A load generator that costs the server's cores as little as the protocol allows: one HTTP/1.1
//! connection per worker (hyper's client connection, no pool, no URL parsing per request), the
//! request's target and headers built once. The `me` phases use it, since on a 2-core machine
//! the client shares the cores with the server and a general client's per-request work (reqwest's
//! pool lookup, URL parsing, header building) would be measured as the server's.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// One kept-alive connection and the request it repeats.
pub(crate) struct Repeater {
    send: SendRequest<Full<Bytes>>,
    method: Method,
    path: hyper::Uri,
    host: HeaderValue,
    bearer: HeaderValue,
    body: Bytes,
}

impl Repeater {
    /// Opens a connection to `base` (`http://host:port`) that sends `method path` with `bearer`
    /// and `body` (JSON when not empty) each time.
    pub(crate) async fn open(
        base: &str,
        method: Method,
        path: &str,
        bearer: &str,
        body: Bytes,
    ) -> anyhow::Result<Self> {
        let authority = base.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("{base}: not http://"))?;
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            send,
            method,
            path: path.parse()?,
            host: HeaderValue::from_str(authority)?,
            bearer: HeaderValue::from_str(&format!("Bearer {bearer}"))?,
            body,
        })
    }

    /// Sends the request once and reads the whole answer: its body when the status is 2xx.
    pub(crate) async fn send(&mut self) -> Option<Bytes> {
        let mut req = Request::builder().method(self.method.clone()).uri(self.path.clone());
        let headers = req.headers_mut()?;
        headers.insert(HOST, self.host.clone());
        headers.insert(AUTHORIZATION, self.bearer.clone());
        if !self.body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let req = req.body(Full::new(self.body.clone())).ok()?;
        self.send.ready().await.ok()?;
        let resp = self.send.send_request(req).await.ok()?;
        let ok = resp.status().is_success();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        ok.then_some(body)
    }
}
