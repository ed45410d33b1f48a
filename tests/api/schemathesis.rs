//! API fuzzing with schemathesis (PyPI) against a live server: REST from `/openapi.json` (every
//! phase: examples, coverage, fuzzing, and stateful runs that follow the document's `links` from
//! each create to the operations on what it made) and GraphQL from `/graphql`'s introspection.
//! Authenticated as an administrator (SCIM routes with a SCIM token) by
//! `tests/schemathesis/hooks.py`, which signs in again every few seconds since the fuzzer signs
//! itself out. Rate limits are raised out of the way (every per-client limit at 100 000).
//!
//! Checks: no response ≥ 500 (`not_a_server_error`), and on REST every status, content type and
//! body as documented (`status_code_conformance`, `content_type_conformance`,
//! `response_schema_conformance`). Runs when `JANUA_SCHEMATHESIS` names the `schemathesis`
//! executable (`.ci/run` installs one), bounded by `JANUA_SCHEMATHESIS_SECONDS` per run (default
//! 60 for REST, 25 for GraphQL) with seed `JANUA_SCHEMATHESIS_SEED` (default 1); prints the
//! requests sent and their statuses, or that it was skipped.
//! The bugs it found have their regression tests in `fuzz_regressions.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;

use serde_json::Value;

use janua::error::ErrorCode;

use crate::helpers::{Backend, PASSWORD, TempDir, TestApp};

crate::on_both_databases!(schemathesis_rest, schemathesis_graphql);

/// The schemathesis executable; when unset says (once, past the output capture) that the
/// fuzzing is skipped.
fn schemathesis() -> Option<String> {
    match std::env::var("JANUA_SCHEMATHESIS") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nschemathesis skipped: JANUA_SCHEMATHESIS is not set (the fuzzing tests pass without running)."
                );
            });
            None
        }
    }
}

const ADMIN: &str = "fuzz-admin@example.com";

/// What one run sent and found.
struct Outcome {
    requests: usize,
    by_class: BTreeMap<u16, usize>,
    /// GraphQL: the `extensions.code` of every error answered, and how often.
    codes: BTreeMap<String, usize>,
    /// GraphQL errors whose code maps to a status ≥ 500 (`INTERNAL_ERROR`, …).
    server_codes: usize,
    failures: Vec<String>,
    /// ST113 "GraphQL server error": schemathesis counts every resolver error in `errors` as
    /// one, but Janua answers refusals there on purpose (`extensions.code`, e.g. `NOT_FOUND`);
    /// they are judged by their code instead ([`Outcome::server_codes`]).
    resolver_errors: usize,
    errors: Vec<String>,
}

/// Runs schemathesis against `location` (a URL on `app`) for at most `seconds`.
async fn run(app: &TestApp, bin: &str, location: &str, seconds: u64, checks: &str) -> Outcome {
    // One run at a time: `--max-time` counts from start, schema loading included, and four runs
    // side by side on two cores can spend it all before the first request.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    janua::services::bootstrap::create_admin(&app.services.state, ADMIN, PASSWORD)
        .await
        .expect("create the administrator");
    let reports = TempDir::new();
    let seed = std::env::var("JANUA_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let seconds =
        std::env::var("JANUA_SCHEMATHESIS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(seconds);
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");
    let har = reports.0.join("requests.har");
    let report = reports.0.join("report.json");
    let out = tokio::process::Command::new(bin)
        .args(["run", location, "--checks", checks, "--seed", &seed, "--workers", "1", "--no-color"])
        .args(["--max-examples", "25", "--max-time", &seconds.to_string(), "--request-timeout", "30"])
        .args(["--report", "har,json", "--generation-database", "none", "--continue-on-failure"])
        .arg("--report-har-path")
        .arg(&har)
        .arg("--report-json-path")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", hooks)
        .env("JANUA_FUZZ_BASE", &app.base)
        .env("JANUA_FUZZ_EMAIL", ADMIN)
        .env("JANUA_FUZZ_PASSWORD", PASSWORD)
        .current_dir(&reports.0)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let read = |path: &std::path::Path| -> Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "schemathesis wrote no {} ({e}; exit {}):\n{stdout}\n{}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    };
    let (har, report) = (read(&har), read(&report));
    let entries = har["log"]["entries"].as_array().cloned().unwrap_or_default();
    let mut by_class = BTreeMap::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut server_codes = 0;
    for e in &entries {
        let status = e["response"]["status"].as_u64().unwrap_or(0) as u16;
        *by_class.entry(status / 100).or_default() += 1;
        let body: Value = e["response"]["content"]["text"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if location.ends_with("/graphql") {
            for err in body["errors"].as_array().into_iter().flatten() {
                let code = err["extensions"]["code"].as_str().unwrap_or("(none)");
                *codes.entry(code.to_owned()).or_default() += 1;
                let known = ErrorCode::ALL.iter().find(|c| c.as_str() == code);
                if known.is_some_and(|c| c.http_status() >= 500) {
                    server_codes += 1;
                    let _ =
                        writeln!(std::io::stderr(), "GraphQL {code}: {}", e["request"]["postData"]["text"]);
                }
            }
        }
    }
    let mut resolver_errors = 0;
    let mut failures = Vec::new();
    for f in report["failures"].as_array().into_iter().flatten() {
        if f["code"] == "ST113" {
            resolver_errors += f["count"].as_u64().unwrap_or(0) as usize;
        } else {
            failures.push(format!(
                "{} {} ×{} in {}",
                f["code"].as_str().unwrap_or(""),
                f["title"],
                f["count"],
                f["operations"]
            ));
        }
    }
    let errors: Vec<String> = report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} ×{}", e["title"], e["count"]))
        .collect();
    if !failures.is_empty() || !errors.is_empty() {
        // The details (each failing request, with a curl line) are in schemathesis' own output.
        let _ = writeln!(std::io::stderr(), "{stdout}");
    }
    Outcome { requests: entries.len(), by_class, codes, server_codes, failures, resolver_errors, errors }
}

fn report(what: &str, b: &Backend, o: &Outcome) {
    let which = match b {
        Backend::Sqlite => "SQLite",
        Backend::Postgres(_) => "PostgreSQL",
    };
    let classes: Vec<String> = o.by_class.iter().map(|(c, n)| format!("{c}xx {n}")).collect();
    let _ = writeln!(
        std::io::stderr(),
        "\nschemathesis {what} ({which}): {} requests ({}), {} 2xx, {} failures, {} errors",
        o.requests,
        classes.join(", "),
        o.by_class.get(&2).copied().unwrap_or(0),
        o.failures.len(),
        o.errors.len(),
    );
    if !o.codes.is_empty() {
        let codes: Vec<String> = o.codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            std::io::stderr(),
            "  GraphQL errors by code ({} reported by schemathesis as ST113): {}; {} with a 5xx code",
            o.resolver_errors,
            codes.join(", "),
            o.server_codes
        );
    }
    assert_eq!(o.server_codes, 0, "GraphQL errors with a code ≥ 500");
    assert!(o.requests > 0, "schemathesis sent no request (its --max-time spent before the first?)");
    assert!(o.failures.is_empty(), "schemathesis found failures:\n{}", o.failures.join("\n"));
    assert!(o.errors.is_empty(), "schemathesis could not run everything:\n{}", o.errors.join("\n"));
    assert_eq!(o.by_class.get(&5), None, "a response ≥ 500");
}

/// The fuzzing server: every per-client limit out of the fuzzer's way.
async fn fuzz_server(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |c| {
        c.scim_rate_limit_per_minute = 100_000;
        c.lockout_threshold = 100_000;
    })
    .await
}

async fn schemathesis_rest(b: Backend) {
    let Some(bin) = schemathesis() else { return };
    let app = fuzz_server(b.clone()).await;
    let checks =
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let o = run(&app, &bin, &app.url("/openapi.json"), 60, checks).await;
    report("REST", &b, &o);
}

async fn schemathesis_graphql(b: Backend) {
    let Some(bin) = schemathesis() else { return };
    let app = fuzz_server(b.clone()).await;
    let o = run(&app, &bin, &app.url("/graphql"), 25, "not_a_server_error").await;
    report("GraphQL", &b, &o);
}
