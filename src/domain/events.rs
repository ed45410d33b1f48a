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
    UserEmailVerified => "user.email_verified",
    UserPasswordResetRequested => "user.password_reset_requested",
    UserPasswordReset => "user.password_reset",
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
    OrganizationInvitationCreated => "organization.invitation.created",
    OrganizationInvitationAccepted => "organization.invitation.accepted",
    OrganizationInvitationRevoked => "organization.invitation.revoked",
    OrganizationInvitationResent => "organization.invitation.resent",
    ApiKeyCreated => "api_key.created",
    ApiKeyRevoked => "api_key.revoked",
    AdminAction => "admin.action",
    WebhookCreated => "webhook.created",
    WebhookUpdated => "webhook.updated",
    WebhookDeleted => "webhook.deleted",
    WebhookTest => "webhook.test",
    MfaSetupStarted => "security.mfa.setup_started",
    MfaEnabled => "security.mfa.enabled",
    MfaDisabled => "security.mfa.disabled",
    BackupCodesRegenerated => "security.backup_codes.regenerated",
    PasskeyRegistered => "security.passkey.registered",
    PasskeyRemoved => "security.passkey.removed",
    PasskeyRenamed => "security.passkey.renamed",
    PasswordChanged => "security.password.changed",
    SsoProviderCreated => "sso.provider.created",
    SsoProviderUpdated => "sso.provider.updated",
    SsoProviderDeleted => "sso.provider.deleted",
    SsoSignedIn => "sso.signed_in",
    SsoSigninFailed => "sso.signin_failed",
    ScimTokenCreated => "scim.token.created",
    ScimTokenRevoked => "scim.token.revoked",
    ScimUserProvisioned => "scim.user.provisioned",
    ScimUserUpdated => "scim.user.updated",
    ScimUserDeprovisioned => "scim.user.deprovisioned",
    ScimGroupCreated => "scim.group.created",
    ScimGroupUpdated => "scim.group.updated",
    ScimGroupDeleted => "scim.group.deleted",
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
    // Beyond API.md §4 (extensions, never reusing a name):
    "security.mfa.setup_started",
    "security.passkey.renamed",
    "sso.signin_failed",
    "scim.group.created",
    "scim.group.updated",
    "scim.group.deleted",
    "scim.token.created",
    "scim.token.revoked",
    "user.email_verified",
    "user.password_reset_requested",
    "user.password_reset",
    "organization.invitation.created",
    "organization.invitation.accepted",
    "organization.invitation.revoked",
    "organization.invitation.resent",
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
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(*e));
            assert!(seen.insert(e.as_str()), "{} used twice", e.as_str());
            assert!(EVENT_NAMES.contains(&e.as_str()), "{} is not in API.md §4", e.as_str());
        }
    }
}
