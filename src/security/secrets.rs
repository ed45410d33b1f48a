//! The master key that seals secrets at rest, random tokens, hashes and constant-time checks.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 32 bytes that seal private keys and other secrets stored in the database.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    /// Parses a base64 key of exactly 32 bytes.
    pub fn from_base64(v: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(v)?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| anyhow::anyhow!("the master key must be 32 bytes of base64"))?;
        Ok(Self(key))
    }

    /// The key as base64 (for tests and `JANUA_MASTER_KEY`).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Encrypts and authenticates `plaintext`: a 24-byte random nonce followed by the ciphertext.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// A keyed hash (hex HMAC-SHA-256) of `data` under a key derived from the master key for
    /// `purpose`: stored values that a database dump alone cannot brute-force (backup codes).
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let derived = Sha256::new()
            .chain_update(b"janua:keyed-hash:")
            .chain_update(purpose.as_bytes())
            .chain_update(self.0)
            .finalize();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC takes any key length");
        mac.update(data);
        hex(&mac.finalize().into_bytes())
    }

    /// A short public name of the key (16 hex digits): a keyed hash under a key derived from it
    /// for a fixed label, so it tells keys apart without revealing anything about the key.
    pub fn fingerprint(&self) -> String {
        let mut h = self.keyed_hash("master-key-fingerprint", b"janua master key");
        h.truncate(16);
        h
    }

    /// Opens what [`MasterKey::seal`] produced; fails when the key is wrong or the data was altered.
    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > 24, "sealed data too short");
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(XNonce::from_slice(&sealed[..24]), &sealed[24..])
            .map_err(|_| anyhow::anyhow!("cannot open sealed data: wrong master key or corrupted data"))
    }
}

/// Writes `content` to a new file readable by its owner only (fails when the file exists).
pub(crate) fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(content.as_bytes())
}

/// `n` random bytes as unpadded base64url.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Lower-case hex SHA-256 of `s` (how opaque tokens are stored).
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A secret string whose `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let k = MasterKey::generate();
        let mut sealed = k.seal(b"private key");
        assert_eq!(k.open(&sealed).unwrap(), b"private key");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(k.open(&sealed).is_err());
        assert!(MasterKey::generate().open(&k.seal(b"x")).is_err());
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_are_stable() {
        let k = MasterKey::generate();
        let again = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(k.fingerprint(), again.fingerprint());
        assert_eq!(k.fingerprint().len(), 16);
        assert!(k.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k.fingerprint(), MasterKey::generate().fingerprint());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert!(!format!("{:?}", Secret("hunter2".into())).contains("hunter2"));
        assert!(!format!("{:?}", MasterKey::generate()).contains('='));
    }
}
