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
    MfaSetupStarted,
    MfaEnabled,
    MfaDisabled,
    BackupCodesRegenerated,
    PasskeyRegistered,
    PasskeyRemoved,
    PasskeyRenamed,
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
            Self::MfaSetupStarted => "security.mfa.setup_started",
            Self::MfaEnabled => "security.mfa.enabled",
            Self::MfaDisabled => "security.mfa.disabled",
            Self::BackupCodesRegenerated => "security.backup_codes.regenerated",
            Self::PasskeyRegistered => "security.passkey.registered",
            Self::PasskeyRemoved => "security.passkey.removed",
            Self::PasskeyRenamed => "security.passkey.renamed",
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
            Self::MfaSetupStarted,
            Self::MfaEnabled,
            Self::MfaDisabled,
            Self::BackupCodesRegenerated,
            Self::PasskeyRegistered,
            Self::PasskeyRemoved,
            Self::PasskeyRenamed,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
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
