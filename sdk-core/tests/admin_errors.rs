//! The admin client against a tiny canned HTTP/1.1 responder: what it sends
//! (method, path, headers, JSON body) and how every kind of answer maps to a
//! typed error.

#![cfg(feature = "client")]

use std::time::Duration;

use serde_json::{json, Value};
use tokenrelay::rest::{Credentials, NewAgent, NewContext};
use tokenrelay::AdminClient;
use tokenrelay::{Error, RateLimit};

mod common;
use common::http::{Canned, Responder};
use tokio::net::TcpListener;

fn agent_json() -> Value {
    json!({"agent_id": "a1", "agent_name": "Helper", "agent_description": "helps",
           "prompt": "Be brief.", "org_id": "o1", "is_public": false,
           "agent_speaks_first": false, "tools": [], "created_at": 1763089120,
           "updated_at": 1763089120})
}

// ---------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------

#[tokio::test]
async fn create_agent_posts_json_with_the_bearer_credential() {
    let server = Responder::start(Canned::json(200, agent_json())).await;
    let agent = server
        .client("org-key-123")
        .create_agent(&NewAgent::new("Helper", "helps", "Be brief."))
        .await
        .unwrap();
    assert_eq!(agent.agent_id, "a1");
    assert_eq!(agent.created_at, Some(1763089120));

    let request = server.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/agent");
    assert_eq!(request.header("authorization"), Some("Bearer org-key-123"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"agent_name": "Helper", "agent_description": "helps",
               "prompt": "Be brief.", "is_public": false})
    );
}

#[tokio::test]
async fn ids_are_path_segments_under_the_base_path() {
    let server = Responder::start(Canned::json(
        200,
        json!({"context_id": "a b/c", "agent_id": "a1", "user_id": "u1", "messages": [],
               "user_defined": {}, "created_at": 1, "updated_at": 1}),
    ))
    .await;
    let client = AdminClient::new(format!("{}/v2/", server.base_url), "k").unwrap();
    let context = client.get_context("a b/c").await.unwrap();
    assert_eq!(context.context_id, "a b/c");
    let request = server.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/v2/context/a%20b%2Fc");
    assert_eq!(request.body, "");
}

#[tokio::test]
async fn create_context_and_delete_routes() {
    let server = Responder::start(Canned::json(200, json!({"success": true}))).await;
    let client = server.client("k");
    client.delete_agent("a1").await.unwrap();
    client.delete_context("c1").await.unwrap();
    client.delete_user_api_key("42").await.unwrap();
    client.delete_client_key().await.unwrap();
    let mut seen: Vec<(String, String)> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    seen.sort();
    let expected = [
        ("DELETE", "/agent/a1"),
        ("DELETE", "/auth/api-keys/42"),
        ("DELETE", "/client-key"),
        ("DELETE", "/context/c1"),
    ];
    assert_eq!(
        seen,
        expected.map(|(m, t)| (m.to_owned(), t.to_owned())).to_vec()
    );

    let server = Responder::start(Canned::json(
        200,
        json!({"context_id": "c1", "agent_id": "a1", "client_api_key": "eyJ.secret"}),
    ))
    .await;
    let context = server
        .client("k")
        .create_context(&NewContext::new("a1"))
        .await
        .unwrap();
    assert_eq!(context.client_api_key.as_deref(), Some("eyJ.secret"));
    assert!(!format!("{context:?}").contains("eyJ.secret"));
    assert_eq!(server.only_request().json(), json!({"agent_id": "a1"}));
}

#[tokio::test]
async fn generate_client_key_sends_type_scope_and_ttl() {
    let server = Responder::start(Canned::json(
        200,
        json!({"api_key_id": "k1", "org_id": "o1", "token": "eyJ.client", "valid": true,
               "type": "client", "user_id": "u1", "created_at": 1763089120,
               "updated_at": 1763089120}),
    ))
    .await;
    let key = server
        .client("org")
        .generate_client_key("o1", Some("c1"), Some(60))
        .await
        .unwrap();
    assert_eq!(key.token, "eyJ.client");
    let request = server.only_request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/generate-api-key")
    );
    assert_eq!(
        request.json(),
        json!({"org_id": "o1", "type": "client", "context_id": "c1", "ttl_seconds": 60})
    );
}

#[tokio::test]
async fn stream_token_sends_ttl_and_returns_the_rate_limit() {
    let server = Responder::start(
        Canned::json(
            200,
            json!({"success": true, "token": "pub_tok_a1b2c3d4e5f6", "ttl": 30}),
        )
        .with_header("x-ratelimit-limit", "100")
        .with_header("x-ratelimit-remaining", "99"),
    )
    .await;
    let token = server
        .client("sk_live_x")
        .stream_token(Some(30))
        .await
        .unwrap();
    assert_eq!(token.token, "pub_tok_a1b2c3d4e5f6");
    assert_eq!(token.ttl, 30);
    assert_eq!(
        token.rate_limit,
        Some(RateLimit {
            limit: 100,
            remaining: 99
        })
    );
    assert!(!format!("{token:?}").contains("pub_tok"));
    let request = server.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/api/v1/token?ttl=30");
    assert_eq!(request.header("authorization"), Some("Bearer sk_live_x"));
}

#[tokio::test]
async fn login_sends_no_credential_and_with_credential_switches_it() {
    let server = Responder::start(Canned::json(
        200,
        json!({"access_token": "eyJ.user", "token_type": "bearer", "expires_in": 900,
               "user": {"id": "u1", "username": "ada"}}),
    ))
    .await;
    let anonymous = server.client("org-key");
    let login = anonymous
        .login(&Credentials::new("ada", "hunter2"))
        .await
        .unwrap();
    assert_eq!(login.user.username, "ada");
    let request = server.only_request();
    assert_eq!(request.target, "/auth/login");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.json(),
        json!({"username": "ada", "password": "hunter2"})
    );

    let user = anonymous.with_credential(login.access_token.clone());
    let _ = user.me().await; // The canned body is not a user; only the header matters here.
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests[1].target, "/auth/me");
    assert_eq!(requests[1].header("authorization"), Some("Bearer eyJ.user"));
}

#[tokio::test]
async fn user_api_key_routes_use_camel_case() {
    let server = Responder::start(Canned::json(
        200,
        json!({"apiKeys": [{"id": 42, "nickname": "production-agent",
                            "createdAt": "2024-01-01T00:00:00.000Z",
                            "updatedAt": "2024-01-01T00:00:00.000Z"}]}),
    ))
    .await;
    let keys = server
        .client("eyJ.user")
        .list_user_api_keys()
        .await
        .unwrap();
    assert_eq!(keys[0].id, "42");
    assert_eq!(keys[0].created_at, "2024-01-01T00:00:00.000Z");
    assert_eq!(server.only_request().target, "/auth/api-keys");
}

#[tokio::test]
async fn the_credential_never_shows_in_debug() {
    let client = AdminClient::builder()
        .base_url("http://127.0.0.1:1")
        .credential("sk_live_supersecret")
        .header("x-gateway-key", "gw-secret")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains("supersecret"), "{debug}");
    assert!(!debug.contains("gw-secret"), "{debug}");
    assert!(debug.contains("x-gateway-key"), "{debug}");
}

// ---------------------------------------------------------------------------
// How answers map to errors
// ---------------------------------------------------------------------------

async fn error_for(canned: Canned) -> Error {
    let server = Responder::start(canned).await;
    server.client("k").list_agents().await.unwrap_err()
}

#[tokio::test]
async fn statuses_map_to_variants_with_status_and_code() {
    let cases: [(u16, Value, &str); 6] = [
        (
            401,
            json!({"error": "Unauthorized. Please provide a valid secret key.", "success": false}),
            "unauthorized",
        ),
        (
            402,
            json!({"error": "No credits remaining.", "success": false, "code": "invalid_billing"}),
            "payment_required",
        ),
        (
            403,
            json!({"error": "CLIENT_KEY_MISMATCH", "message": "origin not allowed"}),
            "forbidden",
        ),
        (
            404,
            json!({"error": "Agent not found", "success": false, "code": "not_found"}),
            "not_found",
        ),
        (
            409,
            json!({"error": "nickname already taken", "success": false, "code": "conflict"}),
            "invalid_request",
        ),
        (
            500,
            json!({"error": "Failed to create token", "success": false,
                   "code": "internal_server_error"}),
            "server",
        ),
    ];
    for (status, body, kind) in cases {
        let error = error_for(Canned::json(status, body.clone())).await;
        assert_eq!(error.kind().as_str(), kind, "{status}: {error:?}");
        let rejection = error.rejection().expect("a server rejection");
        assert_eq!(rejection.status, Some(status));
        let expected_code = body["code"].as_str().or(match status {
            403 => Some("CLIENT_KEY_MISMATCH"),
            _ => None,
        });
        assert_eq!(rejection.code.as_deref(), expected_code, "{status}");
    }
}

#[tokio::test]
async fn rate_limited_carries_retry_after_and_the_headers() {
    let error = error_for(
        Canned::json(
            429,
            json!({"error": "Rate limit exceeded", "success": false}),
        )
        .with_header("retry-after", "7")
        .with_header("x-ratelimit-limit", "100")
        .with_header("x-ratelimit-remaining", "0"),
    )
    .await;
    let Error::RateLimited {
        rejection,
        retry_after,
        rate_limit,
    } = error
    else {
        panic!("expected RateLimited, got {error:?}")
    };
    assert_eq!(rejection.status, Some(429));
    assert_eq!(rejection.message, "Rate limit exceeded");
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert_eq!(
        rate_limit,
        Some(RateLimit {
            limit: 100,
            remaining: 0
        })
    );
}

#[tokio::test]
async fn a_non_json_body_still_gives_a_typed_error() {
    let html = "<html><body>502 Bad Gateway</body></html>";
    let error = error_for(Canned {
        status: 502,
        headers: vec![("content-type", "text/html")],
        body: html.to_owned(),
    })
    .await;
    let Error::Server(rejection) = &error else {
        panic!("expected Server, got {error:?}")
    };
    assert_eq!(rejection.status, Some(502));
    assert!(rejection.message.contains(html), "{}", rejection.message);

    let error = error_for(Canned {
        status: 404,
        headers: vec![],
        body: String::new(),
    })
    .await;
    let Error::NotFound(rejection) = &error else {
        panic!("expected NotFound, got {error:?}")
    };
    assert_eq!(rejection.message, "HTTP 404 Not Found");

    let long = "x".repeat(10_000);
    let error = error_for(Canned {
        status: 500,
        headers: vec![],
        body: long,
    })
    .await;
    assert!(error.rejection().unwrap().message.len() < 1_000);
}

#[tokio::test]
async fn success_false_on_a_2xx_is_an_error_and_garbage_is_a_protocol_error() {
    let error = error_for(Canned::json(
        200,
        json!({"success": false, "error": "Context with id: c does not exist"}),
    ))
    .await;
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");

    let error = error_for(Canned {
        status: 200,
        headers: vec![],
        body: "ok".into(),
    })
    .await;
    assert_eq!(error.kind().as_str(), "protocol", "{error:?}");

    let error = error_for(Canned::json(200, json!({"agents": "nope"}))).await;
    assert_eq!(error.kind().as_str(), "protocol", "{error:?}");
}

#[tokio::test]
async fn network_failures_are_transport_errors() {
    // A port that was just free: nothing listens there any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = AdminClient::new(format!("http://{addr}"), "k").unwrap();
    let error = client.list_agents().await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(!error.to_string().contains("Bearer"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = AdminClient::builder()
        .base_url(format!("http://{addr}"))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client.me().await.unwrap_err();
    assert!(
        matches!(&error, Error::Timeout { what, .. } if what == "GET /auth/me"),
        "{error:?}"
    );
}

#[tokio::test]
async fn bad_configuration_is_a_config_error() {
    for url in ["", "not a url", "ftp://host", "mailto:a@b.c"] {
        let error = AdminClient::new(url, "k").unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{url}: {error:?}");
    }
    let error = AdminClient::builder()
        .base_url("http://h")
        .header("bad header", "v")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Config { .. }));

    let server = Responder::start(Canned::json(200, json!({"agents": []}))).await;
    let error = server
        .client("line\nbreak")
        .list_agents()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    assert!(server.requests.lock().unwrap().is_empty());
    let error = server.client("k").get_agent("").await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

fn retrying(server: &Responder, max_retries: u32) -> AdminClient {
    AdminClient::builder()
        .base_url(&server.base_url)
        .credential("k")
        .max_retries(max_retries)
        .build()
        .unwrap()
}

fn count(server: &Responder) -> usize {
    server.requests.lock().unwrap().len()
}

#[tokio::test]
async fn a_503_then_a_200_is_retried_and_succeeds() {
    let server = Responder::start_sequence(vec![
        Canned::json(503, json!({"error": "overloaded", "success": false}))
            .with_header("retry-after", "0"),
        Canned::json(200, json!({"agents": [agent_json()]})),
    ])
    .await;
    // The default client retries.
    let client = AdminClient::new(&server.base_url, "k").unwrap();
    let agents = client.list_agents().await.unwrap();
    assert_eq!(agents[0].agent_id, "a1");
    assert_eq!(count(&server), 2);
}

#[tokio::test]
async fn a_post_is_sent_again_with_its_body() {
    let server = Responder::start_sequence(vec![
        Canned::json(
            429,
            json!({"error": "Rate limit exceeded", "success": false}),
        )
        .with_header("retry-after", "0"),
        Canned::json(200, agent_json()),
    ])
    .await;
    retrying(&server, 2)
        .create_agent(&NewAgent::new("Helper", "helps", "Be brief."))
        .await
        .unwrap();
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json(), requests[1].json());
    assert_eq!(requests[1].json()["agent_name"], "Helper");
}

#[tokio::test]
async fn retries_stop_after_max_retries_with_the_last_error() {
    let server = Responder::start(
        Canned::json(
            429,
            json!({"error": "Rate limit exceeded", "success": false}),
        )
        .with_header("retry-after", "0"),
    )
    .await;
    let error = retrying(&server, 2).list_agents().await.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(count(&server), 3, "one attempt and two retries");
}

#[tokio::test]
async fn a_5xx_without_retry_after_backs_off_and_retries() {
    let server = Responder::start(Canned::json(
        500,
        json!({"error": "boom", "success": false}),
    ))
    .await;
    let error = retrying(&server, 1).list_agents().await.unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    assert_eq!(count(&server), 2);
}

#[tokio::test]
async fn a_4xx_and_a_long_retry_after_are_not_retried() {
    let server = Responder::start(Canned::json(
        404,
        json!({"error": "Agent not found", "success": false}),
    ))
    .await;
    let error = retrying(&server, 2).get_agent("x").await.unwrap_err();
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
    assert_eq!(count(&server), 1);

    // Past MAX_RETRY_AFTER the caller decides: the error carries the delay.
    let server = Responder::start(
        Canned::json(429, json!({"error": "slow down", "success": false}))
            .with_header("retry-after", "3600"),
    )
    .await;
    let error = retrying(&server, 2).list_agents().await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(count(&server), 1);
}
