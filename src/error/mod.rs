//! The one error table: every failure is an [`AppError`] carrying a stable [`ErrorCode`];
//! the code decides the HTTP status, the GraphQL `extensions.code` and the message key.

mod messages;

use std::collections::BTreeMap;
use std::fmt;

pub use messages::{Locale, success_message};

/// Stable, client-visible error codes (API.md §1). Never reuse one for a different meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    ValidationError,
    AuthenticationRequired,
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    SessionRevoked,
    InvalidMfaCode,
    MfaNotEnabled,
    MfaAlreadyEnabled,
    PasskeyCeremonyInvalid,
    PasskeyVerificationFailed,
    PasskeyCloned,
    Forbidden,
    InsufficientPermissions,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// Inviting (or accepting for) someone who is already a member of the organization.
    AlreadyMember,
    /// An invitation token that is unknown, used, expired or revoked (one code for all four).
    InvitationInvalid,
    /// An invitation accepted while signed in as another account than the invited address's.
    InvitationEmailMismatch,
    /// The invited address has an account: accept signed in as it.
    InvitationSignInRequired,
    PreconditionFailed,
    AccountLocked,
    AccountDisabled,
    EmailNotVerified,
    ReauthRequired,
    RateLimited,
    PayloadTooLarge,
    /// A request body whose media type the route does not read (or a POST without one).
    UnsupportedMediaType,
    /// A request body that is not valid UTF-8.
    InvalidUtf8,
    /// A request body that did not arrive within `JANUA_BODY_READ_TIMEOUT`.
    RequestTimeout,
    /// A request line and headers over `JANUA_HEADER_LIMIT`.
    HeadersTooLarge,
    SsoError,
    UpstreamError,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 37] = [
        Self::BadRequest,
        Self::ValidationError,
        Self::AuthenticationRequired,
        Self::InvalidCredentials,
        Self::InvalidToken,
        Self::TokenExpired,
        Self::SessionRevoked,
        Self::InvalidMfaCode,
        Self::MfaNotEnabled,
        Self::MfaAlreadyEnabled,
        Self::PasskeyCeremonyInvalid,
        Self::PasskeyVerificationFailed,
        Self::PasskeyCloned,
        Self::Forbidden,
        Self::InsufficientPermissions,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::AlreadyMember,
        Self::InvitationInvalid,
        Self::InvitationEmailMismatch,
        Self::InvitationSignInRequired,
        Self::PreconditionFailed,
        Self::AccountLocked,
        Self::AccountDisabled,
        Self::EmailNotVerified,
        Self::ReauthRequired,
        Self::RateLimited,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidUtf8,
        Self::RequestTimeout,
        Self::HeadersTooLarge,
        Self::SsoError,
        Self::UpstreamError,
        Self::InternalError,
        Self::ServiceUnavailable,
    ];

    /// The SCREAMING_SNAKE_CASE string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::AuthenticationRequired => "AUTHENTICATION_REQUIRED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::SessionRevoked => "SESSION_REVOKED",
            Self::InvalidMfaCode => "INVALID_MFA_CODE",
            Self::MfaNotEnabled => "MFA_NOT_ENABLED",
            Self::MfaAlreadyEnabled => "MFA_ALREADY_ENABLED",
            Self::PasskeyCeremonyInvalid => "PASSKEY_CEREMONY_INVALID",
            Self::PasskeyVerificationFailed => "PASSKEY_VERIFICATION_FAILED",
            Self::PasskeyCloned => "PASSKEY_CLONED",
            Self::Forbidden => "FORBIDDEN",
            Self::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::AlreadyMember => "ALREADY_MEMBER",
            Self::InvitationInvalid => "INVITATION_INVALID",
            Self::InvitationEmailMismatch => "INVITATION_EMAIL_MISMATCH",
            Self::InvitationSignInRequired => "INVITATION_SIGN_IN_REQUIRED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::AccountLocked => "ACCOUNT_LOCKED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::ReauthRequired => "REAUTH_REQUIRED",
            Self::RateLimited => "RATE_LIMITED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::InvalidUtf8 => "INVALID_UTF8",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::SsoError => "SSO_ERROR",
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status this code is served with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidUtf8 => 400,
            Self::RequestTimeout => 408,
            Self::UnsupportedMediaType => 415,
            Self::HeadersTooLarge => 431,
            Self::ValidationError => 422,
            Self::AuthenticationRequired
            | Self::InvalidCredentials
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::SessionRevoked
            | Self::InvalidMfaCode
            | Self::PasskeyVerificationFailed
            | Self::PasskeyCloned
            | Self::InvitationSignInRequired => 401,
            Self::MfaNotEnabled | Self::PasskeyCeremonyInvalid | Self::InvitationInvalid => 400,
            Self::MfaAlreadyEnabled => 409,
            // REAUTH_REQUIRED: the token is good (401 would make clients refresh or sign out);
            // the session must prove a password again first.
            Self::Forbidden
            | Self::InsufficientPermissions
            | Self::AccountDisabled
            | Self::EmailNotVerified
            | Self::ReauthRequired
            | Self::InvitationEmailMismatch => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::AlreadyMember => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::AccountLocked => 423,
            Self::RateLimited => 429,
            Self::InternalError => 500,
            Self::SsoError => 401,
            Self::UpstreamError => 502,
            Self::ServiceUnavailable => 503,
        }
    }

    /// Parses a code string back (used when a GraphQL error crosses into REST).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one field of an input was refused; rendered in the caller's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldIssue {
    Required,
    InvalidEmail,
    TooShort(usize),
    TooLong(usize),
    CommonPassword,
    PasswordContainsEmail,
    InvalidFormat,
    OutOfRange,
    /// A webhook URL that is not https, or names a private, loopback or link-local host.
    UrlNotAllowed,
    /// A webhook event name that is not in the vocabulary (API.md §4) nor `*`.
    UnknownEvent,
}

/// A failure of a service or a transport, with its code and any structured details.
#[derive(Clone, Debug)]
pub struct AppError {
    pub code: ErrorCode,
    /// Field problems for `VALIDATION_ERROR`.
    pub fields: BTreeMap<String, FieldIssue>,
    /// Extra machine-readable details (e.g. `locked_until`, rate-limit figures).
    pub details: Option<serde_json::Value>,
    /// The cause of an internal error; logged, never shown to clients.
    pub internal: Option<String>,
}

/// Result alias used by services.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with just a code.
    pub fn new(code: ErrorCode) -> Self {
        Self { code, fields: BTreeMap::new(), details: None, internal: None }
    }

    /// A validation error naming one field.
    pub fn field(name: &str, issue: FieldIssue) -> Self {
        Self::new(ErrorCode::ValidationError).and_field(name, issue)
    }

    /// Adds another offending field.
    pub fn and_field(mut self, name: &str, issue: FieldIssue) -> Self {
        self.fields.insert(name.to_owned(), issue);
        self
    }

    /// Attaches machine-readable details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An internal error; `cause` goes to the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut e = Self::new(ErrorCode::InternalError);
        e.internal = Some(cause.to_string());
        e
    }

    /// The message in `locale`.
    pub fn message(&self, locale: Locale) -> String {
        messages::error_message(self.code, locale).to_owned()
    }

    /// The `details` object of the envelope (and GraphQL extensions), in `locale`.
    pub fn details_json(&self, locale: Locale) -> Option<serde_json::Value> {
        if self.fields.is_empty() {
            return self.details.clone();
        }
        let fields: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), messages::field_message(*v, locale).into()))
            .collect();
        let mut obj = match &self.details {
            Some(serde_json::Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        obj.insert("fields".into(), fields.into());
        Some(obj.into())
    }

    /// Logs the cause of a 5xx once, with the request id.
    pub fn log(&self, request_id: &str) {
        if self.code.http_status() >= 500 {
            tracing::error!(request_id, code = %self.code, cause = ?self.internal, "request failed");
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(messages::error_message(self.code, Locale::En))
    }
}

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        match (&e, e.sql_err()) {
            (_, Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Self::new(ErrorCode::Conflict),
            // The database is unreachable (pool closed, no connection in time): not our bug, a 503.
            (sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_), _) => {
                let mut err = Self::new(ErrorCode::ServiceUnavailable);
                err.internal = Some(e.to_string());
                err
            }
            _ => Self::internal(e),
        }
    }
}

impl<E: fmt::Display> From<sea_orm::TransactionError<E>> for AppError
where
    AppError: From<E>,
{
    fn from(e: sea_orm::TransactionError<E>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(inner) => inner.into(),
        }
    }
}
