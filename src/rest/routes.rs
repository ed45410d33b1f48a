//! THE table: every documented `/api/v1` route, the GraphQL operation it runs, how the
//! request maps onto variables, and the success status. OpenAPI is generated from it.

use axum::http::Method;

use crate::domain::lists::{ORG_SORTS, SESSION_SORTS, USER_SORTS};

/// How the JSON body maps onto variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body is read.
    None,
    /// The body object is the `$input` variable (required).
    Input,
    /// The body object, when present, is the `$input` variable.
    OptionalInput,
}

/// How the response is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `data` is the operation's root field.
    Object,
    /// The root field is a connection: `data` is the array of nodes, with `pagination` beside it.
    List,
    /// No body (204).
    Empty,
}

/// One REST route.
#[derive(Clone, Debug)]
pub struct RestRoute {
    /// The operation's name in `operations.graphql`.
    pub operation: &'static str,
    pub method: Method,
    /// Path under `/api/v1`, axum syntax (`/sessions/{id}`).
    pub path: &'static str,
    pub body: Body,
    /// Path parameters, each passed as the variable of the same name.
    pub path_params: &'static [&'static str],
    /// Whether `cursor`/`limit` query parameters map onto `$after`/`$first`.
    pub paginated: bool,
    /// Other query parameters, each passed as the string variable of the same name.
    pub query_params: &'static [&'static str],
    pub shape: Shape,
    pub status: u16,
    /// Whether the route needs a caller (bearer token or API key): an anonymous request is
    /// answered 401 before any parameter is looked at.
    pub auth: bool,
    /// An operator route: behind `JANUA_METRICS_TOKEN` (when set) instead of a user token; the
    /// adapter checks that bearer and grants the operation ([`crate::graphql::health::OperatorGrant`]).
    pub operator: bool,
    /// Sort fields `sort` accepts (`field:asc|desc`), when `sort` is a query parameter.
    pub sorts: &'static [&'static str],
    /// The success status taken from the result instead of [`RestRoute::status`] (e.g. 503
    /// when the detailed health says the database is down).
    pub status_of: Option<fn(&serde_json::Value) -> u16>,
    /// The other status `status_of` may choose, and what it means (documented beside
    /// [`RestRoute::status`]).
    pub alternate: Option<(u16, &'static str)>,
    /// Whether null fields of the result object are left out (routes whose answer takes one
    /// of two shapes, e.g. sign-in with or without MFA).
    pub omit_nulls: bool,
    pub tag: &'static str,
    pub summary: &'static str,
}

pub(super) const fn route(operation: &'static str, method: Method, path: &'static str) -> RestRoute {
    RestRoute {
        operation,
        method,
        path,
        body: Body::None,
        path_params: &[],
        paginated: false,
        query_params: &[],
        shape: Shape::Object,
        status: 200,
        auth: true,
        operator: false,
        sorts: &[],
        status_of: None,
        alternate: None,
        omit_nulls: false,
        tag: "",
        summary: "",
    }
}

/// Every route, in documentation order.
pub fn routes() -> Vec<RestRoute> {
    let auth = |op, method, path, summary| RestRoute { tag: "auth", summary, ..route(op, method, path) };
    let sessions =
        |op, method, path, summary| RestRoute { tag: "sessions", summary, ..route(op, method, path) };
    let users = |op, method, path, summary| RestRoute { tag: "users", summary, ..route(op, method, path) };
    let orgs =
        |op, method, path, summary| RestRoute { tag: "organizations", summary, ..route(op, method, path) };
    let keys = |op, method, path, summary| RestRoute { tag: "api-keys", summary, ..route(op, method, path) };
    let scim = |op, method, path, summary| RestRoute { tag: "scim", summary, ..route(op, method, path) };
    let admin = |op, method, path, summary| RestRoute { tag: "admin", summary, ..route(op, method, path) };
    let webhooks =
        |op, method, path, summary| RestRoute { tag: "webhooks", summary, ..route(op, method, path) };
    let mfa = |op, method, path, summary| RestRoute { tag: "mfa", summary, ..route(op, method, path) };
    let passkeys =
        |op, method, path, summary| RestRoute { tag: "passkeys", summary, ..route(op, method, path) };
    let mut all = vec![
        RestRoute {
            body: Body::Input,
            status: 201,
            auth: false,
            ..auth("Signup", Method::POST, "/auth/signup", "Create an account and sign in")
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..auth("Signin", Method::POST, "/auth/signin", "Sign in with email and password")
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..auth("Refresh", Method::POST, "/auth/refresh", "Rotate a refresh token for new tokens")
        },
        RestRoute {
            body: Body::Input,
            ..auth(
                "Reauthenticate",
                Method::POST,
                "/auth/reauthenticate",
                "Confirm the password on the current session (for sensitive changes)",
            )
        },
        auth("Signout", Method::POST, "/auth/signout", "Revoke the current session"),
        auth("Me", Method::GET, "/auth/me", "The signed-in user"),
        RestRoute {
            paginated: true,
            query_params: &["sort"],
            sorts: &SESSION_SORTS,
            shape: Shape::List,
            ..sessions("Sessions", Method::GET, "/sessions", "The caller's active sessions")
        },
        RestRoute {
            path_params: &["id"],
            ..sessions("Session", Method::GET, "/sessions/{id}", "One of the caller's sessions")
        },
        RestRoute {
            path_params: &["id"],
            shape: Shape::Empty,
            status: 204,
            ..sessions("TerminateSession", Method::DELETE, "/sessions/{id}", "Revoke one session")
        },
        RestRoute {
            body: Body::OptionalInput,
            ..sessions(
                "TerminateAllSessions",
                Method::POST,
                "/sessions/terminate-all",
                "Revoke all sessions but the current one (unless include_current)",
            )
        },
        // Users
        RestRoute {
            paginated: true,
            query_params: &["sort", "status", "search"],
            sorts: &USER_SORTS,
            shape: Shape::List,
            ..users("Users", Method::GET, "/users", "Users you may see (administrators: all)")
        },
        RestRoute { path_params: &["id"], ..users("User", Method::GET, "/users/{id}", "One user") },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            ..users("UpdateUser", Method::PUT, "/users/{id}", "Update a user (self or administrator)")
        },
        RestRoute {
            path_params: &["id"],
            shape: Shape::Empty,
            status: 204,
            ..users("DeleteUser", Method::DELETE, "/users/{id}", "Delete a user; revokes every session")
        },
        RestRoute {
            path_params: &["id"],
            ..users("UserRoles", Method::GET, "/users/{id}/roles", "A user's roles")
        },
        // Organizations
        RestRoute {
            paginated: true,
            query_params: &["sort", "search"],
            sorts: &ORG_SORTS,
            shape: Shape::List,
            ..orgs("Organizations", Method::GET, "/organizations", "Organizations you belong to")
        },
        RestRoute {
            body: Body::Input,
            status: 201,
            ..orgs(
                "CreateOrganization",
                Method::POST,
                "/organizations",
                "Create an organization (you become owner)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..orgs("Organization", Method::GET, "/organizations/{id}", "One organization")
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            ..orgs("UpdateOrganization", Method::PUT, "/organizations/{id}", "Update an organization")
        },
        RestRoute {
            path_params: &["id"],
            paginated: true,
            shape: Shape::List,
            ..orgs(
                "OrganizationMembers",
                Method::GET,
                "/organizations/{id}/members",
                "Members of an organization",
            )
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            status: 201,
            status_of: Some(invited_or_added),
            alternate: Some((
                202,
                "A person's add is an invitation (`{invitation}`), the same for any address",
            )),
            ..orgs(
                "AddMember",
                Method::POST,
                "/organizations/{id}/members",
                "Add a member (administrators, API keys), or invite them (a person: 202)",
            )
        },
        RestRoute {
            path_params: &["id", "user_id"],
            body: Body::Input,
            ..orgs(
                "UpdateMemberRole",
                Method::PUT,
                "/organizations/{id}/members/{user_id}",
                "Change a member's role",
            )
        },
        RestRoute {
            path_params: &["id", "user_id"],
            shape: Shape::Empty,
            status: 204,
            ..orgs(
                "RemoveMember",
                Method::DELETE,
                "/organizations/{id}/members/{user_id}",
                "Remove a member (or leave)",
            )
        },
        // API keys
        RestRoute {
            path_params: &["id"],
            ..keys(
                "OrganizationApiKeys",
                Method::GET,
                "/organizations/{id}/api-keys",
                "An organization's API keys",
            )
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            status: 201,
            ..keys(
                "CreateOrganizationApiKey",
                Method::POST,
                "/organizations/{id}/api-keys",
                "Create an API key (shown once)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..keys("RevokeApiKey", Method::DELETE, "/api-keys/{id}", "Revoke an API key")
        },
        // SCIM tokens (the SCIM protocol itself is served by protocols::scim)
        RestRoute {
            path_params: &["id"],
            ..scim(
                "ScimTokens",
                Method::GET,
                "/organizations/{id}/scim/tokens",
                "An organization's SCIM tokens",
            )
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            status: 201,
            ..scim(
                "CreateScimToken",
                Method::POST,
                "/organizations/{id}/scim/tokens",
                "Create a SCIM bearer token (shown once)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..scim("RevokeScimToken", Method::DELETE, "/scim/tokens/{id}", "Revoke a SCIM token")
        },
        // Administration
        RestRoute {
            paginated: true,
            query_params: &["sort", "status", "search"],
            sorts: &USER_SORTS,
            shape: Shape::List,
            ..admin("AdminUsers", Method::GET, "/admin/users", "Every user, with counts")
        },
        RestRoute {
            paginated: true,
            query_params: &["sort", "search"],
            sorts: &ORG_SORTS,
            shape: Shape::List,
            ..admin(
                "AdminOrganizations",
                Method::GET,
                "/admin/organizations",
                "Every organization, with counts",
            )
        },
        RestRoute {
            query_params: &["from", "to"],
            ..admin("AdminAnalytics", Method::GET, "/admin/analytics", "Totals, rates and a daily series")
        },
        RestRoute {
            paginated: true,
            query_params: &["action", "actor_id", "organization_id", "target_id", "from", "to"],
            shape: Shape::List,
            ..admin("AuditLogs", Method::GET, "/admin/audit-logs", "The audit log, newest first")
        },
        admin("AdminApiKeys", Method::GET, "/admin/api-keys", "Administrator API keys"),
        RestRoute {
            body: Body::Input,
            status: 201,
            ..admin(
                "CreateAdminApiKey",
                Method::POST,
                "/admin/api-keys",
                "Create an administrator API key (shown once)",
            )
        },
        // Webhooks
        RestRoute {
            paginated: true,
            query_params: &["organization_id"],
            shape: Shape::List,
            ..webhooks(
                "Webhooks",
                Method::GET,
                "/webhooks",
                "Your webhook endpoints, or an organization's (?organization_id=)",
            )
        },
        RestRoute {
            body: Body::Input,
            status: 201,
            ..webhooks(
                "CreateWebhook",
                Method::POST,
                "/webhooks",
                "Create a webhook endpoint (the secret is returned once)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..webhooks("Webhook", Method::GET, "/webhooks/{id}", "One webhook endpoint")
        },
        RestRoute {
            path_params: &["id"],
            body: Body::Input,
            ..webhooks("UpdateWebhook", Method::PUT, "/webhooks/{id}", "Change a webhook endpoint")
        },
        RestRoute {
            path_params: &["id"],
            shape: Shape::Empty,
            status: 204,
            ..webhooks(
                "DeleteWebhook",
                Method::DELETE,
                "/webhooks/{id}",
                "Delete a webhook endpoint and its deliveries",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..webhooks(
                "TestWebhook",
                Method::POST,
                "/webhooks/{id}/test",
                "Send webhook.test now; reports the receiver's status and time",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..webhooks(
                "RotateWebhookSecret",
                Method::POST,
                "/webhooks/{id}/rotate-secret",
                "Replace the signing secret (the new one is returned once)",
            )
        },
        RestRoute {
            path_params: &["id"],
            paginated: true,
            shape: Shape::List,
            ..webhooks(
                "WebhookDeliveries",
                Method::GET,
                "/webhooks/{id}/deliveries",
                "Deliveries of a webhook endpoint, each with every attempt",
            )
        },
        RestRoute {
            path_params: &["id", "delivery_id"],
            ..webhooks(
                "RedeliverWebhookDelivery",
                Method::POST,
                "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
                "Send one delivery again now",
            )
        },
        // MFA and passkeys
        mfa("MfaStatus", Method::GET, "/mfa/status", "Whether MFA is on for the caller"),
        mfa(
            "SetupMfa",
            Method::POST,
            "/mfa/setup",
            "Start TOTP setup: secret, otpauth URI, QR code and 10 backup codes (MFA stays off until verified)",
        ),
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..mfa(
                "VerifyMfa",
                Method::POST,
                "/mfa/verify",
                "Bearer + {code}: confirm setup and turn MFA on; {mfa_token, code}: finish a sign-in",
            )
        },
        mfa("BackupCodes", Method::GET, "/mfa/backup-codes", "How many backup codes remain"),
        RestRoute {
            body: Body::Input,
            ..mfa(
                "RegenerateBackupCodes",
                Method::POST,
                "/mfa/backup-codes",
                "Replace every backup code (needs a current code)",
            )
        },
        RestRoute {
            body: Body::Input,
            ..mfa(
                "DisableMfa",
                Method::POST,
                "/mfa/disable",
                "Turn MFA off (needs the password or a current code)",
            )
        },
        passkeys(
            "PasskeyRegistrationOptions",
            Method::POST,
            "/passkeys/register/options",
            "WebAuthn creation options for a new passkey",
        ),
        RestRoute {
            body: Body::Input,
            status: 201,
            ..passkeys(
                "RegisterPasskey",
                Method::POST,
                "/passkeys/register",
                "Register a passkey with the authenticator's response",
            )
        },
        RestRoute {
            body: Body::OptionalInput,
            auth: false,
            ..passkeys(
                "PasskeyAuthenticationOptions",
                Method::POST,
                "/passkeys/authenticate/options",
                "WebAuthn request options: for {email}, usernameless, or as the MFA step of {mfa_token}",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..passkeys(
                "AuthenticatePasskey",
                Method::POST,
                "/passkeys/authenticate",
                "Sign in with a passkey assertion",
            )
        },
        passkeys("Passkeys", Method::GET, "/passkeys", "The caller's passkeys"),
        RestRoute {
            body: Body::Input,
            path_params: &["id"],
            ..passkeys("RenamePasskey", Method::PUT, "/passkeys/{id}", "Rename one of the caller's passkeys")
        },
        RestRoute {
            path_params: &["id"],
            shape: Shape::Empty,
            status: 204,
            ..passkeys(
                "DeletePasskey",
                Method::DELETE,
                "/passkeys/{id}",
                "Remove one of the caller's passkeys",
            )
        },
        // Operators
        RestRoute {
            auth: false,
            operator: true,
            status_of: Some(unavailable_when_unhealthy),
            alternate: Some((503, "The same report when the database does not answer")),
            tag: "health",
            summary: "Each dependency's status and latency, event, webhook and mail backlogs (503 when the database is down)",
            ..route("HealthDetailed", Method::GET, "/health/detailed")
        },
    ];
    // The account-mail rows follow the sign-in rows.
    let at = all.iter().position(|r| r.operation == "Me").map_or(all.len(), |i| i + 1);
    all.splice(at..at, super::account_routes::routes());
    // The invitation rows come before the member role change.
    let at = all.iter().position(|r| r.operation == "UpdateMemberRole").map_or(all.len(), |i| i);
    all.splice(at..at, super::invitation_routes::routes());
    all.extend(super::sso_routes::routes());
    all
}

/// 503 when the detailed health is `unhealthy` (the database does not answer), else 200.
fn unavailable_when_unhealthy(data: &serde_json::Value) -> u16 {
    if data["status"] == "unhealthy" { 503 } else { 200 }
}

/// 202 when adding a member made an invitation, else 201.
fn invited_or_added(data: &serde_json::Value) -> u16 {
    if data.get("invitation").is_some() { 202 } else { 201 }
}

/// Every query parameter some list accepts: on a list that does not take one of them, it is
/// refused (422 naming it) rather than silently ignored.
pub fn list_parameters(routes: &[RestRoute]) -> Vec<&'static str> {
    let mut all = vec!["limit", "cursor"];
    for r in routes {
        for p in r.query_params {
            if !all.contains(p) {
                all.push(p);
            }
        }
    }
    all
}
