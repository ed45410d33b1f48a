//! scim2-tester (PyPI) against a live server: `tests/scim/conformance.py` runs every check it
//! has on an organization's SCIM endpoint; no check may end in `error` or `critical`. Runs when
//! `JANUA_SCIM_TESTER_PYTHON` names a Python with scim2-tester installed (`.ci/run` makes one);
//! otherwise says it was skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;

use serde_json::Value;

use super::{Provisioned, V2, provisioned_with};
use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(scim_conformance);

/// The Python to run scim2-tester with; when unset says (once, past the output capture) that
/// the conformance run is skipped.
fn tester_python() -> Option<String> {
    match std::env::var("JANUA_SCIM_TESTER_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nscim2-tester skipped: JANUA_SCIM_TESTER_PYTHON is not set (the conformance test passes without running)."
                );
            });
            None
        }
    }
}

async fn scim_conformance(b: Backend) {
    let Some(python) = tester_python() else { return };
    let which = match &b {
        Backend::Sqlite => "SQLite",
        Backend::Postgres(_) => "PostgreSQL",
    };
    // scim2-tester sends a few hundred requests in a burst.
    let app = TestApp::spawn_with(b, |c| c.scim_rate_limit_per_minute = 100_000).await;
    let Provisioned { app, token, .. } = provisioned_with(app).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/conformance.py");
    let url = app.url(V2);
    let out = tokio::process::Command::new(&python)
        .args([script, "--url", &url, "--token", &token])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {python} {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scim2-tester did not run ({}): {stderr}", out.status);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("scim2-tester's output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });

    let status = |c: &Value| c["status"].as_str().unwrap_or("unknown").to_owned();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for c in &checks {
        *by_status.entry(status(c)).or_default() += 1;
    }
    let count = |s: &[&str]| s.iter().map(|s| by_status.get(*s).copied().unwrap_or(0)).sum::<usize>();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| {
            !matches!(status(c).as_str(), "success" | "compliant" | "acceptable" | "deviation" | "skipped")
        })
        .map(|c| {
            format!(
                "{} [{}] {}: {}",
                c["title"].as_str().unwrap_or("?"),
                c["resource_type"].as_str().unwrap_or("-"),
                status(c),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    let deviations: Vec<String> = checks
        .iter()
        .filter(|c| status(c) == "deviation")
        .map(|c| {
            format!(
                "{} [{}]: {}",
                c["title"].as_str().unwrap_or("?"),
                c["resource_type"].as_str().unwrap_or("-"),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "\nscim2-tester ({which}): {} checks, {} passed, {} skipped, {} failed ({})",
        checks.len(),
        count(&["success", "compliant", "acceptable", "deviation"]),
        count(&["skipped"]),
        failed.len(),
        by_status.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "),
    );
    for d in &deviations {
        let _ = writeln!(std::io::stderr(), "  deviation: {d}");
    }
    assert!(!checks.is_empty(), "scim2-tester ran no check: {stderr}");
    assert!(failed.is_empty(), "{} scim2-tester checks failed:\n{}", failed.len(), failed.join("\n"));
}
