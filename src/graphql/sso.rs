//! `ssoProviders`, `ssoProvider`, `ssoProviderForEmail`, `ssoConfig`, `createSsoProvider`,
//! `updateSsoProvider`, `deleteSsoProvider`, `startSso`, `completeSamlSso`, `completeOidcSso`,
//! `exchangeSsoCode`, and their types. The OIDC client secret is accepted, never returned.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use super::types::{ActionPayload, AuthPayload};
use crate::domain::parse_id;
use crate::error::AppError;
use crate::services::sso::flow::{self, Caller, Completed, StartInput, Started};
use crate::services::sso::providers::{
    self, ProviderHint, ProviderInput, ProviderView, SsoConfig as ConfigView,
};

/// An organization's identity provider (SAML or OIDC), as its admins see it.
#[derive(SimpleObject, Clone)]
pub struct SsoProvider {
    pub id: ID,
    pub organization_id: ID,
    pub name: String,
    /// `saml` or `oidc`.
    pub protocol: String,
    pub enabled: bool,
    /// Create unknown users at their first sign-in (email verified, `defaultRole`).
    pub jit_provisioning: bool,
    pub default_role: String,
    /// Email domains this provider serves (discovery, enforcement, and who may sign in).
    pub allowed_domains: Vec<String>,
    /// Janua field (`email`, `first_name`, `last_name`, `name`) → IdP attribute or claim.
    pub attribute_mapping: Json<BTreeMap<String, String>>,
    /// Where a browser lands after signing in, with a one-time `code` for `exchangeSsoCode`.
    pub return_url: Option<String>,
    /// Members in the allowed domains may not sign in with a password.
    pub enforce_sso: bool,
    pub saml_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_slo_url: Option<String>,
    /// The first signing certificate (PEM).
    pub saml_certificate: Option<String>,
    /// Every signing certificate accepted (rotation).
    pub saml_certificates: Vec<String>,
    /// SHA-256 of the first certificate.
    pub saml_certificate_fingerprint: Option<String>,
    pub saml_want_assertions_signed: bool,
    pub saml_metadata_url: Option<String>,
    pub allow_idp_initiated: bool,
    /// This server's SAML entity id for the provider.
    pub sp_entity_id: String,
    /// The Assertion Consumer Service URL.
    pub saml_acs_url: String,
    /// This server's SP metadata for the provider.
    pub sp_metadata_url: String,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    /// Whether a client secret is stored (it is never shown).
    pub oidc_client_secret_set: bool,
    pub oidc_discovery_url: Option<String>,
    /// The redirect URI to register at the IdP.
    pub oidc_redirect_uri: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProviderView> for SsoProvider {
    fn from(v: ProviderView) -> Self {
        Self {
            id: ID(v.id.to_string()),
            organization_id: ID(v.organization_id.to_string()),
            name: v.name,
            protocol: v.protocol.as_str().to_owned(),
            enabled: v.enabled,
            jit_provisioning: v.jit_provisioning,
            default_role: v.default_role.as_str().to_owned(),
            allowed_domains: v.allowed_domains,
            attribute_mapping: Json(v.attribute_mapping.into_iter().collect()),
            return_url: v.return_url,
            enforce_sso: v.enforce_sso,
            saml_entity_id: v.saml_entity_id,
            saml_sso_url: v.saml_sso_url,
            saml_slo_url: v.saml_slo_url,
            saml_certificate: v.saml_certificates.first().cloned(),
            saml_certificates: v.saml_certificates,
            saml_certificate_fingerprint: v.saml_certificate_fingerprint,
            saml_want_assertions_signed: v.saml_want_assertions_signed,
            saml_metadata_url: v.saml_metadata_url,
            allow_idp_initiated: v.allow_idp_initiated,
            sp_entity_id: v.sp.sp_entity_id,
            saml_acs_url: v.sp.acs_url,
            sp_metadata_url: v.sp.metadata_url,
            oidc_issuer: v.oidc_issuer,
            oidc_client_id: v.oidc_client_id,
            oidc_client_secret_set: v.oidc_client_secret_set,
            oidc_discovery_url: v.oidc_discovery_url,
            oidc_redirect_uri: v.sp.oidc_redirect_uri,
            scopes: v.scopes,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

/// Which provider serves an email's domain (public: nothing secret).
#[derive(SimpleObject, Clone)]
pub struct SsoProviderHint {
    pub provider_id: ID,
    pub protocol: String,
    pub organization_id: ID,
    pub name: String,
}

impl From<ProviderHint> for SsoProviderHint {
    fn from(h: ProviderHint) -> Self {
        Self {
            provider_id: ID(h.provider_id.to_string()),
            protocol: h.protocol.as_str().to_owned(),
            organization_id: ID(h.organization_id.to_string()),
            name: h.name,
        }
    }
}

/// How an organization's identity providers reach Janua.
#[derive(SimpleObject, Clone)]
pub struct SsoConfig {
    /// The organization asked for; without one, the answer covers every organization you administer.
    pub organization_id: Option<ID>,
    /// The SAML Assertion Consumer Service URL (every provider).
    pub acs_url: String,
    /// The OIDC redirect URI to register at the IdP.
    pub oidc_redirect_uri: String,
    /// The first SAML provider's entity id and metadata URL, when there is one.
    pub sp_entity_id: Option<String>,
    pub sp_metadata_url: Option<String>,
    /// The first provider's provisioning settings, when there is one.
    pub jit_provisioning: Option<bool>,
    pub default_role: Option<String>,
    /// Every domain the organization's providers serve.
    pub allowed_domains: Vec<String>,
    pub providers: Vec<SsoProvider>,
}

impl From<ConfigView> for SsoConfig {
    fn from(c: ConfigView) -> Self {
        let saml = c.providers.iter().find(|p| p.protocol == crate::domain::sso::SsoProtocol::Saml);
        let mut domains: Vec<String> = Vec::new();
        for d in c.providers.iter().flat_map(|p| p.allowed_domains.iter()) {
            if !domains.contains(d) {
                domains.push(d.clone());
            }
        }
        Self {
            organization_id: c.organization_id.map(|o| ID(o.to_string())),
            acs_url: c.acs_url,
            oidc_redirect_uri: c.oidc_redirect_uri,
            sp_entity_id: saml.map(|p| p.sp.sp_entity_id.clone()),
            sp_metadata_url: saml.map(|p| p.sp.metadata_url.clone()),
            jit_provisioning: c.providers.first().map(|p| p.jit_provisioning),
            default_role: c.providers.first().map(|p| p.default_role.as_str().to_owned()),
            allowed_domains: domains,
            providers: c.providers.into_iter().map(Into::into).collect(),
        }
    }
}

/// Input of `createSsoProvider` (API.md §3.1); absent settings take their defaults.
#[derive(InputObject)]
pub struct CreateSsoProviderInput {
    pub organization_id: ID,
    pub name: String,
    /// `saml` or `oidc` (fixed once created).
    pub protocol: String,
    #[graphql(flatten)]
    pub settings: SsoProviderSettings,
}

/// Input of `updateSsoProvider`: absent fields stay (an empty string clears an optional URL).
#[derive(InputObject, Default)]
pub struct UpdateSsoProviderInput {
    pub name: Option<String>,
    #[graphql(flatten)]
    pub settings: SsoProviderSettings,
}

/// A provider's settings, shared by create and update.
#[derive(InputObject, Default)]
pub struct SsoProviderSettings {
    pub enabled: Option<bool>,
    /// Create unknown users at their first sign-in (default true).
    pub jit_provisioning: Option<bool>,
    /// `member` by default; never `owner`.
    pub default_role: Option<String>,
    pub allowed_domains: Option<Vec<String>>,
    /// Janua field (`email`, `first_name`, `last_name`, `name`) → IdP attribute or claim.
    pub attribute_mapping: Option<Json<BTreeMap<String, String>>>,
    pub return_url: Option<String>,
    pub enforce_sso: Option<bool>,
    pub saml_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_slo_url: Option<String>,
    pub saml_certificate: Option<String>,
    pub saml_certificates: Option<Vec<String>>,
    /// Default true: the Assertion itself must be signed.
    pub saml_want_assertions_signed: Option<bool>,
    /// IdP metadata (fills entity id, SSO URL and certificates).
    pub saml_metadata_xml: Option<String>,
    /// Where to fetch the IdP metadata from.
    pub saml_metadata_url: Option<String>,
    pub allow_idp_initiated: Option<bool>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    /// Sealed at rest, never returned.
    pub oidc_client_secret: Option<String>,
    pub oidc_discovery_url: Option<String>,
    /// Default `openid email profile`.
    pub scopes: Option<Vec<String>>,
}

impl SsoProviderSettings {
    fn into_service(self, name: Option<String>) -> ProviderInput {
        ProviderInput {
            organization_id: None,
            name,
            protocol: None,
            enabled: self.enabled,
            jit_provisioning: self.jit_provisioning,
            default_role: self.default_role,
            allowed_domains: self.allowed_domains,
            attribute_mapping: self.attribute_mapping.map(|m| m.0.into_iter().collect()),
            return_url: self.return_url,
            enforce_sso: self.enforce_sso,
            saml_entity_id: self.saml_entity_id,
            saml_sso_url: self.saml_sso_url,
            saml_slo_url: self.saml_slo_url,
            saml_certificate: self.saml_certificate,
            saml_certificates: self.saml_certificates,
            saml_want_assertions_signed: self.saml_want_assertions_signed,
            saml_metadata_xml: self.saml_metadata_xml,
            saml_metadata_url: self.saml_metadata_url,
            allow_idp_initiated: self.allow_idp_initiated,
            oidc_issuer: self.oidc_issuer,
            oidc_client_id: self.oidc_client_id,
            oidc_client_secret: self.oidc_client_secret,
            oidc_discovery_url: self.oidc_discovery_url,
            scopes: self.scopes,
        }
    }
}

/// Input of `startSso`: a provider by id, or the one serving an email's domain.
#[derive(InputObject, Default)]
pub struct StartSsoInput {
    pub provider_id: Option<ID>,
    pub email: Option<String>,
    /// Where the browser lands afterwards (same origin as the provider's `returnUrl`).
    pub return_url: Option<String>,
    /// OIDC: the redirect URI registered at the IdP (default Janua's callback).
    pub redirect_uri: Option<String>,
}

/// Where to send the browser: SAML (HTTP-Redirect binding) or OIDC.
#[derive(SimpleObject, Clone)]
pub struct StartSsoPayload {
    pub protocol: String,
    /// SAML: the IdP's SSO URL with `SAMLRequest` and `RelayState`.
    pub redirect_url: Option<String>,
    pub saml_request: Option<String>,
    pub relay_state: Option<String>,
    /// OIDC: the authorization URL (code + PKCE S256, state, nonce).
    pub authorization_url: Option<String>,
    pub state: Option<String>,
}

impl From<Started> for StartSsoPayload {
    fn from(s: Started) -> Self {
        match s {
            Started::Saml { redirect_url, saml_request, relay_state } => Self {
                protocol: "saml".into(),
                redirect_url: Some(redirect_url),
                saml_request: Some(saml_request),
                relay_state: Some(relay_state),
                authorization_url: None,
                state: None,
            },
            Started::Oidc { authorization_url, state } => Self {
                protocol: "oidc".into(),
                redirect_url: None,
                saml_request: None,
                relay_state: None,
                authorization_url: Some(authorization_url),
                state: Some(state),
            },
        }
    }
}

/// Input of `completeSamlSso`: what the IdP posted.
#[derive(InputObject)]
pub struct CompleteSamlSsoInput {
    pub saml_response: String,
    pub relay_state: Option<String>,
}

/// Input of `completeOidcSso`: what the IdP sent back to the redirect URI.
#[derive(InputObject)]
pub struct CompleteOidcSsoInput {
    pub code: String,
    pub state: String,
}

/// Input of `exchangeSsoCode`.
#[derive(InputObject)]
pub struct ExchangeSsoCodeInput {
    /// The one-time code of the browser redirect (single use, 60 s).
    pub code: String,
}

fn signed_in(c: Completed) -> Result<AuthPayload> {
    match c {
        Completed::SignedIn(a) => Ok((*a).into()),
        Completed::Code { .. } => Err(AppError::internal("an API sign-in ended in a browser code").into()),
    }
}

/// Reading identity providers.
#[derive(Default)]
pub struct SsoQuery;

#[Object]
impl SsoQuery {
    /// The providers of an organization (or of every organization you administer).
    async fn sso_providers(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
    ) -> Result<Vec<SsoProvider>> {
        let (state, rc) = parts(ctx);
        let org = organization_id.map(|o| parse_id("organization_id", &o)).transpose()?;
        Ok(providers::list_providers(state, rc, org).await?.into_iter().map(Into::into).collect())
    }

    /// One provider.
    async fn sso_provider(&self, ctx: &Context<'_>, id: ID) -> Result<SsoProvider> {
        let (state, rc) = parts(ctx);
        Ok(providers::get_provider(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Which provider serves `email`'s domain (public; `NOT_FOUND` when none does).
    async fn sso_provider_for_email(&self, ctx: &Context<'_>, email: String) -> Result<SsoProviderHint> {
        let (state, _) = parts(ctx);
        Ok(providers::discover_by_email(state, &email).await?.into())
    }

    /// How the organization's identity providers reach Janua, and its providers (without
    /// `organizationId`: those of every organization you administer).
    async fn sso_config(&self, ctx: &Context<'_>, organization_id: Option<ID>) -> Result<SsoConfig> {
        let (state, rc) = parts(ctx);
        let org = organization_id.map(|o| parse_id("organization_id", &o)).transpose()?;
        Ok(providers::sso_config(state, rc, org).await?.into())
    }
}

/// Managing identity providers and signing in through them.
#[derive(Default)]
pub struct SsoMutation;

#[Object]
impl SsoMutation {
    /// Adds an identity provider to an organization (its admins and owners).
    async fn create_sso_provider(
        &self,
        ctx: &Context<'_>,
        input: CreateSsoProviderInput,
    ) -> Result<SsoProvider> {
        let (state, rc) = parts(ctx);
        let mut p = input.settings.into_service(Some(input.name));
        p.organization_id = Some(parse_id("organization_id", &input.organization_id)?);
        p.protocol = Some(input.protocol);
        Ok(providers::create_provider(state, rc, p).await?.into())
    }

    /// Changes a provider (absent fields stay).
    async fn update_sso_provider(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<UpdateSsoProviderInput>,
    ) -> Result<SsoProvider> {
        let (state, rc) = parts(ctx);
        let input = input.unwrap_or_default();
        let input = input.settings.into_service(input.name);
        Ok(providers::update_provider(state, rc, parse_id("id", &id)?, input).await?.into())
    }

    /// Removes a provider and the identities linked through it (the users stay).
    async fn delete_sso_provider(&self, ctx: &Context<'_>, id: ID) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        providers::delete_provider(state, rc, parse_id("id", &id)?).await?;
        Ok(ActionPayload { success: true })
    }

    /// Starts a sign-in at the provider.
    async fn start_sso(&self, ctx: &Context<'_>, input: Option<StartSsoInput>) -> Result<StartSsoPayload> {
        let (state, _) = parts(ctx);
        let input = input.unwrap_or_default();
        let input = StartInput {
            provider_id: input.provider_id.map(|p| parse_id("provider_id", &p)).transpose()?,
            email: input.email,
            return_url: input.return_url,
            redirect_uri: input.redirect_uri,
        };
        Ok(flow::start(state, input).await?.into())
    }

    /// Verifies the IdP's SAML Response and signs its user in.
    async fn complete_saml_sso(&self, ctx: &Context<'_>, input: CompleteSamlSsoInput) -> Result<AuthPayload> {
        let (state, rc) = parts(ctx);
        let c =
            flow::complete_saml(state, rc, &input.saml_response, input.relay_state.as_deref(), Caller::Api)
                .await?;
        signed_in(c)
    }

    /// Exchanges the IdP's authorization code, verifies the id_token and signs its user in.
    async fn complete_oidc_sso(&self, ctx: &Context<'_>, input: CompleteOidcSsoInput) -> Result<AuthPayload> {
        let (state, rc) = parts(ctx);
        signed_in(flow::complete_oidc(state, rc, &input.code, &input.state, Caller::Api).await?)
    }

    /// Exchanges the one-time code of a browser redirect for tokens.
    async fn exchange_sso_code(&self, ctx: &Context<'_>, input: ExchangeSsoCodeInput) -> Result<AuthPayload> {
        let (state, rc) = parts(ctx);
        Ok(flow::exchange(state, rc, &input.code).await?.into())
    }
}
