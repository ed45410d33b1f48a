//! The error every document and PATCH check returns.

/// Why a document or a PATCH was refused: an RFC 7644 §3.12 `scimType` and a readable reason.
/// Every variant answers HTTP 400.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchError {
    /// `invalidPath`, `noTarget`, `invalidValue`, `mutability`, `invalidSyntax` or `invalidFilter`.
    pub scim_type: &'static str,
    pub message: String,
}

impl PatchError {
    /// The path is malformed or names no attribute.
    pub const INVALID_PATH: &'static str = "invalidPath";
    /// A value filter matched nothing where something must be (RFC 7644 §3.5.2.3), or no path.
    pub const NO_TARGET: &'static str = "noTarget";
    /// A value does not fit its attribute, or an attribute is unknown or missing.
    pub const INVALID_VALUE: &'static str = "invalidValue";
    /// A read-only, immutable or required attribute would change.
    pub const MUTABILITY: &'static str = "mutability";
    /// The body is not a resource or PatchOp structure.
    pub const INVALID_SYNTAX: &'static str = "invalidSyntax";
    /// A value filter in a path is malformed.
    pub const INVALID_FILTER: &'static str = "invalidFilter";

    /// An error of the given `scimType`.
    pub fn new(scim_type: &'static str, message: impl Into<String>) -> PatchError {
        PatchError { scim_type, message: message.into() }
    }

    /// An `invalidPath` error.
    pub(crate) fn invalid_path(message: impl Into<String>) -> PatchError {
        PatchError::new(Self::INVALID_PATH, message)
    }

    /// A `noTarget` error.
    pub(crate) fn no_target(message: impl Into<String>) -> PatchError {
        PatchError::new(Self::NO_TARGET, message)
    }

    /// An `invalidValue` error.
    pub(crate) fn invalid_value(message: impl Into<String>) -> PatchError {
        PatchError::new(Self::INVALID_VALUE, message)
    }

    /// A `mutability` error.
    pub(crate) fn mutability(message: impl Into<String>) -> PatchError {
        PatchError::new(Self::MUTABILITY, message)
    }

    /// An `invalidSyntax` error.
    pub(crate) fn invalid_syntax(message: impl Into<String>) -> PatchError {
        PatchError::new(Self::INVALID_SYNTAX, message)
    }

    /// The same error, its message saying which operation (counted from 1) failed.
    pub(super) fn in_operation(self, index: usize) -> PatchError {
        PatchError { message: format!("operation {}: {}", index + 1, self.message), ..self }
    }
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.scim_type, self.message)
    }
}

impl std::error::Error for PatchError {}
