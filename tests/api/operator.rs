//! What an operator meets first: the home page and GraphiQL, settings given after the
//! subcommand, the URLs printed at start, and a node started with the wrong master key.

use std::process::Stdio;

use sea_orm::{ActiveValue::Set, EntityTrait};
use tokio::io::{AsyncBufReadExt, BufReader};

use entities::setting;
use janua::app::App;
use janua::security::secrets::MasterKey;

use crate::helpers::{Backend, TempDir, TestApp};

crate::on_both_databases!(
    home_page_links_the_pages,
    a_node_with_another_master_key_refuses_to_start,
    a_database_sealed_before_fingerprints_checks_the_key
);

async fn home_page_links_the_pages(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app.client.get(app.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    for path in ["/graphql", "/docs", "/health", "/.well-known/jwks.json"] {
        assert!(page.contains(&format!("href=\"{path}\"")), "the home page links {path}");
    }
    // curl's `*/*` gets the page too; a client asking for JSON only keeps the 404 envelope.
    let r = app.client.get(app.url("/")).header("accept", "*/*").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = app.client.get(app.url("/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND", "{v}");

    let graphiql = app.client.get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    let graphiql = graphiql.text().await.unwrap();
    for needle in
        ["mutation Signup", "signup(input:", "signin(input:", "query Me", "\"Authorization\": \"Bearer"]
    {
        assert!(graphiql.contains(needle), "GraphiQL's example has {needle}");
    }
    // Offline: every script and style comes from this server.
    for html in [&page, &graphiql] {
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "no CDN");
    }
    let docs = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(!docs.contains("src=\"http"));
}

/// The error of building a node with `config` on `app`'s database.
async fn refused(app: &TestApp, config: janua::config::Config) -> String {
    match App::build_with_schema(config, app.pg_schema.as_deref()).await {
        Ok(_) => panic!("the node started"),
        Err(e) => format!("{e:#}"),
    }
}

async fn a_node_with_another_master_key_refuses_to_start(b: Backend) {
    let app = TestApp::spawn(b).await;
    let expected = MasterKey::from_base64(app.config.master_key.as_deref().unwrap()).unwrap().fingerprint();
    let dir = TempDir::new();
    let key_file = dir.0.join("janua.key");
    let mut config = app.config.clone();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.master_key_file = key_file.clone();

    // Another key.
    let other = MasterKey::generate();
    config.master_key = Some(other.to_base64());
    let e = refused(&app, config.clone()).await;
    assert!(e.contains(&expected) && e.contains(&other.fingerprint()), "{e}");
    assert!(e.contains("JANUA_MASTER_KEY") && e.contains("--master-key-file"), "{e}");
    assert!(!e.contains(&other.to_base64()), "the message never shows a key");

    // No key at all: nothing is created.
    config.master_key = None;
    let e = refused(&app, config.clone()).await;
    assert!(e.contains(&expected) && e.contains("No new key was created"), "{e}");
    assert!(!key_file.exists(), "no key file was created");

    // Another key in the file.
    std::fs::write(&key_file, other.to_base64()).unwrap();
    let e = refused(&app, config.clone()).await;
    assert!(e.contains(&expected) && e.contains(&key_file.display().to_string()), "{e}");

    // The right key, in the file or in the environment, starts, and the node serves.
    std::fs::write(&key_file, app.config.master_key.as_deref().unwrap()).unwrap();
    let peer = App::build_with_schema(config.clone(), app.pg_schema.as_deref()).await.expect("the right key");
    drop(peer);
    let peer = app.spawn_peer().await;
    let jwks = peer.client.get(peer.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.status().as_u16(), 200);

    let row = setting::Entity::find_by_id("master_key_fingerprint")
        .one(&app.services.state.db)
        .await
        .unwrap()
        .expect("the fingerprint is stored");
    assert_eq!(row.value, expected);
}

async fn a_database_sealed_before_fingerprints_checks_the_key(b: Backend) {
    let app = TestApp::spawn(b).await;
    let db = &app.services.state.db;
    // As if the database predated the fingerprint: its signing key is the only witness.
    setting::Entity::delete_by_id("master_key_fingerprint").exec(db).await.unwrap();
    let mut config = app.config.clone();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.master_key = Some(MasterKey::generate().to_base64());
    let e = refused(&app, config.clone()).await;
    assert!(e.contains("does not open the data sealed in this database"), "{e}");
    assert!(setting::Entity::find_by_id("master_key_fingerprint").one(db).await.unwrap().is_none());

    // The right key starts and records its fingerprint.
    let _peer = app.spawn_peer().await;
    let key = MasterKey::from_base64(app.config.master_key.as_deref().unwrap()).unwrap();
    let row = setting::Entity::find_by_id("master_key_fingerprint").one(db).await.unwrap().unwrap();
    assert_eq!(row.value, key.fingerprint());

    // The entity round-trips another row.
    let other = setting::ActiveModel {
        name: Set("test".into()),
        value: Set("v".into()),
        updated_at: Set(chrono::Utc::now()),
    };
    setting::Entity::insert(other).exec(db).await.unwrap();
    assert_eq!(setting::Entity::find_by_id("test").one(db).await.unwrap().unwrap().value, "v");
}

/// `janua` as a process; stdout and stderr piped.
fn janua(args: &[&str], dir: &TempDir) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_janua"));
    c.args(args)
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        .env("JANUA_ARGON2_MEMORY_KIB", "8192")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Settings after `serve` are accepted; the start lines name every page's URL, which answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_settings_after_the_subcommand_and_prints_its_urls() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display());
    let key = dir.0.join("janua.key");
    let key = key.to_str().unwrap();
    let mut child =
        janua(&["serve", "--addr", "127.0.0.1:0", "--database-url", &db, "--master-key-file", key], &dir)
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = std::collections::BTreeMap::new();
    let wanted = ["GraphiQL", "API docs", "Health", "JWKS"];
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            for title in wanted {
                if let Some((_, url)) = line.split_once(&format!("{title}: ")) {
                    urls.insert(title, url.trim().to_owned());
                }
            }
            if urls.len() == wanted.len() {
                return;
            }
        }
        panic!("the server ended before printing its URLs");
    };
    // A bound for a broken build, not a measurement.
    tokio::time::timeout(std::time::Duration::from_secs(120), read).await.expect("the start lines");
    let client = reqwest::Client::new();
    let home = urls["Health"].trim_end_matches("/health").to_owned() + "/";
    assert_eq!(client.get(&home).send().await.unwrap().status().as_u16(), 200);
    for url in urls.values() {
        let r = client.get(url).header("accept", "text/html").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
    }
    child.kill().await.unwrap();

    // A second node on this database with another key (before the subcommand, this time)
    // refuses, names the expected fingerprint, and creates no key file.
    let other_dir = TempDir::new();
    let other_key = other_dir.0.join("janua.key");
    let other_key = other_key.to_str().unwrap();
    let out = janua(
        &["--master-key-file", other_key, "--database-url", &db, "--addr", "127.0.0.1:0", "serve"],
        &other_dir,
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected =
        MasterKey::from_base64(std::fs::read_to_string(key).unwrap().trim()).unwrap().fingerprint();
    assert!(stderr.contains(&expected) && stderr.contains("JANUA_MASTER_KEY"), "{stderr}");
    assert!(!std::path::Path::new(other_key).exists(), "no key file was created");
}
