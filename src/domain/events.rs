//! The one vocabulary of audit actions, subscription events and webhook event types (API.md §4).

macro_rules! event_types {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every event type Janua raises.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            /// Every event type, in documentation order.
            pub const ALL: &'static [EventType] = &[$(Self::$variant,)*];

            /// The dotted name stored in the audit log and sent to subscribers and webhooks.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    UserCreated => "user.created",
    UserUpdated => "user.updated",
    UserDeleted => "user.deleted",
    UserSignedIn => "user.signed_in",
    UserSigninFailed => "user.signin_failed",
    UserSignedOut => "user.signed_out",
    UserLocked => "user.locked",
    SessionCreated => "session.created",
    SessionRefreshed => "session.refreshed",
    SessionRevoked => "session.revoked",
    SessionRefreshReuseDetected => "session.refresh_reuse_detected",
    OrganizationCreated => "organization.created",
    OrganizationUpdated => "organization.updated",
    OrganizationDeleted => "organization.deleted",
    OrganizationMemberAdded => "organization.member.added",
    OrganizationMemberRemoved => "organization.member.removed",
    OrganizationMemberRoleChanged => "organization.member.role_changed",
    ApiKeyCreated => "api_key.created",
    ApiKeyRevoked => "api_key.revoked",
    AdminAction => "admin.action",
}

impl EventType {
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
        Self::ALL.iter().copied().find(|e| e.as_str() == s)
    }
}

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
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(*e));
            assert!(seen.insert(e.as_str()), "{} used twice", e.as_str());
        }
    }
}
