//! Secrets, password hashing, signing keys and tokens, rate limiting.

pub mod passwords;
pub mod rate_limit;
pub mod secrets;
pub mod tokens;
