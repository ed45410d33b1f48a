//! The invitation rows of the REST table (API.md: `/invitations`): invite, list, resend,
//! revoke, and accept with the mail's token.

use axum::http::Method;

use super::routes::{Body, RestRoute, Shape, route};

/// The invitation routes, in documentation order.
pub(super) fn routes() -> Vec<RestRoute> {
    let invitations =
        |op, method, path, summary| RestRoute { tag: "invitations", summary, ..route(op, method, path) };
    vec![
        RestRoute {
            paginated: true,
            query_params: &["organization_id", "status"],
            shape: Shape::List,
            ..invitations(
                "Invitations",
                Method::GET,
                "/invitations",
                "Invitations of an organization (?organization_id=) or of all you administer; open ones unless ?status=",
            )
        },
        RestRoute {
            body: Body::Input,
            status: 201,
            ..invitations(
                "CreateInvitation",
                Method::POST,
                "/invitations",
                "Invite an address to an organization with a role (mails a link)",
            )
        },
        RestRoute {
            body: Body::Input,
            auth: false,
            omit_nulls: true,
            ..invitations(
                "AcceptInvitation",
                Method::POST,
                "/invitations/accept",
                "Accept with the mail's token: signed in as the invited account, or signing up with a password",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..invitations(
                "ResendInvitation",
                Method::POST,
                "/invitations/{id}/resend",
                "Mail an invitation again with a new link and expiry (the old link stops working)",
            )
        },
        RestRoute {
            path_params: &["id"],
            ..invitations(
                "RevokeInvitation",
                Method::DELETE,
                "/invitations/{id}",
                "Withdraw an invitation (its link stops working)",
            )
        },
    ]
}
