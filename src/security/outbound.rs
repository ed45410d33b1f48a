//! Outbound HTTP to addresses an organization admin typed in (webhook receivers, identity
//! providers): no proxy, no redirects, and only to addresses the policy allows — checked on
//! every resolution, so a name re-pointed at an internal address is never connected to, and
//! again on every new connection, because a URL naming an IP address (`http://127.0.0.1/`,
//! `https://[::1]/`) is connected to without any resolution.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhooks::AddressPolicy;

#[derive(Debug)]
pub struct AddressNotAllowed;

impl std::fmt::Display for AddressNotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the host resolves only to addresses Janua may not reach")
    }
}

impl std::error::Error for AddressNotAllowed {}

/// Resolves host names and keeps only the addresses the policy allows, so a name that
/// points (or is re-pointed) at an internal address is never connected to.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(AddressNotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Refuses a new connection whose peer the policy does not allow, before a byte of the request
/// is written. The resolver above never sees IP-literal hosts (hyper connects to them directly);
/// this sees every connection, whatever its URL named.
#[derive(Clone, Copy)]
struct PeerCheckLayer {
    policy: AddressPolicy,
}

impl<S> tower::Layer<S> for PeerCheckLayer {
    type Service = PeerCheck<S>;

    fn layer(&self, inner: S) -> PeerCheck<S> {
        PeerCheck { inner, policy: self.policy }
    }
}

#[derive(Clone)]
struct PeerCheck<S> {
    inner: S,
    policy: AddressPolicy,
}

impl<S, R> tower::Service<R> for PeerCheck<S>
where
    S: tower::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: R) -> Self::Future {
        let connecting = self.inner.call(dst);
        let policy = self.policy;
        Box::pin(async move {
            let conn = connecting.await.map_err(Into::into)?;
            let mut extras = hyper::http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            // No peer address (not TCP): refused, the policy cannot be checked.
            match extras.get::<HttpInfo>() {
                Some(info) if policy.allows(info.remote_addr().ip()) => Ok(conn),
                _ => Err(Box::new(AddressNotAllowed) as BoxError),
            }
        })
    }
}

/// A client that reaches only addresses `policy` allows (host names and IP literals alike).
pub fn guarded_client(
    policy: AddressPolicy,
    timeout: Duration,
    max_idle_per_host: usize,
    user_agent: &'static str,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .connector_layer(PeerCheckLayer { policy })
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(max_idle_per_host)
        .user_agent(user_agent)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caused_by_policy(e: &reqwest::Error) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cur {
            if c.is::<AddressNotAllowed>() {
                return true;
            }
            cur = c.source();
        }
        false
    }

    #[tokio::test]
    async fn loopback_is_refused_by_name_and_by_literal_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = guarded_client(AddressPolicy::default(), Duration::from_secs(5), 1, "t").unwrap();
        for url in [format!("http://127.0.0.1:{port}/"), format!("http://localhost:{port}/")] {
            let e = strict.get(&url).send().await.unwrap_err();
            assert!(caused_by_policy(&e), "{url}: {e:?}");
        }
        // Allowed, the same literal gets through to the listener (which answers nothing: the
        // request is dropped unanswered, so the error is not the policy's).
        let dev = AddressPolicy { allow_loopback: true, allow_private: false };
        let dev = guarded_client(dev, Duration::from_secs(5), 1, "t").unwrap();
        let accept = tokio::spawn(async move { drop(listener.accept().await) });
        let e = dev.get(format!("http://127.0.0.1:{port}/")).send().await.unwrap_err();
        assert!(!caused_by_policy(&e), "{e:?}");
        accept.await.unwrap();
    }
}
