//! `TestIdp`: a minimal but real OpenID Connect provider on 127.0.0.1:0, for the relying party's
//! tests and for tests of the whole SSO flow. It serves discovery, a JWKS, `/authorize` (for one
//! pre-set user: a 302 back to `redirect_uri` with `code` and `state`), `/token` (client
//! authentication, redirect_uri, PKCE S256 and single-use codes checked; an RS256 id_token signed
//! with a key of its own JWKS, `kid` set) and `/userinfo`. [`Knobs`] make it lie in each of the
//! ways a relying party must catch; counters say what was fetched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use janua::services::sso::oidc::OidcSettings;
use jsonwebtoken::{Algorithm, EncodingKey};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The client registered at every `TestIdp`.
pub const CLIENT_ID: &str = "janua-test-client";
/// Its secret; the odd characters check the form-encoding of client_secret_basic (RFC 6749 §2.3.1).
pub const CLIENT_SECRET: &str = "s3cret:with/odd+chars%";

/// The one user `/authorize` signs in.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
}

impl Default for TestUser {
    fn default() -> Self {
        Self {
            sub: "idp-user-1".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            name: "Ada Lovelace".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
        }
    }
}

/// How `/token` signs the id_token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// RS256 with the RSA key of the JWKS (the default).
    Rs256,
    /// ES256 with the P-256 key of the JWKS.
    Es256,
    /// RS256 with a key that is not in the JWKS, under the `kid` of one that is.
    ForeignKey,
    /// RS256 with the JWKS's key, under a `kid` no JWKS ever holds.
    UnknownKid,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 keyed with the RSA public key's PEM (the key-confusion forgery).
    Hs256WithPublicKey,
}

/// How the client authenticates at `/token` (advertised in discovery, enforced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

/// The provider's behaviour; every field but `user` is a way to lie.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub user: TestUser,
    pub signing: Signing,
    pub client_auth: ClientAuth,
    /// Merged over the discovery document (`null` removes a field): e.g. another `issuer`.
    pub discovery_patch: Map<String, Value>,
    /// Answer discovery with this status (and no document) instead.
    pub discovery_status: Option<u16>,
    /// The id_token's `iss` (default: the issuer).
    pub token_issuer: Option<String>,
    /// The id_token's `aud` (default: `[CLIENT_ID]`, sent as a plain string).
    pub audience: Option<Vec<String>>,
    pub azp: Option<String>,
    /// The id_token's `nonce` (default: the one `/authorize` was given).
    pub nonce: Option<String>,
    /// `exp` = now + this many seconds (negative: already expired).
    pub expires_in: i64,
    /// `iat` = now + this many seconds.
    pub issued_at_offset: i64,
    /// Put `email` and `email_verified` in the id_token (else only userinfo has them).
    pub email_in_id_token: bool,
    /// Send an `at_hash` that does not match the access token.
    pub wrong_at_hash: bool,
    /// Merged over the userinfo answer: e.g. another `sub`, or a conflicting `name`.
    pub userinfo_patch: Map<String, Value>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            user: TestUser::default(),
            signing: Signing::Rs256,
            client_auth: ClientAuth::Basic,
            discovery_patch: Map::new(),
            discovery_status: None,
            token_issuer: None,
            audience: None,
            azp: None,
            nonce: None,
            expires_in: 300,
            issued_at_offset: 0,
            email_in_id_token: true,
            wrong_at_hash: false,
            userinfo_patch: Map::new(),
        }
    }
}

/// Where `/authorize` sent the browser.
#[derive(Clone, Debug)]
pub struct Callback {
    /// The full `Location`: `redirect_uri?code=…&state=…`.
    pub location: String,
    pub code: String,
    pub state: String,
}

#[derive(Clone)]
struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &str) -> Key {
    let rsa = Rsa::generate(2048).unwrap();
    let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&rsa.private_key_to_der().unwrap()),
        jwk,
        public_pem: rsa.public_key_to_pem().unwrap(),
    }
}

fn ec_key(kid: &str) -> Key {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec = EcKey::generate(&group).unwrap();
    let (mut x, mut y, mut ctx) = (
        openssl::bn::BigNum::new().unwrap(),
        openssl::bn::BigNum::new().unwrap(),
        BigNumContext::new().unwrap(),
    );
    ec.public_key().affine_coordinates(&group, &mut x, &mut y, &mut ctx).unwrap();
    let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&x.to_vec_padded(32).unwrap()), "y": b64(&y.to_vec_padded(32).unwrap())});
    let public_pem = ec.public_key_to_pem().unwrap();
    let pkcs8 = PKey::from_ec_key(ec).unwrap().private_key_to_pkcs8().unwrap();
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(&pkcs8),
        jwk,
        public_pem,
    }
}

/// The JWKS's RSA key, its EC key, and a stranger: made once per test binary (RSA keys are slow
/// to make), a rotation makes a new one.
fn initial_keys() -> Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys { rsa: rsa_key("rsa-1"), ec: ec_key("ec-1"), foreign: rsa_key("foreign") })
        .clone()
}

#[derive(Clone)]
struct Keys {
    rsa: Key,
    ec: Key,
    foreign: Key,
}

struct Grant {
    redirect_uri: String,
    nonce: String,
    code_challenge: String,
    used: bool,
}

#[derive(Default)]
struct Counters {
    discovery: AtomicUsize,
    jwks: AtomicUsize,
    token: AtomicUsize,
    userinfo: AtomicUsize,
}

struct Idp {
    issuer: String,
    knobs: Mutex<Knobs>,
    keys: Mutex<Keys>,
    rotations: AtomicUsize,
    grants: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, TestUser>>,
    last_authorize: Mutex<Option<HashMap<String, String>>>,
    counters: Counters,
}

/// A running provider.
pub struct TestIdp {
    idp: Arc<Idp>,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TestIdp {
    /// Starts a provider with default knobs; its issuer is `http://127.0.0.1:<port>`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = Arc::new(Idp {
            issuer,
            knobs: Mutex::new(Knobs::default()),
            keys: Mutex::new(initial_keys()),
            rotations: AtomicUsize::new(0),
            grants: Mutex::default(),
            access_tokens: Mutex::default(),
            last_authorize: Mutex::default(),
            counters: Counters::default(),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(idp.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self { idp, shutdown: Mutex::new(Some(tx)), task: Mutex::new(Some(task)) }
    }

    pub fn issuer(&self) -> &str {
        &self.idp.issuer
    }

    /// Settings for Janua: this issuer, [`CLIENT_ID`], [`CLIENT_SECRET`], openid email profile.
    pub fn settings(&self) -> OidcSettings {
        OidcSettings {
            issuer: self.idp.issuer.clone(),
            discovery_url: None,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
        }
    }

    /// Changes the knobs (they apply to the next request).
    pub fn set(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.idp.knobs.lock().unwrap());
    }

    /// Replaces the RSA signing key by a new one with a new `kid`: tokens are signed with it, and
    /// only a JWKS fetched from now on holds it (the old key is gone).
    pub fn rotate_keys(&self) -> String {
        let n = self.idp.rotations.fetch_add(1, Ordering::SeqCst) + 2;
        let key = rsa_key(&format!("rsa-{n}"));
        let kid = key.kid.clone();
        self.idp.keys.lock().unwrap().rsa = key;
        kid
    }

    pub fn discovery_fetches(&self) -> usize {
        self.idp.counters.discovery.load(Ordering::SeqCst)
    }

    pub fn jwks_fetches(&self) -> usize {
        self.idp.counters.jwks.load(Ordering::SeqCst)
    }

    pub fn token_requests(&self) -> usize {
        self.idp.counters.token.load(Ordering::SeqCst)
    }

    pub fn userinfo_requests(&self) -> usize {
        self.idp.counters.userinfo.load(Ordering::SeqCst)
    }

    /// The query of the last `/authorize` request that was accepted.
    pub fn last_authorize(&self) -> Option<HashMap<String, String>> {
        self.idp.last_authorize.lock().unwrap().clone()
    }

    /// Plays the browser: follows `authorization_url` to `/authorize` and reads the redirect.
    pub async fn authorize(&self, authorization_url: &str) -> Callback {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let resp = browser.get(authorization_url).send().await.unwrap();
        let status = resp.status();
        let location = resp.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let Some(location) = location.filter(|_| status == StatusCode::FOUND) else {
            panic!("/authorize answered {status}: {}", resp.text().await.unwrap_or_default());
        };
        let q: HashMap<String, String> =
            reqwest::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
        Callback { code: q["code"].clone(), state: q["state"].clone(), location }
    }

    /// Stops serving: closes the listener and every connection, and waits until they are gone.
    pub async fn stop(&self) {
        let tx = self.shutdown.lock().unwrap().take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

fn random() -> String {
    b64(&rand::random::<[u8; 24]>())
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    idp.counters.discovery.fetch_add(1, Ordering::SeqCst);
    let k = idp.knobs.lock().unwrap().clone();
    if let Some(status) = k.discovery_status {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let i = &idp.issuer;
    let auth = match k.client_auth {
        ClientAuth::Basic => "client_secret_basic",
        ClientAuth::Post => "client_secret_post",
    };
    let mut doc = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [auth],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": ["openid", "email", "profile"],
    });
    let obj = doc.as_object_mut().unwrap();
    for (key, value) in k.discovery_patch {
        if value.is_null() {
            obj.remove(&key);
        } else {
            obj.insert(key, value);
        }
    }
    Json(doc).into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Json<Value> {
    idp.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let keys = idp.keys.lock().unwrap().clone();
    Json(json!({"keys": [keys.rsa.jwk, keys.ec.jwk]}))
}

async fn authorize(State(idp): State<Arc<Idp>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let bad = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let param = |name: &str| q.get(name).filter(|v| !v.is_empty()).cloned();
    if param("response_type").as_deref() != Some("code") {
        return bad("response_type must be code");
    }
    if param("client_id").as_deref() != Some(CLIENT_ID) {
        return bad("unknown client_id");
    }
    let scope = param("scope").unwrap_or_default();
    if scope.split(' ').filter(|s| *s == "openid").count() != 1 {
        return bad("scope must hold openid once");
    }
    if param("code_challenge_method").as_deref() != Some("S256") {
        return bad("PKCE S256 is required");
    }
    let (Some(redirect_uri), Some(state), Some(nonce), Some(challenge)) =
        (param("redirect_uri"), param("state"), param("nonce"), param("code_challenge"))
    else {
        return bad("redirect_uri, state, nonce and code_challenge are required");
    };
    let Ok(mut location) = reqwest::Url::parse(&redirect_uri) else {
        return bad("redirect_uri is not a URL");
    };
    let code = random();
    idp.grants
        .lock()
        .unwrap()
        .insert(code.clone(), Grant { redirect_uri, nonce, code_challenge: challenge, used: false });
    *idp.last_authorize.lock().unwrap() = Some(q);
    location.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    (StatusCode::FOUND, [(header::LOCATION, location.to_string())]).into_response()
}

/// The client's credentials from `Authorization: Basic` (each half form-decoded, RFC 6749
/// §2.3.1) or from the body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    auth: ClientAuth,
) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_owned));
    match auth {
        ClientAuth::Basic if !form.contains_key("client_secret") => {
            let decoded = String::from_utf8(STANDARD.decode(basic?).ok()?).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            let unform = |s: &str| {
                let pair = format!("v={s}");
                reqwest::Url::parse(&format!("http://x/?{pair}"))
                    .ok()?
                    .query_pairs()
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((unform(id)?, unform(secret)?))
        }
        ClientAuth::Post if basic.is_none() => {
            Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone()))
        }
        _ => None,
    }
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    idp.counters.token.fetch_add(1, Ordering::SeqCst);
    let k = idp.knobs.lock().unwrap().clone();
    let invalid_grant = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    match client_credentials(&headers, &form, k.client_auth) {
        Some((id, secret)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"),
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "authorization_code only");
    }
    let nonce = {
        let mut grants = idp.grants.lock().unwrap();
        let Some(grant) = form.get("code").and_then(|c| grants.get_mut(c)) else {
            return invalid_grant("unknown code");
        };
        if grant.used {
            return invalid_grant("code already used");
        }
        grant.used = true;
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return invalid_grant("redirect_uri differs from the authorization request's");
        }
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if verifier.len() < 43 || b64(&Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
            return invalid_grant("PKCE verification failed");
        }
        grant.nonce.clone()
    };
    let access_token = random();
    idp.access_tokens.lock().unwrap().insert(access_token.clone(), k.user.clone());
    let id_token = id_token(&idp, &k, &nonce, &access_token);
    let body = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
        "id_token": id_token, "scope": "openid email profile"});
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn id_token(idp: &Idp, k: &Knobs, nonce: &str, access_token: &str) -> String {
    let keys = idp.keys.lock().unwrap().clone();
    let (key, kid) = match k.signing {
        Signing::Es256 => (&keys.ec, keys.ec.kid.clone()),
        Signing::ForeignKey => (&keys.foreign, keys.rsa.kid.clone()),
        Signing::UnknownKid => (&keys.rsa, "no-such-key".to_owned()),
        _ => (&keys.rsa, keys.rsa.kid.clone()),
    };
    let now = chrono::Utc::now().timestamp();
    let u = &k.user;
    let audience = match &k.audience {
        Some(a) if a.len() == 1 => json!(a[0]),
        Some(a) => json!(a),
        None => json!(CLIENT_ID),
    };
    // at_hash: the left half of the hash of the access token (OIDC Core 3.1.3.6).
    let at_hash =
        if k.wrong_at_hash { "AAAAAAAAAAAAAAAAAAAAAA".to_owned() } else { at_hash(key.alg, access_token) };
    let mut claims = json!({
        "iss": k.token_issuer.clone().unwrap_or_else(|| idp.issuer.clone()),
        "sub": u.sub, "aud": audience,
        "exp": now + k.expires_in, "iat": now + k.issued_at_offset, "auth_time": now,
        "nonce": k.nonce.clone().unwrap_or_else(|| nonce.to_owned()),
        "at_hash": at_hash, "name": u.name,
    });
    if let Some(azp) = &k.azp {
        claims["azp"] = json!(azp);
    }
    if k.email_in_id_token {
        claims["email"] = json!(u.email);
        claims["email_verified"] = json!(u.email_verified);
    }
    let mut head = jsonwebtoken::Header::new(key.alg);
    head.kid = Some(kid.clone());
    match k.signing {
        Signing::AlgNone => {
            let h = b64(json!({"alg": "none", "kid": kid}).to_string().as_bytes());
            format!("{h}.{}.", b64(claims.to_string().as_bytes()))
        }
        Signing::Hs256WithPublicKey => {
            head.alg = Algorithm::HS256;
            jsonwebtoken::encode(&head, &claims, &EncodingKey::from_secret(&keys.rsa.public_pem)).unwrap()
        }
        _ => jsonwebtoken::encode(&head, &claims, &key.encoding).unwrap(),
    }
}

fn at_hash(alg: Algorithm, access_token: &str) -> String {
    assert!(matches!(alg, Algorithm::RS256 | Algorithm::ES256), "SHA-256 algorithms only");
    let digest = Sha256::digest(access_token.as_bytes());
    b64(&digest[..16])
}

async fn userinfo(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> Response {
    idp.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned));
    let Some(user) = token.and_then(|t| idp.access_tokens.lock().unwrap().get(&t).cloned()) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "unknown access token");
    };
    let mut body = json!({"sub": user.sub, "email": user.email, "email_verified": user.email_verified,
        "name": user.name, "given_name": user.given_name, "family_name": user.family_name, "locale": "en"});
    let patch = idp.knobs.lock().unwrap().userinfo_patch.clone();
    body.as_object_mut().unwrap().extend(patch);
    Json(body).into_response()
}
