//! Typed states stored as strings: the one place where each maps to and from its database text.

/// Roles in an organization, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgRole {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl OrgRole {
    /// The roles that administer an organization (manage members, read its audit and sessions).
    pub const ADMINISTERING: [OrgRole; 2] = [OrgRole::Owner, OrgRole::Admin];

    /// Parses `owner`, `admin`, `member` or `viewer`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// Whether the stored role `s` is this one.
    pub fn is(self, s: &str) -> bool {
        s == self.as_str()
    }
}

/// Where an invitation stands, derived from its timestamps (never stored as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvitationStatus {
    /// Open and not expired: its token can be accepted.
    Pending,
    Accepted,
    Revoked,
    /// Open but past `expires_at`: only a resend (a new token) makes it usable again.
    Expired,
}

impl InvitationStatus {
    /// Every status, in the order lists document them.
    pub const ALL: [InvitationStatus; 4] = [Self::Pending, Self::Accepted, Self::Revoked, Self::Expired];

    /// The name clients see (`pending`, `accepted`, `revoked`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The status of an invitation with these timestamps, at `now`.
    pub fn of(
        accepted_at: Option<chrono::DateTime<chrono::Utc>>,
        revoked_at: Option<chrono::DateTime<chrono::Utc>>,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        match (accepted_at, revoked_at) {
            (Some(_), _) => Self::Accepted,
            (None, Some(_)) => Self::Revoked,
            (None, None) if expires_at <= now => Self::Expired,
            (None, None) => Self::Pending,
        }
    }
}

/// The state of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Active,
    Suspended,
    /// Erased: the row and its audit trail stay, the person is gone.
    Deleted,
}

impl UserStatus {
    /// Every status, in the order lists document them.
    pub const ALL: [UserStatus; 3] = [UserStatus::Active, UserStatus::Suspended, UserStatus::Deleted];

    /// Parses `active`, `suspended` or `deleted`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    /// Whether the stored status `s` is this one.
    pub fn is(self, s: &str) -> bool {
        s == self.as_str()
    }
}

/// How a session was authenticated (`sessions.auth_method`, `user.signed_in`'s `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Password,
    /// A password and then a second factor (TOTP, backup code or passkey).
    PasswordMfa,
    Passkey,
    /// Through the organization's identity provider (SAML or OIDC).
    Sso,
    /// A link mailed to the account's address.
    MagicLink,
    /// A mailed link and then a second factor.
    MagicLinkMfa,
}

impl AuthMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::PasswordMfa => "password+mfa",
            Self::Passkey => "passkey",
            Self::Sso => "sso",
            Self::MagicLink => "magic_link",
            Self::MagicLinkMfa => "magic_link+mfa",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for r in [OrgRole::Viewer, OrgRole::Member, OrgRole::Admin, OrgRole::Owner] {
            assert_eq!(OrgRole::parse(r.as_str()), Some(r));
        }
        for s in UserStatus::ALL {
            assert_eq!(UserStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(UserStatus::parse("Active"), None);
        assert!(OrgRole::Owner > OrgRole::Admin && OrgRole::Member > OrgRole::Viewer);
    }
}
