//! The account-mail rows of the REST table (API.md §3): email verification, password reset and
//! change, magic links. The routes that mail answer the same way whatever the address.

use axum::http::Method;

use super::routes::{Body, RestRoute, route};

/// The account-mail routes, in documentation order.
pub(super) fn routes() -> Vec<RestRoute> {
    let account = |op, method, path, summary| RestRoute { tag: "auth", summary, ..route(op, method, path) };
    vec![
        RestRoute {
            body: Body::Input,
            auth: false,
            ..account(
                "VerifyEmail",
                Method::POST,
                "/auth/verify-email",
                "Verify an address (or confirm an email change) with the mailed token",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..account("EmailVerify", Method::POST, "/auth/email/verify", "Same as /auth/verify-email")
        },
        account(
            "ResendVerificationEmail",
            Method::POST,
            "/auth/email/resend-verification",
            "Mail a new verification link to the signed-in user",
        ),
        RestRoute {
            body: Body::Input,
            status: 202,
            auth: false,
            ..account(
                "ForgotPassword",
                Method::POST,
                "/auth/password/forgot",
                "Mail a password-reset link (the same 202 whether or not the address has an account)",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            ..account(
                "ResetPassword",
                Method::POST,
                "/auth/password/reset",
                "Set a new password with the mailed token; revokes every session",
            )
        },
        RestRoute {
            body: Body::Input,
            ..account(
                "ChangePassword",
                Method::POST,
                "/auth/password/change",
                "Change the password (needs the current one); revokes the other sessions",
            )
        },
        RestRoute {
            body: Body::Input,
            status: 202,
            auth: false,
            ..account(
                "RequestMagicLink",
                Method::POST,
                "/auth/magic-link",
                "Mail a sign-in link (the same 202 whether or not the address has an account)",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..account(
                "VerifyMagicLink",
                Method::POST,
                "/auth/magic-link/verify",
                "Sign in with the mailed token (or answer mfa_required)",
            )
        },
    ]
}
