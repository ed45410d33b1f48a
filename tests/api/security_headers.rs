//! Security headers and CORS (issue 18, item 10): `nosniff` and a referrer policy on every
//! answer, HSTS only on an https deployment, a Content-Security-Policy on every HTML page that
//! allows exactly its own inline scripts (by hash) and same-origin assets — which the pages
//! reference and the server serves — and CORS only for configured origins.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(
    every_answer_has_the_security_headers,
    pages_run_only_what_their_policy_allows,
    cors_answers_only_configured_origins
);

async fn every_answer_has_the_security_headers(b: Backend) {
    let app = TestApp::spawn(b.clone()).await;
    for path in [
        "/health",
        "/api/v1/nope",
        "/graphql?query=%7B__typename%7D",
        "/openapi.json",
        "/assets/graphiql.min.js",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin", "{path}");
        assert!(h.get("strict-transport-security").is_none(), "{path}: HSTS over plain http");
        assert!(h.get("access-control-allow-origin").is_none(), "{path}: CORS without configured origins");
    }
    // The mailed links' pages keep their own, stricter policy.
    let r = app.client.get(app.url("/reset-password")).send().await.unwrap();
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let https = TestApp::spawn_with(b, |c| c.public_url = Some("https://id.example.com".into())).await;
    let r = https.client.get(https.url("/health")).send().await.unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
}

/// The values a directive of `csp` lists.
fn directive<'a>(csp: &'a str, name: &str) -> Vec<&'a str> {
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name).filter(|r| r.starts_with(' ')))
        .map(|r| r.split_whitespace().collect())
        .unwrap_or_default()
}

/// The `attr="…"` values of `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!("{attr}=\"");
    html.match_indices(&pat).filter_map(|(i, _)| html[i + pat.len()..].split('"').next()).collect()
}

async fn pages_run_only_what_their_policy_allows(b: Backend) {
    let app = TestApp::spawn(b).await;
    let pages = [
        ("/", "text/html"),
        ("/graphql", "text/html"),
        ("/docs", "text/html"),
        ("/verify-email", "text/html"),
        ("/confirm-email", "text/html"),
        ("/reset-password", "text/html"),
        ("/magic-link", "text/html"),
        ("/invitations/accept", "text/html"),
    ];
    for (path, accept) in pages {
        let r = app.client.get(app.url(path)).header("accept", accept).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let html = r.text().await.unwrap();
        let scripts = directive(&csp, "script-src");
        assert_eq!(scripts.first(), Some(&"'self'"), "{path}: {csp}");
        assert!(!scripts.iter().any(|s| s.contains("unsafe")), "{path}: {csp}");
        for d in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "default-src 'self'"] {
            assert!(csp.contains(d), "{path}: {csp} lacks {d}");
        }
        // Every inline script that runs is allowed by its hash; nothing else inline is.
        let mut rest = html.as_str();
        let mut inline = 0;
        while let Some(i) = rest.find("<script") {
            let tag_end = rest[i..].find('>').unwrap() + i;
            let tag = &rest[i..tag_end];
            let body_end = rest[tag_end..].find("</script>").unwrap() + tag_end;
            if !tag.contains("src=") && !tag.contains("text/plain") {
                let h = base64::engine::general_purpose::STANDARD
                    .encode(Sha256::digest(&rest.as_bytes()[tag_end + 1..body_end]));
                assert!(
                    scripts.contains(&format!("'sha256-{h}'").as_str()),
                    "{path}: an inline script not in {csp}"
                );
                inline += 1;
            }
            rest = &rest[body_end..];
        }
        assert_eq!(scripts.len(), 1 + inline, "{path}: {csp}");
        // Every script and stylesheet is of this origin, and served.
        for url in attribute_values(&html, "src").into_iter().chain(attribute_values(&html, "href")) {
            if url.starts_with('#') || !url.contains('.') && !url.starts_with("/assets/") {
                continue; // in-page links and the home page's links to other pages
            }
            assert!(url.starts_with('/') && !url.starts_with("//"), "{path}: {url} is not same-origin");
            let a = app.client.get(app.url(url)).send().await.unwrap();
            assert_eq!(a.status(), 200, "{path}: {url}");
        }
    }
    // GraphiQL and the docs load their libraries from /assets, which the policy allows ('self').
    let html = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for asset in ["/assets/graphiql.min.js", "/assets/react.production.min.js", "/assets/graphiql.min.css"] {
        assert!(html.contains(asset), "{asset}");
    }
    let html = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("/assets/swagger-ui-bundle.js") && html.contains("validatorUrl: null"));
}

async fn cors_answers_only_configured_origins(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/signin"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    let methods = r.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers = r.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
    let r = preflight("https://evil.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r =
        app.client.get(app.url("/health")).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    let expose = r.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(expose.contains("x-request-id"), "{expose}");
    let r =
        app.client.get(app.url("/health")).header("origin", "https://evil.example.com").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
