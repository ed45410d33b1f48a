//! Single sign-on words shared by the SAML and OIDC halves: the protocols, and why a sign-in
//! through an identity provider was refused (`SSO_ERROR` with `details.reason`, API.md §3.1).

use crate::error::{AppError, ErrorCode};

/// How a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SsoProtocol {
    Saml,
    Oidc,
}

impl SsoProtocol {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Saml => "saml",
            Self::Oidc => "oidc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "saml" => Some(Self::Saml),
            "oidc" => Some(Self::Oidc),
            _ => None,
        }
    }
}

/// Why an identity provider's answer (or a step of the flow) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SsoReason {
    /// Not well-formed, not the expected protocol message, or a field missing.
    MalformedResponse,
    /// A DOCTYPE or entity declaration (refused before any XML parser sees it).
    DoctypeForbidden,
    /// No signature where one is required.
    Unsigned,
    /// A signature that does not verify against any of the provider's keys.
    SignatureInvalid,
    /// The token names a signing key the provider's JWKS does not hold (even after a refresh).
    UnknownKey,
    /// The issuer is not the provider's.
    IssuerMismatch,
    AudienceMismatch,
    RecipientMismatch,
    DestinationMismatch,
    Expired,
    NotYetValid,
    /// `InResponseTo` names no request Janua issued (or one already consumed).
    UnknownRequest,
    /// An assertion id, authorization code or one-time code seen before.
    Replayed,
    /// An IdP-initiated answer to a provider that does not allow them.
    IdpInitiatedDisabled,
    /// The OIDC `state` is unknown, expired or used.
    StateInvalid,
    NonceMismatch,
    /// The IdP answered the authorization request with an error.
    IdpError,
    /// The user's email domain is not one of the provider's allowed domains.
    DomainNotAllowed,
    /// No linked user, and just-in-time provisioning is off.
    UserNotProvisioned,
    /// The answer carries no usable email.
    EmailMissing,
    /// The provider is disabled.
    ProviderDisabled,
    /// The organization requires SSO for this user: a password sign-in is refused.
    SsoRequired,
    /// The Janua user linked to the identity is suspended or deleted.
    AccountDisabled,
    /// A one-time browser code that is unknown, expired or used.
    CodeInvalid,
    /// The identity provider could not be reached (reported as 502 `UPSTREAM_ERROR`).
    IdpUnreachable,
}

impl SsoReason {
    /// The `details.reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedResponse => "malformed_response",
            Self::DoctypeForbidden => "doctype_forbidden",
            Self::Unsigned => "unsigned",
            Self::SignatureInvalid => "signature_invalid",
            Self::UnknownKey => "unknown_key",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::RecipientMismatch => "recipient_mismatch",
            Self::DestinationMismatch => "destination_mismatch",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownRequest => "unknown_request",
            Self::Replayed => "replayed",
            Self::IdpInitiatedDisabled => "idp_initiated_disabled",
            Self::StateInvalid => "state_invalid",
            Self::NonceMismatch => "nonce_mismatch",
            Self::IdpError => "idp_error",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::UserNotProvisioned => "user_not_provisioned",
            Self::EmailMissing => "email_missing",
            Self::ProviderDisabled => "provider_disabled",
            Self::SsoRequired => "sso_required",
            Self::AccountDisabled => "account_disabled",
            Self::CodeInvalid => "code_invalid",
            Self::IdpUnreachable => "idp_unreachable",
        }
    }
}

impl From<SsoReason> for AppError {
    /// `SSO_ERROR` with `details.reason`; an unreachable IdP is a 502 `UPSTREAM_ERROR`.
    fn from(reason: SsoReason) -> Self {
        let code = match reason {
            SsoReason::IdpUnreachable => ErrorCode::UpstreamError,
            _ => ErrorCode::SsoError,
        };
        AppError::new(code).with_details(serde_json::json!({ "reason": reason.as_str() }))
    }
}
