//! `/dashboard`: the checked-in build is what the routes serve, with its caching and
//! Content-Security-Policy headers; and the page itself in headless Chromium
//! (`tests/api/dashboard_browser.mjs`, playwright-core) against a live server: sign-in with a
//! password and with a passkey, live sessions and revocation, the live audit stream, resuming
//! after a dropped socket, an organization admin's isolation, 375 px. The browser part runs when
//! `JANUA_PLAYWRIGHT_CORE` names a playwright-core module folder (`.ci/run` installs one);
//! otherwise it says it was skipped.

use std::io::Write;
use std::sync::OnceLock;

use crate::helpers::{Backend, PASSWORD, TestApp, access};

crate::on_both_databases!(served_build_and_headers, dashboard_in_chromium);

fn checked_in(file: &str) -> Vec<u8> {
    let path = format!("{}/assets/dashboard/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The first 16 hex digits of SHA-256 (how `dashboard/build.mjs` names the files).
fn hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

async fn served_build_and_headers(b: Backend) {
    let app = TestApp::spawn(b).await;
    let get = |path: &str| app.client.get(app.url(path)).send();

    let html = get("/dashboard").await.unwrap();
    assert_eq!(html.status(), 200);
    let h = html.headers().clone();
    assert_eq!(h["cache-control"], "no-cache");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    let host = app.addr.to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        &format!("connect-src 'self' ws://{host} wss://{host};"),
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "CSP has {part}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "no unsafe-inline or unsafe-eval: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let body = html.bytes().await.unwrap();
    assert_eq!(&body[..], &checked_in("index.html")[..], "the page served is the checked-in build");
    let page = String::from_utf8(body.to_vec()).unwrap();
    assert!(!page.contains("<style"), "no inline style");
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script type=\"module\" src=").count(),
        "no inline script"
    );

    for (file, mime) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let bytes = checked_in(file);
        let ext = file.rsplit('.').next().unwrap();
        let name = format!("app.{}.{ext}", hash(&bytes));
        assert!(page.contains(&format!("/dashboard/assets/{name}")), "index.html names {name}: {page}");
        let r = get(&format!("/dashboard/assets/{name}")).await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(mime));
        assert!(r.headers().contains_key("content-security-policy"));
        assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..], "{name} is the checked-in build");
        // Another build's name (or any other) is not served.
        let stale = get(&format!("/dashboard/assets/app.0000000000000000.{ext}")).await.unwrap();
        assert_eq!(stale.status(), 404);
    }
    // Nothing loads from elsewhere: the bundle names no other origin to fetch from.
    let js = String::from_utf8(checked_in("app.js")).unwrap();
    assert!(!js.contains("localStorage") && !js.contains("sessionStorage"), "tokens stay in memory");
    assert!(!js.contains("//cdn") && !js.contains("unpkg") && !js.contains("jsdelivr"), "no CDN");
}

/// The playwright-core module to drive Chromium with; when unset says (once, past the output
/// capture) that the browser test is skipped.
fn playwright() -> Option<String> {
    match std::env::var("JANUA_PLAYWRIGHT_CORE") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\ndashboard browser test skipped: JANUA_PLAYWRIGHT_CORE is not set (the test passes without running)."
                );
            });
            None
        }
    }
}

async fn dashboard_in_chromium(b: Backend) {
    let Some(playwright) = playwright() else { return };
    // One Chromium at a time (the SQLite and PostgreSQL runs would otherwise overlap).
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE.lock().await;
    let which = match &b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    // WebAuthn needs the page's origin in advance: a free port, named `localhost`.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let app = TestApp::spawn_with(b, |c| {
        c.addr = format!("127.0.0.1:{port}").parse().unwrap();
        c.webauthn_rp_id = "localhost".into();
        c.webauthn_origins = vec![origin.clone()];
        c.webhook_allow_loopback = true;
    })
    .await;

    let admin = "admin@example.com";
    let admin_token = app.admin(admin).await;
    let org_a = app.org(&admin_token, "Acme").await;
    let bob = "bob@example.com";
    let bob_token = access(&app.signup(bob).await);
    let org_b = app.org(&bob_token, "Beta").await;
    // Org B's endpoint points at a closed port: its deliveries fail and wait for a retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = serde_json::json!({"url": format!("http://127.0.0.1:{closed}/hook"),
        "events": ["organization.member.added"], "organization_id": org_b});
    let r = app.rest("POST", "/webhooks", Some(&bob_token), Some(hook)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let m1 = app.signup("m1@example.com").await;
    app.signup("m2@example.com").await;
    app.signup("m3@example.com").await;

    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    let shots = format!("{target}/dashboard-screenshots/{which}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/dashboard_browser.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .env("DASH_URL", &origin)
        .env("DASH_PASSWORD", PASSWORD)
        .env("DASH_ADMIN", admin)
        .env("DASH_ORG_ADMIN", bob)
        .env("DASH_ORG_A", &org_a)
        .env("DASH_ORG_B", &org_b)
        .env("DASH_MEMBER_1", "m1@example.com")
        .env("DASH_MEMBER_1_ID", m1["user"]["id"].as_str().unwrap())
        .env("DASH_MEMBER_2", "m2@example.com")
        .env("DASH_MEMBER_3", "m3@example.com")
        .env("DASH_SCREENSHOTS", &shots)
        .env("DASH_PLAYWRIGHT", &playwright)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser scenarios failed ({}):\n{stdout}\n{stderr}", out.status);
    let figures = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DASHBOARD_FIGURES "))
        .unwrap_or_else(|| panic!("no figures printed:\n{stdout}"));
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    let _ = writeln!(
        std::io::stderr(),
        "\ndashboard in Chromium ({which}): {passed} scenarios passed; {figures}"
    );
}
