//! The binary's commands: `bootstrap` creates the first org and prints its
//! key once on stdout (never in the logs), and a server on the same file
//! accepts that key; the config file with `check-config` and
//! `print-config`; `backup`; and the `/ready` probe and request ids.

use crate::common;

use std::process::Command;

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

    let t = common::reopen(db, org_id, org_key).await;
    let (status, body) = t.get("/agents", &t.org_key).await;
    assert_eq!(status, 200, "{body}");
    let key = t.client_key(None, None).await;
    assert!(!key.is_empty());
    t.server.shutdown().await;
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenrelay-server"));
    command.args(args);
    // The settings under test come from the file, flags and `env` only.
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKENRELAY_") {
            command.env_remove(k);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_file_sets_what_flags_and_the_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        "max_connections = 7\nmax-frame-bytes = 4096\nhandshake_timeout_secs = 3\n\
         jwt_secret = \"file-secret-0123456789abcdef0123456789\"\n\
         jwt_previous_secret = [\"old-one-0123456789abcdef0123456789\"]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "--config",
            config,
            "--handshake-timeout-secs",
            "5",
            "print-config",
        ],
        &[("TOKENRELAY_MAX_FRAME_BYTES", "8192")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("max_connections = \"7\""),
        "from the file: {out}"
    );
    assert!(
        out.contains("max_frame_bytes = \"8192\""),
        "the environment wins: {out}"
    );
    assert!(
        out.contains("handshake_timeout_secs = \"5\""),
        "the flag wins: {out}"
    );
    assert!(out.contains("jwt_secret = \"<secret>\""), "{out}");
    assert!(
        !out.contains("file-secret") && !out.contains("old-one"),
        "secrets masked: {out}"
    );

    // check-config opens the store and checks the secrets.
    let db = dir.path().join("relay.sqlite3");
    let (code, out, err) = run(
        &[
            "--config",
            config,
            "--db",
            db.to_str().unwrap(),
            "check-config",
        ],
        &[],
    );
    assert_eq!((code, out.trim()), (0, "config ok"), "{err}");

    // A setting no flag has is refused, with its name, exit code 2.
    std::fs::write(&file, "max_conections = 7\n").unwrap();
    let (code, _, err) = run(&["--config", config, "check-config"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown setting `max_conections`"), "{err}");
    std::fs::write(&file, "max_connections = [\n").unwrap();
    let (code, _, err) = run(&["--config", config, "check-config"], &[]);
    assert_eq!(code, 2, "a malformed file: {err}");
}

#[tokio::test]
async fn backup_writes_a_private_consistent_copy_that_a_server_can_run_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.sqlite3");
    let (code, out, err) = run(
        &[
            "--db",
            db.to_str().unwrap(),
            "bootstrap",
            "--org-name",
            "acme",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (org_id, org_key) = (field("org_id"), field("org_api_key"));
    let copy = dir.path().join("copy.sqlite3");
    let (code, _, err) = run(
        &[
            "--db",
            db.to_str().unwrap(),
            "backup",
            copy.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Never over an existing file.
    let (code, _, err) = run(
        &[
            "--db",
            db.to_str().unwrap(),
            "backup",
            copy.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");

    let t = common::reopen(copy, org_id, org_key).await;
    let (status, body) = t.get("/agents", &t.org_key).await;
    assert_eq!(status, 200, "the org key works on the copy: {body}");
    t.server.shutdown().await;
}

#[tokio::test]
async fn ready_answers_and_every_response_carries_a_request_id() {
    let t = common::spawn().await;
    let response = t.http.get(t.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = response
        .headers()
        .get("x-request-id")
        .expect("a request id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    // Refusals carry one too, and each request its own.
    let refused = t.http.get(t.url("/agents")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let other = refused
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(other, id);
    t.server.shutdown().await;
}
