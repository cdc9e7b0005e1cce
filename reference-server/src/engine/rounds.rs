//! The tool-round loop both engines share.
//!
//! A reply is a sequence of **rounds**. Each round streams tokens and may
//! end in tool calls:
//!
//! * no calls: the reply is complete;
//! * server tools: `on_tool_call` for each, the calls run in parallel,
//!   `on_tool_response` for each (in call order), the answers go back to
//!   the model and the next round starts, under the same `response_id`;
//! * client-side tools (`on_client_side_tool_calls`): the response ends and
//!   waits for the client. Its `client_side_tool_responses` starts the
//!   continuation, a new response (protocol §2.3), which picks the
//!   conversation up from the history. Answers that come later than the
//!   configured timeout end that continuation at once with
//!   `stop_reason: tool_timeout`.
//!
//! A reply whose model still asks for tools after
//! [`RoundsConfig::max_rounds`] tool rounds ends with
//! `stop_reason: round_limit`; the calls of that last round are not run and
//! not shown.
//!
//! An engine supplies a [`RoundModel`] (what one round streams and which
//! tools it calls, and how results are fed back); the server's tools run
//! through a [`ToolRunner`].

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokenrelay::wire::StopReason;

use super::{EngineError, EngineEvent, EngineSink, GenerateRequest, Trigger};

/// Bounds of the round loop (flags `--max-tool-rounds`,
/// `--client-tool-timeout-secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundsConfig {
    /// Most tool rounds one response runs; the model asking for more ends
    /// it with `stop_reason: round_limit`.
    pub max_rounds: usize,
    /// How long after `on_client_side_tool_calls` the client's answers are
    /// still taken; later ones end the continuation with
    /// `stop_reason: tool_timeout`.
    pub client_tool_timeout: Duration,
}

/// Default of [`RoundsConfig::max_rounds`].
pub const DEFAULT_MAX_ROUNDS: usize = 8;
/// Default of [`RoundsConfig::client_tool_timeout`], seconds.
pub const DEFAULT_CLIENT_TOOL_TIMEOUT_SECS: u64 = 300;

impl Default for RoundsConfig {
    fn default() -> Self {
        RoundsConfig {
            max_rounds: DEFAULT_MAX_ROUNDS,
            client_tool_timeout: Duration::from_secs(DEFAULT_CLIENT_TOOL_TIMEOUT_SECS),
        }
    }
}

/// One tool call a round ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Id the answer carries.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Tool input (an object).
    pub input: Value,
    /// Whether the client runs it (`on_client_side_tool_calls`) rather
    /// than the server.
    pub client_side: bool,
}

/// What one engine does in one round.
#[async_trait]
pub trait RoundModel: Send {
    /// Streams round `index` (0-based) into `out` and returns the tool
    /// calls it ended with (none: the reply is complete).
    async fn round(&mut self, index: usize, out: &EngineSink)
        -> Result<Vec<ToolCall>, EngineError>;

    /// Gives the model the answers of the server tools of the round that
    /// just ended, in the order of `calls`.
    fn feed_results(&mut self, calls: &[ToolCall], outputs: &[String]);
}

/// Runs the server's tools.
#[async_trait]
pub trait ToolRunner: Send + Sync + 'static {
    /// Runs one call and returns its output. A failing tool answers a text
    /// saying so: the model sees it and may recover, the reply goes on.
    async fn run(&self, call: &ToolCall) -> String;
}

/// The deterministic runtime: every server tool answers `"<name> result"`.
/// The scripted engine's tools, and a stand-in for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct CannedTools;

#[async_trait]
impl ToolRunner for CannedTools {
    async fn run(&self, call: &ToolCall) -> String {
        format!("{} result", call.name)
    }
}

/// The runtime of a server with no tool backend configured: every server
/// tool answers that it is unavailable, so the model can tell the person
/// rather than invent a result.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTools;

#[async_trait]
impl ToolRunner for NoTools {
    async fn run(&self, call: &ToolCall) -> String {
        format!(
            "error: the tool `{}` is not available on this server",
            call.name
        )
    }
}

/// Milliseconds since the epoch, as the history's `asked_at_ms` stores
/// them.
fn now_ms() -> u64 {
    u64::try_from(crate::time::unix_now_ms()).unwrap_or(0)
}

/// Whether the client's answers (this continuation's trigger) came later
/// than `timeout` after the calls they answer. The calls are the history's
/// last `client_side_tool_calls` entry; one without `asked_at_ms` (written
/// before the field existed) never times out.
pub fn answers_too_late(history: &[Value], timeout: Duration) -> bool {
    let asked_at = history
        .iter()
        .rev()
        .find(|m| m.get("type").and_then(Value::as_str) == Some("client_side_tool_calls"))
        .and_then(|m| m.get("asked_at_ms"))
        .and_then(Value::as_u64);
    match asked_at {
        Some(at) => u128::from(now_ms().saturating_sub(at)) > timeout.as_millis(),
        None => false,
    }
}

/// Runs one server tool call: on its webhook when the agent's definition
/// of the tool names one (`docs/protocol.md` §4.2), else on the engine's
/// runtime.
async fn run_server_tool(
    tools: &dyn ToolRunner,
    request: &GenerateRequest,
    call: &ToolCall,
) -> String {
    let Some(url) = super::webhook::webhook_of(&request.agent.tools, &call.name) else {
        return tools.run(call).await;
    };
    match &request.webhooks {
        Some(webhooks) => {
            let origin = super::webhook::CallOrigin {
                context_id: &request.context_id,
                agent_id: &request.agent.agent_id,
                response_id: &request.response_id,
            };
            webhooks.run(url, origin, call).await
        }
        None => format!("error: {}", super::webhook::WebhookError::NotConfigured),
    }
}

/// Runs one response's rounds: the loop described in the module docs.
/// Returns when the response is over; a round limit or a late answer is
/// reported as [`EngineEvent::End`] before returning `Ok`.
pub async fn run_rounds(
    model: &mut dyn RoundModel,
    tools: &dyn ToolRunner,
    config: &RoundsConfig,
    request: &GenerateRequest,
    out: &EngineSink,
) -> Result<(), EngineError> {
    if matches!(request.trigger, Trigger::ToolResponses(_))
        && answers_too_late(&request.history, config.client_tool_timeout)
    {
        return out.send(EngineEvent::End(StopReason::ToolTimeout)).await;
    }
    let mut tool_rounds = 0usize;
    loop {
        let calls = model.round(tool_rounds, out).await?;
        if calls.is_empty() {
            return Ok(());
        }
        if tool_rounds >= config.max_rounds {
            return out.send(EngineEvent::End(StopReason::RoundLimit)).await;
        }
        tool_rounds += 1;
        let (client, server): (Vec<ToolCall>, Vec<ToolCall>) =
            calls.into_iter().partition(|c| c.client_side);
        if !server.is_empty() {
            for call in &server {
                out.send(EngineEvent::ToolCall {
                    tool_call_id: call.id.clone(),
                    tool_name: call.name.clone(),
                    tool_input: call.input.clone(),
                })
                .await?;
            }
            // Calls of one round are independent (the model asked for them
            // together): run them at once, report them in call order.
            let outputs: Vec<String> = futures_util::future::join_all(
                server.iter().map(|c| run_server_tool(tools, request, c)),
            )
            .await;
            for (call, output) in server.iter().zip(&outputs) {
                out.send(EngineEvent::ToolResponse {
                    tool_call_id: call.id.clone(),
                    tool_name: call.name.clone(),
                    tool_output: output.clone(),
                })
                .await?;
            }
            model.feed_results(&server, &outputs);
        }
        if !client.is_empty() {
            // The client answers with `client_side_tool_responses`, which
            // starts the continuation (a new response).
            let calls = client
                .into_iter()
                .map(|c| {
                    serde_json::json!({
                        "tool_call_id": c.id,
                        "tool_name": c.name,
                        "tool_input": c.input,
                    })
                })
                .collect();
            return out.send(EngineEvent::ClientSideToolCalls(calls)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokenrelay::wire::Agent;

    /// Asks for `rounds` rounds of the same calls, then says "done".
    struct Repeat {
        rounds: usize,
        calls: Vec<ToolCall>,
        fed: Vec<Vec<String>>,
    }

    #[async_trait]
    impl RoundModel for Repeat {
        async fn round(
            &mut self,
            index: usize,
            out: &EngineSink,
        ) -> Result<Vec<ToolCall>, EngineError> {
            out.token(format!("r{index} ")).await?;
            Ok(if index < self.rounds {
                self.calls.clone()
            } else {
                Vec::new()
            })
        }
        fn feed_results(&mut self, _calls: &[ToolCall], outputs: &[String]) {
            self.fed.push(outputs.to_vec());
        }
    }

    fn call(name: &str, client_side: bool) -> ToolCall {
        ToolCall {
            id: format!("id-{name}"),
            name: name.into(),
            input: json!({}),
            client_side,
        }
    }

    fn request(trigger: Trigger, history: Vec<Value>) -> GenerateRequest {
        GenerateRequest {
            agent: Agent::default(),
            history,
            trigger,
            response_id: "r".into(),
            context_id: "c".into(),
            webhooks: None,
        }
    }

    async fn run(
        model: &mut Repeat,
        config: RoundsConfig,
        req: GenerateRequest,
    ) -> Vec<EngineEvent> {
        let (sink, mut rx) = EngineSink::channel(1024);
        run_rounds(model, &CannedTools, &config, &req, &sink)
            .await
            .unwrap();
        drop(sink);
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    }

    #[tokio::test]
    async fn server_rounds_run_until_the_model_answers_without_tools() {
        let mut m = Repeat {
            rounds: 2,
            calls: vec![call("a", false), call("b", false)],
            fed: Vec::new(),
        };
        let events = run(
            &mut m,
            RoundsConfig::default(),
            request(Trigger::SpeakFirst, vec![]),
        )
        .await;
        let calls = events
            .iter()
            .filter(|e| matches!(e, EngineEvent::ToolCall { .. }))
            .count();
        assert_eq!(calls, 4);
        assert_eq!(m.fed, vec![vec!["a result", "b result"]; 2]);
        assert_eq!(events.last(), Some(&EngineEvent::Token("r2 ".into())));
    }

    #[tokio::test]
    async fn the_round_limit_ends_the_reply_without_running_the_last_calls() {
        let mut m = Repeat {
            rounds: 100,
            calls: vec![call("a", false)],
            fed: Vec::new(),
        };
        let config = RoundsConfig {
            max_rounds: 3,
            ..RoundsConfig::default()
        };
        let events = run(&mut m, config, request(Trigger::SpeakFirst, vec![])).await;
        assert_eq!(m.fed.len(), 3);
        assert_eq!(
            events.last(),
            Some(&EngineEvent::End(StopReason::RoundLimit))
        );
        let calls = events
            .iter()
            .filter(|e| matches!(e, EngineEvent::ToolCall { .. }))
            .count();
        assert_eq!(calls, 3, "the calls past the limit are not shown");
    }

    #[tokio::test]
    async fn client_side_calls_end_the_response_after_the_server_ones() {
        let mut m = Repeat {
            rounds: 5,
            calls: vec![call("srv", false), call("cli", true)],
            fed: Vec::new(),
        };
        let events = run(
            &mut m,
            RoundsConfig::default(),
            request(Trigger::SpeakFirst, vec![]),
        )
        .await;
        assert_eq!(m.fed.len(), 1);
        match events.last() {
            Some(EngineEvent::ClientSideToolCalls(c)) => {
                assert_eq!(
                    c,
                    &vec![json!({"tool_call_id": "id-cli", "tool_name": "cli", "tool_input": {}})]
                )
            }
            other => panic!("ended with {other:?}"),
        }
    }

    #[tokio::test]
    async fn late_answers_end_the_continuation_with_tool_timeout() {
        let asked = |at: u64| {
            vec![json!({"type": "client_side_tool_calls", "tool_calls": [], "asked_at_ms": at})]
        };
        let config = RoundsConfig {
            client_tool_timeout: Duration::from_secs(60),
            ..RoundsConfig::default()
        };
        let trigger = Trigger::ToolResponses(Vec::new());
        let mut m = Repeat {
            rounds: 0,
            calls: Vec::new(),
            fed: Vec::new(),
        };
        let late = run(
            &mut m,
            config,
            request(trigger.clone(), asked(now_ms() - 61_000)),
        )
        .await;
        assert_eq!(late, vec![EngineEvent::End(StopReason::ToolTimeout)]);
        let in_time = run(&mut m, config, request(trigger, asked(now_ms() - 5_000))).await;
        assert_eq!(in_time, vec![EngineEvent::Token("r0 ".into())]);
    }
}
