//! Outbound HTTP to addresses an organization admin typed in (webhook receivers, identity
//! providers): no proxy, no redirects, and only to addresses the policy allows — checked on
//! every resolution, so a name re-pointed at an internal address is never connected to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// A client that reaches only addresses `policy` allows.
pub fn guarded_client(
    policy: AddressPolicy,
    timeout: Duration,
    max_idle_per_host: usize,
    user_agent: &'static str,
) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(max_idle_per_host)
        .user_agent(user_agent)
        .build()?)
}
