//! The sign-in timing phase of `janua bench` (issue 18, item 8): how long a refused sign-in
//! takes for an unknown email, a wrong password and a locked account — interleaved, one request
//! at a time, in one run — and the spread of their medians (max ÷ min − 1, goal ≤ 0.05).
//!
//! Every unknown email is a fresh address (an address collects failures and would lock like any
//! other); the wrong-password account signs in correctly (untimed) after each wrong password, so
//! it never reaches the lockout threshold; the locked account is locked first by wrong
//! passwords, which needs a server with a finite `JANUA_LOCKOUT_THRESHOLD` and a credential
//! limit the phase does not exhaust.

use std::time::Instant;

use serde_json::{Value, json};

use super::client::{PASSWORD, signin, signup};
use super::stats::{elapsed_ms, percentile, sorted};

/// The three refusals measured, in the order of the report.
#[derive(Clone, Copy)]
enum Kind {
    Unknown,
    Wrong,
    Locked,
}

/// Every order of the three kinds, one per round in turn, so that no kind always goes first.
const ORDERS: [[Kind; 3]; 6] = [
    [Kind::Unknown, Kind::Wrong, Kind::Locked],
    [Kind::Wrong, Kind::Locked, Kind::Unknown],
    [Kind::Locked, Kind::Unknown, Kind::Wrong],
    [Kind::Unknown, Kind::Locked, Kind::Wrong],
    [Kind::Wrong, Kind::Unknown, Kind::Locked],
    [Kind::Locked, Kind::Wrong, Kind::Unknown],
];

/// `POST /auth/signin` once; the status, the error code and the milliseconds it took (the body
/// read included).
async fn attempt(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<(u16, String, f64)> {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/api/v1/auth/signin"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let ms = elapsed_ms(t);
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    Ok((status, code, ms))
}

/// Runs `rounds` rounds against `base` (accounts named after `run`) and returns the report lines.
pub(crate) async fn phase(
    client: &reqwest::Client,
    base: &str,
    run: &str,
    rounds: usize,
) -> anyhow::Result<Vec<String>> {
    let wrong_email = format!("timing-wrong-{run}@example.com");
    let locked_email = format!("timing-locked-{run}@example.com");
    signup(client, base, &wrong_email).await?;
    signup(client, base, &locked_email).await?;
    let mut locked = false;
    for _ in 0..100 {
        let (status, code, _) = attempt(client, base, &locked_email, "not the password at all").await?;
        anyhow::ensure!(
            status != 429,
            "the credential limit refused the lockout setup ({code}); raise JANUA_CREDENTIAL_ATTEMPTS_PER_MINUTE"
        );
        if code == "ACCOUNT_LOCKED" {
            locked = true;
            break;
        }
    }
    anyhow::ensure!(
        locked,
        "100 wrong passwords did not lock {locked_email}: the server needs a finite JANUA_LOCKOUT_THRESHOLD"
    );

    let (mut unknown, mut wrong, mut lock) = (Vec::new(), Vec::new(), Vec::new());
    let warmup = 5;
    for round in 0..rounds + warmup {
        for kind in ORDERS[round % ORDERS.len()] {
            let (email, expect) = match kind {
                Kind::Unknown => (format!("timing-nobody-{run}-{round}@example.com"), "INVALID_CREDENTIALS"),
                Kind::Wrong => (wrong_email.clone(), "INVALID_CREDENTIALS"),
                Kind::Locked => (locked_email.clone(), "ACCOUNT_LOCKED"),
            };
            let (status, code, ms) = attempt(client, base, &email, "not the password at all").await?;
            anyhow::ensure!(code == expect, "sign-in of {email}: expected {expect}, got {status} {code}");
            if matches!(kind, Kind::Wrong) {
                // Clears the account's failures (untimed), so it never locks.
                signin(client, base, &wrong_email, PASSWORD).await?;
            }
            if round >= warmup {
                match kind {
                    Kind::Unknown => unknown.push(ms),
                    Kind::Wrong => wrong.push(ms),
                    Kind::Locked => lock.push(ms),
                }
            }
        }
    }
    let (unknown, wrong, lock) = (sorted(unknown), sorted(wrong), sorted(lock));
    let medians = [percentile(&unknown, 0.5), percentile(&wrong, 0.5), percentile(&lock, 0.5)];
    let max = medians.iter().copied().fold(f64::MIN, f64::max);
    let min = medians.iter().copied().fold(f64::MAX, f64::min);
    let line = |name: &str, v: &[f64]| {
        format!("    {name:<15} p50 {:>7.2} ms  p99 {:>7.2} ms", percentile(v, 0.5), percentile(v, 0.99))
    };
    Ok(vec![
        format!("(t) refused sign-in timing, {rounds} of each, interleaved, one client:"),
        line("unknown email:", &unknown),
        line("wrong password:", &wrong),
        line("locked account:", &lock),
        format!("    spread of the medians (max ÷ min − 1) = {:.3} (goal ≤ 0.05)", max / min - 1.0),
    ])
}
