//! The contract every [`Store`] backend must keep, as a runnable check.
//!
//! A new backend (Redis, say) passes when `check(&backend).await` returns
//! `Ok`. It exercises the rules handlers rely on: uniqueness, atomic
//! consume-once of stream tokens, atomic credit charges, revocation,
//! history replacement and the monotonic `last_seq`. It uses ids with a
//! random suffix, so it can run against a store that holds other data.

use serde_json::json;
use tokenrelay::wire::Agent;

use super::{
    ApiKeyRecord, ContextRecord, KeyKind, OrgRecord, PublishableKeyRecord, Store, StoreError,
    StreamTokenRecord, UserRecord,
};

fn fail<T>(what: &str) -> Result<T, String> {
    Err(format!("store contract violated: {what}"))
}

fn ensure(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        fail(what)
    }
}

/// Runs every contract check against `store`.
pub async fn check(store: &dyn Store) -> Result<(), String> {
    let e = |e: StoreError| format!("store call failed: {e}");
    let tag: u64 = rand::random();
    let id = |what: &str| format!("conformance-{what}-{tag:x}");

    // Orgs and credits.
    let org = OrgRecord {
        org_id: id("org"),
        name: "conformance".into(),
        credits: Some(2),
        created_at: 1,
    };
    store.create_org(&org).await.map_err(e)?;
    ensure(
        store.get_org(&org.org_id).await.map_err(e)? == Some(org.clone()),
        "org round trip",
    )?;
    ensure(
        store.charge_credits(&org.org_id, 2).await.map_err(e)?,
        "charge within balance",
    )?;
    ensure(
        !store.charge_credits(&org.org_id, 1).await.map_err(e)?,
        "charge beyond balance refused",
    )?;
    store.set_credits(&org.org_id, None).await.map_err(e)?;
    ensure(
        store.charge_credits(&org.org_id, 1_000).await.map_err(e)?,
        "unlimited orgs always pay",
    )?;

    // Keys and revocation.
    let key = ApiKeyRecord {
        api_key_id: id("key"),
        org_id: org.org_id.clone(),
        kind: KeyKind::Client,
        user_id: "u".into(),
        client_id: None,
        context_id: Some("ctx".into()),
        valid: true,
        created_at: 1,
        updated_at: 1,
        expires_at: 2,
        minted_by: Some(format!("user_key:{tag}")),
    };
    store.insert_api_key(&key).await.map_err(e)?;
    ensure(
        store.get_api_key(&key.api_key_id).await.map_err(e)? == Some(key.clone()),
        "key round trip",
    )?;
    ensure(
        store.revoke_api_key(&key.api_key_id).await.map_err(e)?,
        "revoke known key",
    )?;
    let revoked = store.get_api_key(&key.api_key_id).await.map_err(e)?;
    ensure(
        revoked.is_some_and(|k| !k.valid),
        "revoked key reads as invalid",
    )?;
    ensure(
        !store.revoke_api_key(&id("nokey")).await.map_err(e)?,
        "revoke unknown key",
    )?;
    let minted = ApiKeyRecord {
        api_key_id: id("minted"),
        kind: KeyKind::Org,
        context_id: None,
        expires_at: i64::MAX / 2,
        ..key.clone()
    };
    store.insert_api_key(&minted).await.map_err(e)?;
    let listed = store
        .list_api_keys(&org.org_id, KeyKind::Org, 10)
        .await
        .map_err(e)?;
    ensure(
        listed == vec![minted.clone()],
        "keys listed by org and kind",
    )?;
    ensure(
        store
            .revoke_keys_minted_by(&format!("user_key:{tag}"))
            .await
            .map_err(e)?
            == vec![minted.api_key_id.clone()],
        "revoking a minter revokes the valid keys it minted, once",
    )?;
    ensure(
        store
            .get_api_key(&minted.api_key_id)
            .await
            .map_err(e)?
            .is_some_and(|k| !k.valid),
        "a key revoked with its minter reads as invalid",
    )?;
    store.purge_expired(1_000).await.map_err(e)?;
    ensure(
        store
            .get_api_key(&key.api_key_id)
            .await
            .map_err(e)?
            .is_none(),
        "expired keys are purged",
    )?;
    ensure(
        store
            .get_api_key(&minted.api_key_id)
            .await
            .map_err(e)?
            .is_some(),
        "live keys survive a purge",
    )?;

    // Agents and contexts.
    let mut agent = Agent::new(id("agent"));
    agent.agent_name = "a".into();
    agent.org_id = org.org_id.clone();
    agent.tools = vec![json!("t")];
    agent.created_at = Some(1);
    store.put_agent(&agent).await.map_err(e)?;
    ensure(
        store.get_agent(&agent.agent_id).await.map_err(e)? == Some(agent.clone()),
        "agent round trip",
    )?;
    ensure(
        store.list_agents(&org.org_id).await.map_err(e)?.len() == 1,
        "agents listed by org",
    )?;
    let ctx = ContextRecord {
        context_id: id("ctx"),
        org_id: org.org_id.clone(),
        agent_id: agent.agent_id.clone(),
        user_id: "u".into(),
        messages: vec![],
        user_defined: json!({"k": 1}),
        prompt_args: json!({}),
        last_seq: 0,
        created_at: 1,
        updated_at: 1,
    };
    store.create_context(&ctx).await.map_err(e)?;
    let history = vec![json!({"sender": "human", "message": "hi"})];
    store
        .save_context_history(&ctx.context_id, &history, 7)
        .await
        .map_err(e)?;
    store
        .save_context_history(&ctx.context_id, &history, 3)
        .await
        .map_err(e)?;
    let saved = store.get_context(&ctx.context_id).await.map_err(e)?;
    ensure(
        saved.as_ref().is_some_and(|c| c.messages == history),
        "history replaced",
    )?;
    ensure(
        saved.is_some_and(|c| c.last_seq == 7),
        "last_seq never goes back",
    )?;
    ensure(
        store.context_org(&ctx.context_id).await.map_err(e)? == Some(ctx.org_id.clone()),
        "a context's org without its history",
    )?;
    ensure(
        store.delete_context(&ctx.context_id).await.map_err(e)?,
        "delete context",
    )?;
    ensure(
        store
            .get_context(&ctx.context_id)
            .await
            .map_err(e)?
            .is_none(),
        "deleted context gone",
    )?;
    ensure(
        store
            .context_org(&ctx.context_id)
            .await
            .map_err(e)?
            .is_none(),
        "a deleted context has no org",
    )?;
    ensure(
        store.delete_agent(&agent.agent_id).await.map_err(e)?,
        "delete agent",
    )?;

    // Users and their keys.
    let user = UserRecord {
        user_id: id("user"),
        username: id("name"),
        password_hash: "h".into(),
        org_id: org.org_id.clone(),
        created_at: 1,
    };
    store.create_user(&user).await.map_err(e)?;
    let twin = UserRecord {
        user_id: id("user2"),
        ..user.clone()
    };
    match store.create_user(&twin).await {
        Err(StoreError::Conflict(_)) => {}
        _ => return fail("usernames are unique"),
    }
    let k = store
        .create_user_api_key(&user.user_id, "nick", &id("hash"), 1)
        .await
        .map_err(e)?;
    match store
        .create_user_api_key(&user.user_id, "nick", &id("hash2"), 1)
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        _ => return fail("nicknames are unique per user"),
    }
    ensure(
        store
            .find_user_api_key(&id("hash"))
            .await
            .map_err(e)?
            .map(|r| r.id)
            == Some(k.id),
        "user key found by hash",
    )?;
    ensure(
        store.delete_user_api_key(k.id).await.map_err(e)?,
        "delete user key",
    )?;
    ensure(
        store
            .find_user_api_key(&id("hash"))
            .await
            .map_err(e)?
            .is_none(),
        "deleted user key gone",
    )?;

    // Stream tokens: consumed once, expired ones never returned.
    let token = StreamTokenRecord {
        token_hash: id("tok"),
        org_id: org.org_id.clone(),
        subject: "s".into(),
        expires_at_ms: i64::MAX,
    };
    store.put_stream_token(&token).await.map_err(e)?;
    let (a, b) = futures_util::future::join(
        store.consume_stream_token(&token.token_hash, 0),
        store.consume_stream_token(&token.token_hash, 0),
    )
    .await;
    let winners = [a.map_err(e)?, b.map_err(e)?]
        .iter()
        .filter(|t| t.is_some())
        .count();
    ensure(winners == 1, "a stream token is consumed exactly once")?;
    let old = StreamTokenRecord {
        token_hash: id("old"),
        expires_at_ms: 10,
        ..token
    };
    store.put_stream_token(&old).await.map_err(e)?;
    ensure(
        store
            .consume_stream_token(&old.token_hash, 11)
            .await
            .map_err(e)?
            .is_none(),
        "expired token refused",
    )?;

    // Publishable keys: one per org, replaced on rotation.
    let pk = PublishableKeyRecord {
        org_id: org.org_id.clone(),
        key_id: id("pk1"),
        allowed_origins: vec!["https://a.example".into()],
        created_at: 1,
    };
    store.put_publishable_key(&pk).await.map_err(e)?;
    let rotated = PublishableKeyRecord {
        key_id: id("pk2"),
        ..pk.clone()
    };
    store.put_publishable_key(&rotated).await.map_err(e)?;
    ensure(
        store.get_publishable_key(&org.org_id).await.map_err(e)? == Some(rotated),
        "rotation replaces",
    )?;
    ensure(
        store.delete_publishable_key(&org.org_id).await.map_err(e)?,
        "delete publishable key",
    )?;
    ensure(
        !store.delete_publishable_key(&org.org_id).await.map_err(e)?,
        "second delete finds nothing",
    )?;

    // Settings.
    store.put_setting(&id("setting"), "v1").await.map_err(e)?;
    store.put_setting(&id("setting"), "v2").await.map_err(e)?;
    ensure(
        store
            .get_setting(&id("setting"))
            .await
            .map_err(e)?
            .as_deref()
            == Some("v2"),
        "settings overwrite",
    )?;
    store.flush().await.map_err(e)?;
    Ok(())
}
