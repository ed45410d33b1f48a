//! Checking a provider's fields: names, domains, attribute mapping, scopes, URLs (browser-facing
//! or fetched through the guarded client), SAML metadata and certificates, the OIDC client
//! secret (sealed here, at the edge). Every failing field is reported at once.

use serde_json::{Value, json};
use uuid::Uuid;

use entities::sso_provider;

use crate::domain::sso::{SsoProtocol, SsoReason};
use crate::domain::webhooks::{AddressPolicy, MAX_URL_LENGTH, parse_outbound_url};
use crate::domain::{Email, OrgRole};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::services::sso::saml;
use crate::state::AppState;

/// The most allowed domains, certificates and mapped attributes a provider may list.
const MAX_LIST: usize = 50;
/// The longest name, attribute name or domain.
const MAX_NAME: usize = 200;
/// The largest metadata document read (XML or fetched).
const MAX_METADATA_BYTES: usize = 512 * 1024;
/// Janua fields an attribute mapping may fill.
pub const MAPPED_FIELDS: [&str; 4] = ["email", "first_name", "last_name", "name"];
/// The scopes of a new OIDC provider.
pub(super) const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The strings of a JSON array column.
pub(super) fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The fields of a provider, as given (create: absent fields take their defaults; update:
/// absent fields stay; an empty string clears an optional one).
#[derive(Clone, Debug, Default)]
pub struct ProviderInput {
    pub organization_id: Option<Uuid>,
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub enabled: Option<bool>,
    pub jit_provisioning: Option<bool>,
    pub default_role: Option<String>,
    pub allowed_domains: Option<Vec<String>>,
    /// Janua field → IdP attribute.
    pub attribute_mapping: Option<Vec<(String, String)>>,
    pub return_url: Option<String>,
    pub enforce_sso: Option<bool>,
    pub saml_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_slo_url: Option<String>,
    pub saml_certificate: Option<String>,
    pub saml_certificates: Option<Vec<String>>,
    pub saml_want_assertions_signed: Option<bool>,
    pub saml_metadata_xml: Option<String>,
    pub saml_metadata_url: Option<String>,
    pub allow_idp_initiated: Option<bool>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<String>,
    pub oidc_discovery_url: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// The address policy of SSO fetches (`JANUA_SSO_ALLOW_*`).
pub fn sso_policy(state: &AppState) -> AddressPolicy {
    AddressPolicy {
        allow_loopback: state.config.sso_allow_loopback,
        allow_private: state.config.sso_allow_private,
    }
}

/// A browser-facing URL (the IdP's SSO endpoint, a return URL): `https://`, or `http://` to a
/// loopback host when loopback is allowed. Private hosts are fine: the browser goes, not Janua.
fn browser_url(state: &AppState, field: &str, raw: &str) -> AppResult<String> {
    let policy = AddressPolicy { allow_private: true, ..sso_policy(state) };
    parse_outbound_url(field, raw, policy).map(|u| u.to_string())
}

fn fetch_url(state: &AppState, field: &str, raw: &str) -> AppResult<String> {
    parse_outbound_url(field, raw, sso_policy(state)).map(|u| u.to_string())
}

fn text(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(AppError::field(field, FieldIssue::Required));
    }
    if t.chars().count() > max {
        return Err(AppError::field(field, FieldIssue::TooLong(max)));
    }
    Ok(t.to_owned())
}

fn domains(raw: Vec<String>) -> AppResult<Vec<String>> {
    if raw.len() > MAX_LIST {
        return Err(AppError::field("allowed_domains", FieldIssue::TooLong(MAX_LIST)));
    }
    let mut out: Vec<String> = Vec::new();
    for d in raw {
        let d = d.trim().trim_start_matches('@').to_lowercase();
        // A domain is what follows `@` in a valid address.
        Email::parse(&format!("x@{d}"))
            .map_err(|_| AppError::field("allowed_domains", FieldIssue::InvalidFormat))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn mapping(raw: Vec<(String, String)>) -> AppResult<Value> {
    if raw.len() > MAX_LIST {
        return Err(AppError::field("attribute_mapping", FieldIssue::TooLong(MAX_LIST)));
    }
    let mut out = serde_json::Map::new();
    for (k, v) in raw {
        if !MAPPED_FIELDS.contains(&k.as_str()) {
            return Err(AppError::field("attribute_mapping", FieldIssue::InvalidFormat));
        }
        out.insert(k, Value::String(text("attribute_mapping", &v, MAX_NAME)?));
    }
    Ok(Value::Object(out))
}

fn scopes(raw: Vec<String>) -> AppResult<Vec<String>> {
    let mut out = vec!["openid".to_owned()];
    for s in raw {
        let s = s.trim().to_owned();
        if s.is_empty()
            || s.len() > MAX_NAME
            || !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        {
            return Err(AppError::field("scopes", FieldIssue::InvalidFormat));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.len() > MAX_LIST {
        return Err(AppError::field("scopes", FieldIssue::TooLong(MAX_LIST)));
    }
    Ok(out)
}

/// Reads metadata from `url` through the guarded client (an unreachable host is 502).
async fn fetch_metadata(state: &AppState, url: &str) -> AppResult<String> {
    let resp = state.sso_client.get(url).send().await.map_err(|e| {
        tracing::warn!(error = %e, "SAML metadata could not be fetched");
        AppError::from(SsoReason::IdpUnreachable)
    })?;
    if !resp.status().is_success() {
        tracing::warn!(status = resp.status().as_u16(), "SAML metadata URL answered an error");
        return Err(SsoReason::IdpUnreachable.into());
    }
    let bytes = resp.bytes().await.map_err(|_| AppError::from(SsoReason::IdpUnreachable))?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(AppError::field("saml_metadata_url", FieldIssue::TooLong(MAX_METADATA_BYTES)));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| AppError::field("saml_metadata_url", FieldIssue::InvalidFormat))
}

/// Applies `input` onto `m` (a new row's defaults or the stored row), checking every field.
pub(super) async fn apply(
    state: &AppState,
    m: &mut sso_provider::Model,
    input: ProviderInput,
) -> AppResult<()> {
    let mut errors: Vec<AppError> = Vec::new();
    let mut check = |r: AppResult<()>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    if let Some(n) = &input.name {
        check(text("name", n, MAX_NAME).map(|n| m.name = n));
    }
    if let Some(b) = input.enabled {
        m.enabled = b;
    }
    if let Some(b) = input.jit_provisioning {
        m.jit_provisioning = b;
    }
    if let Some(b) = input.enforce_sso {
        m.enforce_sso = b;
    }
    if let Some(r) = &input.default_role {
        // A provider never hands out ownership.
        check(match OrgRole::parse(r.trim()) {
            Some(OrgRole::Owner) | None => Err(AppError::field("default_role", FieldIssue::InvalidFormat)),
            Some(role) => {
                m.default_role = role.as_str().to_owned();
                Ok(())
            }
        });
    }
    if let Some(d) = input.allowed_domains {
        check(domains(d).map(|d| m.allowed_domains = json!(d)));
    }
    if let Some(a) = input.attribute_mapping {
        check(mapping(a).map(|a| m.attribute_mapping = a));
    }
    if let Some(u) = &input.return_url {
        check(match u.trim() {
            "" => {
                m.return_url = None;
                Ok(())
            }
            u => browser_url(state, "return_url", u).map(|u| m.return_url = Some(u)),
        });
    }
    let protocol = SsoProtocol::parse(&m.protocol);
    match protocol {
        Some(SsoProtocol::Saml) => {
            if let Some(b) = input.saml_want_assertions_signed {
                m.saml_want_assertions_signed = b;
            }
            if let Some(b) = input.allow_idp_initiated {
                m.allow_idp_initiated = b;
            }
            // Metadata first: explicit fields given beside it win.
            let xml = match (&input.saml_metadata_xml, &input.saml_metadata_url) {
                (Some(x), _) if !x.trim().is_empty() => {
                    if x.len() > MAX_METADATA_BYTES {
                        errors.push(AppError::field(
                            "saml_metadata_xml",
                            FieldIssue::TooLong(MAX_METADATA_BYTES),
                        ));
                        None
                    } else {
                        Some(x.clone())
                    }
                }
                (_, Some(u)) if !u.trim().is_empty() => match fetch_url(state, "saml_metadata_url", u) {
                    Ok(u) => {
                        m.saml_metadata_url = Some(u.clone());
                        match fetch_metadata(state, &u).await {
                            Ok(x) => Some(x),
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
                _ => None,
            };
            if let Some(xml) = xml {
                match saml::parse_idp_metadata(&xml) {
                    Ok(md) => {
                        m.saml_entity_id = Some(md.entity_id);
                        m.saml_sso_url = Some(md.sso_url);
                        m.saml_slo_url = md.slo_url;
                        m.saml_certificates = json!(md.certificates);
                    }
                    Err(e) => errors.push(e),
                }
            }
            if let Some(e) = &input.saml_entity_id {
                match text("saml_entity_id", e, MAX_URL_LENGTH) {
                    Ok(e) => m.saml_entity_id = Some(e),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(u) = &input.saml_sso_url {
                match browser_url(state, "saml_sso_url", u) {
                    Ok(u) => m.saml_sso_url = Some(u),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(u) = &input.saml_slo_url {
                match u.trim() {
                    "" => m.saml_slo_url = None,
                    u => match browser_url(state, "saml_slo_url", u) {
                        Ok(u) => m.saml_slo_url = Some(u),
                        Err(e) => errors.push(e),
                    },
                }
            }
            let certs: Option<Vec<String>> = match (&input.saml_certificates, &input.saml_certificate) {
                (Some(list), _) => Some(list.clone()),
                (None, Some(one)) => Some(vec![one.clone()]),
                _ => None,
            };
            if let Some(certs) = certs {
                if certs.is_empty() || certs.len() > MAX_LIST {
                    errors.push(AppError::field("saml_certificate", FieldIssue::InvalidFormat));
                } else if let Some(e) = certs.iter().find_map(|c| saml::certificate_fingerprint(c).err()) {
                    errors.push(e);
                } else {
                    m.saml_certificates =
                        json!(certs.iter().map(|c| c.trim().to_owned()).collect::<Vec<_>>());
                }
            }
            for (field, present) in [
                ("saml_entity_id", m.saml_entity_id.is_some()),
                ("saml_sso_url", m.saml_sso_url.is_some()),
                ("saml_certificate", !strings(&m.saml_certificates).is_empty()),
            ] {
                if !present && !errors.iter().any(|e| e.fields.contains_key(field)) {
                    errors.push(AppError::field(field, FieldIssue::Required));
                }
            }
        }
        Some(SsoProtocol::Oidc) => {
            if let Some(i) = &input.oidc_issuer {
                match fetch_url(state, "oidc_issuer", i) {
                    // The issuer is compared exactly with the IdP's: keep it as typed.
                    Ok(_) => m.oidc_issuer = Some(i.trim().to_owned()),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(c) = &input.oidc_client_id {
                match text("oidc_client_id", c, MAX_URL_LENGTH) {
                    Ok(c) => m.oidc_client_id = Some(c),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(s) = &input.oidc_client_secret {
                match text("oidc_client_secret", s, MAX_URL_LENGTH) {
                    Ok(s) => m.oidc_client_secret_sealed = Some(state.master_key.seal(s.as_bytes())),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(u) = &input.oidc_discovery_url {
                match u.trim() {
                    "" => m.oidc_discovery_url = None,
                    u => match fetch_url(state, "oidc_discovery_url", u) {
                        Ok(u) => m.oidc_discovery_url = Some(u),
                        Err(e) => errors.push(e),
                    },
                }
            }
            if let Some(s) = input.scopes {
                match scopes(s) {
                    Ok(s) => m.scopes = json!(s),
                    Err(e) => errors.push(e),
                }
            }
            for (field, present) in [
                ("oidc_issuer", m.oidc_issuer.is_some()),
                ("oidc_client_id", m.oidc_client_id.is_some()),
                ("oidc_client_secret", m.oidc_client_secret_sealed.is_some()),
            ] {
                if !present && !errors.iter().any(|e| e.fields.contains_key(field)) {
                    errors.push(AppError::field(field, FieldIssue::Required));
                }
            }
        }
        None => errors.push(AppError::field("protocol", FieldIssue::InvalidFormat)),
    }
    merge(errors)
}

/// One validation error naming every field that failed (or the first non-field error).
fn merge(errors: Vec<AppError>) -> AppResult<()> {
    let mut it = errors.into_iter();
    let Some(mut first) = it.next() else { return Ok(()) };
    for e in it {
        if first.code != ErrorCode::ValidationError {
            break;
        }
        if e.code != ErrorCode::ValidationError {
            return Err(e);
        }
        first.fields.extend(e.fields);
    }
    Err(first)
}
