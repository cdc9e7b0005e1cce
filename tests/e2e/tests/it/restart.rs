//! A server restart with a client attached mid-reply, through the Rust SDK:
//! graceful (the server shuts down: close 1001) and abrupt (its runtime is
//! dropped, so nothing runs again and the kernel closes its sockets, as
//! for `kill -9`). Either way the client reports the lost connection,
//! reconnects to the new server on the same address and store by itself,
//! ends the cut reply `interrupted` with a gapless prefix (the replay
//! buffer did not survive the restart), and the next `ask` works. The
//! abrupt one also on PostgreSQL (a private instance the harness of
//! `reference-server/tests/common/postgres.rs` starts): the new server
//! finds the org, its keys and the context in the database.

use crate::postgres;

use std::net::SocketAddr;

use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::{AdminClient, Client, Connection, ConnectionState, Error, Event, ResponseStatus};
use tokenrelay_e2e::{builder, key_minter, WAIT};
use tokenrelay_server::{ServerHandle, StoreConfig};

fn numbered(n: usize) -> String {
    (0..n)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn start(store: &StoreConfig, addr: Option<SocketAddr>) -> ServerHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bind = addr.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
    builder()
        .store(store.clone())
        .bind(bind)
        .spawn()
        .await
        .expect("the server starts")
}

/// An org, a context and a connection on `server`, the provider minting
/// keys through REST (so it works against whichever server is up).
async fn attach(server: &ServerHandle) -> (Connection, String) {
    let (org_id, org_key) = server.bootstrap_org("restart").await.unwrap();
    let admin = AdminClient::new(server.http_url(), &org_key).unwrap();
    let agent = admin
        .create_agent(&NewAgent::new("a", "restart", ""))
        .await
        .unwrap();
    let ctx = admin
        .create_context(&NewContext::new(agent.agent_id))
        .await
        .unwrap()
        .context_id;
    let client = Client::builder(server.ws_url())
        .token_provider(key_minter(admin, org_id))
        .build()
        .unwrap();
    let conn = client.connect(&ctx).await.unwrap();
    (conn, ctx)
}

async fn next(conn: &mut Connection) -> Event {
    tokio::time::timeout(WAIT, conn.next_event())
        .await
        .expect("an event in time")
        .expect("the connection is open")
}

/// Sends a long reply and waits for its 20th token.
async fn mid_reply(conn: &mut Connection) -> tokenrelay::RequestId {
    let request = conn
        .send_message("[tokens=2000 pace_ms=5] long")
        .await
        .unwrap();
    let mut tokens = 0;
    while tokens < 20 {
        if let Event::Token { .. } = next(conn).await {
            tokens += 1;
        }
    }
    request
}

/// After the cut: the lost connection is reported, the reply ends
/// interrupted with a prefix, and the connection works again.
async fn recovers(conn: &mut Connection, request: tokenrelay::RequestId) {
    // The connection is reported lost first: a graceful shutdown closes
    // every socket (1001) before it cuts the replies still running; the
    // reply ends when the client has resumed on the new server (whose
    // replay buffer is new, hence interrupted).
    let mut cause = None;
    let mut reply = None;
    while cause.is_none() || reply.is_none() {
        match next(conn).await {
            Event::StateChanged(c) if c.state == ConnectionState::Reconnecting => {
                cause = cause.or(c.cause.clone());
            }
            Event::ResponseComplete(r) if r.request_id == Some(request) => reply = Some(r),
            _ => {}
        }
    }
    let (cause, reply) = (cause.unwrap(), reply.unwrap());
    assert!(
        matches!(
            cause,
            Error::ConnectionLost { .. } | Error::Transport { .. }
        ),
        "{cause:?}"
    );
    assert_eq!(reply.status, ResponseStatus::Interrupted, "{reply:?}");
    assert!(numbered(2000).starts_with(&reply.text), "a prefix, no gap");
    let after = tokio::time::timeout(WAIT, conn.ask("[echo] after the restart"))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(after.text, "after the restart");
    assert_eq!(after.status, ResponseStatus::Complete);
}

async fn graceful_restart(store: StoreConfig) {
    let server = start(&store, None).await;
    let addr = server.addr();
    let (mut conn, _ctx) = attach(&server).await;
    let request = mid_reply(&mut conn).await;
    server.shutdown().await;
    let server = start(&store, Some(addr)).await;
    recovers(&mut conn, request).await;
    conn.close().await;
    server.shutdown().await;
}

async fn abrupt_restart(store: StoreConfig) {
    // The first server on a runtime of its own, so it can die at once.
    let (runtime, server) = {
        let store = store.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(start(&store, None));
            (runtime, server)
        })
        .join()
        .unwrap()
    };
    let addr = server.addr();
    let (mut conn, _ctx) = attach(&server).await;
    let request = mid_reply(&mut conn).await;
    // No shutdown, no close frame: every task of the server is dropped.
    std::mem::forget(server);
    runtime.shutdown_background();
    let server = start(&store, Some(addr)).await;
    recovers(&mut conn, request).await;
    conn.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_reply() {
    let dir = tempfile::tempdir().unwrap();
    graceful_restart(StoreConfig::Sqlite(dir.path().join("store.sqlite3"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_restart_mid_reply() {
    let dir = tempfile::tempdir().unwrap();
    abrupt_restart(StoreConfig::Sqlite(dir.path().join("store.sqlite3"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_restart_mid_reply_on_postgres() {
    let Some(pg) = postgres::require("an_abrupt_restart_mid_reply_on_postgres") else {
        return;
    };
    abrupt_restart(StoreConfig::Postgres(pg.fresh_database().await)).await;
}
