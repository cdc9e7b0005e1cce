//! The Rust SDK against a cluster, as a deployment has one: two or three
//! reference-server processes (the real binary; a crash is `kill -9`, a
//! deploy `SIGTERM`) on one Redis hub and one PostgreSQL, behind a TCP
//! load balancer that sends each new connection to the next instance it
//! considers up. The client only knows the balancer's address. Whatever
//! happens to the instance its socket is on (the balancer moves it, the
//! instance drains for a deploy, the instance dies), the client reconnects
//! through the balancer to the other instance and resumes from Redis:
//! every token once, in order, or (the instance died with the reply) a
//! reply ended interrupted after the lease, and the next one works.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokenrelay::rest::{NewAgent, NewContext};
use tokenrelay::{AdminClient, Client, Connection, Event, ResponseStatus};
use tokenrelay_e2e::balancer::Balancer;
use tokenrelay_e2e::process::{bootstrap, ServerProcess};
use tokenrelay_e2e::{key_minter, WAIT};
use tokenrelay_server::ScriptedEngine;
use tokio_tungstenite::tungstenite::Message;

use crate::{postgres, redis};

/// Every instance signs and verifies with it (keys minted on one work on
/// all).
const SECRET: &str = "e2e-cluster-secret-of-at-least-32-bytes";

/// A reply long enough to be cut in the middle: 300 tokens, 5 ms apart.
const LONG: &str = "[tokens=300 pace_ms=5] long";

/// One instance: the real `tokenrelay-server` binary in a process of its
/// own, so that a crash is `kill -9` and a deploy is `SIGTERM`.
struct Instance {
    process: Option<ServerProcess>,
}

/// The flags every instance runs with: the cluster's store, hub and
/// secret, and limits no test here is about (the server's own abuse suite
/// tests them).
fn instance_args(redis_url: &str, dsn: &str, lease: Duration) -> Vec<String> {
    instance_args_limited(redis_url, dsn, lease, 1_000_000)
}

/// [`instance_args`] with REST requests limited to `per_minute` per
/// credential (shared by the instances through Redis).
fn instance_args_limited(
    redis_url: &str,
    dsn: &str,
    lease: Duration,
    per_minute: u32,
) -> Vec<String> {
    let lease_ms = lease.as_millis().to_string();
    let per_minute = per_minute.to_string();
    [
        "--db",
        dsn,
        "--hub",
        redis_url,
        "--hub-lease-ms",
        &lease_ms,
        "--jwt-secret",
        SECRET,
        // A deploy's drain lets the running reply finish.
        "--drain-timeout-secs",
        "30",
        "--fault-injection",
        "--rate-limit-per-minute",
        &per_minute,
        "--max-sockets-per-ip",
        "100000",
        "--max-tcp-connections-per-ip",
        "100000",
        "--socket-frame-burst",
        "100000",
        "--socket-frames-per-sec",
        "100000",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl Instance {
    async fn start(redis_url: String, dsn: String, lease: Duration) -> Instance {
        Instance::start_with(instance_args(&redis_url, &dsn, lease)).await
    }

    async fn start_with(args: Vec<String>) -> Instance {
        let process = tokio::task::spawn_blocking(move || ServerProcess::start(&args))
            .await
            .expect("the instance starts");
        Instance {
            process: Some(process),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.process.as_ref().expect("running").addr()
    }

    /// A deploy: `SIGTERM` (sockets told 1001, running replies go on);
    /// the handle ends when the process has exited, and says how.
    fn drain(&mut self) -> tokio::task::JoinHandle<std::process::ExitStatus> {
        let mut process = self.process.take().expect("running");
        process.terminate();
        tokio::task::spawn_blocking(move || process.wait())
    }

    /// A crash: `kill -9`; nothing is released, no lease given back.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// `n` instances on a private Redis and PostgreSQL, a balancer in front,
/// and a connection through it (on instance 0: the balancer's first pick)
/// with a context of its own; `None` (skipped) without `redis-server` or
/// PostgreSQL outside CI.
struct Cluster {
    instances: Vec<Instance>,
    balancer: Balancer,
    conn: Connection,
    /// The org's id and key.
    org: (String, String),
    agent_id: String,
    /// The PostgreSQL database every instance shares.
    dsn: String,
    redis: redis::Redis,
    lease: Duration,
    _pg: Arc<postgres::Postgres>,
}

async fn cluster(test: &str, n: usize, lease: Duration) -> Option<Cluster> {
    let redis = redis::require(test)?;
    let pg = postgres::require(test)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dsn = pg.fresh_database().await;
    let mut instances = Vec::new();
    for _ in 0..n {
        instances.push(Instance::start(redis.url(), dsn.clone(), lease).await);
    }
    let addrs: Vec<SocketAddr> = instances.iter().map(Instance::addr).collect();
    let balancer = Balancer::start(&addrs).await;
    // The app's backend mints keys on the last instance, the one that
    // stays up in the tests that stop others (any instance could: they
    // share the store and the secret).
    let args = instance_args(&redis.url(), &dsn, lease);
    let org = tokio::task::spawn_blocking(move || bootstrap(&args, "cluster"))
        .await
        .expect("bootstrap");
    let last = instances.last().expect("an instance").addr();
    let admin = AdminClient::new(format!("http://{last}"), &org.1).expect("admin");
    let agent_id = admin
        .create_agent(&NewAgent::new("a", "cluster", ""))
        .await
        .expect("agent")
        .agent_id;
    let conn = connect_through(&balancer, &admin, &org.0, &agent_id).await;
    Some(Cluster {
        instances,
        balancer,
        conn,
        org,
        agent_id,
        dsn,
        redis,
        lease,
        _pg: pg,
    })
}

/// A new context and a connection to it through `balancer`, its keys
/// minted by `admin`.
async fn connect_through(
    balancer: &Balancer,
    admin: &AdminClient,
    org_id: &str,
    agent_id: &str,
) -> Connection {
    let ctx = admin
        .create_context(&NewContext::new(agent_id.to_owned()))
        .await
        .expect("context")
        .context_id;
    Client::builder(balancer.ws_url())
        .token_provider(key_minter(admin.clone(), org_id.to_owned()))
        .build()
        .expect("client")
        .connect(&ctx)
        .await
        .expect("connects")
}

impl Cluster {
    /// One more instance on the cluster's Redis and store, started but not
    /// yet routed to (an orchestrator's surge: the successor is up before
    /// its predecessor goes).
    async fn start_instance(&self) -> Instance {
        Instance::start(self.redis.url(), self.dsn.clone(), self.lease).await
    }

    /// `instance` into the balancer's rotation; its index.
    fn route(&mut self, instance: Instance) -> usize {
        let i = self.balancer.add(instance.addr());
        self.instances.push(instance);
        assert_eq!(
            i,
            self.instances.len() - 1,
            "the balancer and the cluster agree"
        );
        i
    }
}

/// The test's cluster, or a skip (no `redis-server` or PostgreSQL outside
/// CI).
macro_rules! cluster {
    ($test:expr, $n:expr, $lease:expr) => {
        match cluster($test, $n, $lease).await {
            Some(c) => c,
            None => return,
        }
    };
}

async fn next(conn: &mut Connection) -> Event {
    tokio::time::timeout(WAIT, conn.next_event())
        .await
        .expect("an event in time")
        .expect("the connection is open")
}

/// Asks `message` and waits for its 20th token; returns the request.
async fn mid_reply(conn: &mut Connection, message: &str) -> tokenrelay::RequestId {
    let request = conn.send_message(message).await.expect("sent");
    let mut tokens = 0;
    while tokens < 20 {
        if let Event::Token { .. } = next(conn).await {
            tokens += 1;
        }
    }
    request
}

/// The end of `request`, and whether the connection was lost (and came
/// back) on the way.
async fn finish(
    conn: &mut Connection,
    request: tokenrelay::RequestId,
) -> (tokenrelay::Response, bool) {
    let mut reconnected = false;
    loop {
        match next(conn).await {
            Event::StateChanged(c) if c.state == tokenrelay::ConnectionState::Reconnecting => {
                reconnected = true;
            }
            Event::ResponseComplete(r) if r.request_id == Some(request) => {
                return (*r, reconnected)
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_to_the_other_instance_mid_reply_gets_every_token_once() {
    let mut c = cluster!(
        "a_client_moved_to_the_other_instance_mid_reply_gets_every_token_once",
        2,
        Duration::from_secs(5)
    );
    let request = mid_reply(&mut c.conn, LONG).await;
    // The balancer moves the client: instance 0 keeps generating, the
    // client resumes on instance 1, fed through Redis.
    c.balancer.take_out(0);
    let (reply, reconnected) = finish(&mut c.conn, request).await;
    assert!(reconnected, "the socket was cut");
    assert_eq!(reply.status, ResponseStatus::Complete, "{reply:?}");
    assert_eq!(
        reply.text,
        ScriptedEngine::expected_reply(LONG),
        "every token once"
    );
    c.conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_drained_for_a_deploy_mid_reply_loses_nothing() {
    let mut c = cluster!(
        "an_instance_drained_for_a_deploy_mid_reply_loses_nothing",
        2,
        Duration::from_secs(5)
    );
    let request = mid_reply(&mut c.conn, LONG).await;
    // A deploy: the balancer stops sending to instance 0 and it drains
    // (1001 to its sockets, the running reply goes on to its end).
    c.balancer.take_out(0);
    let drained = c.instances[0].drain();
    let (reply, reconnected) = finish(&mut c.conn, request).await;
    assert!(reconnected);
    assert_eq!(reply.status, ResponseStatus::Complete, "{reply:?}");
    assert_eq!(reply.text, ScriptedEngine::expected_reply(LONG));
    let exit = tokio::time::timeout(WAIT, drained)
        .await
        .expect("the drain ends once the reply has")
        .expect("drain task");
    assert!(exit.success(), "a drained instance exits 0: {exit}");
    asks_again(&mut c.conn, "on the other").await;
    c.conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_reply_ends_it_interrupted_and_the_client_goes_on() {
    let mut c = cluster!(
        "an_instance_killed_mid_reply_ends_it_interrupted_and_the_client_goes_on",
        2,
        Duration::from_millis(300)
    );
    let request = mid_reply(&mut c.conn, LONG).await;
    c.instances[0].kill();
    c.balancer.take_out(0);
    // Its lease lapses; instance 1 ends the reply (`stop_reason:
    // instance_lost`): a prefix, never a silent gap, never a wait without
    // end.
    let (reply, reconnected) = finish(&mut c.conn, request).await;
    assert!(reconnected);
    assert_eq!(reply.status, ResponseStatus::Interrupted, "{reply:?}");
    assert_eq!(
        reply.stop_reason,
        Some(tokenrelay::StopReason::InstanceLost)
    );
    let whole = ScriptedEngine::expected_reply(LONG);
    assert!(
        whole.starts_with(&reply.text) && reply.text.len() < whole.len(),
        "a prefix: {:?}",
        reply.text
    );
    asks_again(&mut c.conn, "still here").await;
    c.conn.close().await;
}

/// The connection still works after what the test did: an echo of
/// `text`, whole.
async fn asks_again(conn: &mut Connection, text: &str) {
    let reply = tokio::time::timeout(WAIT, conn.ask(&format!("[echo] {text}")))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(reply.text, text);
}

/// Reads events until the connection is back after a loss (a
/// `Reconnecting`, then `Connected`) and one more token has come.
async fn until_moved(conn: &mut Connection) {
    let mut lost = false;
    loop {
        match next(conn).await {
            Event::StateChanged(c) if c.state == tokenrelay::ConnectionState::Reconnecting => {
                lost = true;
            }
            Event::Token { .. } if lost => return,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_a_client_is_on_killed_mid_reply_it_resumes_on_another_exactly() {
    let mut c = cluster!(
        "the_instance_a_client_is_on_killed_mid_reply_it_resumes_on_another_exactly",
        3,
        Duration::from_secs(5)
    );
    // Instance 0 generates; the client is moved to instance 1, where the
    // reply reaches it through Redis…
    let request = mid_reply(&mut c.conn, LONG).await;
    c.balancer.take_out(0);
    until_moved(&mut c.conn).await;
    // …and instance 1 dies under it: the client goes on to instance 2 and
    // resumes there, while instance 0 still generates.
    c.instances[1].kill();
    c.balancer.take_out(1);
    let (reply, _) = finish(&mut c.conn, request).await;
    assert_eq!(reply.status, ResponseStatus::Complete, "{reply:?}");
    assert_eq!(
        reply.text,
        ScriptedEngine::expected_reply(LONG),
        "exact: no gap, no duplicate"
    );
    c.conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_instance_during_20_replies_loses_nothing() {
    let mut c = cluster!(
        "a_rolling_restart_of_every_instance_during_20_replies_loses_nothing",
        3,
        Duration::from_secs(5)
    );
    // Every original instance goes, so the backend reaches the cluster
    // through the balancer too (a drained instance's REST connections
    // close; the next request goes elsewhere).
    let admin = AdminClient::new(c.balancer.http_url(), &c.org.1).expect("admin");
    const MESSAGE: &str = "[tokens=150 pace_ms=10] rolling";
    // The successors (see below) are up before the replies start.
    let mut successors = Vec::new();
    for _ in 0..3 {
        successors.push(c.start_instance().await);
    }
    let mut replies = Vec::new();
    for _ in 0..20 {
        let mut conn = connect_through(&c.balancer, &admin, &c.org.0, &c.agent_id).await;
        replies.push(tokio::spawn(async move {
            let request = conn.send_message(MESSAGE).await.expect("sent");
            let (reply, moved) = finish(&mut conn, request).await;
            conn.close().await;
            (reply, moved)
        }));
    }
    // One instance at a time: its successor (started before the replies,
    // so that the three steps fit well inside them however long a process
    // takes to start) joins the rotation, it leaves it and drains (1001 to
    // its sockets, its replies run on to their end and reach their
    // clients, now elsewhere, through Redis).
    let mut drains = Vec::new();
    for (old, successor) in successors.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.route(successor);
        c.balancer.stop_routing(old);
        drains.push(c.instances[old].drain());
    }
    let expected = ScriptedEngine::expected_reply(MESSAGE);
    for reply in replies {
        let (reply, moved) = reply.await.expect("client task");
        // Every socket was on an original instance, and each drained.
        assert!(moved, "the client was moved mid-reply");
        assert_eq!(reply.status, ResponseStatus::Complete, "{reply:?}");
        assert_eq!(reply.text, expected, "every reply exact");
    }
    for drain in drains {
        let exit = tokio::time::timeout(WAIT, drain)
            .await
            .expect("each drain ends")
            .expect("drain task");
        assert!(exit.success(), "a drained instance exits 0: {exit}");
    }
    c.conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_reply_the_client_reconnects_and_asks_again() {
    let mut c = cluster!(
        "redis_restarted_mid_reply_the_client_reconnects_and_asks_again",
        2,
        Duration::from_secs(5)
    );
    let request = mid_reply(&mut c.conn, LONG).await;
    // Redis away for a while (the tokens generated meanwhile cannot be
    // published), then back empty: the replay stream is gone, the
    // numbering goes on above what the instances have seen, with a gap
    // where the lost tokens were, so the reply can never read as whole
    // with a hole in it.
    c.redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.redis.start_again().expect("redis restarts");
    // The instances close their sockets (1011: live frames may have been
    // lost); the client reconnects through the balancer and the reply
    // ends, complete or cut (a prefix), never left hanging.
    let (reply, reconnected) = finish(&mut c.conn, request).await;
    assert!(
        reconnected,
        "the socket was closed for the client to resume"
    );
    let whole = ScriptedEngine::expected_reply(LONG);
    assert!(
        whole.starts_with(&reply.text),
        "{:?}: {:?}",
        reply.status,
        reply.text
    );
    asks_again(&mut c.conn, "after redis").await;
    c.conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_instance_processes() {
    let Some(redis) = redis::require("a_rate_limit_holds_across_instance_processes") else {
        return;
    };
    let Some(pg) = postgres::require("a_rate_limit_holds_across_instance_processes") else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dsn = pg.fresh_database().await;
    const LIMIT: usize = 6;
    let args = instance_args_limited(&redis.url(), &dsn, Duration::from_secs(5), LIMIT as u32);
    let a = Instance::start_with(args.clone()).await;
    let b = Instance::start_with(args.clone()).await;
    let (org_id, org_key) = tokio::task::spawn_blocking(move || bootstrap(&args, "rate"))
        .await
        .expect("bootstrap");
    // No retries: the SDK would wait out the 429's `retry-after` (the
    // window's end) and try again.
    let admins = [a.addr(), b.addr()].map(|addr| {
        AdminClient::builder()
            .base_url(format!("http://{addr}"))
            .credential(org_key.clone())
            .max_retries(0)
            .build()
            .expect("admin")
    });
    // Turn by turn on the two instances: one budget for the key, counted
    // in Redis, whichever instance answers.
    let mut outcomes = Vec::new();
    for i in 0..2 * LIMIT {
        let minted = admins[i % 2].generate_client_key(&org_id, None, None).await;
        match minted {
            Ok(_) => outcomes.push(true),
            Err(e) => {
                assert_eq!(e.kind(), tokenrelay::ErrorKind::RateLimited, "{e}");
                outcomes.push(false);
            }
        }
    }
    assert_eq!(
        outcomes,
        (0..2 * LIMIT).map(|i| i < LIMIT).collect::<Vec<_>>(),
        "{LIMIT} requests for the key across both instances, then refusals on both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_raced_on_two_instance_processes_is_redeemed_once() {
    let c = cluster!(
        "a_stream_token_raced_on_two_instance_processes_is_redeemed_once",
        2,
        Duration::from_secs(5)
    );
    let admin = AdminClient::new(c.balancer.http_url(), &c.org.1).expect("admin");
    let ctx = admin
        .create_context(&NewContext::new(c.agent_id.clone()))
        .await
        .expect("context")
        .context_id;
    let http = reqwest::Client::new();
    let (a, b) = (c.instances[0].addr(), c.instances[1].addr());
    let attaches = |addr: SocketAddr, token: String, ctx: String| async move {
        let url = format!("ws://{addr}/ws?token={token}");
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
            return false;
        };
        let connect = serde_json::json!({
            "method": "connect_to_context", "params": {"context_id": ctx}, "id": "c"
        });
        if ws.send(Message::text(connect.to_string())).await.is_err() {
            return false;
        }
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<serde_json::Value>(&t)
                .map(|v| v["result"]["success"] == true)
                .unwrap_or(false),
            _ => false,
        }
    };
    for round in 0..10 {
        let body: serde_json::Value = http
            .get(format!("{}/api/v1/token", c.balancer.http_url()))
            .bearer_auth(&c.org.1)
            .send()
            .await
            .expect("mint")
            .json()
            .await
            .expect("json");
        let token = body["token"].as_str().expect("a stream token").to_owned();
        let (on_a, on_b) = tokio::join!(
            attaches(a, token.clone(), ctx.clone()),
            attaches(b, token, ctx.clone())
        );
        assert!(
            on_a ^ on_b,
            "round {round}: exactly one instance redeems it (a={on_a}, b={on_b})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_spent_on_two_instance_processes_come_from_one_balance() {
    let test = "credits_spent_on_two_instance_processes_come_from_one_balance";
    let Some(redis) = redis::require(test) else {
        return;
    };
    let Some(pg) = postgres::require(test) else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dsn = pg.fresh_database().await;
    // A self-registered account's org starts with 3 credits: the one kind
    // of org with a balance that the binary can make.
    let mut args = instance_args(&redis.url(), &dsn, Duration::from_secs(5));
    args.extend(["--open-registration", "--registration-credits", "3"].map(str::to_owned));
    let a = Instance::start_with(args.clone()).await;
    let b = Instance::start_with(args).await;
    let anonymous = AdminClient::new(format!("http://{}", a.addr()), "").expect("admin");
    let credentials = tokenrelay::rest::Credentials::new("cluster-user", "a password long enough");
    let user = anonymous.register(&credentials).await.expect("register");
    let org_id = user.org_id.expect("the account's org");
    let login = anonymous.login(&credentials).await.expect("login");
    let admin = anonymous.with_credential(login.access_token);
    let agent_id = admin
        .create_agent(&NewAgent::new("a", "credits", ""))
        .await
        .expect("agent")
        .agent_id;
    let ctx = admin
        .create_context(&NewContext::new(agent_id))
        .await
        .expect("context")
        .context_id;
    let mut conns = Vec::new();
    for addr in [a.addr(), b.addr()] {
        let conn = Client::builder(format!("ws://{addr}/ws"))
            .token_provider(key_minter(admin.clone(), org_id.clone()))
            .build()
            .expect("client")
            .connect(&ctx)
            .await
            .expect("connects");
        conns.push(conn);
    }
    // Turn by turn on the two instances: one balance, in the shared store.
    let mut answered = 0;
    for i in 0..6 {
        match tokio::time::timeout(WAIT, conns[i % 2].ask("[echo] paid"))
            .await
            .expect("in time")
        {
            Ok(reply) => {
                assert_eq!(reply.text, "paid");
                answered += 1;
            }
            Err(e) => assert_eq!(e.kind(), tokenrelay::ErrorKind::PaymentRequired, "{e}"),
        }
    }
    assert_eq!(
        answered, 3,
        "three credits, three replies, whichever instance"
    );
    for conn in conns {
        conn.close().await;
    }
}
