//! `cargo bench --bench sso`: the time of one SSO sign-in, from the request that carries the
//! IdP's answer (the ACS POST, the OIDC code) to the tokens, against a real server in this
//! process (SQLite, a fresh directory) and the test suite's IdPs (a SAML IdP signing with xmlsec,
//! an OpenID provider on loopback). Preparing each answer (the AuthnRequest or authorization
//! URL, the signed Response, the IdP's redirect) is outside the timed part.

#[path = "../tests/api/oidc_idp.rs"]
#[allow(dead_code)]
mod oidc_idp;
#[path = "../tests/api/saml_idp.rs"]
#[allow(dead_code)]
mod saml_idp;

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SAMPLES: usize = 200;

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut req = self.client.post(format!("{}/api/v1{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("the server answers");
        let status = r.status();
        let v: Value = r.json().await.expect("JSON");
        assert!(status.is_success(), "{path}: {status} {v}");
        v["data"].clone()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<5} sign-in, answer → tokens ({} runs): p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99)
    );
}

fn request_id(saml_request: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(saml_request).expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..]).read_to_string(&mut xml).expect("deflated XML");
    xml.split(" ID=\"").nth(1).and_then(|s| s.split('"').next()).expect("an ID").to_owned()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("janua-bench-sso-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let mut config = janua::config::Config::defaults();
        config.addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = format!("sqlite://{}?mode=rwc", dir.join("janua.db").display());
        config.master_key = Some(janua::security::secrets::MasterKey::generate().to_base64());
        config.master_key_file = dir.join("janua.key");
        config.rate_limit_per_minute = 1_000_000;
        config.credential_attempts_per_minute = 1_000_000;
        config.sso_allow_loopback = true;
        let app = janua::app::App::build(config).await.expect("a server");
        let api = Api { client: reqwest::Client::new(), base: format!("http://{}", app.local_addr()) };
        tokio::spawn(app.run());

        let owner = api
            .post(
                "/auth/signup",
                None,
                json!({"email": "owner@example.org", "password": "correct horse battery staple 9"}),
            )
            .await;
        let at = owner["tokens"]["access_token"].as_str().unwrap().to_owned();
        let org = api.post("/organizations", Some(&at), json!({"name": "Bench"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // SAML: a provider from the IdP's metadata; each run answers a fresh AuthnRequest.
        let saml = saml_idp::TestSamlIdp::new("https://idp.example.com/saml/metadata");
        let p = api
            .post(
                "/sso/providers",
                Some(&at),
                json!({"organization_id": org, "name": "SAML", "protocol": "saml",
                "saml_metadata_xml": saml.metadata_xml(), "allowed_domains": ["example.com"]}),
            )
            .await;
        let (id, sp, acs) = (
            p["id"].as_str().unwrap().to_owned(),
            p["sp_entity_id"].as_str().unwrap().to_owned(),
            p["saml_acs_url"].as_str().unwrap().to_owned(),
        );
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + 10 {
            let started = api.post("/sso/start", None, json!({"provider_id": id})).await;
            let request = request_id(started["saml_request"].as_str().unwrap());
            let answer = saml
                .response(&sp, &acs)
                .in_response_to(&request)
                .name_id(&format!("user{}@example.com", i % 20))
                .build();
            let t = Instant::now();
            let done = api
                .post(
                    "/sso/saml",
                    None,
                    json!({"saml_response": answer, "relay_state": started["relay_state"]}),
                )
                .await;
            let elapsed = t.elapsed();
            assert!(done["tokens"]["access_token"].is_string());
            if i >= 10 {
                samples.push(elapsed);
            }
        }
        report("SAML", samples);

        // OIDC: a provider at the test OpenID provider; each run exchanges a fresh code.
        let idp = oidc_idp::TestIdp::start().await;
        let p = api
            .post(
                "/sso/providers",
                Some(&at),
                json!({"organization_id": org, "name": "OIDC", "protocol": "oidc",
                "oidc_issuer": idp.issuer(), "oidc_client_id": oidc_idp::CLIENT_ID,
                "oidc_client_secret": oidc_idp::CLIENT_SECRET, "allowed_domains": ["example.net"]}),
            )
            .await;
        let id = p["id"].as_str().unwrap().to_owned();
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + 10 {
            idp.set(|k| {
                k.user.sub = format!("sub-{}", i % 20);
                k.user.email = format!("user{}@example.net", i % 20);
            });
            let started = api.post("/sso/oidc", None, json!({"provider_id": id})).await;
            let cb = idp.authorize(started["authorization_url"].as_str().unwrap()).await;
            let t = Instant::now();
            let done = api.post("/sso/oidc", None, json!({"code": cb.code, "state": cb.state})).await;
            let elapsed = t.elapsed();
            assert!(done["tokens"]["access_token"].is_string());
            if i >= 10 {
                samples.push(elapsed);
            }
        }
        report("OIDC", samples);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
