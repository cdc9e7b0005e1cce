//! The PostgreSQL store against a real, private PostgreSQL
//! (`common/postgres.rs` starts it): the store contract, migrations, the
//! races that must hold across instances, a real server end to end, and
//! two servers on one database.

use crate::common;
use crate::postgres_server as postgres;

use std::sync::Arc;

use common::{spawn_with, test_builder, Ws};
use serde_json::json;
use tokenrelay_server::store::{
    conformance, OrgRecord, PostgresStore, Store, StoreError, StreamTokenRecord,
};
use tokenrelay_server::{ScriptedEngine, StoreConfig};

/// The shared instance and a fresh database on it, or a skip.
macro_rules! database {
    ($test:expr) => {
        match postgres::require($test) {
            Some(pg) => {
                let dsn = pg.fresh_database().await;
                (pg, dsn)
            }
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_store_contract() {
    let (_pg, dsn) = database!("keeps_the_store_contract");
    let store = PostgresStore::connect(&dsn).await.expect("connect");
    conformance::check(&store).await.unwrap();
    // Again on the same database (random ids), and through a second pool
    // as a second instance would: its start finds the schema migrated.
    conformance::check(&store).await.unwrap();
    let second = PostgresStore::connect(&dsn).await.expect("reconnect");
    conformance::check(&second).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_the_unix_socket() {
    let (pg, dsn) = database!("connects_over_the_unix_socket");
    let db = dsn.rsplit('/').next().unwrap();
    let over_socket = format!(
        "postgres://tokenrelay@/{db}?host={}&port={}",
        pg.socket_dir().display(),
        pg.port()
    );
    let store = PostgresStore::connect(&over_socket).await.expect("connect");
    store.put_setting("via", "socket").await.unwrap();
    let tcp = PostgresStore::connect(&dsn).await.unwrap();
    assert_eq!(
        tcp.get_setting("via").await.unwrap().as_deref(),
        Some("socket")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_in_a_key_finds_nothing_instead_of_failing() {
    let (_pg, dsn) = database!("a_nul_character_in_a_key_finds_nothing_instead_of_failing");
    let store = PostgresStore::connect(&dsn).await.unwrap();
    assert_eq!(store.get_user_by_name("a\0b").await.unwrap(), None);
    assert_eq!(store.get_context("c\0").await.unwrap(), None);
    assert_eq!(store.context_org("c\0").await.unwrap(), None);
    assert!(!store.revoke_api_key("k\0").await.unwrap());
    assert!(store.revoke_keys_minted_by("m\0").await.unwrap().is_empty());
    assert_eq!(store.consume_stream_token("t\0", 0).await.unwrap(), None);
    // Storing one is an error (nothing half-written), never a panic.
    let org = OrgRecord {
        org_id: "o".into(),
        name: "bad\0name".into(),
        credits: None,
        created_at: 0,
    };
    assert!(matches!(
        store.create_org(&org).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(store.get_org("o").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_even_when_instances_start_together() {
    let (_pg, dsn) = database!("migrations_run_once_even_when_instances_start_together");
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let dsn = dsn.clone();
            tokio::spawn(async move { PostgresStore::connect(&dsn).await.map(drop) })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every start succeeds");
    }
    let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM tokenrelay_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1], "each migration recorded once");
    // A database migrated by a newer server is refused, not used.
    client
        .execute(
            "INSERT INTO tokenrelay_migrations (version, applied_at) VALUES (999, 0)",
            &[],
        )
        .await
        .unwrap();
    match PostgresStore::connect(&dsn).await {
        Err(StoreError::Backend(why)) => assert!(why.contains("newer"), "{why}"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[tokio::test]
async fn a_bad_dsn_is_an_error_without_the_password() {
    let dsn = "postgres://relay:s3cret@127.0.0.1:1/relay?connect_timeout=2";
    match PostgresStore::connect(dsn).await {
        Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
        Ok(_) => panic!("nothing listens on port 1"),
    }
    match PostgresStore::connect("postgres://relay:s3cret@h/db?sslmode=require").await {
        Err(e) => assert!(e.to_string().contains("TLS"), "{e}"),
        Ok(_) => panic!("sslmode=require cannot be met"),
    }
    match PostgresStore::connect("postgres://relay:s3cret@h:notaport/db").await {
        Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
        Ok(_) => panic!("an unparsable DSN is refused"),
    }
}

/// Two pools on one database stand for two server instances.
async fn two_instances(dsn: &str) -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    (
        Arc::new(PostgresStore::connect(dsn).await.unwrap()),
        Arc::new(PostgresStore::connect(dsn).await.unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_is_redeemed_once_across_instances() {
    let (_pg, dsn) = database!("a_stream_token_is_redeemed_once_across_instances");
    let (a, b) = two_instances(&dsn).await;
    for round in 0..50 {
        let token = StreamTokenRecord {
            token_hash: format!("race-{round}"),
            org_id: "o".into(),
            subject: "s".into(),
            expires_at_ms: i64::MAX,
        };
        a.put_stream_token(&token).await.unwrap();
        let (ra, rb) = (a.clone(), b.clone());
        let (ha, hb) = (token.token_hash.clone(), token.token_hash.clone());
        let (x, y) = tokio::join!(
            tokio::spawn(async move { ra.consume_stream_token(&ha, 0).await }),
            tokio::spawn(async move { rb.consume_stream_token(&hb, 0).await }),
        );
        let winners = [x.unwrap().unwrap(), y.unwrap().unwrap()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        assert_eq!(winners, vec![token], "round {round}: exactly one winner");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_never_go_below_zero_under_concurrent_charges() {
    let (_pg, dsn) = database!("credits_never_go_below_zero_under_concurrent_charges");
    let (a, b) = two_instances(&dsn).await;
    let org = OrgRecord {
        org_id: "race-org".into(),
        name: "race".into(),
        credits: Some(50),
        created_at: 0,
    };
    a.create_org(&org).await.unwrap();
    // 2 instances x 40 charges of 1, all at once, against 50 credits.
    let mut tasks = Vec::new();
    for i in 0..80 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.charge_credits("race-org", 1).await
        }));
    }
    let mut paid = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            paid += 1;
        }
    }
    assert_eq!(paid, 50, "exactly the balance is spent");
    assert_eq!(
        b.get_org("race-org").await.unwrap().unwrap().credits,
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_username_registered_at_once_on_two_instances_goes_to_one() {
    let (_pg, dsn) = database!("one_username_registered_at_once_on_two_instances_goes_to_one");
    let (a, b) = two_instances(&dsn).await;
    for round in 0..20 {
        let user = |id: &str| tokenrelay_server::store::UserRecord {
            user_id: format!("{id}-{round}"),
            username: format!("ann-{round}"),
            password_hash: "h".into(),
            org_id: "o".into(),
            created_at: 0,
        };
        let (ua, ub) = (user("a"), user("b"));
        let (x, y) = tokio::join!(a.create_user(&ua), b.create_user(&ub));
        let conflicts = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
            .count();
        assert!(
            x.is_ok() ^ y.is_ok() && conflicts == 1,
            "round {round}: one wins, one conflicts ({x:?}, {y:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_agree_on_one_generated_setting() {
    let (_pg, dsn) = database!("instances_starting_together_agree_on_one_generated_setting");
    let (a, b) = two_instances(&dsn).await;
    let (x, y) = tokio::join!(
        a.put_setting_if_absent("jwt_secret", "from-a"),
        b.put_setting_if_absent("jwt_secret", "from-b"),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x, y);
    assert_eq!(a.get_setting("jwt_secret").await.unwrap(), Some(x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_keeps_history_and_seq_across_a_restart() {
    let (_pg, dsn) = database!("a_server_on_postgres_keeps_history_and_seq_across_a_restart");
    let t = spawn_with(test_builder().store(StoreConfig::Postgres(dsn.clone()))).await;
    let (agent_id, ctx) = t.agent_and_context().await;
    let key = t.client_key(None, None).await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let result = ws.connect(&ctx, Some(&key), None).await;
    assert_eq!(result["success"], true, "{result}");
    let ack = ws
        .request("add_message", json!({"message": "hello there"}))
        .await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, ScriptedEngine::expected_reply("hello there"));
    let last = common::seq(got.notifications.last().unwrap());
    ws.cut();
    let (org_id, org_key) = (t.org_id.clone(), t.org_key.clone());
    t.server.shutdown().await;

    // A new server on the same database: the org key (signed with the
    // secret kept in the database), the context and its seq all survive.
    let t = spawn_with(test_builder().store(StoreConfig::Postgres(dsn))).await;
    let (status, context) = t.get(&format!("/context/{ctx}"), &org_key).await;
    assert_eq!(status, 200, "{context}");
    assert_eq!(context["agent_id"], agent_id.as_str());
    assert_eq!(
        context["messages"],
        json!([
            {"sender": "human", "message": "hello there"},
            {"sender": "ai", "message": "You said: hello there"},
        ])
    );
    let key = t
        .server
        .mint_client_key(&org_id, None, 120)
        .await
        .expect("a client key of the first org");
    let mut ws = Ws::open(&t.ws_url()).await;
    let result = ws.connect(&ctx, Some(&key), None).await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["seq"], last, "seq kept across the restart");
    let ack = ws.request("add_message", json!({"message": "again"})).await;
    let got = ws.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: again");
    assert_eq!(common::seq(&got.notifications[0]), last + 1);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_keys_and_redeem_a_stream_token_once() {
    let (_pg, dsn) =
        database!("two_servers_on_one_database_share_keys_and_redeem_a_stream_token_once");
    // Started together: both generate a JWT secret on the empty database
    // and must end up with the same one.
    let (a, b) = tokio::join!(
        spawn_with(test_builder().store(StoreConfig::Postgres(dsn.clone()))),
        spawn_with(test_builder().store(StoreConfig::Postgres(dsn.clone()))),
    );
    let (_, ctx) = a.agent_and_context().await;
    // A's org key works on B, and B sees A's context.
    let (status, _) = b.get(&format!("/context/{ctx}"), &a.org_key).await;
    assert_eq!(status, 200);
    for round in 0..10 {
        let (status, body) = a.get("/api/v1/token", &a.org_key).await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().unwrap().to_owned();
        let (on_a, on_b) = tokio::join!(
            Ws::attaches_with_stream_token(format!("{}?token={token}", a.ws_url()), ctx.clone()),
            Ws::attaches_with_stream_token(format!("{}?token={token}", b.ws_url()), ctx.clone()),
        );
        assert!(
            on_a ^ on_b,
            "round {round}: exactly one instance redeems it (a={on_a}, b={on_b})"
        );
    }
    a.server.shutdown().await;
    b.server.shutdown().await;
}

/// Runs the binary; returns exit code, stdout, stderr.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenrelay-server"));
    cmd.args(args)
        .env_remove("TOKENRELAY_DB")
        .env_remove("TOKENRELAY_CONFIG")
        .env_remove("TOKENRELAY_JWT_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_selects_postgres_by_flag_env_and_config_file() {
    let (_pg, dsn) = database!("the_binary_selects_postgres_by_flag_env_and_config_file");
    // --db
    let (code, out, err) = run_binary(&["--db", &dsn, "bootstrap", "--org-name", "acme"], &[]);
    assert_eq!(code, 0, "{err}");
    let org_id = out
        .lines()
        .find_map(|l| l.strip_prefix("org_id="))
        .expect("org_id printed")
        .to_owned();
    let store = PostgresStore::connect(&dsn).await.unwrap();
    assert_eq!(
        store.get_org(&org_id).await.unwrap().map(|o| o.name),
        Some("acme".into()),
        "the org is in PostgreSQL"
    );
    // TOKENRELAY_DB
    let (code, out, err) = run_binary(&["check-config"], &[("TOKENRELAY_DB", &dsn)]);
    assert_eq!((code, out.trim()), (0, "config ok"), "{err}");
    // The config file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, format!("db = \"{dsn}\"\n")).unwrap();
    let (code, out, err) = run_binary(&["--config", file.to_str().unwrap(), "check-config"], &[]);
    assert_eq!((code, out.trim()), (0, "config ok"), "{err}");
    // An unreachable database: exit 2 with the reason, password never shown.
    let secret_dsn = "postgres://relay:s3cret@127.0.0.1:1/relay?connect_timeout=2";
    let (code, out, err) = run_binary(&["--db", secret_dsn, "check-config"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(!format!("{out}{err}").contains("s3cret"), "{out}{err}");
    // print-config and --help mask it.
    let (code, out, err) = run_binary(&["print-config"], &[("TOKENRELAY_DB", secret_dsn)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("db = \"postgres://relay:***@127.0.0.1:1/relay?connect_timeout=2\""),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    let (_, out, err) = run_binary(&["--help"], &[("TOKENRELAY_DB", secret_dsn)]);
    assert!(!format!("{out}{err}").contains("s3cret"), "{out}{err}");
    // backup is SQLite's; PostgreSQL has pg_dump.
    let (code, _, err) = run_binary(&["--db", &dsn, "backup", "/tmp/never-written"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("pg_dump"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_503_while_postgres_is_away_and_recovers_by_itself() {
    let Some(pg) = postgres::private("the_server_answers_503_while_postgres_is_away") else {
        return;
    };
    let dsn = pg.fresh_database().await;
    let t = spawn_with(test_builder().store(StoreConfig::Postgres(dsn))).await;
    assert_eq!(t.get("/ready", "").await.0, 200);
    assert_eq!(t.get("/agents", &t.org_key).await.0, 200);

    pg.stop().expect("stop PostgreSQL");
    let started = std::time::Instant::now();
    let (status, body) = t.get("/ready", "").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "answered within the pool's wait, not hung"
    );
    let (status, _) = t.get("/agents", &t.org_key).await;
    assert!(
        status >= 500,
        "a clear server error while it is away: {status}"
    );

    pg.start_again().expect("start PostgreSQL again");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if t.get("/ready", "").await.0 == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ready again after PostgreSQL came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Nothing acknowledged before the crash is lost: the org key minted
    // just before it still verifies.
    assert_eq!(t.get("/agents", &t.org_key).await.0, 200);
    t.server.shutdown().await;
}
