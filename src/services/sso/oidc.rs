//! The OpenID Connect relying party, with openidconnect: discovery, the authorization URL
//! (authorization code + PKCE S256, state, nonce) and the code exchange with id_token
//! verification against the IdP's JWKS. No storage: the caller keeps [`Pending`] single-use.
//!
//! Every answer is refused unless proven: the discovery document must name the configured
//! issuer exactly; the id_token must be signed (asymmetric algorithms only, by a key of the
//! IdP's JWKS) and name this client, that issuer and the nonce of this sign-in. Documents are
//! fetched through the caller's guarded client, bounded in size, and cached per URL.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreIdToken,
    CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreTokenResponse,
};
use openidconnect::url::{Host, Url};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::sso::SsoReason;
use crate::error::{AppError, AppResult, FieldIssue};
use crate::storage::documents::DocumentCache;
use fetch::{FetchError, Sender, fetch_failed, get_json, userinfo};

/// How long a discovery document or JWKS is trusted before it is fetched again.
pub const DOCUMENT_TTL: Duration = Duration::from_secs(3600);

/// How far in the future an id_token's `iat` may lie (the IdP's clock may run ahead).
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The signature algorithms an id_token may use: asymmetric only, so a key published in the
/// JWKS can never serve as an HMAC secret, and `none` is never one of them.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// What the `iat` check reports (openidconnect files every issue-time failure as `Expired`).
const IAT_IN_FUTURE: &str = "iat lies in the future";

/// The client openidconnect builds from discovery: authorization URL set, token and userinfo
/// URLs as the document says.
type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What Janua knows of one OIDC provider. `Debug` leaves the secret out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer identifier, compared exactly (no trailing-slash leniency) with the discovery
    /// document's and every id_token's `iss`.
    pub issuer: String,
    /// Default (also when empty): issuer + `/.well-known/openid-configuration`.
    pub discovery_url: Option<String>,
    pub client_id: String,
    /// Opened from its sealed form just for the request.
    pub client_secret: String,
    /// Asked for besides `openid`, which is always asked for first.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("discovery_url", &self.discovery_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A started authorization: kept by the caller under `state`, taken once at the callback.
/// `Debug` leaves the PKCE verifier out.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// The `state` sent to the IdP (CSRF token, 128 random bits): the key to store this under.
    pub state: String,
    /// The `nonce` the id_token must carry.
    pub nonce: String,
    /// The PKCE S256 code verifier, sent only to the token endpoint.
    pub pkce_verifier: String,
    /// The `redirect_uri` of the authorization request, sent again with the code.
    pub redirect_uri: String,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("pkce_verifier", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// The verified identity: the id_token's claims, completed from userinfo when it lacks email.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The id_token's `sub`: with the issuer, the stable key of the external account.
    pub subject: String,
    /// `email` as the IdP asserts it (not checked for syntax or verification here).
    pub email: Option<String>,
    /// `email_verified` (a boolean, or the strings "true"/"false" some IdPs send).
    pub email_verified: Option<bool>,
    /// Every claim (id_token, then userinfo), for attribute mapping.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Checks that the provider's discovery document can be read and names `issuer` (used when a
/// provider is created or changed). Both the document and the JWKS are fetched afresh (not from
/// the cache) and cached for later sign-ins.
pub async fn discover(http: &reqwest::Client, cache: &DocumentCache, s: &OidcSettings) -> AppResult<()> {
    let meta = provider(http, cache, s, true).await?;
    let keys = jwks(http, cache, meta.jwks_uri().url(), true).await?;
    if keys.keys().is_empty() {
        return Err(refuse(SsoReason::MalformedResponse, "the JWKS holds no usable key"));
    }
    Ok(())
}

/// The authorization URL for `redirect_uri`, and what the callback needs: a fresh `state`,
/// `nonce` and PKCE verifier (S256), the configured scopes with `openid` always first.
pub async fn authorization_url(
    http: &reqwest::Client,
    cache: &DocumentCache,
    s: &OidcSettings,
    redirect_uri: &str,
) -> AppResult<(String, Pending)> {
    let scopes = scopes(s)?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|_| AppError::field("redirect_uri", FieldIssue::InvalidFormat))?;
    let meta = provider(http, cache, s, false).await?;
    let client = client(meta, s).set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scopes(scopes.into_iter().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    let pending = Pending {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        redirect_uri: redirect_uri.to_owned(),
    };
    Ok((url.to_string(), pending))
}

/// Exchanges `code` and verifies the id_token (signature, `iss`, `aud`/`azp`, `exp`, `iat`,
/// `nonce`, `at_hash` when present). A token naming a key the cached JWKS lacks makes one fresh
/// fetch of the JWKS (the IdP rotated its keys), never more. When the id_token has no `email`,
/// userinfo fills the claims it lacks (its `sub` must be the id_token's).
pub async fn complete(
    http: &reqwest::Client,
    cache: &DocumentCache,
    s: &OidcSettings,
    pending: &Pending,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<Identity> {
    let redirect = RedirectUrl::new(pending.redirect_uri.clone())
        .map_err(|_| refuse(SsoReason::StateInvalid, "the pending redirect_uri is not a URL"))?;
    let meta = provider(http, cache, s, false).await?;
    let jwks_url = meta.jwks_uri().url().clone();
    let userinfo_url = meta.userinfo_endpoint().map(|u| u.url().clone());
    let client = client(meta, s).set_redirect_uri(redirect);

    let token: CoreTokenResponse = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| refuse(SsoReason::MalformedResponse, "the discovery document names no token endpoint"))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&Sender(http))
        .await
        .map_err(token_error)?;
    let id_token = token
        .id_token()
        .ok_or_else(|| refuse(SsoReason::MalformedResponse, "the token response has no id_token"))?;

    let check =
        Check { s, nonce: Nonce::new(pending.nonce.clone()), access_token: token.access_token(), now };
    let keys = jwks(http, cache, &jwks_url, false).await?;
    let verified = match check.verify(id_token, keys) {
        Err(SsoReason::UnknownKey) => {
            cache.forget(jwks_url.as_str());
            let keys = jwks(http, cache, &jwks_url, true).await?;
            check.verify(id_token, keys)
        }
        other => other,
    };
    let (subject, mut claims) = verified.map_err(|r| refuse(r, "the id_token was refused"))?;

    if !claims.get("email").is_some_and(Value::is_string)
        && let Some(url) = userinfo_url
    {
        let info = userinfo(http, &url, token.access_token()).await?;
        if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
            return Err(refuse(SsoReason::MalformedResponse, "userinfo names another subject"));
        }
        merge_missing(&mut claims, info);
    }
    Ok(identity(subject, claims))
}

/// The id_token checks of one sign-in.
struct Check<'a> {
    s: &'a OidcSettings,
    nonce: Nonce,
    access_token: &'a AccessToken,
    now: DateTime<Utc>,
}

impl Check<'_> {
    /// The subject and every claim of `token`, once it verifies against `keys`.
    fn verify(
        &self,
        token: &CoreIdToken,
        keys: CoreJsonWebKeySet,
    ) -> Result<(String, Map<String, Value>), SsoReason> {
        let issuer = IssuerUrl::new(self.s.issuer.clone()).map_err(|_| SsoReason::IssuerMismatch)?;
        let client_id = ClientId::new(self.s.client_id.clone());
        let now = self.now;
        // A public-client verifier: HS* is refused outright (the client secret is never a key).
        let verifier = CoreIdTokenVerifier::new_public_client(client_id.clone(), issuer, keys)
            .set_allowed_algs(ALLOWED_ALGS)
            // Extra audiences are judged below, by `azp`.
            .set_other_audience_verifier_fn(|_| true)
            .set_time_fn(move || now)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > now + CLOCK_SKEW { Err(IAT_IN_FUTURE.to_owned()) } else { Ok(()) }
            });
        let claims = token.claims(&verifier, &self.nonce).map_err(claims_error)?;
        check_authorized_party(claims, &client_id)?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = token.signing_alg().map_err(|_| SsoReason::SignatureInvalid)?;
            let key = token.signing_key(&verifier).map_err(|_| SsoReason::SignatureInvalid)?;
            let actual = AccessTokenHash::from_token(self.access_token, alg, key)
                .map_err(|_| SsoReason::MalformedResponse)?;
            if actual != *expected {
                return Err(SsoReason::MalformedResponse);
            }
        }
        let subject = claims.subject().as_str().to_owned();
        if subject.is_empty() {
            return Err(SsoReason::MalformedResponse);
        }
        Ok((subject, payload(token)?))
    }
}

/// OIDC Core 3.1.3.7 steps 4–5: with several audiences `azp` must be present, and any `azp`
/// must be this client.
fn check_authorized_party(claims: &CoreIdTokenClaims, client_id: &ClientId) -> Result<(), SsoReason> {
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id.as_str() => Err(SsoReason::AudienceMismatch),
        None if claims.audiences().len() > 1 => Err(SsoReason::AudienceMismatch),
        _ => Ok(()),
    }
}

/// The verified token's payload exactly as signed: every claim, standard or not.
fn payload(token: &CoreIdToken) -> Result<Map<String, Value>, SsoReason> {
    let compact = token.to_string();
    let part = compact.split('.').nth(1).ok_or(SsoReason::MalformedResponse)?;
    let bytes =
        URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| SsoReason::MalformedResponse)?;
    serde_json::from_slice(&bytes).map_err(|_| SsoReason::MalformedResponse)
}

fn claims_error(e: ClaimsVerificationError) -> SsoReason {
    tracing::info!(error = %e, "OIDC id_token refused");
    match e {
        ClaimsVerificationError::Expired(m) if m == IAT_IN_FUTURE => SsoReason::NotYetValid,
        ClaimsVerificationError::Expired(_) => SsoReason::Expired,
        ClaimsVerificationError::InvalidAudience(_) => SsoReason::AudienceMismatch,
        ClaimsVerificationError::InvalidIssuer(_) => SsoReason::IssuerMismatch,
        ClaimsVerificationError::InvalidNonce(_) => SsoReason::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
            SsoReason::UnknownKey
        }
        ClaimsVerificationError::SignatureVerification(_) => SsoReason::SignatureInvalid,
        _ => SsoReason::MalformedResponse,
    }
}

fn identity(subject: String, claims: Map<String, Value>) -> Identity {
    let email = claims.get("email").and_then(Value::as_str).map(str::to_owned);
    // Some IdPs (Cognito, older ADFS) send the boolean as a string.
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    };
    Identity { subject, email, email_verified, claims }
}

/// Adds the claims of `extra` that `claims` lacks (the id_token's own always win).
fn merge_missing(claims: &mut Map<String, Value>, extra: Map<String, Value>) {
    for (k, v) in extra {
        claims.entry(k).or_insert(v);
    }
}

/// The scopes to ask for besides `openid` (which openidconnect puts first): trimmed, without
/// duplicates; a scope that is not a scope token (RFC 6749 §3.3) is a validation error.
fn scopes(s: &OidcSettings) -> AppResult<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for scope in s.scopes.iter().map(|x| x.trim()).filter(|x| !x.is_empty() && *x != "openid") {
        let token_char =
            |c: char| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c);
        if !scope.chars().all(token_char) {
            return Err(AppError::field("scopes", FieldIssue::InvalidFormat));
        }
        if seen.insert(scope) {
            out.push(scope.to_owned());
        }
    }
    Ok(out)
}

/// The openidconnect client for one provider, with client_secret_basic unless the IdP only
/// accepts client_secret_post.
fn client(meta: CoreProviderMetadata, s: &OidcSettings) -> RpClient {
    let post_only = meta.token_endpoint_auth_methods_supported().is_some_and(|m| {
        !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            && m.contains(&CoreClientAuthMethod::ClientSecretPost)
    });
    let auth = if post_only { AuthType::RequestBody } else { AuthType::BasicAuth };
    CoreClient::from_provider_metadata(
        meta,
        ClientId::new(s.client_id.clone()),
        Some(ClientSecret::new(s.client_secret.clone())),
    )
    .set_auth_type(auth)
}

/// The provider's discovery document: cached unless `fresh`, naming the configured issuer
/// exactly, with fetchable endpoints.
async fn provider(
    http: &reqwest::Client,
    cache: &DocumentCache,
    s: &OidcSettings,
    fresh: bool,
) -> AppResult<CoreProviderMetadata> {
    let issuer =
        Url::parse(&s.issuer).map_err(|_| AppError::field("oidc_issuer", FieldIssue::InvalidFormat))?;
    if !fetchable(&issuer) {
        return Err(AppError::field("oidc_issuer", FieldIssue::UrlNotAllowed));
    }
    let url = match s.discovery_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => {
            Url::parse(u).map_err(|_| AppError::field("oidc_discovery_url", FieldIssue::InvalidFormat))?
        }
        None => Url::parse(&format!("{}/.well-known/openid-configuration", s.issuer.trim_end_matches('/')))
            .map_err(|_| AppError::field("oidc_issuer", FieldIssue::InvalidFormat))?,
    };
    if !fetchable(&url) {
        return Err(AppError::field("oidc_discovery_url", FieldIssue::UrlNotAllowed));
    }
    let cached = if fresh { None } else { cache.get(url.as_str(), DOCUMENT_TTL) };
    let from_cache = cached.is_some();
    let doc = match cached {
        Some(doc) => doc,
        None => get_json(http, &url).await?,
    };
    // The issuer is compared as the document spells it (OIDC Discovery §4.3: exactly).
    match doc.get("issuer").and_then(Value::as_str) {
        Some(named) if named == s.issuer => {}
        Some(_) => {
            return Err(refuse(SsoReason::IssuerMismatch, "the discovery document names another issuer"));
        }
        None => return Err(refuse(SsoReason::MalformedResponse, "the discovery document names no issuer")),
    }
    let meta: CoreProviderMetadata = serde_json::from_value(doc.clone())
        .map_err(|e| refuse(SsoReason::MalformedResponse, &format!("unreadable discovery document: {e}")))?;
    let endpoints = [
        Some(meta.authorization_endpoint().url()),
        meta.token_endpoint().map(|u| u.url()),
        Some(meta.jwks_uri().url()),
        meta.userinfo_endpoint().map(|u| u.url()),
    ];
    if endpoints.into_iter().flatten().any(|u| !fetchable(u)) {
        return Err(refuse(
            SsoReason::MalformedResponse,
            "the discovery document names a non-https endpoint",
        ));
    }
    if meta.token_endpoint().is_none() {
        return Err(refuse(SsoReason::MalformedResponse, "the discovery document names no token endpoint"));
    }
    if !from_cache {
        cache.put(url.as_str(), doc);
    }
    Ok(meta)
}

/// The IdP's JWKS, cached unless `fresh`.
async fn jwks(
    http: &reqwest::Client,
    cache: &DocumentCache,
    url: &Url,
    fresh: bool,
) -> AppResult<CoreJsonWebKeySet> {
    if !fresh && let Some(doc) = cache.get(url.as_str(), DOCUMENT_TTL) {
        return serde_json::from_value(doc)
            .map_err(|_| refuse(SsoReason::MalformedResponse, "unreadable JWKS"));
    }
    let doc = get_json(http, url).await?;
    let keys = serde_json::from_value(doc.clone())
        .map_err(|e| refuse(SsoReason::MalformedResponse, &format!("unreadable JWKS: {e}")))?;
    cache.put(url.as_str(), doc);
    Ok(keys)
}

fn token_error(e: RequestTokenError<FetchError, StandardErrorResponse<CoreErrorResponseType>>) -> AppError {
    match e {
        RequestTokenError::ServerResponse(r) => refuse(SsoReason::IdpError, &format!("token endpoint: {r}")),
        RequestTokenError::Request(e) => fetch_failed(&e),
        RequestTokenError::Parse(e, _) => {
            refuse(SsoReason::MalformedResponse, &format!("token response: {e}"))
        }
        RequestTokenError::Other(m) => refuse(SsoReason::MalformedResponse, &format!("token response: {m}")),
    }
}

/// `reason` as an error, with why in the log (never a token or secret).
fn refuse(reason: SsoReason, why: &str) -> AppError {
    tracing::info!(reason = reason.as_str(), why, "OIDC sign-in refused");
    AppError::from(reason)
}

/// A URL Janua may fetch from an IdP: https, or http to a loopback host (development; the
/// guarded client refuses loopback unless configured to allow it). No credentials in it.
fn fetchable(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    };
    let scheme = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback,
        _ => false,
    };
    scheme && url.username().is_empty() && url.password().is_none()
}

mod fetch;
#[cfg(test)]
mod tests;
