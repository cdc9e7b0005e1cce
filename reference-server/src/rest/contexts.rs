//! `POST /context`, `GET /context/{id}`, `DELETE /context/{id}`, `POST /chat`.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};
use tokenrelay::rest::{ChatReply, ChatRequest, Context, NewContext};
use tokenrelay::wire::StopReason;

use super::agents::visible_agent;
use super::{check_size, JsonBody};
use crate::auth::{mint_api_key, RestPrincipal};
use crate::conversation::{invoke, Invocation};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ContextRecord, KeyKind};
use crate::time::unix_now;

fn to_context(record: ContextRecord, client_api_key: Option<String>) -> Context {
    let mut context = Context::new(record.context_id, record.agent_id, record.user_id);
    context.messages = serde_json::from_value(Value::Array(record.messages)).unwrap_or_default();
    context.user_defined = match record.user_defined {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    context.created_at = Some(record.created_at);
    context.updated_at = Some(record.updated_at);
    context.client_api_key = client_api_key;
    context
}

/// Loads a context of the caller's org.
async fn owned_context(
    state: &AppState,
    org_id: &str,
    context_id: &str,
) -> Result<ContextRecord, ApiError> {
    match state.store.get_context(context_id).await? {
        Some(c) if c.org_id == org_id => Ok(c),
        Some(_) => Err(ApiError::forbidden("Context does not belong to user")),
        None => Err(ApiError::not_found(format!(
            "Context with id: {context_id} does not exist"
        ))),
    }
}

/// Creates a context. On a public agent of another org the context belongs
/// to the agent's org (it runs and pays for it) and the answer carries a
/// client key scoped to the new context.
pub async fn create(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<NewContext>,
) -> Result<Json<Context>, ApiError> {
    if body.agent_id.is_empty() {
        return Err(ApiError::invalid_params("No agent_id provided"));
    }
    let agent = visible_agent(&state, principal.org_id(), &body.agent_id).await?;
    let limits = &state.config.limits;
    let prompt_args = Value::Object(body.prompt_args.unwrap_or_default());
    let user_defined = Value::Object(body.user_defined.unwrap_or_default());
    check_size(
        "user_defined",
        user_defined.to_string().len(),
        limits.max_object_bytes,
    )?;
    let has_args = prompt_args.as_object().is_some_and(|a| !a.is_empty());
    if has_args {
        // A public agent's prompt is its org's: a stranger's arguments do
        // not reach it (they could rewrite the agent's instructions or
        // leak them back through the reply).
        if agent.org_id != principal.org_id() {
            return Err(ApiError::forbidden(
                "prompt_args can only be set by the agent's own organisation",
            ));
        }
        check_size(
            "prompt_args",
            prompt_args.to_string().len(),
            limits.max_prompt_args_bytes,
        )?;
        // Fill once now, so a context whose prompt would outgrow its bound
        // is refused here rather than failing every turn.
        crate::conversation::generation::fill_prompt(
            &agent.prompt,
            &prompt_args,
            limits.max_prompt_bytes,
        )
        .map_err(|_| {
            ApiError::too_large(format!(
                "the prompt filled with these prompt_args exceeds {} bytes",
                limits.max_prompt_bytes
            ))
        })?;
    }
    if body.invoke_agent_message == Some(true) && state.is_shutting_down() {
        // Refused before the context exists, not after: the caller's retry
        // on another instance must not leave a greeting-less duplicate.
        return Err(ApiError::unavailable(
            "the server is shutting down; retry on another instance",
        ));
    }
    let now = unix_now();
    let record = ContextRecord {
        context_id: uuid::Uuid::new_v4().to_string(),
        org_id: agent.org_id.clone(),
        agent_id: agent.agent_id.clone(),
        user_id: principal.creator_id(),
        messages: Vec::new(),
        user_defined,
        prompt_args,
        last_seq: 0,
        created_at: now,
        updated_at: now,
    };
    state.store.create_context(&record).await?;
    tracing::info!(context_id = %record.context_id, agent_id = %agent.agent_id, "context created");

    let mut record = record;
    if body.invoke_agent_message == Some(true) {
        let hub = state.hubs.get_or_create(&record);
        hub.mark_greeted().await;
        let (_, done) = invoke(&state, &hub, Invocation::SpeakFirst).await?;
        let _ = done.await;
        record = state
            .store
            .get_context(&record.context_id)
            .await?
            .ok_or_else(ApiError::internal)?;
    }
    let client_api_key = if agent.is_public {
        let minted = mint_api_key(
            &state,
            &agent.org_id,
            KeyKind::Client,
            None,
            Some(record.context_id.clone()),
            state.config.client_key_ttl_secs,
            Some(principal.minter()),
        )
        .await?;
        Some(minted.token)
    } else {
        None
    };
    Ok(Json(to_context(record, client_api_key)))
}

/// One context with its history.
pub async fn get(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Json<Context>, ApiError> {
    let record = owned_context(&state, principal.org_id(), &id).await?;
    Ok(Json(to_context(record, None)))
}

/// Deletes a context and stops whatever it was generating.
pub async fn delete(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    owned_context(&state, principal.org_id(), &id).await?;
    state.store.delete_context(&id).await?;
    state.hubs.remove(&id).await;
    Ok(Json(json!({ "success": true })))
}

/// Sends a message and answers with the finished reply. Sockets attached
/// to the context see the reply stream as usual.
pub async fn chat(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<ChatRequest>,
) -> Result<Json<ChatReply>, ApiError> {
    if body.message.is_empty() {
        return Err(ApiError::invalid_params("No message provided"));
    }
    check_size(
        "message",
        body.message.len(),
        state.config.limits.max_message_bytes,
    )?;
    let record = owned_context(&state, principal.org_id(), &body.context_id).await?;
    let hub = state.hubs.get_or_create(&record);
    let (response_id, done) = invoke(&state, &hub, Invocation::Message(body.message)).await?;
    let outcome = done.await.map_err(|_| ApiError::internal())?;
    match outcome.reason {
        StopReason::Error => return Err(ApiError::internal()),
        StopReason::Shutdown => {
            return Err(ApiError::unavailable(
                "the server shut down before the reply finished; retry on another instance",
            ))
        }
        _ => {}
    }
    let mut reply = ChatReply::new(true, outcome.text);
    reply.response_id = Some(response_id);
    Ok(Json(reply))
}
