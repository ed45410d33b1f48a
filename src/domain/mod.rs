//! Parsed values: once a value has one of these types it has been checked.

pub mod bounds;
mod events;
pub mod lists;
pub mod page;
pub mod sso;
mod states;
pub mod webhooks;

pub use events::{EVENT_NAMES, EventType, SessionEventKind};
pub use states::{AuthMethod, InvitationStatus, OrgRole, UserStatus};

use std::fmt;

use crate::error::{AppError, AppResult, FieldIssue};

/// A syntactically valid, lower-cased email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks the address (one `@`, a dotted domain, no spaces, ≤ 254 chars).
    pub fn parse(raw: &str) -> AppResult<Self> {
        let s = raw.trim().to_lowercase();
        let bad = || AppError::field("email", FieldIssue::InvalidEmail);
        if s.is_empty() {
            return Err(AppError::field("email", FieldIssue::Required));
        }
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(Self(s))
    }

    /// The address as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed; never printed by `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password (policy is checked by `PasswordHasher::check_policy`).
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The plain text, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Checks an optional free-text field: trimmed, at most `max` characters, empty → `None`.
pub fn optional_text(field: &str, value: Option<String>, max: usize) -> AppResult<Option<String>> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.chars().count() > max => Err(AppError::field(field, FieldIssue::TooLong(max))),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Parses a client-supplied id.
pub fn parse_id(field: &str, raw: &str) -> AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| AppError::field(field, FieldIssue::InvalidFormat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_parsing() {
        assert_eq!(Email::parse("  Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        for bad in ["", "alice", "a@b", "a@@b.com", "a b@c.com", "@b.com", "a@.com", "a@b..com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn password_debug_is_redacted() {
        assert_eq!(format!("{:?}", Password::new("hunter2".into())), "Password(<redacted>)");
    }
}
