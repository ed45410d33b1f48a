//! Janua's database tables as sea-orm entities: one module per table, no API derives.
//! Output types live in the server crate; nothing here is ever returned to a client as is.

pub mod account_token;
pub mod api_key;
pub mod audit_log;
pub mod backup_code;
pub mod invitation;
pub mod mail_attempt;
pub mod mail_outbox;
pub mod mfa_factor;
pub mod org_member;
pub mod organization;
pub mod outbox_event;
pub mod passkey;
pub mod refresh_token;
pub mod scim_group;
pub mod scim_group_member;
pub mod scim_token;
pub mod scim_user;
pub mod scim_user_email;
pub mod session;
pub mod setting;
pub mod signing_key;
pub mod sso_identity;
pub mod sso_provider;
pub mod user;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
