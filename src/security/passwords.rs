//! argon2id password hashing on blocking threads, bounded to a few at once, with a decoy hash so
//! that an unknown email costs the same time as a wrong password.

use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier as _, Version};
use tokio::sync::oneshot;

use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult, FieldIssue};
use crate::memory::HashMemory;

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

    /// Queues `f` behind every job queued before it (one FIFO channel: the threads take jobs in
    /// the order they were queued, so a sign-in waits for the hashes ahead of it and no others);
    /// what waits in the queue is the closure and its password, not a working set.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<oneshot::Receiver<T>> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| AppError::internal("hash pool poisoned"))?
            .send(job)
            .map_err(AppError::internal)?;
        Ok(rx)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        self.submit(f)?.await.map_err(AppError::internal)
    }
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    pool: Arc<HashPool>,
    decoy: Arc<str>,
    common: Arc<[&'static str]>,
    min_length: usize,
}

/// The common-password list, as slices of the text inside the binary (no copy of each entry),
/// sorted for binary search. Only lower-case entries can match (passwords are compared in lower
/// case), so the others are left out.
fn common_passwords() -> Vec<&'static str> {
    let mut list: Vec<&'static str> = include_str!("../../assets/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().any(char::is_uppercase))
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

/// Passwords longer than this are refused (argon2 accepts more; nobody needs it).
pub const MAX_PASSWORD_LEN: usize = 256;

impl PasswordHasher {
    /// Builds the hasher; computes the decoy hash once (≈ one hash of time).
    pub fn new(m_kib: u32, t: u32, p: u32, concurrency: usize, min_length: usize) -> anyhow::Result<Self> {
        let params = Params::new(m_kib, t, p, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        // The decoy is computed once with the crate's allocating path (returned to the system
        // afterwards), so an idle server does not keep a working set for it.
        let decoy = {
            use argon2::PasswordHasher as _;
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password(crate::security::secrets::random_token(24).as_bytes())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
                .to_string()
        };
        let common: Arc<[&'static str]> = common_passwords().into();
        Ok(Self {
            params,
            pool: Arc::new(HashPool::new(concurrency)),
            decoy: decoy.into(),
            common,
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
        } else if self.common.binary_search(&pw.to_lowercase().as_str()).is_ok() {
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
                let (matches, outdated) = verify_phc(&hash, &pw, &params).map_err(AppError::internal)?;
                let ok = matches && real;
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

// Each hash thread keeps its argon2 working memory (19 MiB by default, in huge pages: see
// `HashMemory`) and reuses it: a fresh allocation per hash is not reliably returned to the
// system by glibc, and resident memory grew by one working set per sign-in.
thread_local! {
    static WORK: std::cell::RefCell<Option<HashMemory>> = const { std::cell::RefCell::new(None) };
}

fn with_memory<T>(m_cost: u32, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        let blocks = m_cost as usize;
        if w.as_ref().is_none_or(|m| m.len() != blocks) {
            // The old one is freed first: never two working sets at once.
            *w = None;
            *w = Some(HashMemory::new(blocks));
        }
        f(w.as_mut().expect("just made").blocks())
    })
}

fn argon2id(params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.m_cost(), |mem| argon.hash_password_into_with_memory(password, salt, out, mem))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let mut out = [0u8; 32];
    argon2id(params, password.as_bytes(), &salt, &mut out)?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        base64::Engine::encode(&b64, salt),
        base64::Engine::encode(&b64, out)
    ))
}

/// An argon2id v19 PHC string taken apart.
struct Phc {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_phc(s: &str) -> Option<Phc> {
    let mut parts = s.split('$');
    let (_, alg, version, params, salt, hash) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if alg != "argon2id" || version != "v=19" || parts.next().is_some() {
        return None;
    }
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return None,
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let hash = base64::Engine::decode(&b64, hash).ok()?;
    Some(Phc {
        params: Params::new(m?, t?, p?, Some(hash.len())).ok()?,
        salt: base64::Engine::decode(&b64, salt).ok()?,
        hash,
    })
}

/// Verifies a PHC string; returns (matches, parameters differ from `current`).
fn verify_phc(stored: &str, password: &str, current: &Params) -> anyhow::Result<(bool, bool)> {
    match parse_phc(stored) {
        Some(phc) => {
            let mut out = vec![0u8; phc.hash.len()];
            argon2id(&phc.params, password.as_bytes(), &phc.salt, &mut out)?;
            let ok = crate::security::secrets::constant_time_eq(&out, &phc.hash);
            let differ = (phc.params.m_cost(), phc.params.t_cost(), phc.params.p_cost())
                != (current.m_cost(), current.t_cost(), current.p_cost());
            Ok((ok, differ))
        }
        // Another algorithm or version (an imported hash): the crate's general path, then upgrade.
        None => {
            let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            Ok((Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(), true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher as _;

    #[tokio::test]
    async fn hashes_run_in_the_order_they_were_queued() {
        let pool = HashPool::new(1);
        let done = Arc::new(Mutex::new(Vec::new()));
        // The first job holds the only thread while the others queue behind it.
        let (release, hold) = mpsc::channel::<()>();
        let first = pool.submit(move || hold.recv().ok()).unwrap();
        let queued: Vec<_> = (0..50)
            .map(|i| {
                let done = done.clone();
                pool.submit(move || done.lock().unwrap().push(i)).unwrap()
            })
            .collect();
        release.send(()).unwrap();
        first.await.unwrap();
        for rx in queued {
            rx.await.unwrap();
        }
        assert_eq!(*done.lock().unwrap(), (0..50).collect::<Vec<_>>(), "first queued, first hashed");
    }

    #[test]
    fn common_passwords_are_a_sorted_list_without_copies() {
        let list = common_passwords();
        assert!(list.len() > 30_000);
        assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted and deduplicated, for binary search");
        assert!(list.binary_search(&"password").is_ok());
    }

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
    fn hashes_are_standard_phc_strings_both_ways() {
        let params = Params::new(8192, 1, 1, None).unwrap();
        // Ours verifies with the argon2 crate's standard verifier…
        let ours = hash_with(&params, "interop passphrase").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"interop passphrase", &parsed).is_ok());
        // …and the crate's hashes verify with ours.
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password(b"interop passphrase")
            .unwrap()
            .to_string();
        assert_eq!(verify_phc(&theirs, "interop passphrase", &params).unwrap(), (true, false));
        assert_eq!(verify_phc(&theirs, "wrong", &params).unwrap(), (false, false));
        // An argon2i hash still verifies, and is marked for upgrade.
        let old = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"x")
            .unwrap()
            .to_string();
        assert_eq!(verify_phc(&old, "x", &params).unwrap(), (true, true));
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
