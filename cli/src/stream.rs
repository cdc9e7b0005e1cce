//! The streaming commands (`chat`, `send`, `tail`): one SDK connection to a
//! context, its events printed as they arrive. The connection gets a fresh
//! client key per (re)connect from the credential the CLI holds, exactly as
//! an app's backend would hand one to a browser.

use tokenrelay::{Client, Connection, ConnectionState, Error, Event, RequestId, ResponseId};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::Settings;
use crate::output::{event_json, flush_out, status};
use crate::progress::Progress;

/// How long a client key minted for the CLI's own socket lives: the
/// socket stays attached past it, and a reconnect mints another.
const KEY_TTL_SECONDS: u64 = 300;

/// How a streaming command ended, for the exit code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked for completed (or the user ended it).
    Done,
    /// A reply ended other than complete (`send` only).
    Incomplete,
}

/// A client whose token provider mints a client key scoped to the context
/// on every call, with the CLI's credential.
async fn client(settings: &Settings) -> Result<Client, Error> {
    let admin = settings.admin()?;
    let org_id = settings.org_id(&admin).await?;
    settings
        .client_builder()
        .token_provider(move |context_id: String| {
            let (admin, org_id) = (admin.clone(), org_id.clone());
            async move {
                admin
                    .generate_client_key(&org_id, Some(&context_id), Some(KEY_TTL_SECONDS))
                    .await
                    .map(|key| key.token)
            }
        })
        .build()
}

/// Where the messages to send come from.
enum Input {
    /// Lines typed (or piped) on stdin, until end of input.
    Lines(tokio::io::Lines<BufReader<tokio::io::Stdin>>),
    /// One message (`send`), then nothing.
    One(Option<String>),
    /// Nothing: only watch (`tail`).
    None,
}

impl Input {
    /// The next message; `None` at the end of input.
    async fn next(&mut self) -> Option<String> {
        match self {
            Input::Lines(lines) => loop {
                match lines.next_line().await {
                    Ok(Some(line)) if line.trim().is_empty() => continue,
                    Ok(Some(line)) => return Some(line.trim().to_owned()),
                    Ok(None) | Err(_) => return None,
                }
            },
            Input::One(message) => message.take(),
            Input::None => std::future::pending().await,
        }
    }
}

/// Ctrl-C as a stream, registered once so that a press between two waits
/// is not lost.
struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> Result<Interrupts, Error> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| Error::Config {
                    message: format!("cannot listen for Ctrl-C: {e}"),
                })?;
            Ok(Interrupts { signal })
        }
        #[cfg(not(unix))]
        Ok(Interrupts {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What the loop is waiting for.
#[derive(Default)]
struct Turn {
    /// Sent, its reply not started yet.
    sent: Option<RequestId>,
    /// The reply being written.
    reply: Option<ResponseId>,
    /// `stop` was asked for this reply.
    stopping: bool,
    /// The reply has shown something (a token, a tool call).
    shown: bool,
}

impl Turn {
    fn busy(&self) -> bool {
        self.sent.is_some() || self.reply.is_some()
    }

    /// Sent, and nothing of the reply on screen yet: the wait the
    /// progress line is for (a model thinking, a queue, a tool).
    fn quiet(&self) -> bool {
        self.busy() && !self.shown
    }
}

/// `tokenrelay chat <context>`: lines from stdin, replies as they stream.
pub(crate) async fn chat(
    settings: &Settings,
    json: bool,
    progress: &mut Progress,
    context: &str,
) -> Result<Outcome, Error> {
    let stdin = BufReader::new(tokio::io::stdin()).lines();
    if !json {
        status(&format!(
            "connecting to {context}… (type a message and Enter; Ctrl-C stops a reply, \
             Ctrl-C again or Ctrl-D exits)"
        ));
    }
    run(settings, json, progress, context, Input::Lines(stdin), true).await
}

/// `tokenrelay send <context> <message>`: one reply, then exit.
pub(crate) async fn send(
    settings: &Settings,
    json: bool,
    progress: &mut Progress,
    context: &str,
    message: String,
) -> Result<Outcome, Error> {
    run(
        settings,
        json,
        progress,
        context,
        Input::One(Some(message)),
        false,
    )
    .await
}

/// `tokenrelay tail <context>`: every event until Ctrl-C.
pub(crate) async fn tail(
    settings: &Settings,
    json: bool,
    progress: &mut Progress,
    context: &str,
) -> Result<Outcome, Error> {
    run(settings, json, progress, context, Input::None, true).await
}

async fn run(
    settings: &Settings,
    json: bool,
    progress: &mut Progress,
    context: &str,
    mut input: Input,
    interactive: bool,
) -> Result<Outcome, Error> {
    let mut interrupts = Interrupts::new()?;
    let mut conn = progress
        .during("connecting", async {
            let client = client(settings).await?;
            client.connect(context).await
        })
        .await?;
    let mut turn = Turn::default();
    let mut input_open = true;
    let mut outcome = Outcome::Done;
    let mut attached_before = false;
    loop {
        if !input_open && !turn.busy() {
            break;
        }
        tokio::select! {
            // A new message only once the last reply is over, so replies
            // do not interleave on the screen.
            message = input.next(), if input_open && !turn.busy() => match message {
                Some(text) => {
                    turn.sent = Some(conn.send_message(text).await?);
                    progress.start("waiting for the reply");
                }
                None => input_open = false,
            },
            () = progress.tick() => {}
            event = conn.next_event() => {
                let Some(event) = event else { break };
                if json {
                    println!("{}", event_json(&event));
                }
                match on_event(&event, &mut turn, json, &mut attached_before) {
                    Step::Continue => {}
                    Step::ReplyEnded { complete } => {
                        if !complete && !interactive {
                            outcome = Outcome::Incomplete;
                        }
                    }
                    Step::Failed(cause) => {
                        progress.stop();
                        conn.close().await;
                        return Err(cause);
                    }
                }
                // The line stays through the events that show nothing of
                // the reply (started, a reconnect), and goes with the first
                // that does.
                if turn.quiet() {
                    progress.start("waiting for the reply");
                } else {
                    progress.stop();
                }
            }
            _ = interrupts.next() => {
                if turn.reply.is_some() && !turn.stopping {
                    turn.stopping = true;
                    if !json {
                        status("\n^C stopping the reply (Ctrl-C again exits)");
                    }
                    stop(&conn).await;
                } else {
                    if turn.busy() && !interactive {
                        outcome = Outcome::Incomplete;
                    }
                    break;
                }
            }
        }
    }
    progress.stop();
    conn.close().await;
    Ok(outcome)
}

async fn stop(conn: &Connection) {
    if let Err(e) = conn.stop().await {
        status(&format!("could not stop the reply: {e}"));
    }
}

/// What an event means for the loop.
enum Step {
    Continue,
    ReplyEnded { complete: bool },
    Failed(Error),
}

/// Prints `event` for people (unless `json`) and follows the turn.
fn on_event(event: &Event, turn: &mut Turn, json: bool, attached_before: &mut bool) -> Step {
    let say = |text: &str| {
        if !json {
            status(text);
        }
    };
    match event {
        Event::Connected { resumed, .. } => {
            if *attached_before {
                say(if *resumed {
                    "✓ reconnected; the reply resumes where it was cut"
                } else {
                    "✓ reconnected"
                });
            } else {
                say("✓ connected");
            }
            *attached_before = true;
        }
        Event::StateChanged(change) => match change.state {
            ConnectionState::Reconnecting | ConnectionState::Suspended => {
                let cause = change
                    .cause
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                let retry = change
                    .retry_in
                    .map(|d| format!(" in {:.1} s", d.as_secs_f64()))
                    .unwrap_or_default();
                say(&format!(
                    "⟳ connection lost{cause}; reconnecting{retry} (attempt {})",
                    change.attempt + 1
                ));
            }
            ConnectionState::Failed => {
                let cause = change.cause.clone().unwrap_or(Error::Closed);
                return Step::Failed(cause);
            }
            _ => {}
        },
        Event::ResponseStarted {
            response_id,
            request_id,
        } if request_id.is_some() && *request_id == turn.sent => {
            turn.sent = None;
            turn.reply = Some(response_id.clone());
            turn.stopping = false;
        }
        Event::Token { token, .. } => {
            turn.shown = true;
            if !json {
                flush_out(token);
            }
        }
        Event::ToolCall { call, .. } => {
            turn.shown = true;
            say(&format!(
                "\n  [tool {}({})]",
                call.tool_name, call.tool_input
            ));
        }
        Event::ToolResponse { result, .. } => {
            say(&format!(
                "  [tool {} -> {}]",
                result.tool_name, result.tool_output
            ));
        }
        Event::ClientSideToolCalls { tool_calls, .. } => {
            turn.shown = true;
            let names: Vec<&str> = tool_calls
                .iter()
                .filter_map(|c| c["tool_name"].as_str())
                .collect();
            say(&format!(
                "\n  [the agent asks this client to run {}: the CLI runs no tools]",
                names.join(", ")
            ));
        }
        Event::ResponseComplete(response) => {
            if !json {
                flush_out("\n");
                if response.status != tokenrelay::ResponseStatus::Complete {
                    say(&format!("  [reply {}]", response.status.as_str()));
                }
            }
            let mine = turn.reply.as_ref() == Some(&response.id)
                || (turn.sent.is_some() && response.request_id == turn.sent);
            if mine {
                *turn = Turn::default();
                return Step::ReplyEnded {
                    complete: response.status == tokenrelay::ResponseStatus::Complete,
                };
            }
        }
        Event::RequestFailed { request_id, error } if turn.sent == Some(*request_id) => {
            say(&format!("error: {error}"));
            *turn = Turn::default();
            return Step::ReplyEnded { complete: false };
        }
        Event::Error(error) => say(&format!("warning: {error}")),
        _ => {}
    }
    Step::Continue
}
