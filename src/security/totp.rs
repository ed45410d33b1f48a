//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) and backup codes: the primitives, with
//! no storage. Services decide which step was already used and where codes are kept.

use rand::Rng;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::secrets::constant_time_eq;

/// How many backup codes a user holds.
pub const BACKUP_CODE_COUNT: usize = 10;
/// TOTP secret length: 160 bits (RFC 4226's recommendation; common clients refuse under 112).
pub const SECRET_BYTES: usize = 20;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Janua";
/// Seconds per TOTP step.
pub const STEP: u64 = 30;
/// Backup-code alphabet: no 0/O, 1/I/L, so codes survive being read aloud or retyped.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters of a backup code (2 groups of 5): 31^10 ≈ 2^49.5.
pub const CODE_LEN: usize = 10;

/// A fresh random secret of [`SECRET_BYTES`].
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill(&mut secret[..]);
    secret
}

/// The TOTP of `secret` for `account` (the user's email), issuer "Janua".
pub fn totp(secret: Vec<u8>, account: &str) -> Result<Totp, totp_rs::TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP)
        .with_skew(1)
        .with_secret(Secret::from(secret))
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
}

/// The secret in base32 (for manual entry).
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::from(secret).to_base32()
}

/// The step `code` belongs to among the current step ±1, if any. Every candidate is compared,
/// in constant time, so the time taken does not depend on which one matched.
pub fn matching_step(totp: &Totp, code: &str, unix_now: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = unix_now / STEP;
    let mut matched = None;
    for step in now_step.saturating_sub(1)..=now_step + 1 {
        let expected = totp.generate(step * STEP).to_string();
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// [`BACKUP_CODE_COUNT`] fresh codes, shown as `XXXXX-XXXXX`.
pub fn new_backup_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            let raw: String = (0..CODE_LEN)
                .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

/// A backup code as stored: upper-case, without dashes or spaces.
pub fn normalize_backup_code(code: &str) -> String {
    code.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn backup_codes_are_distinct_and_normalize() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODE_COUNT);
        let mut set: Vec<_> = codes.iter().map(|c| normalize_backup_code(c)).collect();
        set.sort();
        set.dedup();
        assert_eq!(set.len(), BACKUP_CODE_COUNT);
        assert!(set.iter().all(|c| c.len() == CODE_LEN));
        assert_eq!(normalize_backup_code("abcde-fghjk"), "ABCDEFGHJK");
        assert_eq!(normalize_backup_code("ABCDE FGHJK"), "ABCDEFGHJK");
    }

    #[test]
    fn uri_qr_and_window() {
        let t = totp(vec![7u8; SECRET_BYTES], "ada@example.com").unwrap();
        let uri = t.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/Janua:ada%40example.com?"), "{uri}");
        assert!(uri.contains("issuer=Janua"));
        let png = STANDARD.decode(t.to_qr_base64().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 → its last 6 digits.
        let rfc = totp(b"12345678901234567890".to_vec(), "x").unwrap();
        assert_eq!(matching_step(&rfc, "287082", 59), Some(1));
        assert_eq!(matching_step(&rfc, "287082", 59 + 30), Some(1), "previous step accepted");
        assert_eq!(matching_step(&rfc, "287082", 59 + 60), None, "two steps late");
        assert_eq!(matching_step(&rfc, "28708", 59), None);
    }
}
