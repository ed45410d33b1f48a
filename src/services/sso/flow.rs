//! The SSO sign-in itself: start (an AuthnRequest or an authorization URL, with single-use
//! state), the IdP's answer (verified by [`saml`] or [`oidc`], replay and `InResponseTo`
//! checked here, cluster-wide through the ceremony store), the link to a Janua user (or
//! just-in-time provisioning), and the one-time code of a browser redirect.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use entities::{org_member, sso_identity, sso_provider, user};

use crate::context::RequestContext;
use crate::domain::sso::{SsoProtocol, SsoReason};
use crate::domain::webhooks::AddressPolicy;
use crate::domain::{Email, EventType, OrgRole, UserStatus};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::orgs::insert_member;
use crate::services::sign_in::{self, Authenticated};
use crate::services::sso::providers::{self, allowed_domains, oidc_settings, saml_settings, saml_sp};
use crate::services::sso::{oidc, saml};
use crate::services::unit_of_work::Write;
use crate::services::users::{NewUser, insert_user};
use crate::state::AppState;
use crate::storage::CeremonyKind;

/// How long the one-time code of a browser redirect lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// The longest a consumed assertion id is remembered (when its `NotOnOrAfter` is later).
const MAX_REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What `startSso` takes.
#[derive(Clone, Debug, Default)]
pub struct StartInput {
    pub provider_id: Option<Uuid>,
    pub email: Option<String>,
    /// Where the browser lands afterwards (same origin as the provider's `return_url`).
    pub return_url: Option<String>,
    /// OIDC only: the redirect URI registered at the IdP (default Janua's callback).
    pub redirect_uri: Option<String>,
}

/// Where to send the browser.
#[derive(Clone, Debug)]
pub enum Started {
    Saml { redirect_url: String, saml_request: String, relay_state: String },
    Oidc { authorization_url: String, state: String },
}

/// How the answer came: from a browser (answer with a redirect and a one-time code, when the
/// provider has a return URL) or from an API client (answer with tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Browser,
    Api,
}

/// The end of an SSO answer.
#[derive(Debug)]
pub enum Completed {
    SignedIn(Box<Authenticated>),
    /// A browser's sign-in: a one-time `code` for `POST /sso/exchange`, and where to send the
    /// browser with it (the return URL with `code` added), when the provider has a return URL.
    Code {
        code: String,
        redirect: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct PendingSaml {
    provider_id: Uuid,
    request_id: String,
    return_url: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct PendingOidc {
    provider_id: Uuid,
    pending: oidc::Pending,
    return_url: Option<String>,
}

/// What a one-time browser code stands for: a user the IdP signed in, not yet given a session.
#[derive(Serialize, Deserialize)]
struct CodeGrant {
    user_id: Uuid,
    provider_id: Uuid,
    protocol: String,
}

/// What an IdP asserted about the user, protocol-neutral.
struct Asserted {
    subject: String,
    email: Option<String>,
    /// Attribute or claim name → first value.
    attributes: serde_json::Map<String, serde_json::Value>,
}

async fn enabled_provider(state: &AppState, input: &StartInput) -> AppResult<sso_provider::Model> {
    let m = match (input.provider_id, input.email.as_deref()) {
        (Some(id), _) => {
            sso_provider::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?
        }
        (None, Some(email)) => providers::provider_for_email(state, email).await?,
        (None, None) => return Err(AppError::field("provider_id", FieldIssue::Required)),
    };
    if !m.enabled {
        return Err(SsoReason::ProviderDisabled.into());
    }
    Ok(m)
}

fn origin(u: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default())
}

/// The return URL of this sign-in: the caller's, when it has the origin of the provider's.
fn return_url(m: &sso_provider::Model, asked: Option<&str>) -> AppResult<Option<String>> {
    let Some(asked) = asked.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(m.return_url.clone());
    };
    let refuse = || AppError::field("return_url", FieldIssue::UrlNotAllowed);
    let asked_url =
        reqwest::Url::parse(asked).map_err(|_| AppError::field("return_url", FieldIssue::InvalidFormat))?;
    let allowed = m.return_url.as_deref().and_then(|r| reqwest::Url::parse(r).ok()).ok_or_else(refuse)?;
    if origin(&asked_url) != origin(&allowed) || asked_url.fragment().is_some() {
        return Err(refuse());
    }
    Ok(Some(asked_url.to_string()))
}

async fn put<T: Serialize>(
    state: &AppState,
    kind: CeremonyKind,
    key: &str,
    v: &T,
    ttl: Duration,
) -> AppResult<()> {
    let raw = serde_json::to_string(v).map_err(AppError::internal)?;
    state.ceremonies.put(kind, key, raw, ttl).await.map_err(crate::storage::unavailable)
}

async fn take<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    kind: CeremonyKind,
    key: &str,
) -> AppResult<Option<T>> {
    if key.is_empty() || key.len() > 200 {
        return Ok(None);
    }
    match state.ceremonies.take(kind, key).await.map_err(crate::storage::unavailable)? {
        Some(raw) => serde_json::from_str(&raw).map(Some).map_err(AppError::internal),
        None => Ok(None),
    }
}

/// Starts a sign-in at the provider (by id, or the one serving the email's domain).
pub async fn start(state: &AppState, input: StartInput) -> AppResult<Started> {
    let m = enabled_provider(state, &input).await?;
    let back = return_url(&m, input.return_url.as_deref())?;
    let ttl = state.config.sso_request_ttl;
    match SsoProtocol::parse(&m.protocol) {
        Some(SsoProtocol::Saml) => {
            let relay_state = random_token(24);
            let req = saml::authn_request(&saml_settings(&m), &saml_sp(state, m.id), &relay_state)?;
            let pending = PendingSaml { provider_id: m.id, request_id: req.id.clone(), return_url: back };
            put(state, CeremonyKind::SsoRequest, &format!("saml:{relay_state}"), &pending, ttl).await?;
            Ok(Started::Saml { redirect_url: req.redirect_url, saml_request: req.saml_request, relay_state })
        }
        Some(SsoProtocol::Oidc) => {
            let redirect_uri = match input.redirect_uri.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(r) => {
                    let policy = AddressPolicy { allow_private: true, ..providers::sso_policy(state) };
                    crate::domain::webhooks::parse_outbound_url("redirect_uri", r, policy)?.to_string()
                }
                None => providers::sp_endpoints(state, m.id).oidc_redirect_uri,
            };
            let settings = oidc_settings(state, &m)?;
            let (url, pending) =
                oidc::authorization_url(&state.sso_client, &state.documents, &settings, &redirect_uri)
                    .await?;
            let key = format!("oidc:{}", pending.state);
            let st = pending.state.clone();
            put(
                state,
                CeremonyKind::SsoRequest,
                &key,
                &PendingOidc { provider_id: m.id, pending, return_url: back },
                ttl,
            )
            .await?;
            Ok(Started::Oidc { authorization_url: url, state: st })
        }
        None => Err(AppError::internal("a provider with an unknown protocol")),
    }
}

/// The ACS: verifies a SAML Response and signs its user in.
pub async fn complete_saml(
    state: &AppState,
    ctx: &RequestContext,
    saml_response: &str,
    relay_state: Option<&str>,
    caller: Caller,
) -> AppResult<Completed> {
    if saml_response.trim().is_empty() {
        return Err(AppError::field("saml_response", FieldIssue::Required));
    }
    let result = async {
        let issuer = saml::issuer_of(saml_response)?;
        let candidates: Vec<sso_provider::Model> = sso_provider::Entity::find()
            .filter(sso_provider::Column::Protocol.eq(SsoProtocol::Saml.as_str()))
            .filter(sso_provider::Column::SamlEntityId.eq(issuer.as_str()))
            .all(&state.db)
            .await?;
        // The pending request, when the browser brought our RelayState, names the provider.
        let pending: Option<PendingSaml> = match relay_state.filter(|r| !r.is_empty()) {
            Some(r) => take(state, CeremonyKind::SsoRequest, &format!("saml:{r}")).await?,
            None => None,
        };
        let m = match &pending {
            Some(p) => {
                candidates.into_iter().find(|m| m.id == p.provider_id).ok_or(SsoReason::IssuerMismatch)?
            }
            None if candidates.len() == 1 => candidates.into_iter().next().expect("one"),
            None => return Err(AppError::from(SsoReason::UnknownRequest)),
        };
        if !m.enabled {
            return Err(SsoReason::ProviderDisabled.into());
        }
        let skew = state.config.sso_clock_skew;
        let a =
            saml::verify_response(saml_response, &saml_settings(&m), &saml_sp(state, m.id), Utc::now(), skew)
                .map_err(AppError::from)?;
        // Each assertion is consumed once, on every node.
        // Until the last instant the assertion would still be accepted (skew included).
        let window = a
            .not_on_or_after
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .map_or(MAX_REPLAY_WINDOW, |d| d.min(MAX_REPLAY_WINDOW));
        let fresh = state
            .ceremonies
            .claim(CeremonyKind::SsoSeen, &format!("saml:{}:{}", m.id, sha256_hex(&a.assertion_id)), window)
            .await
            .map_err(crate::storage::unavailable)?;
        if !fresh {
            return Err(SsoReason::Replayed.into());
        }
        match (&a.in_response_to, &pending) {
            (Some(irt), Some(p)) if *irt == p.request_id => {}
            (Some(_), _) => return Err(SsoReason::UnknownRequest.into()),
            (None, _) if !m.allow_idp_initiated => return Err(SsoReason::IdpInitiatedDisabled.into()),
            (None, _) => {}
        }
        let mut attributes = serde_json::Map::new();
        for (k, v) in &a.attributes {
            if let Some(first) = v.first() {
                attributes.insert(k.clone(), json!(first));
            }
        }
        let email = [
            "email",
            "mail",
            "emailaddress",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "urn:oid:0.9.2342.19200300.100.1.3",
        ]
        .iter()
        .find_map(|k| attributes.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .or_else(|| a.name_id.contains('@').then(|| a.name_id.clone()));
        let asserted = Asserted { subject: a.name_id.clone(), email, attributes };
        let back = pending.and_then(|p| p.return_url).or_else(|| m.return_url.clone());
        Ok::<_, AppError>((m, asserted, back))
    }
    .await;
    finish(state, ctx, SsoProtocol::Saml, result, caller).await
}

/// The OIDC callback: exchanges the code and signs the user in.
pub async fn complete_oidc(
    state: &AppState,
    ctx: &RequestContext,
    code: &str,
    oidc_state: &str,
    caller: Caller,
) -> AppResult<Completed> {
    if code.trim().is_empty() {
        return Err(AppError::field("code", FieldIssue::Required));
    }
    if oidc_state.trim().is_empty() {
        return Err(AppError::field("state", FieldIssue::Required));
    }
    let result = async {
        let p: PendingOidc = take(state, CeremonyKind::SsoRequest, &format!("oidc:{oidc_state}"))
            .await?
            .ok_or(SsoReason::StateInvalid)?;
        let m = sso_provider::Entity::find_by_id(p.provider_id)
            .one(&state.db)
            .await?
            .ok_or(SsoReason::StateInvalid)?;
        if !m.enabled {
            return Err(SsoReason::ProviderDisabled.into());
        }
        let fresh = state
            .ceremonies
            .claim(CeremonyKind::SsoSeen, &format!("oidc:{}:{}", m.id, sha256_hex(code)), MAX_REPLAY_WINDOW)
            .await
            .map_err(crate::storage::unavailable)?;
        if !fresh {
            return Err(SsoReason::Replayed.into());
        }
        let settings = oidc_settings(state, &m)?;
        let id = oidc::complete(&state.sso_client, &state.documents, &settings, &p.pending, code, Utc::now())
            .await?;
        // An address the IdP says it has not verified is not one to sign in by.
        let email = id.email.clone().filter(|_| id.email_verified != Some(false));
        let asserted = Asserted { subject: id.subject.clone(), email, attributes: id.claims.clone() };
        Ok::<_, AppError>((m, asserted, p.return_url))
    }
    .await;
    finish(state, ctx, SsoProtocol::Oidc, result, caller).await
}

/// Audits a failed SSO sign-in (like a failed password sign-in) and passes the error on.
async fn failed(
    state: &AppState,
    ctx: &RequestContext,
    protocol: SsoProtocol,
    provider: Option<&sso_provider::Model>,
    e: AppError,
) -> AppError {
    let reason = e.details.as_ref().and_then(|d| d["reason"].as_str()).unwrap_or(e.code.as_str()).to_owned();
    metrics::counter!("janua_sso_signins_total", "outcome" => "failure").increment(1);
    tracing::info!(reason = %reason, protocol = protocol.as_str(), "SSO sign-in refused");
    let write = async {
        let mut w = Write::begin(state, ctx).await?;
        w.record(Change {
            event: EventType::SsoSigninFailed,
            target: provider.map(|m| ("sso_provider", m.id.to_string())),
            subject_user: None,
            acting_user: None,
            organization: provider.map(|m| m.organization_id),
            data: json!({"protocol": protocol.as_str(), "reason": reason, "provider_id": provider.map(|m| m.id)}),
        })
        .await?;
        w.commit().await
    };
    if let Err(audit) = write.await {
        tracing::warn!(error = %audit.message(crate::error::Locale::En), "a failed SSO sign-in could not be audited");
    }
    e
}

async fn finish(
    state: &AppState,
    ctx: &RequestContext,
    protocol: SsoProtocol,
    result: AppResult<(sso_provider::Model, Asserted, Option<String>)>,
    caller: Caller,
) -> AppResult<Completed> {
    let (m, asserted, back) = match result {
        Ok(r) => r,
        Err(e) if e.code == ErrorCode::ServiceUnavailable || e.code == ErrorCode::InternalError => {
            return Err(e);
        }
        Err(e) => return Err(failed(state, ctx, protocol, None, e).await),
    };
    let outcome = async {
        let mut w = Write::begin(state, ctx).await?;
        let u = match link(&mut w, &m, &asserted).await {
            Ok(u) => u,
            Err(e) => {
                w.rollback().await?;
                return Err(e);
            }
        };
        if caller == Caller::Browser {
            w.commit().await?;
            let code = random_token(32);
            let grant =
                CodeGrant { user_id: u.id, provider_id: m.id, protocol: protocol.as_str().to_owned() };
            put(state, CeremonyKind::SsoCode, &sha256_hex(&code), &grant, CODE_TTL).await?;
            let redirect = match back.as_deref() {
                Some(back) => {
                    let mut url = reqwest::Url::parse(back).map_err(AppError::internal)?;
                    url.query_pairs_mut().append_pair("code", &code);
                    Some(url.to_string())
                }
                None => None,
            };
            return Ok(Completed::Code { code, redirect });
        }
        let out = sign_in::with_sso(&mut w, state, ctx, u, &m, protocol).await?;
        w.commit().await?;
        Ok(Completed::SignedIn(Box::new(out)))
    }
    .await;
    match outcome {
        Ok(o) => Ok(o),
        Err(e) if e.code == ErrorCode::SsoError => Err(failed(state, ctx, protocol, Some(&m), e).await),
        Err(e) => Err(e),
    }
}

/// Finds (or, with JIT, creates) the Janua user of an asserted identity, in the write `w`.
/// Linking by email happens only for a user who is already a member of the provider's
/// organization: an IdP vouches for its own organization's people, not for anyone's account.
async fn link(w: &mut Write<'_>, m: &sso_provider::Model, a: &Asserted) -> AppResult<user::Model> {
    let now = Utc::now();
    let email = mapped(m, a, "email").or_else(|| a.email.clone()).ok_or(SsoReason::EmailMissing)?;
    let email = Email::parse(&email).map_err(|_| SsoReason::EmailMissing)?;
    let domain = email.as_str().rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let domains = allowed_domains(m);
    if !domains.is_empty() && !domains.contains(&domain) {
        return Err(SsoReason::DomainNotAllowed.into());
    }
    if a.subject.is_empty() || a.subject.len() > 1024 {
        return Err(SsoReason::MalformedResponse.into());
    }
    let linked = sso_identity::Entity::find()
        .filter(sso_identity::Column::ProviderId.eq(m.id))
        .filter(sso_identity::Column::Subject.eq(a.subject.as_str()))
        .one(w.tx())
        .await?;
    let u = match linked {
        Some(link) => {
            let mut am: sso_identity::ActiveModel = link.clone().into();
            am.last_signed_in_at = Set(now);
            am.email = Set(Some(email.as_str().to_owned()));
            am.update(w.tx()).await?;
            user::Entity::find_by_id(link.user_id).one(w.tx()).await?.ok_or(SsoReason::UserNotProvisioned)?
        }
        None => {
            let existing =
                user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(w.tx()).await?;
            let u = match existing {
                Some(u) => {
                    let member = org_member::Entity::find()
                        .filter(org_member::Column::OrganizationId.eq(m.organization_id))
                        .filter(org_member::Column::UserId.eq(u.id))
                        .one(w.tx())
                        .await?;
                    if member.is_none() {
                        return Err(SsoReason::UserNotProvisioned.into());
                    }
                    u
                }
                None if m.jit_provisioning => provision(w, m, a, &email).await?,
                None => return Err(SsoReason::UserNotProvisioned.into()),
            };
            sso_identity::ActiveModel {
                id: Set(Uuid::now_v7()),
                provider_id: Set(m.id),
                user_id: Set(u.id),
                subject: Set(a.subject.clone()),
                email: Set(Some(email.as_str().to_owned())),
                created_at: Set(now),
                last_signed_in_at: Set(now),
            }
            .insert(w.tx())
            .await?;
            u
        }
    };
    if !UserStatus::Active.is(&u.status) {
        return Err(SsoReason::AccountDisabled.into());
    }
    Ok(u)
}

/// The value of Janua field `field` under the provider's attribute mapping.
fn mapped(m: &sso_provider::Model, a: &Asserted, field: &str) -> Option<String> {
    let key = m.attribute_mapping.get(field).and_then(|v| v.as_str())?;
    let v = a.attributes.get(key)?;
    let s = v.as_str().map(str::to_owned).or_else(|| v.as_array()?.first()?.as_str().map(str::to_owned))?;
    let s = s.trim().chars().take(200).collect::<String>();
    (!s.is_empty()).then_some(s)
}

/// Creates the user of a first SSO sign-in (email verified by the IdP, no password) as a
/// member of the provider's organization with its default role.
async fn provision(
    w: &mut Write<'_>,
    m: &sso_provider::Model,
    a: &Asserted,
    email: &Email,
) -> AppResult<user::Model> {
    let standard = |k: &str| {
        a.attributes.get(k).and_then(|v| v.as_str()).map(|s| s.chars().take(200).collect::<String>())
    };
    let first = mapped(m, a, "first_name").or_else(|| standard("given_name"));
    let last = mapped(m, a, "last_name").or_else(|| standard("family_name"));
    let name = mapped(m, a, "name").or_else(|| standard("name")).or_else(|| match (&first, &last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        _ => None,
    });
    let u = insert_user(
        w.tx(),
        NewUser {
            email: email.as_str().to_owned(),
            name,
            first_name: first,
            last_name: last,
            email_verified: true,
            ..NewUser::default()
        },
    )
    .await?;
    let role = OrgRole::parse(&m.default_role).filter(|r| *r != OrgRole::Owner).unwrap_or(OrgRole::Member);
    insert_member(w.tx(), m.organization_id, u.id, role).await?;
    w.record(Change {
        event: EventType::UserCreated,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: Some(m.organization_id),
        data: json!({"user_id": u.id, "email": u.email, "method": "sso", "provider_id": m.id}),
    })
    .await?;
    w.record(Change {
        event: EventType::OrganizationMemberAdded,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: None,
        organization: Some(m.organization_id),
        data: json!({"organization_id": m.organization_id, "user_id": u.id, "role": role.as_str(), "via": "sso"}),
    })
    .await?;
    Ok(u)
}

/// `POST /sso/exchange`: the one-time code of a browser redirect (single use, 60 s) for tokens.
pub async fn exchange(state: &AppState, ctx: &RequestContext, code: &str) -> AppResult<Authenticated> {
    if code.trim().is_empty() {
        return Err(AppError::field("code", FieldIssue::Required));
    }
    let grant: CodeGrant =
        take(state, CeremonyKind::SsoCode, &sha256_hex(code.trim())).await?.ok_or(SsoReason::CodeInvalid)?;
    let m = sso_provider::Entity::find_by_id(grant.provider_id)
        .one(&state.db)
        .await?
        .ok_or(SsoReason::CodeInvalid)?;
    let protocol = SsoProtocol::parse(&grant.protocol).unwrap_or(SsoProtocol::Saml);
    let mut w = Write::begin(state, ctx).await?;
    let u = user::Entity::find_by_id(grant.user_id).one(w.tx()).await?.ok_or(SsoReason::CodeInvalid)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(SsoReason::AccountDisabled.into());
    }
    let out = sign_in::with_sso(&mut w, state, ctx, u, &m, protocol).await?;
    w.commit().await?;
    Ok(out)
}
