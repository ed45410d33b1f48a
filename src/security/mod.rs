//! Secrets, password hashing, signing keys and tokens, TOTP and backup codes, rate limiting.

pub mod master_key;
pub mod nesting;
pub mod operator;
pub mod outbound;
pub mod passwords;
pub mod secrets;
pub mod tokens;
pub mod totp;
