//! The ready-made token providers against a canned HTTP responder: what
//! they send, what they read back, and how failures are typed.

#![cfg(feature = "client")]

use serde_json::json;
use tokenrelay::{AdminClient, CredentialKind, Error, TokenProvider};
use tokenrelay::{AppEndpoint, OrgKeyProvider, StreamTokenProvider};

mod common;
use common::http::{Canned, Responder};

#[tokio::test]
async fn app_endpoint_posts_the_context_and_reads_the_token() {
    let r = Responder::start(Canned::json(200, json!({"clientToken": "ck_1"}))).await;
    let p = AppEndpoint::new(format!("{}/api/get-client-token", r.base_url))
        .header("Authorization", "Bearer session-1");
    let c = p.token("ctx-9").await.unwrap();
    assert_eq!(c.secret(), "ck_1");
    assert_eq!(c.kind(), CredentialKind::AccessToken);
    let req = r.only_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/api/get-client-token");
    assert_eq!(req.header("authorization"), Some("Bearer session-1"));
    assert_eq!(req.json(), json!({"contextId": "ctx-9"}));
}

#[tokio::test]
async fn app_endpoint_field_names_are_configurable() {
    let r = Responder::start(Canned::json(200, json!({"token": "t"}))).await;
    let p = AppEndpoint::new(&r.base_url)
        .token_field("token")
        .context_field("context_id");
    assert_eq!(p.token("c").await.unwrap().secret(), "t");
    assert_eq!(r.only_request().json(), json!({"context_id": "c"}));
}

#[tokio::test]
async fn app_endpoint_failures_are_typed() {
    let r = Responder::start(Canned::json(403, json!({"error": "not your context"}))).await;
    let e = AppEndpoint::new(&r.base_url).token("c").await.unwrap_err();
    assert!(
        matches!(&e, Error::Forbidden(rej) if rej.message == "not your context"),
        "{e:?}"
    );

    let r = Responder::start(Canned::json(500, json!({"error": "db down"}))).await;
    let e = AppEndpoint::new(&r.base_url).token("c").await.unwrap_err();
    assert!(
        matches!(&e, Error::Server(rej) if rej.message == "db down" && rej.status == Some(500)),
        "{e:?}"
    );

    let r = Responder::start(Canned::json(200, json!({"other": 1}))).await;
    let e = AppEndpoint::new(&r.base_url).token("c").await.unwrap_err();
    assert!(
        matches!(&e, Error::TokenProvider { message } if message.contains("clientToken")),
        "{e:?}"
    );
}

#[tokio::test]
async fn org_key_provider_mints_a_client_key_scoped_to_the_context() {
    let body = json!({"api_key_id": "k", "org_id": "o1", "token": "client.jwt.x", "valid": true,
        "type": "client", "user_id": "u", "created_at": 1, "updated_at": 1});
    let r = Responder::start(Canned::json(200, body)).await;
    let admin = AdminClient::new(&r.base_url, "org-key").unwrap();
    let p = OrgKeyProvider::new(admin, "o1");
    assert_eq!(p.token("ctx-1").await.unwrap().secret(), "client.jwt.x");
    let req = r.only_request();
    assert_eq!(req.target, "/generate-api-key");
    assert_eq!(req.json()["context_id"], "ctx-1");
    assert_eq!(req.json()["type"], "client");
    assert_eq!(req.header("authorization"), Some("Bearer org-key"));
}

#[tokio::test]
async fn stream_token_provider_yields_a_stream_credential() {
    let r = Responder::start(Canned::json(
        200,
        json!({"success": true, "token": "pub_tok_1", "ttl": 30}),
    ))
    .await;
    let admin = AdminClient::new(&r.base_url, "sk_live_x").unwrap();
    let c = StreamTokenProvider::new(admin)
        .ttl(30)
        .token("c")
        .await
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::StreamToken);
    assert_eq!(c.secret(), "pub_tok_1");
    assert_eq!(r.only_request().target, "/api/v1/token?ttl=30");
}

#[tokio::test]
async fn app_endpoint_refuses_plaintext_off_loopback_and_a_bad_ca() {
    // Refused before any request: no network is touched.
    let e = AppEndpoint::new("http://app.example/token")
        .token("c")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("allow_insecure"), "{e}");
    let e = AppEndpoint::new("https://app.example/token")
        .add_root_certificate_pem("not a certificate")
        .token("c")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");

    // Loopback plaintext, and a custom CA with it, still work.
    let r = Responder::start(Canned::json(200, json!({"clientToken": "ck_2"}))).await;
    let ca = "-----BEGIN CERTIFICATE-----\nMIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw\nDgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow\nEjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d\n7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B\n5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr\nBgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1\nNDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l\nWf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc\n6MF9+Yw1Yy0t\n-----END CERTIFICATE-----\n";
    let p = AppEndpoint::new(&r.base_url)
        .add_root_certificate_pem(ca)
        .no_proxy();
    assert_eq!(p.token("c").await.unwrap().secret(), "ck_2");
}
