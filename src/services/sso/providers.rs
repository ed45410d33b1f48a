//! An organization's identity providers: created, changed and removed by its admins (audited
//! `sso.provider.*`), found by email domain for anyone (secret-free). The OIDC client secret is
//! sealed at rest and never returned; SAML providers may come from metadata (XML or a URL).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use entities::{org_member, sso_provider};

use crate::context::RequestContext;
use crate::domain::sso::SsoProtocol;
use crate::domain::{Email, EventType, OrgRole};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::services::audit::Change;
use crate::services::authz::{self, Action};
use crate::services::sso::settings::{DEFAULT_SCOPES, apply, strings};
use crate::services::sso::{oidc, saml};

pub use crate::services::sso::settings::{MAPPED_FIELDS, ProviderInput, sso_policy};
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// A provider as its organization's admins see it (never the client secret).
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub protocol: SsoProtocol,
    pub enabled: bool,
    pub jit_provisioning: bool,
    pub default_role: OrgRole,
    pub allowed_domains: Vec<String>,
    /// Janua field → IdP attribute or claim.
    pub attribute_mapping: Vec<(String, String)>,
    pub return_url: Option<String>,
    pub enforce_sso: bool,
    pub saml_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_slo_url: Option<String>,
    pub saml_certificates: Vec<String>,
    pub saml_certificate_fingerprint: Option<String>,
    pub saml_want_assertions_signed: bool,
    pub saml_metadata_url: Option<String>,
    pub allow_idp_initiated: bool,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    /// Whether a client secret is stored (it is never shown).
    pub oidc_client_secret_set: bool,
    pub oidc_discovery_url: Option<String>,
    pub scopes: Vec<String>,
    /// This server as the provider's SP: entity id, ACS URL, metadata URL, OIDC redirect URI.
    pub sp: SpEndpoints,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

/// Where an identity provider reaches Janua for one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpEndpoints {
    pub sp_entity_id: String,
    pub acs_url: String,
    pub metadata_url: String,
    pub oidc_redirect_uri: String,
}

/// The SP endpoints of provider `id`.
pub fn sp_endpoints(state: &AppState, id: Uuid) -> SpEndpoints {
    let base = state.config.public_base();
    SpEndpoints {
        sp_entity_id: format!("{base}/api/v1/sso/saml/metadata/{id}"),
        acs_url: format!("{base}/api/v1/sso/saml"),
        metadata_url: format!("{base}/api/v1/sso/saml/metadata/{id}"),
        oidc_redirect_uri: format!("{base}/api/v1/sso/oidc/callback"),
    }
}

impl ProviderView {
    fn new(state: &AppState, m: sso_provider::Model) -> Self {
        let certificates = strings(&m.saml_certificates);
        let fingerprint = certificates.first().and_then(|c| saml::certificate_fingerprint(c).ok());
        let mapping = m
            .attribute_mapping
            .as_object()
            .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        Self {
            sp: sp_endpoints(state, m.id),
            id: m.id,
            organization_id: m.organization_id,
            name: m.name,
            protocol: SsoProtocol::parse(&m.protocol).unwrap_or(SsoProtocol::Saml),
            enabled: m.enabled,
            jit_provisioning: m.jit_provisioning,
            default_role: OrgRole::parse(&m.default_role).unwrap_or(OrgRole::Member),
            allowed_domains: strings(&m.allowed_domains),
            attribute_mapping: mapping,
            return_url: m.return_url,
            enforce_sso: m.enforce_sso,
            saml_entity_id: m.saml_entity_id,
            saml_sso_url: m.saml_sso_url,
            saml_slo_url: m.saml_slo_url,
            saml_certificates: certificates,
            saml_certificate_fingerprint: fingerprint,
            saml_want_assertions_signed: m.saml_want_assertions_signed,
            saml_metadata_url: m.saml_metadata_url,
            allow_idp_initiated: m.allow_idp_initiated,
            oidc_issuer: m.oidc_issuer,
            oidc_client_id: m.oidc_client_id,
            oidc_client_secret_set: m.oidc_client_secret_sealed.is_some(),
            oidc_discovery_url: m.oidc_discovery_url,
            scopes: strings(&m.scopes),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The secret-free answer of `GET /sso/providers?email=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderHint {
    pub provider_id: Uuid,
    pub protocol: SsoProtocol,
    pub organization_id: Uuid,
    pub name: String,
}

/// `GET /sso/config`: how an organization's IdP reaches Janua, and its providers.
#[derive(Clone, Debug)]
pub struct SsoConfig {
    /// The organization asked for (else the providers of every organization the caller administers).
    pub organization_id: Option<Uuid>,
    pub acs_url: String,
    pub oidc_redirect_uri: String,
    pub providers: Vec<ProviderView>,
}

/// The settings the OIDC relying party needs, the secret opened for this use only.
pub fn oidc_settings(state: &AppState, m: &sso_provider::Model) -> AppResult<oidc::OidcSettings> {
    let secret = match &m.oidc_client_secret_sealed {
        Some(sealed) => String::from_utf8(state.master_key.open(sealed).map_err(AppError::internal)?)
            .map_err(AppError::internal)?,
        None => String::new(),
    };
    Ok(oidc::OidcSettings {
        issuer: m.oidc_issuer.clone().unwrap_or_default(),
        discovery_url: m.oidc_discovery_url.clone(),
        client_id: m.oidc_client_id.clone().unwrap_or_default(),
        client_secret: secret,
        scopes: strings(&m.scopes),
    })
}

/// The IdP as the SAML service provider checks it.
pub fn saml_settings(m: &sso_provider::Model) -> saml::IdpSettings {
    saml::IdpSettings {
        entity_id: m.saml_entity_id.clone().unwrap_or_default(),
        sso_url: m.saml_sso_url.clone().unwrap_or_default(),
        slo_url: m.saml_slo_url.clone(),
        certificates: strings(&m.saml_certificates),
        want_assertions_signed: m.saml_want_assertions_signed,
        allow_idp_initiated: m.allow_idp_initiated,
    }
}

/// This server as provider `id`'s SAML SP.
pub fn saml_sp(state: &AppState, id: Uuid) -> saml::SpSettings {
    let sp = sp_endpoints(state, id);
    saml::SpSettings { entity_id: sp.sp_entity_id, acs_url: sp.acs_url }
}

/// The allowed domains of a provider row.
pub fn allowed_domains(m: &sso_provider::Model) -> Vec<String> {
    strings(&m.allowed_domains)
}

async fn authorize_org(state: &AppState, ctx: &RequestContext, org: Uuid) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    let role = authz::role_in(state, &p, org).await?;
    authz::authorize(&p, &Action::ManageSso { org, role })
}

/// A provider its caller may manage; anything else is reported like a missing one (a member
/// of the organization learns it exists: 403).
async fn managed(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<sso_provider::Model> {
    let m = sso_provider::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    authorize_org(state, ctx, m.organization_id).await.map_err(|e| match e.code {
        ErrorCode::InsufficientPermissions | ErrorCode::AuthenticationRequired | ErrorCode::Forbidden => e,
        _ => AppError::new(ErrorCode::NotFound),
    })?;
    Ok(m)
}

/// No two organizations claim one email domain: SSO discovery and enforcement must point at
/// exactly one organization.
async fn check_domains_free(state: &AppState, m: &sso_provider::Model) -> AppResult<()> {
    let mine = strings(&m.allowed_domains);
    if mine.is_empty() {
        return Ok(());
    }
    let others = sso_provider::Entity::find()
        .filter(sso_provider::Column::OrganizationId.ne(m.organization_id))
        .all(&state.db)
        .await?;
    if others.iter().any(|o| strings(&o.allowed_domains).iter().any(|d| mine.contains(d))) {
        return Err(AppError::new(ErrorCode::Conflict)
            .with_details(json!({ "fields": { "allowed_domains": "claimed by another organization" } })));
    }
    Ok(())
}

fn audit_data(v: &ProviderView) -> Value {
    json!({ "provider_id": v.id, "name": v.name, "protocol": v.protocol.as_str(), "enabled": v.enabled })
}

async fn check_reachable(state: &AppState, m: &sso_provider::Model) -> AppResult<()> {
    if SsoProtocol::parse(&m.protocol) == Some(SsoProtocol::Oidc) {
        oidc::discover(&state.sso_client, &state.documents, &oidc_settings(state, m)?).await?;
    }
    Ok(())
}

/// Creates a provider for `input.organization_id` (its admins and owners).
pub async fn create_provider(
    state: &AppState,
    ctx: &RequestContext,
    input: ProviderInput,
) -> AppResult<ProviderView> {
    let org =
        input.organization_id.ok_or_else(|| AppError::field("organization_id", FieldIssue::Required))?;
    authorize_org(state, ctx, org).await?;
    let protocol = match input.protocol.as_deref().map(str::trim) {
        Some(p) => {
            SsoProtocol::parse(p).ok_or_else(|| AppError::field("protocol", FieldIssue::InvalidFormat))?
        }
        None => return Err(AppError::field("protocol", FieldIssue::Required)),
    };
    if input.name.is_none() {
        return Err(AppError::field("name", FieldIssue::Required));
    }
    let now = Utc::now();
    let mut m = sso_provider::Model {
        id: Uuid::now_v7(),
        organization_id: org,
        name: String::new(),
        protocol: protocol.as_str().to_owned(),
        enabled: true,
        jit_provisioning: true,
        default_role: OrgRole::Member.as_str().to_owned(),
        allowed_domains: json!([]),
        attribute_mapping: json!({}),
        return_url: None,
        enforce_sso: false,
        saml_entity_id: None,
        saml_sso_url: None,
        saml_slo_url: None,
        saml_certificates: json!([]),
        saml_want_assertions_signed: true,
        saml_metadata_url: None,
        allow_idp_initiated: false,
        oidc_issuer: None,
        oidc_client_id: None,
        oidc_client_secret_sealed: None,
        oidc_discovery_url: None,
        scopes: json!(DEFAULT_SCOPES),
        created_at: now,
        updated_at: now,
    };
    apply(state, &mut m, input).await?;
    check_domains_free(state, &m).await?;
    check_reachable(state, &m).await?;
    let mut w = Write::begin(state, ctx).await?;
    let m = sso_provider::ActiveModel::from(m).reset_all().insert(w.tx()).await?;
    let view = ProviderView::new(state, m);
    w.record(change(EventType::SsoProviderCreated, &view)).await?;
    w.commit().await?;
    Ok(view)
}

fn change(event: EventType, v: &ProviderView) -> Change {
    Change {
        event,
        target: Some(("sso_provider", v.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(v.organization_id),
        data: audit_data(v),
    }
}

/// Changes a provider (its protocol and organization stay).
pub async fn update_provider(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    mut input: ProviderInput,
) -> AppResult<ProviderView> {
    let stored = managed(state, ctx, id).await?;
    if input.protocol.as_deref().is_some_and(|p| p.trim() != stored.protocol) {
        return Err(AppError::field("protocol", FieldIssue::InvalidFormat));
    }
    if input.organization_id.is_some_and(|o| o != stored.organization_id) {
        return Err(AppError::field("organization_id", FieldIssue::InvalidFormat));
    }
    input.protocol = None;
    let mut m = stored.clone();
    apply(state, &mut m, input).await?;
    check_domains_free(state, &m).await?;
    if m.oidc_issuer != stored.oidc_issuer || m.oidc_discovery_url != stored.oidc_discovery_url {
        check_reachable(state, &m).await?;
    }
    m.updated_at = Utc::now();
    let mut w = Write::begin(state, ctx).await?;
    // Every column is written: the row was read and checked whole.
    let m = sso_provider::ActiveModel::from(m).reset_all().update(w.tx()).await?;
    let view = ProviderView::new(state, m);
    w.record(change(EventType::SsoProviderUpdated, &view)).await?;
    w.commit().await?;
    Ok(view)
}

/// Removes a provider and the identities linked through it (their users stay).
pub async fn delete_provider(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<()> {
    let m = managed(state, ctx, id).await?;
    let view = ProviderView::new(state, m);
    let mut w = Write::begin(state, ctx).await?;
    entities::sso_identity::Entity::delete_many()
        .filter(entities::sso_identity::Column::ProviderId.eq(id))
        .exec(w.tx())
        .await?;
    sso_provider::Entity::delete_by_id(id).exec(w.tx()).await?;
    w.record(change(EventType::SsoProviderDeleted, &view)).await?;
    w.commit().await?;
    Ok(())
}

/// One provider.
pub async fn get_provider(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<ProviderView> {
    Ok(ProviderView::new(state, managed(state, ctx, id).await?))
}

/// The providers of `org`, or of every organization the caller administers.
pub async fn list_providers(
    state: &AppState,
    ctx: &RequestContext,
    org: Option<Uuid>,
) -> AppResult<Vec<ProviderView>> {
    let orgs = match org {
        Some(org) => {
            authorize_org(state, ctx, org).await?;
            vec![org]
        }
        None => {
            let p = authz::principal(state, ctx).await?;
            if p.is_admin() {
                let all = sso_provider::Entity::find()
                    .order_by_asc(sso_provider::Column::Id)
                    .all(&state.db)
                    .await?;
                return Ok(all.into_iter().map(|m| ProviderView::new(state, m)).collect());
            }
            authz::authorize(&p, &Action::CreateOrganization)?;
            authz::administered_orgs(&state.db, p.user_id().unwrap_or_default()).await?
        }
    };
    let rows = sso_provider::Entity::find()
        .filter(sso_provider::Column::OrganizationId.is_in(orgs))
        .order_by_asc(sso_provider::Column::Id)
        .all(&state.db)
        .await?;
    Ok(rows.into_iter().map(|m| ProviderView::new(state, m)).collect())
}

/// The enabled provider serving `email`'s domain (public: no secrets); 404 when none does.
pub async fn provider_for_email(state: &AppState, email: &str) -> AppResult<sso_provider::Model> {
    let email = Email::parse(email)?;
    let domain = email.as_str().rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let rows = sso_provider::Entity::find()
        .filter(sso_provider::Column::Enabled.eq(true))
        .order_by_asc(sso_provider::Column::Id)
        .all(&state.db)
        .await?;
    rows.into_iter()
        .find(|m| strings(&m.allowed_domains).contains(&domain))
        .ok_or_else(|| ErrorCode::NotFound.into())
}

/// `GET /sso/providers?email=`.
pub async fn discover_by_email(state: &AppState, email: &str) -> AppResult<ProviderHint> {
    let m = provider_for_email(state, email).await?;
    Ok(ProviderHint {
        provider_id: m.id,
        protocol: SsoProtocol::parse(&m.protocol).unwrap_or(SsoProtocol::Saml),
        organization_id: m.organization_id,
        name: m.name,
    })
}

/// `GET /sso/config?organization_id=`.
pub async fn sso_config(state: &AppState, ctx: &RequestContext, org: Option<Uuid>) -> AppResult<SsoConfig> {
    let providers = list_providers(state, ctx, org).await?;
    let base = state.config.public_base();
    Ok(SsoConfig {
        organization_id: org,
        acs_url: format!("{base}/api/v1/sso/saml"),
        oidc_redirect_uri: format!("{base}/api/v1/sso/oidc/callback"),
        providers,
    })
}

/// SP metadata XML of provider `id` (public).
pub async fn sp_metadata(state: &AppState, id: Uuid) -> AppResult<String> {
    let m = sso_provider::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    if SsoProtocol::parse(&m.protocol) != Some(SsoProtocol::Saml) {
        return Err(ErrorCode::NotFound.into());
    }
    Ok(saml::sp_metadata(&saml_sp(state, id)))
}

/// Whether `email`'s organization requires SSO for it (`enforce_sso` on an enabled provider
/// serving its domain, and the user a member of that organization): then a password or
/// passkey sign-in is refused with `SSO_ERROR` / `sso_required`.
pub async fn password_refused(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    email: &str,
) -> AppResult<bool> {
    let Some((_, domain)) = email.rsplit_once('@') else { return Ok(false) };
    // One query: the enforcing providers of the organizations the user belongs to.
    let orgs = org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(user_id))
        .select_only()
        .column(org_member::Column::OrganizationId)
        .into_query();
    let enforcing = sso_provider::Entity::find()
        .filter(sso_provider::Column::Enabled.eq(true))
        .filter(sso_provider::Column::EnforceSso.eq(true))
        .filter(sso_provider::Column::OrganizationId.in_subquery(orgs))
        .all(db)
        .await?;
    Ok(enforcing.iter().any(|m| strings(&m.allowed_domains).iter().any(|d| d == domain)))
}
