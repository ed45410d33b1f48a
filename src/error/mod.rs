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
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            return Self::new(ErrorCode::Conflict);
        }
        if refused_value(&e) {
            // A value the database cannot store as text (PostgreSQL refuses U+0000 and
            // untranslatable characters; entries refuse them first): the caller's input.
            let mut err = Self::new(ErrorCode::ValidationError)
                .with_details(serde_json::json!({"invalid_character": "U+0000"}));
            err.internal = Some(e.to_string());
            return err;
        }
        match db_fault(&e) {
            // The database is unreachable or went away mid-request (restart, terminated
            // connection, pool timeout): not our bug and not the caller's, a 503 to retry.
            Some(fault) => {
                metrics::counter!("janua_database_unavailable_total", "reason" => fault.reason())
                    .increment(1);
                let mut err = Self::new(ErrorCode::ServiceUnavailable).with_details(
                    serde_json::json!({"reason": fault.reason(), "retry_after": fault.retry_after()}),
                );
                err.internal = Some(e.to_string());
                err
            }
            None => Self::internal(e),
        }
    }
}

/// Whether PostgreSQL refused a text value's characters (`22021 character_not_in_repertoire`,
/// e.g. U+0000; `22P05 untranslatable_character`).
fn refused_value(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x)) => {
            x.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "22021" || c == "22P05")
        }
        _ => false,
    }
}

/// Why a database error is the database's state rather than a bug: the 503 classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbFault {
    /// No connection, a connection that broke or was terminated, a server shutting down or
    /// starting up, a pool that timed out: retry shortly.
    Unavailable,
    /// The disk (or quota) under the database is full (`SQLITE_FULL`, `ENOSPC`, PostgreSQL
    /// `53100 disk_full`): retry once an operator frees space.
    StorageFull,
}

impl DbFault {
    /// `details.reason` of the 503.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unavailable => "database_unavailable",
            Self::StorageFull => "storage_full",
        }
    }

    /// Seconds for the `Retry-After` header.
    pub fn retry_after(self) -> u64 {
        match self {
            Self::Unavailable => 1,
            Self::StorageFull => 30,
        }
    }
}

/// Classifies `e`: `Some` when it is a connection or storage fault (→ 503), `None` for
/// everything else (a bug or a constraint: → 500 or its own code).
pub fn db_fault(e: &sea_orm::DbErr) -> Option<DbFault> {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match e {
        DbErr::ConnectionAcquire(_) => return Some(DbFault::Unavailable),
        DbErr::Conn(RuntimeErr::SqlxError(x))
        | DbErr::Exec(RuntimeErr::SqlxError(x))
        | DbErr::Query(RuntimeErr::SqlxError(x)) => x,
        DbErr::Conn(_) => return Some(DbFault::Unavailable),
        _ => return None,
    };
    match &**sqlx {
        Sqlx::Io(io) => {
            Some(if io.raw_os_error() == Some(28) { DbFault::StorageFull } else { DbFault::Unavailable })
        }
        Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_) | Sqlx::BeginFailed => {
            Some(DbFault::Unavailable)
        }
        // A connection that lost its framing (e.g. cut mid-message) is unusable, not a bug of ours.
        Sqlx::Protocol(_) => Some(DbFault::Unavailable),
        Sqlx::Database(d) => {
            let code = d.code();
            let code = code.as_deref().unwrap_or("");
            match code {
                // PostgreSQL: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
                // class 08 connection exceptions, 53300 too_many_connections.
                "57P01" | "57P02" | "57P03" | "53300" => Some(DbFault::Unavailable),
                c if c.starts_with("08") => Some(DbFault::Unavailable),
                // PostgreSQL 53100 disk_full.
                "53100" => Some(DbFault::StorageFull),
                // SQLite (extended result codes are numbers; the primary code is the low byte):
                // 13 SQLITE_FULL; 10 SQLITE_IOERR with a full disk underneath reads as full too.
                c => match c.parse::<i32>() {
                    Ok(n) if n & 0xff == 13 => Some(DbFault::StorageFull),
                    // 5 SQLITE_BUSY / 6 SQLITE_LOCKED after the busy timeout (10 s): the write
                    // lock stayed taken (e.g. a writer stuck on a full disk), retry later.
                    Ok(n) if n & 0xff == 5 || n & 0xff == 6 => Some(DbFault::Unavailable),
                    Ok(n) if n & 0xff == 10 && d.message().contains("full") => Some(DbFault::StorageFull),
                    _ => None,
                },
            }
        }
        _ => None,
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
