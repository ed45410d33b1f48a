//! The page the link of an invitation mail opens (`/invitations/accept?token=…`). Opening it
//! spends nothing (a mail scanner that fetches the link accepts nothing); its button posts the
//! token to `POST /api/v1/invitations/accept`, then asks for what that answer says is missing:
//! a password (and name) to sign up with when the address has no account, or a sign-in to the
//! invited account when it has one. As the account pages, it sends no `Referer` and takes the
//! token out of the address bar once read. A deployment with its own interface serves this
//! path itself.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::http::HttpState;
use crate::services::invitations::ACCEPT_PATH;
use crate::services::mail::templates::escape;

/// The path of the page, the invitation mail's link.
pub const PATH: &str = ACCEPT_PATH;

/// `GET /invitations/accept`.
pub async fn accept_invitation(State(svc): State<HttpState>) -> Response {
    let product = escape(&svc.state.config.product_name);
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>Accept the invitation — {product}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}}button{{font:inherit;padding:.5em 1.2em}}input{{font:inherit;width:100%}}#out{{margin-top:1em}}[hidden]{{display:none}}</style>
</head>
<body>
<h1>Accept the invitation</h1>
<p>Join the organization that invited you.</p>
<form id="f">
<div id="signup" hidden>
<p>Create your account: this address has none yet.</p>
<p><label>Name (optional)<br><input id="name" autocomplete="name"></label></p>
<p><label>Password<br><input id="pw" type="password" autocomplete="new-password"></label></p>
</div>
<div id="signin" hidden>
<p>Sign in to the invited account first.</p>
<p><label>Email<br><input id="email" type="email" autocomplete="username"></label></p>
<p><label>Password<br><input id="cur" type="password" autocomplete="current-password"></label></p>
</div>
<p><button type="submit">Accept the invitation</button></p>
</form>
<div id="out" role="status"></div>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
const $ = (id) => document.getElementById(id);
const say = (t) => {{ $("out").textContent = t; }};
if (!token) say("This link has no token: open the link from the mail again.");
const post = async (path, body, bearer) => {{
  const headers = {{ "content-type": "application/json" }};
  if (bearer) headers.authorization = "Bearer " + bearer;
  const r = await fetch(path, {{ method: "POST", headers, body: JSON.stringify(body) }});
  return {{ ok: r.ok, v: await r.json().catch(() => ({{}})) }};
}};
$("f").addEventListener("submit", async (e) => {{
  e.preventDefault();
  let bearer = null;
  const body = {{ token }};
  if (!$("signin").hidden) {{
    const s = await post("/api/v1/auth/signin", {{ email: $("email").value, password: $("cur").value }});
    if (!s.ok) {{ say((s.v.error && s.v.error.message) || "Signing in did not work."); return; }}
    if (s.v.data && s.v.data.mfa_required) {{ say("This account signs in with a second factor: sign in with your application, then accept there."); return; }}
    bearer = s.v.data.tokens.access_token;
  }} else if (!$("signup").hidden) {{
    body.password = $("pw").value;
    if ($("name").value) body.name = $("name").value;
  }}
  const r = await post("/api/v1/invitations/accept", body, bearer);
  const err = r.v.error || {{}};
  if (!r.ok && err.code === "INVITATION_SIGN_IN_REQUIRED") {{ $("signin").hidden = false; say(err.message); return; }}
  if (!r.ok && err.code === "VALIDATION_ERROR" && $("signup").hidden && err.details && err.details.fields && err.details.fields.password) {{ $("signup").hidden = false; say(""); return; }}
  if (!r.ok) {{ say(err.message || "The invitation did not work."); return; }}
  const d = r.v.data || {{}};
  say("You are now a member of " + ((d.organization && d.organization.name) || "the organization") + " (" + d.role + ").");
  $("f").remove();
}});
</script>
</body>
</html>
"##
    );
    let mut resp = crate::http::headers::html(html, false);
    let h = resp.headers_mut();
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
