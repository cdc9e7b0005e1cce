//! Every credential path of `docs/protocol.md` §1 and every refusal the
//! issue lists, over REST and the WebSocket.

use crate::common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{spawn, spawn_with, test_builder, Ws};
use serde_json::{json, Value};

async fn ws_connect(t: &common::TestServer, ctx: &str, token: &str) -> Value {
    let mut ws = Ws::open(&t.ws_url()).await;
    ws.connect(ctx, Some(token), None).await
}

#[tokio::test]
async fn bearer_and_bare_credentials_are_accepted() {
    let t = spawn().await;
    let r = t
        .http
        .get(t.url("/agents"))
        .header("authorization", t.org_key.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = t.get("/agents", &t.org_key).await;
    assert_eq!(status, 200);
    // On the WebSocket too.
    let (_, ctx) = t.agent_and_context().await;
    let key = t.client_key(None, None).await;
    let r = ws_connect(&t, &ctx, &format!("Bearer {key}")).await;
    assert_eq!(r["success"], true);
}

#[tokio::test]
async fn missing_and_garbage_credentials_are_401() {
    let t = spawn().await;
    let (status, body) = t.get("/agents", "").await;
    assert_eq!(status, 401);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = t.get("/agents", "not.a.jwt").await;
    assert_eq!(status, 401);
    let (_, ctx) = t.agent_and_context().await;
    let mut ws = Ws::open(&t.ws_url()).await;
    let r = ws
        .request("connect_to_context", json!({"context_id": ctx}))
        .await;
    assert_eq!(r["error"], "access_token required");
    assert_eq!(r["code"], "unauthorized");
    let r = ws.connect(&ctx, Some("garbage"), None).await;
    assert_eq!(r["code"], "unauthorized");
}

#[tokio::test]
async fn alg_none_and_foreign_signatures_are_refused() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    // Take a real client key and re-issue its claims unsigned.
    let key = t.client_key(None, None).await;
    let claims = key.split('.').nth(1).unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let forged = format!("{header}.{claims}.");
    assert_eq!(ws_connect(&t, &ctx, &forged).await["code"], "unauthorized");
    let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let sig = key.split('.').nth(2).unwrap();
    let forged = format!("{hs512}.{claims}.{sig}");
    assert_eq!(ws_connect(&t, &ctx, &forged).await["code"], "unauthorized");
    // Same claims, signature of another secret.
    let other =
        spawn_with(test_builder().jwt_secret("another secret, at least thirty-two bytes long"))
            .await;
    let foreign = other.client_key(None, None).await;
    assert_eq!(ws_connect(&t, &ctx, &foreign).await["code"], "unauthorized");
    let (status, _) = t.get("/agents", &other.org_key).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn expired_client_key_is_refused_but_an_open_connection_survives_expiry() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let key = t.client_key(Some(&ctx), Some(1)).await;
    let mut open = Ws::open(&t.ws_url()).await;
    assert_eq!(open.connect(&ctx, Some(&key), None).await["success"], true);
    // `exp` has one-second granularity: two seconds is past it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = ws_connect(&t, &ctx, &key).await;
    assert_eq!(r["success"], false);
    assert_eq!(r["code"], "token_expired");
    // The connection opened before expiry still works.
    let ack = open
        .request("add_message", json!({"message": "still here"}))
        .await;
    assert_eq!(ack["success"], true);
    let got = open.collect(ack["response_id"].as_str()).await;
    assert_eq!(got.text, "You said: still here");
}

#[tokio::test]
async fn revoked_keys_are_refused_at_once() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    // A client key.
    let (_, minted) = t
        .post(
            "/generate-api-key",
            &t.org_key,
            json!({"org_id": t.org_id, "type": "client"}),
        )
        .await;
    let key = minted["token"].as_str().unwrap();
    let id = minted["api_key_id"].as_str().unwrap();
    let (status, _) = t.delete(&format!("/api-key/{id}"), &t.org_key).await;
    assert_eq!(status, 200);
    let r = ws_connect(&t, &ctx, key).await;
    assert_eq!(r["code"], "unauthorized");
    assert!(r["error"].as_str().unwrap().contains("revoked"));
    // An org key.
    let (_, minted) = t
        .post(
            "/generate-api-key",
            &t.org_key,
            json!({"org_id": t.org_id, "type": "org"}),
        )
        .await;
    let org2 = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(minted["type"], "org");
    assert_eq!(minted["user_id"], minted["api_key_id"]);
    assert_eq!(t.get("/agents", &org2).await.0, 200);
    let id = minted["api_key_id"].as_str().unwrap();
    t.delete(&format!("/api-key/{id}"), &t.org_key).await;
    assert_eq!(t.get("/agents", &org2).await.0, 401);
}

#[tokio::test]
async fn cross_org_access_is_refused() {
    let t = spawn().await;
    let (agent, ctx) = t.agent_and_context().await;
    let (org_b, key_b) = t.server.bootstrap_org("org-b").await.unwrap();
    // REST: org B cannot read org A's context or agent.
    assert_eq!(t.get(&format!("/context/{ctx}"), &key_b).await.0, 403);
    assert_eq!(t.get(&format!("/agent/{agent}"), &key_b).await.0, 404);
    assert_eq!(
        t.post("/chat", &key_b, json!({"context_id": ctx, "message": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(
        t.post("/context", &key_b, json!({"agent_id": agent}))
            .await
            .0,
        404
    );
    // Org B cannot mint keys for org A.
    let (status, body) = t
        .post(
            "/generate-api-key",
            &key_b,
            json!({"org_id": t.org_id, "type": "client"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    // WS: org B's org key and client key cannot reach org A's context.
    let r = ws_connect(&t, &ctx, &key_b).await;
    assert_eq!(r["error"], "Context does not belong to user");
    assert_eq!(r["code"], "forbidden");
    let client_b = t.server.mint_client_key(&org_b, None, 60).await.unwrap();
    assert_eq!(ws_connect(&t, &ctx, &client_b).await["code"], "forbidden");
    // Org keys may connect to their own contexts.
    assert_eq!(ws_connect(&t, &ctx, &t.org_key).await["success"], true);
}

#[tokio::test]
async fn a_scoped_client_key_reaches_only_its_context() {
    let t = spawn().await;
    let (agent, ctx) = t.agent_and_context().await;
    let other = t.context(&agent).await;
    let key = t.client_key(Some(&ctx), None).await;
    assert_eq!(ws_connect(&t, &ctx, &key).await["success"], true);
    assert_eq!(ws_connect(&t, &other, &key).await["code"], "forbidden");
    // Scoping to a context of another org is refused at minting.
    let (_, key_b) = t.server.bootstrap_org("b").await.unwrap();
    let (status, _) = t
        .post(
            "/generate-api-key",
            &t.org_key,
            json!({"org_id": t.org_id, "type": "client", "context_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404);
    drop(key_b);
}

#[tokio::test]
async fn client_keys_are_refused_on_every_rest_route() {
    let t = spawn().await;
    let (agent, ctx) = t.agent_and_context().await;
    let key = t.client_key(None, None).await;
    let routes: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::POST,
            "/agent".into(),
            json!({"agent_name": "x", "prompt": ""}),
        ),
        (reqwest::Method::GET, format!("/agent/{agent}"), Value::Null),
        (reqwest::Method::GET, "/agents".into(), Value::Null),
        (
            reqwest::Method::DELETE,
            format!("/agent/{agent}"),
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            "/context".into(),
            json!({"agent_id": agent}),
        ),
        (reqwest::Method::GET, format!("/context/{ctx}"), Value::Null),
        (
            reqwest::Method::DELETE,
            format!("/context/{ctx}"),
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            "/chat".into(),
            json!({"context_id": ctx, "message": "x"}),
        ),
        (
            reqwest::Method::POST,
            "/generate-api-key".into(),
            json!({"org_id": t.org_id, "type": "client"}),
        ),
        (reqwest::Method::DELETE, "/api-key/x".into(), Value::Null),
        (reqwest::Method::GET, "/auth/me".into(), Value::Null),
        (
            reqwest::Method::POST,
            "/auth/api-keys".into(),
            json!({"nickname": "n"}),
        ),
        (reqwest::Method::GET, "/auth/api-keys".into(), Value::Null),
        (
            reqwest::Method::DELETE,
            "/auth/api-keys/1".into(),
            Value::Null,
        ),
        (reqwest::Method::GET, "/api/v1/token".into(), Value::Null),
        (
            reqwest::Method::POST,
            "/client-key".into(),
            json!({"allowed_origins": []}),
        ),
        (reqwest::Method::DELETE, "/client-key".into(), Value::Null),
    ];
    for (method, path, body) in routes {
        let mut r = t.request(method.clone(), &path, &key);
        if !body.is_null() {
            r = r.json(&body);
        }
        let (status, body) = common::status_json(r.send().await.unwrap()).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["code"], "forbidden", "{method} {path}");
    }
    // Nothing was deleted.
    assert_eq!(t.get(&format!("/context/{ctx}"), &t.org_key).await.0, 200);
}

#[tokio::test]
async fn users_register_login_and_manage_api_keys() {
    let t = spawn().await;
    let creds = json!({"username": "ann", "password": "correct horse"});
    let (status, user) = t.post("/auth/register", "", creds.clone()).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "ann");
    assert_eq!(t.post("/auth/register", "", creds.clone()).await.0, 409);
    assert_eq!(
        t.post(
            "/auth/register",
            "",
            json!({"username": "bob", "password": "short"})
        )
        .await
        .0,
        400
    );
    let (status, body) = t
        .post(
            "/auth/login",
            "",
            json!({"username": "ann", "password": "wrong password"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        t.post(
            "/auth/login",
            "",
            json!({"username": "nobody", "password": "whatever1"})
        )
        .await
        .0,
        401
    );
    let (status, login) = t.post("/auth/login", "", creds).await;
    assert_eq!(status, 200);
    assert_eq!(login["token_type"], "bearer");
    assert!(login["expires_in"].as_u64().unwrap() >= 900);
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (status, me) = t.get("/auth/me", &token).await;
    assert_eq!((status, me["id"].clone()), (200, user["id"].clone()));
    // The personal org, so the user can mint keys for it.
    let org = me["org_id"].as_str().unwrap().to_owned();
    assert_eq!(login["user"]["org_id"], org.as_str());
    let (status, minted) = t
        .post(
            "/generate-api-key",
            &token,
            json!({"org_id": org, "type": "client"}),
        )
        .await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["user_id"], user["id"]);

    // A user API key: shown once, stored as a hash, usable as Bearer.
    let (status, created) = t
        .post("/auth/api-keys", &token, json!({"nickname": "cli"}))
        .await;
    assert_eq!(status, 200, "{created}");
    let sk = created["key"].as_str().unwrap().to_owned();
    assert!(sk.starts_with("sk_live_"));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        t.post("/auth/api-keys", &token, json!({"nickname": "cli"}))
            .await
            .0,
        409
    );
    let (_, list) = t.get("/auth/api-keys", &sk).await;
    assert_eq!(list["apiKeys"].as_array().unwrap().len(), 1);
    assert!(list["apiKeys"][0].get("key").is_none());
    assert!(!list.to_string().contains(&sk));
    let (status, me) = t.get("/auth/me", &sk).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("ann")));
    // The user's org: agents, contexts, WS.
    let (status, agent) = t
        .post("/agent", &sk, json!({"agent_name": "mine", "prompt": ""}))
        .await;
    assert_eq!(status, 200);
    let (_, ctx) = t
        .post("/context", &sk, json!({"agent_id": agent["agent_id"]}))
        .await;
    let ctx = ctx["context_id"].as_str().unwrap().to_owned();
    assert_eq!(ws_connect(&t, &ctx, &sk).await["success"], true);
    // Org keys are not people.
    assert_eq!(t.get("/auth/me", &t.org_key).await.0, 403);

    // Deleting: 404 unknown, 401 another account's key, then gone at once.
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.delete("/auth/api-keys/999999", &token).await.0, 404);
    assert_eq!(t.delete("/auth/api-keys/abc", &token).await.0, 404);
    t.post(
        "/auth/register",
        "",
        json!({"username": "eve", "password": "password123"}),
    )
    .await;
    let (_, eve) = t
        .post(
            "/auth/login",
            "",
            json!({"username": "eve", "password": "password123"}),
        )
        .await;
    let eve = eve["access_token"].as_str().unwrap();
    assert_eq!(t.delete(&format!("/auth/api-keys/{id}"), eve).await.0, 401);
    let (status, body) = t.delete(&format!("/auth/api-keys/{id}"), &token).await;
    assert_eq!(status, 200);
    assert!(body["message"].is_string());
    assert_eq!(t.get("/auth/me", &sk).await.0, 401);
}

#[tokio::test]
async fn stream_tokens_are_single_use_and_bounded() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    for bad in ["0", "301", "abc", "-5"] {
        let (status, body) = t.get(&format!("/api/v1/token?ttl={bad}"), &t.org_key).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_params")),
            "{bad}"
        );
    }
    let r = t
        .request(reqwest::Method::GET, "/api/v1/token?ttl=30", &t.org_key)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    let (status, body) = common::status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["ttl"], 30);
    assert_eq!(body["success"], true);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pub_tok_"));
    let (_, body) = t.get("/api/v1/token", &t.org_key).await;
    assert_eq!(body["ttl"], 60);

    // First use: the socket opens and may connect without access_token.
    let mut ws = Ws::open(&format!("{}?token={token}", t.ws_url())).await;
    let r = ws
        .request("connect_to_context", json!({"context_id": ctx}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    // Second use: refused with 4001.
    let mut again = Ws::open(&format!("{}?token={token}", t.ws_url())).await;
    assert_eq!(again.closed().await.0, 4001);
    // A stream token is not a REST credential.
    assert_eq!(t.get("/agents", &token).await.0, 401);
}

#[tokio::test]
async fn two_sockets_racing_one_stream_token_exactly_one_wins() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    for _ in 0..10 {
        let (_, body) = t.get("/api/v1/token", &t.org_key).await;
        let url = format!("{}?token={}", t.ws_url(), body["token"].as_str().unwrap());
        let (a, b) = tokio::join!(
            Ws::attaches_with_stream_token(url.clone(), ctx.clone()),
            Ws::attaches_with_stream_token(url.clone(), ctx.clone())
        );
        assert!(a ^ b, "exactly one socket wins (a={a}, b={b})");
    }
}

#[tokio::test]
async fn unused_stream_tokens_expire() {
    let t = spawn().await;
    let (_, body) = t.get("/api/v1/token?ttl=1", &t.org_key).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let url = format!("{}?token={}", t.ws_url(), body["token"].as_str().unwrap());
    assert_eq!(Ws::open(&url).await.closed().await.0, 4001);
}

#[tokio::test]
async fn rate_limits_per_credential_with_headers_and_retry_after() {
    let t = spawn_with(test_builder().configure(|c| c.rate_limit_requests = 3)).await;
    for remaining in [2, 1, 0] {
        let r = t
            .request(reqwest::Method::GET, "/api/v1/token", &t.org_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
    }
    let r = t
        .request(reqwest::Method::POST, "/generate-api-key", &t.org_key)
        .json(&json!({"org_id": t.org_id, "type": "client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let (_, body) = common::status_json(r).await;
    assert_eq!(body["code"], "rate_limited");
    // Another credential has its own budget.
    let (_, key_b) = t.server.bootstrap_org("b").await.unwrap();
    assert_eq!(t.get("/api/v1/token", &key_b).await.0, 200);
}

#[tokio::test]
async fn spent_credits_answer_402_invalid_billing() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    t.server.set_credits(&t.org_id, Some(2)).await.unwrap();
    assert_eq!(t.get("/api/v1/token", &t.org_key).await.0, 200);
    let mut ws = t.connected(&ctx).await;
    let ack = ws.request("add_message", json!({"message": "x"})).await;
    assert_eq!(ack["success"], true);
    ws.collect(ack["response_id"].as_str()).await;
    let (status, body) = t.get("/api/v1/token", &t.org_key).await;
    assert_eq!(status, 402);
    assert_eq!(body["code"], "invalid_billing");
    let ack = ws.request("add_message", json!({"message": "x"})).await;
    assert_eq!(ack["code"], "payment_required");
    let (status, _) = t
        .post(
            "/chat",
            &t.org_key,
            json!({"context_id": ctx, "message": "x"}),
        )
        .await;
    assert_eq!(status, 402);
    t.server.set_credits(&t.org_id, None).await.unwrap();
    assert_eq!(t.get("/api/v1/token", &t.org_key).await.0, 200);
}

#[tokio::test]
async fn publishable_keys_bind_browser_connections_to_origins() {
    let t = spawn().await;
    let (_, ctx) = t.agent_and_context().await;
    let (status, pk) = t
        .post(
            "/client-key",
            &t.org_key,
            json!({"allowed_origins": ["https://app.example.com"]}),
        )
        .await;
    assert_eq!(status, 200, "{pk}");
    let pk = pk["client_key"].as_str().unwrap().to_owned();
    assert!(pk.starts_with("pk_"));
    let attempt = |origin: &'static str, client_key: Option<String>| {
        let t = &t;
        let ctx = ctx.clone();
        async move {
            let key = t.client_key(None, None).await;
            let mut ws = Ws::open_with_origin(&t.ws_url(), origin).await;
            let mut params = json!({"context_id": ctx, "access_token": key});
            if let Some(k) = client_key {
                params["client_key"] = json!(k);
            }
            ws.request("connect_to_context", params).await
        }
    };
    let r = attempt("https://app.example.com", None).await;
    assert_eq!(r["code"], "MISSING_CLIENT_KEY");
    let r = attempt("https://app.example.com", Some("pk_garbage".into())).await;
    assert_eq!(r["code"], "INVALID_CLIENT_KEY");
    let r = attempt("https://evil.example.com", Some(pk.clone())).await;
    assert_eq!(r["code"], "CLIENT_KEY_MISMATCH");
    let r = attempt("https://app.example.com", Some(pk.clone())).await;
    assert_eq!(r["success"], true, "{r}");
    // `?client_key=` on the URL works too.
    let key = t.client_key(None, None).await;
    let mut ws = Ws::open_with_origin(
        &format!("{}?client_key={pk}", t.ws_url()),
        "https://app.example.com",
    )
    .await;
    assert_eq!(ws.connect(&ctx, Some(&key), None).await["success"], true);
    // Server-side org keys are not browser credentials.
    assert_eq!(ws_connect(&t, &ctx, &t.org_key).await["success"], true);
    // Revoked: the old key is now invalid... and no longer required.
    assert_eq!(t.delete("/client-key", &t.org_key).await.0, 200);
    assert_eq!(t.delete("/client-key", &t.org_key).await.0, 404);
    let r = attempt("https://evil.example.com", None).await;
    assert_eq!(r["success"], true);
    // Rotated: the old pk is invalid.
    t.post(
        "/client-key",
        &t.org_key,
        json!({"allowed_origins": ["https://app.example.com"]}),
    )
    .await;
    let r = attempt("https://app.example.com", Some(pk)).await;
    assert_eq!(r["code"], "INVALID_CLIENT_KEY");
    let (status, _) = t
        .post(
            "/client-key",
            &t.org_key,
            json!({"allowed_origins": ["not an origin"]}),
        )
        .await;
    assert_eq!(status, 400);
}
