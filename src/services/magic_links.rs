//! Magic links: `requestMagicLink` answers the same way for every address (the account is
//! looked up later, by the mail worker); `verifyMagicLink` signs in with the mailed token
//! (`services::sign_in::with_magic_link`). A `redirect_url` is accepted only on the public URL's
//! origin, kept with the token and given back by `verifyMagicLink`.

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult, FieldIssue};
use crate::services::account_requests::{self, RequestKind};
use crate::services::sign_in::{self, SignInOutcome};
use crate::state::AppState;

/// Asks for a sign-in link for `email` (same answer for every address).
pub async fn request_magic_link(
    state: &AppState,
    ctx: &RequestContext,
    email: &str,
    redirect_url: Option<String>,
) -> AppResult<()> {
    let redirect = redirect_url
        .filter(|r| !r.trim().is_empty())
        .map(|r| check_redirect(&state.config, &r))
        .transpose()?;
    let extra = redirect.map(|r| serde_json::json!({"redirect_url": r}));
    account_requests::request(state, ctx, RequestKind::MagicLink, email, extra).await
}

/// Signs in with a magic-link token; returns the outcome and the link's redirect.
pub async fn verify_magic_link(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
) -> AppResult<(SignInOutcome, Option<String>)> {
    sign_in::with_magic_link(state, ctx, token).await
}

/// `raw` when it is an absolute URL on the public URL's origin (scheme, host, port); else a
/// 422 on `redirect_url` (no open redirect through a mailed link).
fn check_redirect(config: &Config, raw: &str) -> AppResult<String> {
    let refused = || AppError::field("redirect_url", FieldIssue::UrlNotAllowed);
    let target = url::Url::parse(raw.trim()).map_err(|_| refused())?;
    let public = url::Url::parse(config.public_base()).map_err(|_| refused())?;
    if target.origin() != public.origin() || raw.len() > 2048 {
        return Err(refused());
    }
    Ok(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_public_origin() {
        let mut c = Config::defaults();
        c.public_url = Some("https://id.example.com".into());
        assert_eq!(
            check_redirect(&c, "https://id.example.com/app?x=1").unwrap(),
            "https://id.example.com/app?x=1"
        );
        for bad in [
            "https://evil.example.com/",
            "http://id.example.com/",
            "https://id.example.com:8443/",
            "//evil.example.com",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect(&c, bad).is_err(), "{bad}");
        }
    }
}
