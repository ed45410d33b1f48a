//! The HTTP calls every group makes: a JSON request, the REST envelope's `data`, and the
//! sign-up, sign-in and refresh steps (written once here, used by each group).

use serde_json::{Value, json};

/// The password of every account a benchmark creates.
pub(crate) const PASSWORD: &str = "bench passphrase 2026";

/// Sends `method url` (with a bearer token and a JSON body when given); a non-2xx answer is an
/// error naming the status and body. Returns the JSON answer (`Null` when empty).
pub(crate) async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut req = client.request(method.clone(), url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "{method} {url}: {status} {text}");
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

/// `POST {base}/api/v1{path}` with `body`; the envelope's `data` (`None` on any failure).
pub(crate) async fn post_api(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> Option<Value> {
    let url = format!("{base}/api/v1{path}");
    let v = request(client, reqwest::Method::POST, &url, bearer, Some(&body)).await.ok()?;
    Some(v["data"].clone())
}

/// The tokens a sign-up or sign-in returns.
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) session_id: String,
}

impl Tokens {
    fn of(data: &Value) -> Self {
        let field = |name: &str| data["tokens"][name].as_str().unwrap_or_default().to_owned();
        Self {
            access: field("access_token"),
            refresh: field("refresh_token"),
            session_id: field("session_id"),
        }
    }
}

/// Signs `email` up with [`PASSWORD`].
pub(crate) async fn signup(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<Tokens> {
    let body = json!({"email": email, "password": PASSWORD});
    let data = post_api(client, base, "/auth/signup", None, body)
        .await
        .ok_or_else(|| anyhow::anyhow!("signing {email} up failed"))?;
    Ok(Tokens::of(&data))
}

/// Signs `email` in with `password` (no second factor).
pub(crate) async fn signin(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<Tokens> {
    let body = json!({"email": email, "password": password});
    let data = post_api(client, base, "/auth/signin", None, body)
        .await
        .ok_or_else(|| anyhow::anyhow!("signing {email} in failed"))?;
    Ok(Tokens::of(&data))
}

/// Refreshes once; the next refresh token of the chain (`None` when refused).
pub(crate) async fn refresh(client: &reqwest::Client, base: &str, token: &str) -> Option<String> {
    let data = post_api(client, base, "/auth/refresh", None, json!({"refresh_token": token})).await?;
    data["tokens"]["refresh_token"].as_str().map(str::to_owned)
}
