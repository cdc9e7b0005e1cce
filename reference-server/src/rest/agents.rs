//! `POST /agent`, `GET /agent/{id}`, `GET /agents`, `DELETE /agent/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use tokenrelay::rest::{Agent, AgentList, NewAgent};

use super::{check_size, JsonBody};
use crate::auth::RestPrincipal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::unix_now;

/// Creates an agent in the caller's org.
pub async fn create(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    JsonBody(body): JsonBody<NewAgent>,
) -> Result<Json<Agent>, ApiError> {
    if body.agent_name.trim().is_empty() {
        return Err(ApiError::invalid_params("agent_name must not be empty"));
    }
    let limits = &state.config.limits;
    check_size("agent_name", body.agent_name.len(), 256)?;
    check_size("agent_description", body.agent_description.len(), 4096)?;
    check_size("prompt", body.prompt.len(), limits.max_prompt_bytes)?;
    if let Some(tools) = &body.tools {
        check_size(
            "tools",
            serde_json::to_string(tools).map_or(usize::MAX, |t| t.len()),
            limits.max_object_bytes,
        )?;
        check_webhooks(tools)?;
    }
    let now = unix_now();
    let mut agent = Agent::new(uuid::Uuid::new_v4().to_string());
    agent.agent_name = body.agent_name;
    agent.agent_description = body.agent_description;
    agent.prompt = body.prompt;
    agent.org_id = principal.org_id().to_owned();
    agent.is_public = body.is_public;
    agent.agent_speaks_first = body.agent_speaks_first.unwrap_or(false);
    agent.tools = body.tools.unwrap_or_default();
    agent.created_at = Some(now);
    agent.updated_at = Some(now);
    state.store.put_agent(&agent).await?;
    tracing::info!(agent_id = %agent.agent_id, org_id = %agent.org_id, "agent created");
    Ok(Json(agent))
}

/// Checks the `webhook` of each tool definition that has one: a string
/// holding an absolute `http(s)` URL without credentials, on a server tool
/// (a client-side tool runs in the client, so a URL there would mean
/// nothing). Whether the server may call it is decided at each call, by
/// the policy of the day (`docs/security.md`, "Webhook tools").
fn check_webhooks(tools: &[Value]) -> Result<(), ApiError> {
    for tool in tools {
        let Some(webhook) = tool.get("webhook") else {
            continue;
        };
        let Some(url) = webhook.as_str() else {
            return Err(ApiError::invalid_params(
                "a tool's webhook must be a URL string",
            ));
        };
        if tool.get("client_side").and_then(Value::as_bool) == Some(true) {
            return Err(ApiError::invalid_params(
                "a client-side tool cannot have a webhook",
            ));
        }
        if let Err(e) = crate::engine::webhook::check_webhook_url(url) {
            return Err(ApiError::invalid_params(format!(
                "a tool's webhook must be an http(s) URL with a host and no credentials: {e}"
            )));
        }
    }
    Ok(())
}

/// Loads an agent the caller may see (its org's, or a public one).
pub async fn visible_agent(
    state: &AppState,
    org_id: &str,
    agent_id: &str,
) -> Result<Agent, ApiError> {
    match state.store.get_agent(agent_id).await? {
        Some(a) if a.org_id == org_id || a.is_public => Ok(a),
        _ => Err(ApiError::not_found(format!(
            "Agent with id: {agent_id} does not exist"
        ))),
    }
}

/// What another org sees of a public agent: enough to start a context
/// with it and show it, nothing of how it works (its prompt and tools are
/// its org's).
pub fn public_view(agent: &Agent) -> Agent {
    // Field by field, not a copy with fields cleared: a field the core
    // adds to `Agent` stays out of the public view until it is added here.
    let mut view = Agent::new(agent.agent_id.clone());
    view.agent_name = agent.agent_name.clone();
    view.agent_description = agent.agent_description.clone();
    view.org_id = agent.org_id.clone();
    view.is_public = agent.is_public;
    view.agent_speaks_first = agent.agent_speaks_first;
    view.created_at = agent.created_at;
    view.updated_at = agent.updated_at;
    view
}

/// One agent: whole for its own org, [`public_view`] for another.
pub async fn get(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let agent = visible_agent(&state, principal.org_id(), &id).await?;
    Ok(Json(if agent.org_id == principal.org_id() {
        agent
    } else {
        public_view(&agent)
    }))
}

/// The caller's org's agents.
pub async fn list(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
) -> Result<Json<AgentList>, ApiError> {
    let agents = state.store.list_agents(principal.org_id()).await?;
    Ok(Json(AgentList::new(agents)))
}

/// Deletes one of the caller's org's agents.
pub async fn delete(
    State(state): State<AppState>,
    RestPrincipal(principal): RestPrincipal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.store.get_agent(&id).await? {
        Some(a) if a.org_id == principal.org_id() => {
            state.store.delete_agent(&id).await?;
            Ok(Json(json!({ "success": true })))
        }
        // Another org's agent is reported as absent, not as forbidden, so
        // ids cannot be probed.
        _ => Err(ApiError::not_found(format!(
            "Agent with id: {id} does not exist"
        ))),
    }
}
