//! The limits on invitation mails, in the store of the mail limits
//! ([`super::mail_limits`]: fixed windows, in process or in Redis across every node). They are
//! their own allowances: inviting someone never spends the budget of their password resets.

use std::sync::Arc;
use std::time::Duration;

use super::Redis;
use super::mail_limits::{KeyedLimit, MemoryKeyedLimiter, RedisKeyedLimiter};
use crate::config::Config;

/// One allowance per client, per organization and address, per address across organizations,
/// and per organization (windows of an hour: `services::mail::MAIL_WINDOW`).
pub struct InvitationLimits {
    /// Per client IP (IPv6 /64): `JANUA_INVITATIONS_PER_CLIENT_PER_HOUR`.
    pub client: Arc<dyn KeyedLimit>,
    /// Per organization and address: `JANUA_INVITATIONS_PER_ADDRESS_PER_HOUR`.
    pub org_address: Arc<dyn KeyedLimit>,
    /// Per address, every organization together: `JANUA_INVITATIONS_PER_RECIPIENT_PER_HOUR`.
    pub address: Arc<dyn KeyedLimit>,
    /// Per organization: `JANUA_INVITATIONS_PER_ORGANIZATION_PER_HOUR`.
    pub organization: Arc<dyn KeyedLimit>,
}

impl InvitationLimits {
    /// The limits of `config` over windows of `window`, cluster-wide when `redis` is given.
    pub fn new(config: &Config, redis: Option<&Redis>, window: Duration) -> Self {
        let make = |name: &'static str, limit: u32| -> Arc<dyn KeyedLimit> {
            match redis {
                Some(r) => Arc::new(RedisKeyedLimiter::new(r.clone(), name, limit, window)),
                None => Arc::new(MemoryKeyedLimiter::new(limit, window)),
            }
        };
        Self {
            client: make("invitelimit_client", config.invitations_per_client_per_hour),
            org_address: make("invitelimit_org_addr", config.invitations_per_address_per_hour),
            address: make("invitelimit_addr", config.invitations_per_recipient_per_hour),
            organization: make("invitelimit_org", config.invitations_per_organization_per_hour),
        }
    }

    /// Forgets windows that are over.
    pub fn purge(&self) {
        for l in [&self.client, &self.org_address, &self.address, &self.organization] {
            l.purge();
        }
    }
}
