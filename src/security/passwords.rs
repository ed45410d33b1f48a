//! argon2id password hashing on blocking threads, bounded to a few at once, with a decoy hash so
//! that an unknown email costs the same time as a wrong password.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::oneshot;

use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult, FieldIssue};

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// A new hash with the current parameters, when the stored one used others.
    pub rehash: Option<String>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that compute hashes, as many as may run at once. Fixed threads (not
/// the async runtime's blocking pool) keep argon2's 19 MiB working memory reused by the same few
/// threads, so resident memory stays flat under a flood of sign-ins; the queue bounds the CPU.
struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("janua-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawning a hash thread");
        }
        Self { jobs: Mutex::new(tx) }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| AppError::internal("hash pool poisoned"))?
            .send(job)
            .map_err(AppError::internal)?;
        rx.await.map_err(AppError::internal)
    }
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    pool: Arc<HashPool>,
    decoy: Arc<str>,
    common: Arc<HashSet<String>>,
    min_length: usize,
}

/// Passwords longer than this are refused (argon2 accepts more; nobody needs it).
pub const MAX_PASSWORD_LEN: usize = 256;

impl PasswordHasher {
    /// Builds the hasher; computes the decoy hash once (≈ one hash of time).
    pub fn new(m_kib: u32, t: u32, p: u32, concurrency: usize, min_length: usize) -> anyhow::Result<Self> {
        let params = Params::new(m_kib, t, p, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let decoy = hash_with(&params, &crate::security::secrets::random_token(24))?;
        let common = include_str!("../../assets/common-passwords.txt").lines().map(str::to_owned).collect();
        Ok(Self {
            params,
            pool: Arc::new(HashPool::new(concurrency)),
            decoy: decoy.into(),
            common: Arc::new(common),
            min_length,
        })
    }

    /// Checks the password policy: length, not a common password, not the email.
    pub fn check_policy(&self, password: &Password, email: Option<&Email>) -> AppResult<()> {
        let pw = password.expose();
        let n = pw.chars().count();
        let issue = if n < self.min_length {
            Some(FieldIssue::TooShort(self.min_length))
        } else if n > MAX_PASSWORD_LEN {
            Some(FieldIssue::TooLong(MAX_PASSWORD_LEN))
        } else if self.common.contains(&pw.to_lowercase()) {
            Some(FieldIssue::CommonPassword)
        } else if email.is_some_and(|e| {
            pw.to_lowercase().contains(e.as_str()) || pw.eq_ignore_ascii_case(e.local_part())
        }) {
            Some(FieldIssue::PasswordContainsEmail)
        } else {
            None
        };
        match issue {
            Some(i) => Err(AppError::field("password", i)),
            None => Ok(()),
        }
    }

    /// Hashes a password with the current parameters.
    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let params = self.params.clone();
        let pw = password.expose().to_owned();
        self.pool.run(move || hash_with(&params, &pw)).await?.map_err(AppError::internal)
    }

    /// Verifies `password` against `stored`; with no stored hash (unknown user, no password)
    /// verifies against the decoy so the answer takes the same time, and is always false.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> AppResult<Verified> {
        let params = self.params.clone();
        let pw = password.expose().to_owned();
        let real = stored.is_some();
        let hash = stored.map(str::to_owned).unwrap_or_else(|| self.decoy.to_string());
        self.pool
            .run(move || -> AppResult<Verified> {
                let parsed = PasswordHash::new(&hash).map_err(AppError::internal)?;
                let ok = Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok() && real;
                let outdated = Params::try_from(&parsed)
                    .map(|old| {
                        (old.m_cost(), old.t_cost(), old.p_cost())
                            != (params.m_cost(), params.t_cost(), params.p_cost())
                    })
                    .unwrap_or(true)
                    || parsed.algorithm.as_str() != "argon2id";
                let rehash = if ok && outdated {
                    Some(hash_with(&params, &pw).map_err(AppError::internal)?)
                } else {
                    None
                };
                Ok(Verified { ok, rehash })
            })
            .await?
    }

    /// Times one hash with the current parameters (for the benchmark's argon2 bound).
    pub fn time_one_hash(&self) -> std::time::Duration {
        let start = std::time::Instant::now();
        let _ = hash_with(&self.params, "benchmark password 123");
        start.elapsed()
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    Ok(argon.hash_password(password.as_bytes()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(m: u32) -> PasswordHasher {
        PasswordHasher::new(m, 1, 1, 2, 12).unwrap()
    }

    #[tokio::test]
    async fn verifies_and_rehashes_when_parameters_change() {
        let pw = Password::new("correct horse battery staple".into());
        let old = hasher(8192).hash(&pw).await.unwrap();
        let h = hasher(9216);
        let v = h.verify(&pw, Some(&old)).await.unwrap();
        assert!(v.ok);
        let new = v.rehash.expect("parameters changed, so a rehash is due");
        assert!(new.contains("m=9216"));
        let again = h.verify(&pw, Some(&new)).await.unwrap();
        assert_eq!(again, Verified { ok: true, rehash: None });
        let wrong = h.verify(&Password::new("wrong horse battery staple".into()), Some(&new)).await.unwrap();
        assert!(!wrong.ok);
        assert!(!h.verify(&pw, None).await.unwrap().ok, "the decoy never verifies");
    }

    #[test]
    fn policy_refuses_short_common_and_email_passwords() {
        let h = hasher(8192);
        let email = Email::parse("alice@example.com").unwrap();
        let check = |p: &str| {
            h.check_policy(&Password::new(p.into()), Some(&email)).err().map(|e| e.fields["password"])
        };
        assert_eq!(check("short"), Some(FieldIssue::TooShort(12)));
        assert_eq!(check("qwertyuiop123"), Some(FieldIssue::CommonPassword));
        assert_eq!(check("xalice@example.comx"), Some(FieldIssue::PasswordContainsEmail));
        assert_eq!(check(&"x".repeat(300)), Some(FieldIssue::TooLong(256)));
        assert_eq!(check("a quite unusual passphrase"), None);
    }
}
