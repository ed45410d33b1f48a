//! What an operator can close off (issue 13 item 8): the operator endpoints behind a bearer of
//! their own, and the SQLite file readable by its owner only.

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(operator_endpoints_take_their_own_bearer, ipv6_clients_share_a_limit_per_64);

async fn operator_endpoints_take_their_own_bearer(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.metrics_token = Some("operator-secret-1".into())).await;
    let get = |path: &'static str, token: Option<&'static str>| {
        let app = &app;
        async move {
            let mut req = app.client.get(app.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.expect("request")
        }
    };
    for path in ["/metrics", "/api/v1/health/detailed"] {
        let r = get(path, None).await;
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(get(path, Some("operator-secret-2")).await.status(), 401, "{path} with a wrong token");
        assert_eq!(get(path, Some("operator-secret")).await.status(), 401, "{path} with a prefix of it");
        assert_eq!(get(path, Some("operator-secret-1")).await.status(), 200, "{path} with the token");
    }
    let r = get("/api/v1/health/detailed", None).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(r["error"]["code"], "AUTHENTICATION_REQUIRED", "{r}");
    // Liveness and readiness stay open for load balancers.
    assert_eq!(get("/health", None).await.status(), 200);
    assert_eq!(get("/ready", None).await.status(), 200);

    // Without a token configured they are open (the default).
    let open = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(open.client.get(open.url("/metrics")).send().await.unwrap().status(), 200);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = &app.config.database_url;
    let path = url.strip_prefix("sqlite://").unwrap().split('?').next().unwrap();
    assert!(app.signup("perm@example.com").await["user"]["id"].is_string()); // something written
    for file in [path.to_owned(), format!("{path}-wal")] {
        let mode = std::fs::metadata(&file).expect("database file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
}

/// IPv6 clients (here behind a trusted proxy) are limited per /64: another address in the same
/// /64 shares the allowance, one in the next /64 has its own.
async fn ipv6_clients_share_a_limit_per_64(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.rate_limit_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            let r = app.client.get(app.url("/api/v1/auth/me")).header("x-forwarded-for", ip).send().await;
            r.expect("request").status().as_u16()
        }
    };
    for ip in ["2001:db8:0:7::1", "2001:db8:0:7::2", "2001:db8:0:7:ffff::9"] {
        assert_eq!(from(ip).await, 401, "{ip}: within the /64's allowance");
    }
    assert_eq!(from("2001:db8:0:7::abcd").await, 429, "a fourth address of the same /64");
    assert_eq!(from("2001:db8:0:8::1").await, 401, "the next /64 has its own allowance");
    assert_eq!(from("192.0.2.1").await, 401, "IPv4 stays per address");
}
