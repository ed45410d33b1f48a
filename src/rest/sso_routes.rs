//! The enterprise SSO rows of the REST table (API.md §3): providers, discovery, configuration,
//! and the sign-in steps. The browser-only parts (the ACS form binding, the OIDC callback, the
//! SP metadata XML) are served beside the table, by `protocols::sso`.

use axum::http::Method;

use super::routes::{Body, RestRoute, Shape, route};

/// The SSO routes, in documentation order.
pub(super) fn routes() -> Vec<RestRoute> {
    let sso = |op, method, path, summary| RestRoute { tag: "sso", summary, ..route(op, method, path) };
    vec![
        RestRoute {
            query_params: &["organization_id"],
            ..sso(
                "SsoProviders",
                Method::GET,
                "/sso/providers",
                "Identity providers of an organization (?organization_id=), or with ?email= which one serves that domain (public)",
            )
        },
        RestRoute {
            body: Body::Input,
            status: 201,
            ..sso("CreateSsoProvider", Method::POST, "/sso/providers", "Add a SAML or OIDC identity provider")
        },
        RestRoute {
            query_params: &["email"],
            auth: false,
            ..sso(
                "SsoProviderForEmail",
                Method::GET,
                "/sso/providers/discover",
                "Which provider serves an email's domain (public, secret-free; 404 when none)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..sso("SsoProvider", Method::GET, "/sso/providers/{id}", "One identity provider")
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            ..sso("UpdateSsoProvider", Method::PUT, "/sso/providers/{id}", "Change an identity provider")
        },
        RestRoute {
            path_params: &["id"],
            shape: Shape::Empty,
            status: 204,
            ..sso(
                "DeleteSsoProvider",
                Method::DELETE,
                "/sso/providers/{id}",
                "Remove an identity provider and its linked identities",
            )
        },
        RestRoute {
            query_params: &["organization_id"],
            ..sso(
                "SsoConfig",
                Method::GET,
                "/sso/config",
                "How an organization's identity providers reach Janua",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..sso("StartSso", Method::POST, "/sso/start", "Start a sign-in at a provider (by id or email)")
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..sso(
                "CompleteSamlSso",
                Method::POST,
                "/sso/saml",
                "The SAML ACS: verify the IdP's Response (JSON here; the IdP's form POST redirects with a one-time code)",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..sso(
                "StartOidcSso",
                Method::POST,
                "/sso/oidc",
                "Start an OIDC sign-in (→ authorization_url); with {code, state} it completes one",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..sso(
                "CompleteOidcSso",
                Method::POST,
                "/sso/oidc/complete",
                "Complete an OIDC sign-in with the IdP's code and state",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..sso(
                "ExchangeSsoCode",
                Method::POST,
                "/sso/exchange",
                "A browser redirect's one-time code for tokens",
            )
        },
    ]
}
