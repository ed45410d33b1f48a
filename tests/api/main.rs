//! Janua's integration tests: each test starts a real server on an ephemeral port (SQLite, and
//! PostgreSQL when `JANUA_TEST_DATABASE_URL` is set) and talks to it as a client would.

mod helpers;
mod smtp_sink;

mod account_mail;
mod auth;
mod authz_matrix;
mod credential_limits;
mod dashboard;
mod directory;
mod errors;
mod exposure;
mod hostile_input;
mod invitations;
mod layering;
mod mail_crash;
mod mail_folder;
mod memberships;
mod mfa;
mod oidc_idp;
mod oidc_rp;
mod operator;
mod passkeys;
mod platform;
mod redis;
mod redis_processes;
mod rest_contract;
mod saml;
mod saml_idp;
mod scim;
mod sessions;
mod sign_in;
mod sso_oidc;
mod sso_saml;
mod storage;
mod subscriptions;
mod tokens;
mod unit_of_work;
mod webhooks;
mod webhooks_crash;
mod webhooks_graphql;
mod webhooks_storage;
mod ws_sessions;
