//! Signing keys (Ed25519, private half sealed at rest), access-token JWTs and the JWKS.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entities::signing_key;

use super::secrets::MasterKey;
use crate::error::{AppError, AppResult, ErrorCode};

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id; a revoked session makes the token useless at once.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub email: String,
}

/// The session and the user an access token names, read without verifying it. Nothing may be
/// trusted from them: they only key a lookup started before the signature is checked, whose
/// answer is used once a token naming the same ids has verified (`storage::request_look`).
pub fn unverified_ids(token: &str) -> Option<(Uuid, Uuid)> {
    #[derive(Deserialize)]
    struct Ids {
        sid: Uuid,
        sub: Uuid,
    }
    let payload = token.split('.').nth(1)?;
    if payload.len() > 2048 {
        return None;
    }
    let ids: Ids = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some((ids.sid, ids.sub))
}

struct Loaded {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    loaded_at: Instant,
}

/// The key ring: the current signing key and every still-published public key.
#[derive(Clone)]
pub struct KeyStore {
    keys: Arc<RwLock<Loaded>>,
    /// When a token with an unknown `kid` last made this node re-read the keys.
    asked: Arc<std::sync::Mutex<Option<Instant>>>,
    master: MasterKey,
    issuer: String,
    audience: String,
    access_ttl: i64,
    /// Tokens whose signature and claims were verified, by the SHA-256 digest of the whole
    /// token (issue 19: a client presents the same access token for its whole lifetime, so its
    /// signature is checked once, not at every request). Expiry is checked again at each use;
    /// revocation is not decided here (the caller checks it at every request); the cache is
    /// emptied whenever the key ring is reloaded, so a retired key's tokens are verified anew
    /// (and refused). Only verified tokens enter it, at most [`VERIFIED_CAPACITY`].
    verified: Arc<std::sync::Mutex<HashMap<[u8; 32], AccessClaims>>>,
}

/// The most verified tokens remembered (about 200 bytes each).
const VERIFIED_CAPACITY: usize = 8192;

/// Clock skew allowed on `exp` (the same as the decoding's).
const LEEWAY_SECONDS: i64 = 5;

// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

impl KeyStore {
    /// Loads the keys, creating the first one when the database has none.
    pub async fn load(
        db: &impl ConnectionTrait,
        master: MasterKey,
        issuer: String,
        audience: String,
        access_ttl: i64,
    ) -> anyhow::Result<Self> {
        if active_key(db).await?.is_none() {
            create_key(db, &master).await?;
        }
        let loaded = load_keys(db, &master).await?;
        Ok(Self {
            keys: Arc::new(RwLock::new(loaded)),
            asked: Arc::default(),
            master,
            issuer,
            audience,
            access_ttl,
            verified: Arc::default(),
        })
    }

    /// Creates a new signing key; the old ones stay published until their last token expires.
    pub async fn rotate(
        db: &impl ConnectionTrait,
        master: &MasterKey,
        access_ttl: i64,
    ) -> anyhow::Result<String> {
        Self::rotate_with_refresh(db, master, access_ttl, Duration::ZERO).await
    }

    /// [`KeyStore::rotate`] for nodes that re-read the keys every `refresh`: a node may sign
    /// with the old key for up to `refresh` after the rotation, so the old key stays published
    /// for `refresh` + the access-token lifetime + a minute, then leaves the JWKS (retired).
    pub async fn rotate_with_refresh(
        db: &impl ConnectionTrait,
        master: &MasterKey,
        access_ttl: i64,
        refresh: Duration,
    ) -> anyhow::Result<String> {
        let now = Utc::now();
        let refresh = chrono::Duration::from_std(refresh).unwrap_or(chrono::Duration::zero());
        let publish_until = now + refresh + chrono::Duration::seconds(access_ttl + 60);
        let old =
            signing_key::Entity::find().filter(signing_key::Column::RetiredAt.is_null()).all(db).await?;
        let kid = create_key(db, master).await?;
        for k in old {
            let mut am: signing_key::ActiveModel = k.into();
            am.retired_at = Set(Some(now));
            am.publish_until = Set(Some(publish_until));
            am.update(db).await?;
        }
        Ok(kid)
    }

    /// Re-reads the keys from the database (after a rotation by another process).
    pub async fn reload(&self, db: &impl ConnectionTrait) -> anyhow::Result<()> {
        self.replace_ring(load_keys(db, &self.master).await?);
        Ok(())
    }

    /// Puts `loaded` in place of the key ring and forgets every token verified against the old.
    fn replace_ring(&self, loaded: Loaded) {
        *self.keys.write().expect("key lock poisoned") = loaded;
        self.verified.lock().expect("verified-token lock poisoned").clear();
    }

    /// Whether the key ring is older than `max_age` (the server reloads it then).
    pub fn is_stale(&self, max_age: Duration) -> bool {
        self.keys.read().expect("key lock poisoned").loaded_at.elapsed() > max_age
    }

    /// The key id new tokens are signed with.
    pub fn signing_kid(&self) -> String {
        self.keys.read().expect("key lock poisoned").signing_kid.clone()
    }

    /// Whether a token with an unknown `kid` may make this node re-read the keys now: at most
    /// once every `every`, however many such tokens arrive (forged ones cost no more), and
    /// independent of the periodic refresh — a key rotated just after it is picked up at once.
    pub fn may_reload_for_unknown_kid(&self, every: Duration) -> bool {
        let mut asked = self.asked.lock().expect("key lock poisoned");
        if asked.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        *asked = Some(Instant::now());
        true
    }

    /// Signs an access token for a user's session; returns the token and its lifetime in seconds.
    pub fn issue_access(&self, user_id: Uuid, session_id: Uuid, email: &str) -> AppResult<(String, i64)> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + self.access_ttl,
            jti: Uuid::now_v7(),
            email: email.to_owned(),
        };
        let keys = self.keys.read().expect("key lock poisoned");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.signing).map_err(AppError::internal)?;
        Ok((token, self.access_ttl))
    }

    /// Verifies signature, issuer, audience and expiry. Unknown `kid` → `INVALID_TOKEN`.
    pub fn verify_access(&self, token: &str) -> AppResult<AccessClaims> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified_claims(&digest) {
            return claims;
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AppError::new(ErrorCode::InvalidToken))?;
        let kid = header.kid.ok_or(ErrorCode::InvalidToken)?;
        let keys = self.keys.read().expect("key lock poisoned");
        let key = keys.verifying.get(&kid).ok_or(ErrorCode::InvalidToken)?;
        let claims = decode_access(token, key, &self.issuer, &self.audience)?;
        // Remembered under the key ring's read lock, so a reload (which empties the cache
        // under its write lock) cannot be overtaken by a token of the ring it replaced.
        let mut verified = self.verified.lock().expect("verified-token lock poisoned");
        if verified.len() >= VERIFIED_CAPACITY {
            let now = Utc::now().timestamp();
            verified.retain(|_, c| c.exp >= now - LEEWAY_SECONDS);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The claims of a token verified before, unless it has expired since (then it is
    /// forgotten and refused as expired).
    fn verified_claims(&self, digest: &[u8; 32]) -> Option<AppResult<AccessClaims>> {
        let mut verified = self.verified.lock().expect("verified-token lock poisoned");
        let claims = verified.get(digest)?;
        if claims.exp < Utc::now().timestamp() - LEEWAY_SECONDS {
            verified.remove(digest);
            return Some(Err(ErrorCode::TokenExpired.into()));
        }
        Some(Ok(claims.clone()))
    }

    /// The mean time of one access-token verification (the same decoding and checks as
    /// [`KeyStore::verify_access`], over a throwaway in-memory key), for the benchmark's bound.
    pub fn time_one_verification(samples: u32) -> anyhow::Result<Duration> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let signing = EncodingKey::from_ed_der(&pkcs8);
        let verifying = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?;
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            iss: "http://127.0.0.1".into(),
            aud: "janua".into(),
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 900,
            jti: Uuid::now_v7(),
            email: "someone@example.com".into(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k0123456789abcdefghij".into());
        let token = jsonwebtoken::encode(&header, &claims, &signing)?;
        let start = Instant::now();
        for _ in 0..samples.max(1) {
            let _ = jsonwebtoken::decode_header(&token)?;
            decode_access(&token, &verifying, &claims.iss, &claims.aud)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Ok(start.elapsed() / samples.max(1))
    }

    /// Whether a key id is known (used to decide whether a reload could help).
    pub fn knows_kid(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .is_some_and(|kid| self.keys.read().expect("key lock poisoned").verifying.contains_key(&kid))
    }

    /// The JSON Web Key Set of every published public key.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.read().expect("key lock poisoned").jwks.clone()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Decodes `token` with `key`: signature, issuer, audience, expiry (5 s leeway).
fn decode_access(token: &str, key: &DecodingKey, issuer: &str, audience: &str) -> AppResult<AccessClaims> {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.leeway = LEEWAY_SECONDS as u64;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    match jsonwebtoken::decode::<AccessClaims>(token, key, &v) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(ErrorCode::TokenExpired.into()),
        Err(_) => Err(ErrorCode::InvalidToken.into()),
    }
}

async fn active_key(db: &impl ConnectionTrait) -> anyhow::Result<Option<signing_key::Model>> {
    Ok(signing_key::Entity::find()
        .filter(signing_key::Column::RetiredAt.is_null())
        .order_by_desc(signing_key::Column::CreatedAt)
        .one(db)
        .await?)
}

async fn create_key(db: &impl ConnectionTrait, master: &MasterKey) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    let kid = format!("k{}", &Uuid::now_v7().simple().to_string()[..20]);
    signing_key::ActiveModel {
        kid: Set(kid.clone()),
        algorithm: Set("EdDSA".into()),
        public_key: Set(public.to_vec()),
        private_key_sealed: Set(master.seal(&pkcs8)),
        created_at: Set(Utc::now()),
        retired_at: Set(None),
        publish_until: Set(None),
    }
    .insert(db)
    .await?;
    Ok(kid)
}

async fn load_keys(db: &impl ConnectionTrait, master: &MasterKey) -> anyhow::Result<Loaded> {
    let now = Utc::now();
    let rows = signing_key::Entity::find().order_by_desc(signing_key::Column::CreatedAt).all(db).await?;
    let mut verifying = HashMap::new();
    let mut jwk_list = Vec::new();
    let mut signing = None;
    for row in rows {
        let published = row.retired_at.is_none() || row.publish_until.is_some_and(|t| t > now);
        if !published {
            continue;
        }
        let x = URL_SAFE_NO_PAD.encode(&row.public_key);
        verifying.insert(row.kid.clone(), DecodingKey::from_ed_components(&x)?);
        jwk_list.push(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": row.kid, "use": "sig", "alg": "EdDSA"
        }));
        if signing.is_none() && row.retired_at.is_none() {
            let der = master.open(&row.private_key_sealed)?;
            signing = Some((row.kid.clone(), EncodingKey::from_ed_der(&der)));
        }
    }
    let (signing_kid, signing) = signing.ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
    Ok(Loaded {
        signing_kid,
        signing,
        verifying,
        jwks: serde_json::json!({ "keys": jwk_list }),
        loaded_at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A key ring of one fresh Ed25519 key, without a database.
    fn key_store() -> KeyStore {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = "k-fuzz".to_owned();
        let loaded = Loaded {
            signing_kid: kid.clone(),
            signing: EncodingKey::from_ed_der(&pkcs8),
            verifying: HashMap::from([(kid.clone(), DecodingKey::from_ed_components(&x).unwrap())]),
            jwks: serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}]}),
            loaded_at: Instant::now(),
        };
        KeyStore {
            keys: Arc::new(RwLock::new(loaded)),
            master: MasterKey::generate(),
            issuer: "https://janua.test".into(),
            audience: "janua".into(),
            access_ttl: 900,
            asked: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// A compact JWS of `header` and `claims` (JSON texts) with the signature bytes `sig`.
    fn forged(header: &str, claims: &str, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The ids read before verification are the ones the verified claims carry; anything that
    /// is not a token's payload gives none (and nothing panics).
    #[test]
    fn unverified_ids_are_the_claims_of_the_token() {
        let keys = key_store();
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, _) = keys.issue_access(user, session, "a@example.com").unwrap();
        let claims = keys.verify_access(&token).unwrap();
        assert_eq!(unverified_ids(&token), Some((claims.sid, claims.sub)));
        assert_eq!(unverified_ids(&token), Some((session, user)));
        for bad in ["", "a", "a.b.c", "a..c", "a.!!!.c", &format!("x.{}.y", URL_SAFE_NO_PAD.encode("{}"))] {
            assert_eq!(unverified_ids(bad), None, "{bad}");
        }
        let long = format!("x.{}.y", "A".repeat(4096));
        assert_eq!(unverified_ids(&long), None);
    }

    /// A verified token is remembered by its digest: served again while it lives, refused as
    /// expired once its `exp` (plus leeway) passed, forgotten when the key ring is replaced; a
    /// token differing in one byte of its signature is not taken for it.
    #[test]
    fn verified_tokens_are_remembered_until_they_expire_or_the_keys_change() {
        use sha2::Digest;
        let keys = key_store();
        let (token, _) = keys.issue_access(Uuid::now_v7(), Uuid::now_v7(), "a@example.com").unwrap();
        let first = keys.verify_access(&token).unwrap();
        assert_eq!(keys.verified.lock().unwrap().len(), 1);
        assert_eq!(keys.verify_access(&token).unwrap().jti, first.jti);

        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(keys.verify_access(&tampered).unwrap_err().code, ErrorCode::InvalidToken);
        assert_eq!(keys.verified.lock().unwrap().len(), 1, "only verified tokens are remembered");

        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        keys.verified.lock().unwrap().get_mut(&digest).unwrap().exp = Utc::now().timestamp() - 6;
        assert_eq!(keys.verify_access(&token).unwrap_err().code, ErrorCode::TokenExpired);
        assert!(keys.verified.lock().unwrap().is_empty());

        // Another ring (the old key retired): the remembered token is checked again, and refused.
        let (fresh, _) = keys.issue_access(Uuid::now_v7(), Uuid::now_v7(), "a@example.com").unwrap();
        keys.verify_access(&fresh).unwrap();
        let other = key_store();
        keys.replace_ring(std::mem::replace(
            &mut *other.keys.write().unwrap(),
            Loaded {
                signing_kid: String::new(),
                signing: EncodingKey::from_secret(b"unused"),
                verifying: HashMap::new(),
                jwks: serde_json::Value::Null,
                loaded_at: Instant::now(),
            },
        ));
        assert_eq!(keys.verify_access(&fresh).unwrap_err().code, ErrorCode::InvalidToken);
    }

    /// Fuzz: arbitrary strings, mutations of a valid access token, and forged tokens (other
    /// algorithms, `none`, a valid payload under a random signature) never panic and are never
    /// accepted; the valid token still is.
    #[test]
    fn fuzz_access_token_verification() {
        let keys = key_store();
        let (valid, _) = keys.issue_access(Uuid::now_v7(), Uuid::now_v7(), "a@example.com").unwrap();
        let claims = keys.verify_access(&valid).expect("the valid token verifies");
        let payload = serde_json::to_string(&claims).unwrap();
        let alg = prop::sample::select(vec!["EdDSA", "HS256", "RS256", "ES256", "none", "NONE", "eddsa", ""]);
        let kid = prop::sample::select(vec!["k-fuzz", "k-other", ""]);
        let forged_token = (alg, kid, prop::collection::vec(any::<u8>(), 0..80), any::<bool>()).prop_map({
            let payload = payload.clone();
            move |(alg, kid, sig, with_kid)| {
                let header = if with_kid {
                    serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"})
                } else {
                    serde_json::json!({"alg": alg})
                };
                forged(&header.to_string(), &payload, &sig)
            }
        });
        let input = prop_oneof![
            2 => any::<String>(),
            1 => "[A-Za-z0-9_.-]{0,200}",
            6 => crate::fuzz::mutated(valid.clone()),
            3 => forged_token,
        ];
        crate::fuzz::run("JWT access token", 3000, input, |token| {
            let verdict = keys.verify_access(&token);
            let _ = keys.knows_kid(&token);
            if token != valid {
                prop_assert!(verdict.is_err(), "accepted a token that was not issued: {}", token);
                let code = verdict.unwrap_err().code;
                // Expiry is judged after the signature: a mutated token never gets that far.
                prop_assert_eq!(code, ErrorCode::InvalidToken);
            }
            Ok(())
        });
        assert!(keys.verify_access(&valid).is_ok());
    }
}
