//! The one vocabulary of audit actions, subscription events and webhook event types (API.md §4).

/// Every event type Janua raises so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserSignedIn,
    UserSigninFailed,
    UserSignedOut,
    UserLocked,
    SessionCreated,
    SessionRefreshed,
    SessionRevoked,
    SessionRefreshReuseDetected,
    KeyRotated,
    WebhookCreated,
    WebhookUpdated,
    WebhookDeleted,
    WebhookTest,
}

impl EventType {
    /// The dotted name stored in the audit log and sent to subscribers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserSignedIn => "user.signed_in",
            Self::UserSigninFailed => "user.signin_failed",
            Self::UserSignedOut => "user.signed_out",
            Self::UserLocked => "user.locked",
            Self::SessionCreated => "session.created",
            Self::SessionRefreshed => "session.refreshed",
            Self::SessionRevoked => "session.revoked",
            Self::SessionRefreshReuseDetected => "session.refresh_reuse_detected",
            Self::KeyRotated => "admin.action",
            Self::WebhookCreated => "webhook.created",
            Self::WebhookUpdated => "webhook.updated",
            Self::WebhookDeleted => "webhook.deleted",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// The session-event kind, for events that `sessionEvents` delivers.
    pub fn session_kind(self) -> Option<SessionEventKind> {
        match self {
            Self::SessionCreated => Some(SessionEventKind::Created),
            Self::SessionRefreshed => Some(SessionEventKind::Refreshed),
            Self::SessionRevoked => Some(SessionEventKind::Revoked),
            Self::SessionRefreshReuseDetected => Some(SessionEventKind::RefreshReuseDetected),
            _ => None,
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::UserCreated,
            Self::UserSignedIn,
            Self::UserSigninFailed,
            Self::UserSignedOut,
            Self::UserLocked,
            Self::SessionCreated,
            Self::SessionRefreshed,
            Self::SessionRevoked,
            Self::SessionRefreshReuseDetected,
            Self::WebhookCreated,
            Self::WebhookUpdated,
            Self::WebhookDeleted,
            Self::WebhookTest,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// Every event name of API.md §4: what a webhook may subscribe to (besides `*`).
pub const EVENT_NAMES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "user.signed_in",
    "user.signin_failed",
    "user.signed_out",
    "user.locked",
    "session.created",
    "session.refreshed",
    "session.revoked",
    "session.refresh_reuse_detected",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organization.member.added",
    "organization.member.removed",
    "organization.member.role_changed",
    "security.mfa.enabled",
    "security.mfa.disabled",
    "security.backup_codes.regenerated",
    "security.passkey.registered",
    "security.passkey.removed",
    "security.password.changed",
    "sso.provider.created",
    "sso.provider.updated",
    "sso.provider.deleted",
    "sso.signed_in",
    "scim.user.provisioned",
    "scim.user.updated",
    "scim.user.deprovisioned",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.test",
    "api_key.created",
    "api_key.revoked",
    "admin.action",
];

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEventKind {
    Created,
    Refreshed,
    Revoked,
    RefreshReuseDetected,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parsed_event_is_in_the_vocabulary() {
        for name in EVENT_NAMES {
            if let Some(e) = EventType::parse(name) {
                assert_eq!(e.as_str(), *name);
            }
        }
        for e in [
            "webhook.created",
            "webhook.updated",
            "webhook.deleted",
            "webhook.test",
        ] {
            assert_eq!(EventType::parse(e).map(EventType::as_str), Some(e));
            assert!(EVENT_NAMES.contains(&e));
        }
    }
}
