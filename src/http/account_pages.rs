//! The pages the links of account mails open (`/verify-email`, `/confirm-email`,
//! `/reset-password`, `/magic-link`): opening one spends nothing (a mail scanner that fetches the
//! link changes no state); its button calls the REST route with the token from the address bar.
//! The token never leaves the page by a `Referer` (`no-referrer`), and it is taken out of the
//! address bar once read. A deployment with its own interface serves these paths itself.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::http::HttpState;
use crate::services::mail::templates::escape;

/// What one page says and does.
struct Page {
    title: &'static str,
    intro: &'static str,
    button: &'static str,
    /// The REST route the button posts `{token, …}` to.
    route: &'static str,
    /// Whether the page asks for a new password (sent as `new_password`).
    password: bool,
    done: &'static str,
}

const VERIFY: Page = Page {
    title: "Verify your email address",
    intro: "Confirm that this address is yours.",
    button: "Verify email address",
    route: "/api/v1/auth/verify-email",
    password: false,
    done: "Your email address is verified. You can close this page.",
};

const CONFIRM: Page = Page {
    title: "Confirm your new email address",
    intro: "Confirm the new address of your account; the old one stops working for sign-in.",
    button: "Confirm new address",
    route: "/api/v1/auth/verify-email",
    password: false,
    done: "Your new email address is confirmed. Sign in with it from now on.",
};

const RESET: Page = Page {
    title: "Choose a new password",
    intro: "Every session of your account will be signed out.",
    button: "Set new password",
    route: "/api/v1/auth/password/reset",
    password: true,
    done: "Your password is changed. Sign in with it now.",
};

const MAGIC: Page = Page {
    title: "Sign in",
    intro: "Sign in with the link you asked for.",
    button: "Sign in",
    route: "/api/v1/auth/magic-link/verify",
    password: false,
    done: "You are signed in.",
};

fn render(p: &Page, product: &str) -> Response {
    let password = if p.password {
        r#"<p><label>New password<br><input id="pw" type="password" autocomplete="new-password" minlength="1" required></label></p>"#
    } else {
        ""
    };
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>{title} — {product}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}}button{{font:inherit;padding:.5em 1.2em}}input{{font:inherit;width:100%}}#out{{margin-top:1em}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{intro}</p>
<form id="f">{password}<p><button type="submit">{button}</button></p></form>
<div id="out" role="status"></div>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
const out = document.getElementById("out");
const say = (t) => {{ out.textContent = t; }};
if (!token) say("This link has no token: open the link from the mail again.");
document.getElementById("f").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const body = {{ token }};
  const pw = document.getElementById("pw");
  if (pw) body.new_password = pw.value;
  const r = await fetch({route}, {{ method: "POST", headers: {{ "content-type": "application/json" }}, body: JSON.stringify(body) }});
  const v = await r.json().catch(() => ({{}}));
  if (!r.ok) {{ say((v.error && v.error.message) || "The link did not work."); return; }}
  const d = v.data || {{}};
  if (d.mfa_required) {{ say("Finish signing in with your second factor (mfa_token: " + d.mfa_token + ")."); return; }}
  say({done});
  document.getElementById("f").remove();
  if (d.redirect_url && d.tokens) {{
    const t = new URLSearchParams({{ access_token: d.tokens.access_token, refresh_token: d.tokens.refresh_token }});
    location.assign(d.redirect_url + "#" + t);
  }}
}});
</script>
</body>
</html>
"##,
        title = escape(p.title),
        product = escape(product),
        intro = escape(p.intro),
        button = escape(p.button),
        route = serde_json::Value::from(p.route),
        done = serde_json::Value::from(p.done),
    );
    let mut resp = crate::http::headers::html(html, false);
    let h = resp.headers_mut();
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// `GET /verify-email`.
pub async fn verify_email(State(svc): State<HttpState>) -> Response {
    render(&VERIFY, &svc.state.config.product_name)
}

/// `GET /confirm-email`.
pub async fn confirm_email(State(svc): State<HttpState>) -> Response {
    render(&CONFIRM, &svc.state.config.product_name)
}

/// `GET /reset-password`.
pub async fn reset_password(State(svc): State<HttpState>) -> Response {
    render(&RESET, &svc.state.config.product_name)
}

/// `GET /magic-link`.
pub async fn magic_link(State(svc): State<HttpState>) -> Response {
    render(&MAGIC, &svc.state.config.product_name)
}
