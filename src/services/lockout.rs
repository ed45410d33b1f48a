//! One credential check in progress ([`Attempt`]): a unit of the client's per-IP credential
//! limit and a lockout slot ([`crate::storage::LockoutStore`]), both taken before anything is
//! verified.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;
use crate::storage::{LockoutStore, Slot};

/// One credential check in progress: a unit of the client's per-IP credential limit and, once
/// the key is known, a lockout slot — both taken before anything is verified. A success gives
/// both back ([`Attempt::succeeded`]); a failure (the attempt dropped) leaves both counted.
pub struct Attempt {
    ip: Option<IpAddr>,
    slot: Option<(Arc<dyn LockoutStore>, String, Slot)>,
}

impl Attempt {
    /// Takes a unit of `ip`'s credential limit (`RATE_LIMITED` when there is none left).
    /// Without a client IP (an in-process call) there is no unit to take.
    pub async fn begin(state: &AppState, ip: Option<IpAddr>) -> AppResult<Self> {
        if let Some(ip) = ip {
            let d = state.credential_limiter.check(ip).await;
            if !d.allowed {
                metrics::counter!("janua_credential_attempts_total", "outcome" => "rate_limited")
                    .increment(1);
                return Err(AppError::new(ErrorCode::RateLimited).with_details(serde_json::json!({
                    "limit": d.limit, "window_seconds": 60, "retry_after": d.retry_after_secs,
                })));
            }
        }
        Ok(Self { ip, slot: None })
    }

    /// Takes a slot of `key` in `store`; `Err(until)` when the key is locked (verify nothing).
    pub async fn reserve(
        &mut self,
        store: &Arc<dyn LockoutStore>,
        key: impl Into<String>,
    ) -> Result<(), DateTime<Utc>> {
        let key = key.into();
        let slot = store.reserve(&key).await;
        if let Slot::Locked(until) = slot {
            return Err(until);
        }
        self.slot = Some((store.clone(), key, slot));
        Ok(())
    }

    /// When this attempt took the last slot: the lock its failure leaves (answer `ACCOUNT_LOCKED`).
    pub fn locks_on_failure(&self) -> Option<DateTime<Utc>> {
        match self.slot {
            Some((_, _, Slot::Last(until))) => Some(until),
            _ => None,
        }
    }

    /// The credential proved good: gives back the unit and clears the key's failures.
    pub async fn succeeded(self, state: &AppState) {
        if let Some(ip) = self.ip {
            state.credential_limiter.release(ip).await;
        }
        if let Some((store, key, _)) = self.slot {
            store.record_success(&key).await;
        }
    }
}
