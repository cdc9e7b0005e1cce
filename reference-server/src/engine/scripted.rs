//! The deterministic scripted engine (the default). Directives in square
//! brackets in the message (or in the agent's prompt, as defaults for every
//! reply of that agent) decide length, pace, tool calls, client-side tool
//! calls, events and failures. `ENGINE.md` documents the syntax for test
//! authors.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokenrelay::wire::AgentEvent;

use super::rounds::{run_rounds, CannedTools, RoundModel, RoundsConfig, ToolCall};
use super::{split_words, Engine, EngineError, EngineEvent, EngineSink, GenerateRequest, Trigger};

/// Most tool rounds `rounds=N` may ask for (the server's round limit
/// usually ends the reply well before).
pub const MAX_SCRIPTED_ROUNDS: usize = 1000;

/// Longest reply `tokens=N` may ask for, so a typo cannot exhaust memory.
pub const MAX_TOKENS: usize = 1_000_000;

/// What a message's directives ask for. Fields left `None`/empty fall back
/// to the agent prompt's directives, then to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// `tokens=N`: reply `t0 t1 … t{N-1}`, one token per word.
    pub tokens: Option<usize>,
    /// `pace_ms=N`: pause before every token.
    pub pace_ms: Option<u64>,
    /// `tool=NAME` (repeatable): a server-side tool call and its response
    /// before the text.
    pub tools: Vec<String>,
    /// `client_tool=NAME` (repeatable): ask the client to run a tool; the
    /// response ends waiting for `client_side_tool_responses`.
    pub client_tools: Vec<String>,
    /// `events` or `events=N`: N events (default 1) on `on_events`.
    pub events: Option<usize>,
    /// `fail_after=N`: fail after N tokens (`reason: "error"`).
    pub fail_after: Option<usize>,
    /// `echo`: reply with the message text (directives removed).
    pub echo: bool,
    /// `rounds=N`: the `tool=` calls are asked for in N rounds in a row
    /// (one response), and the `client_tool=` calls N times (the reply and
    /// its first N-1 continuations). Default 1.
    pub rounds: Option<usize>,
}

impl Script {
    /// Fills every unset field of `self` from `defaults`.
    fn or(mut self, defaults: &Script) -> Script {
        self.tokens = self.tokens.or(defaults.tokens);
        self.pace_ms = self.pace_ms.or(defaults.pace_ms);
        if self.tools.is_empty() {
            self.tools = defaults.tools.clone();
        }
        if self.client_tools.is_empty() {
            self.client_tools = defaults.client_tools.clone();
        }
        self.events = self.events.or(defaults.events);
        self.fail_after = self.fail_after.or(defaults.fail_after);
        self.echo |= defaults.echo;
        self.rounds = self.rounds.or(defaults.rounds);
        self
    }
}

/// Applies one `key` / `key=value` item; false when it is not a directive.
fn apply(script: &mut Script, item: &str) -> bool {
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    let number = || value.and_then(|v| v.parse::<u64>().ok());
    match (key, value) {
        ("tokens", Some(_)) => match number() {
            Some(n) => script.tokens = Some((n as usize).min(MAX_TOKENS)),
            None => return false,
        },
        ("pace_ms", Some(_)) => match number() {
            Some(n) => script.pace_ms = Some(n.min(60_000)),
            None => return false,
        },
        ("fail_after", Some(_)) => match number() {
            Some(n) => script.fail_after = Some(n as usize),
            None => return false,
        },
        ("events", None) => script.events = Some(1),
        ("events", Some(_)) => match number() {
            Some(n) => script.events = Some((n as usize).min(1000)),
            None => return false,
        },
        ("tool", Some(name)) if !name.is_empty() => script.tools.push(name.to_owned()),
        ("client_tool", Some(name)) if !name.is_empty() => {
            script.client_tools.push(name.to_owned())
        }
        ("echo", None) => script.echo = true,
        ("rounds", Some(_)) => match number() {
            Some(n) => script.rounds = Some((n as usize).min(MAX_SCRIPTED_ROUNDS)),
            None => return false,
        },
        _ => return false,
    }
    true
}

/// Splits `text` into its directives and the remaining text. A bracketed
/// group counts as directives only when every item in it is one; anything
/// else (`[sic]`, `[1]`) stays in the text. Whitespace left around removed
/// groups is collapsed.
pub fn parse_directives(text: &str) -> (Script, String) {
    let mut script = Script::default();
    let mut rest = String::with_capacity(text.len());
    let mut remaining = text;
    while let Some(open) = remaining.find('[') {
        let Some(close) = remaining[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &remaining[open + 1..close];
        let mut candidate = script.clone();
        let items: Vec<&str> = inner.split_whitespace().collect();
        let all_directives = !items.is_empty() && items.iter().all(|i| apply(&mut candidate, i));
        rest.push_str(&remaining[..open]);
        if all_directives {
            script = candidate;
        } else {
            rest.push_str(&remaining[open..=close]);
        }
        remaining = &remaining[close + 1..];
    }
    rest.push_str(remaining);
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    (script, rest)
}

/// The text `tokens=N` produces: `t0 t1 … t{N-1}`.
pub fn numbered_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reply to the agent speaking first, when its prompt sets no `tokens`.
pub const GREETING: &str = "Hello! How can I help you today?";

/// The deterministic engine. Stateless: the same request always produces
/// the same events.
#[derive(Debug, Clone, Default)]
pub struct ScriptedEngine {
    /// Pace used when neither the message nor the prompt sets `pace_ms`.
    pub default_pace: Duration,
    /// Bounds of the tool rounds.
    pub rounds: RoundsConfig,
}

impl ScriptedEngine {
    /// An engine whose replies stream with `pace` between tokens unless a
    /// directive says otherwise.
    pub fn with_pace(pace: Duration) -> Self {
        ScriptedEngine {
            default_pace: pace,
            rounds: RoundsConfig::default(),
        }
    }

    /// The same engine with other round bounds.
    pub fn with_rounds(mut self, rounds: RoundsConfig) -> Self {
        self.rounds = rounds;
        self
    }

    /// The exact text the engine replies to `message` on an agent whose
    /// prompt has no directives (tests compare against it).
    pub fn expected_reply(message: &str) -> String {
        let (script, rest) = parse_directives(message);
        reply_text(&script, &rest)
    }
}

fn reply_text(script: &Script, rest: &str) -> String {
    if let Some(n) = script.tokens {
        numbered_text(n)
    } else if script.echo {
        rest.to_owned()
    } else if rest.is_empty() {
        "You said nothing.".to_owned()
    } else {
        format!("You said: {rest}")
    }
}

#[async_trait]
impl Engine for ScriptedEngine {
    async fn generate(&self, request: GenerateRequest, out: EngineSink) -> Result<(), EngineError> {
        let (defaults, _) = parse_directives(&request.agent.prompt);
        let (script, text) = match &request.trigger {
            Trigger::Message(message) => {
                let (script, rest) = parse_directives(message);
                let script = script.or(&defaults);
                let text = reply_text(&script, &rest);
                (script, text)
            }
            Trigger::SpeakFirst => {
                // Only length and pace carry over to a greeting; tools and
                // failures in a prompt are meant for replies.
                let script = Script {
                    tokens: defaults.tokens,
                    pace_ms: defaults.pace_ms,
                    ..Script::default()
                };
                let text = match script.tokens {
                    Some(n) => numbered_text(n),
                    None => GREETING.to_owned(),
                };
                (script, text)
            }
            Trigger::ToolResponses(responses) => {
                let answers: Vec<String> = responses
                    .iter()
                    .map(|r| format!("{}={}", r.tool_call_id, r.response))
                    .collect();
                let script = Script {
                    pace_ms: defaults.pace_ms,
                    ..Script::default()
                };
                (script, format!("Tool results: {}", answers.join(", ")))
            }
        };
        let pace = script
            .pace_ms
            .map(Duration::from_millis)
            .unwrap_or(self.default_pace);
        let wanted = script.rounds.unwrap_or(1);
        let tool_rounds = if script.tools.is_empty() { 0 } else { wanted };
        let ask_client = match &request.trigger {
            // A continuation asks again while the reply's message wants
            // more client rounds than the history shows.
            Trigger::ToolResponses(_) => {
                let (original, _) = last_human_script(&request.history);
                let original = original.or(&defaults);
                let asked = client_rounds_since_human(&request.history);
                if !original.client_tools.is_empty() && asked < original.rounds.unwrap_or(1) {
                    original.client_tools
                } else {
                    Vec::new()
                }
            }
            _ => script.client_tools.clone(),
        };
        let mut model = ScriptedRounds {
            script: &script,
            text,
            tool_rounds,
            ask_client,
            response_id: &request.response_id,
            pace,
        };
        run_rounds(&mut model, &CannedTools, &self.rounds, &request, &out).await
    }
}

/// The directives of the history's last human message.
fn last_human_script(history: &[Value]) -> (Script, String) {
    history
        .iter()
        .rev()
        .find(|m| m.get("sender").and_then(Value::as_str) == Some("human"))
        .and_then(|m| m.get("message").and_then(Value::as_str))
        .map(parse_directives)
        .unwrap_or_default()
}

/// How many times the reply to the last human message asked the client
/// for tools.
fn client_rounds_since_human(history: &[Value]) -> usize {
    history
        .iter()
        .rev()
        .take_while(|m| m.get("sender").and_then(Value::as_str) != Some("human"))
        .filter(|m| m.get("type").and_then(Value::as_str) == Some("client_side_tool_calls"))
        .count()
}

/// One scripted response as rounds: `tool_rounds` rounds of the `tool=`
/// calls (no text), then the text, its events and the client-side calls.
struct ScriptedRounds<'a> {
    script: &'a Script,
    text: String,
    tool_rounds: usize,
    ask_client: Vec<String>,
    response_id: &'a str,
    pace: Duration,
}

#[async_trait]
impl RoundModel for ScriptedRounds<'_> {
    async fn round(
        &mut self,
        index: usize,
        out: &EngineSink,
    ) -> Result<Vec<ToolCall>, EngineError> {
        if index < self.tool_rounds {
            // Round 0 keeps the ids tests already know.
            let prefix = if index == 0 {
                format!("{}-tool", self.response_id)
            } else {
                format!("{}-r{index}-tool", self.response_id)
            };
            return Ok(self
                .script
                .tools
                .iter()
                .enumerate()
                .map(|(i, name)| ToolCall {
                    id: format!("{prefix}-{i}"),
                    name: name.clone(),
                    input: json!({ "query": self.text }),
                    client_side: false,
                })
                .collect());
        }
        for (i, token) in split_words(&self.text).into_iter().enumerate() {
            if self.script.fail_after == Some(i) {
                return Err(EngineError::scripted(format!(
                    "scripted failure after {i} tokens"
                )));
            }
            if !self.pace.is_zero() {
                tokio::time::sleep(self.pace).await;
            }
            out.token(token).await?;
        }
        if let Some(n) = self.script.fail_after {
            // fail_after at or beyond the length still fails, at the end.
            return Err(EngineError::scripted(format!(
                "scripted failure after {n} tokens"
            )));
        }
        if let Some(n) = self.script.events {
            let events = (0..n)
                .map(|i| AgentEvent {
                    kind: "scripted".into(),
                    data: json!({ "index": i }),
                })
                .collect();
            out.send(EngineEvent::Events(events)).await?;
        }
        Ok(self
            .ask_client
            .iter()
            .enumerate()
            .map(|(i, name)| ToolCall {
                id: format!("{}-client-tool-{i}", self.response_id),
                name: name.clone(),
                input: json!({}),
                client_side: true,
            })
            .collect())
    }

    fn feed_results(&mut self, _calls: &[ToolCall], _outputs: &[String]) {
        // The scripted text does not depend on what the tools said.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_parsed_and_stripped() {
        let (s, rest) = parse_directives("hi [tokens=5 pace_ms=2] there [tool=web_search] [sic]");
        assert_eq!(s.tokens, Some(5));
        assert_eq!(s.pace_ms, Some(2));
        assert_eq!(s.tools, vec!["web_search"]);
        assert_eq!(rest, "hi there [sic]");
        let (s, rest) =
            parse_directives("[events] [client_tool=get_location] [fail_after=3] [echo] x");
        assert_eq!(s.events, Some(1));
        assert_eq!(s.client_tools, vec!["get_location"]);
        assert_eq!(s.fail_after, Some(3));
        assert!(s.echo);
        assert_eq!(rest, "x");
        let (s, rest) = parse_directives("[tokens=x] [unclosed");
        assert_eq!(s, Script::default());
        assert_eq!(rest, "[tokens=x] [unclosed");
    }

    #[test]
    fn replies_are_deterministic() {
        assert_eq!(ScriptedEngine::expected_reply("hello"), "You said: hello");
        assert_eq!(ScriptedEngine::expected_reply("[tokens=3]"), "t0 t1 t2");
        assert_eq!(ScriptedEngine::expected_reply("[echo] a b"), "a b");
    }
}
