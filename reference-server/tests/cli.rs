//! The binary's `bootstrap` subcommand: creates the first org, prints its
//! key once on stdout (never in the logs), and a server on the same file
//! accepts that key.

mod common;

use std::process::Command;

use common::{test_builder, TestServer};
use tokenrelay_server::StoreConfig;

#[tokio::test]
async fn bootstrap_prints_a_working_org_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.sqlite3");
    let out = Command::new(env!("CARGO_BIN_EXE_tokenrelay-server"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "bootstrap",
            "--org-name",
            "acme",
        ])
        .env_remove("TOKENRELAY_JWT_SECRET")
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} printed: {stdout}"))
            .to_owned()
    };
    let (org_id, org_key) = (field("org_id"), field("org_api_key"));
    assert!(!stderr.contains(&org_key), "the key is never logged");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = test_builder()
        .store(StoreConfig::Sqlite(db))
        .spawn()
        .await
        .unwrap();
    let t = TestServer {
        server,
        org_id,
        org_key,
        http: reqwest::Client::new(),
    };
    let (status, body) = t.get("/agents", &t.org_key).await;
    assert_eq!(status, 200, "{body}");
    let key = t.client_key(None, None).await;
    assert!(!key.is_empty());
    t.server.shutdown().await;
}
