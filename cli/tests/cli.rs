//! The `tokenrelay` binary end to end, as a person or a script runs it,
//! against a real reference server on 127.0.0.1:0 (the E2E harness: an
//! org, its org key, fault injection on). `chat` is driven through a real
//! pseudo-terminal (util-linux `script`), so Ctrl-C reaches it as SIGINT
//! through the terminal's line discipline, as it does for a person.

use std::process::Stdio;

use serde_json::Value;
use tokenrelay_e2e::{builder, Harness, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tokenrelay");

/// What one run of the binary printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `program` pointed at `h` through the environment, as a user would set
/// it up, and nothing from the machine's own config.
fn isolated(program: &str, h: &Harness) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("tokenrelay-cli-test-none"),
        )
        .env("TOKENRELAY_URL", h.server.http_url())
        .env("TOKENRELAY_API_KEY", &h.org_key)
        .kill_on_drop(true);
    command
}

/// The binary with `args`, see [`isolated`].
fn command(h: &Harness, args: &[&str]) -> Command {
    let mut command = isolated(BIN, h);
    command.args(args);
    command
}

async fn run_with(mut command: Command, stdin: &str) -> Run {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("stdin written");
    drop(input);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the binary ends in time")
        .expect("its output");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn run(h: &Harness, args: &[&str]) -> Run {
    run_with(command(h, args), "").await
}

/// Runs and expects success; returns stdout without its final newline.
async fn ok(h: &Harness, args: &[&str]) -> String {
    let r = run(h, args).await;
    assert_eq!(r.code, 0, "{args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout.trim_end_matches('\n').to_owned()
}

async fn server() -> Harness {
    Harness::start_with(builder().configure(|c| c.limits.open_registration = true)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_contexts_and_keys_from_the_command_line() {
    let h = server().await;
    let agent = ok(
        &h,
        &[
            "agents",
            "create",
            "--name",
            "helper",
            "--prompt",
            "[tokens=3]",
        ],
    )
    .await;
    assert!(
        !agent.is_empty() && !agent.contains(' '),
        "an id: {agent:?}"
    );
    let listed = ok(&h, &["agents", "list"]).await;
    assert!(
        listed.contains(&agent) && listed.contains("helper"),
        "{listed}"
    );
    let shown: Value =
        serde_json::from_str(&ok(&h, &["--json", "agents", "show", &agent]).await).expect("JSON");
    assert_eq!(shown["agent_name"], "helper");

    let context = ok(
        &h,
        &["contexts", "create", "--agent", &agent, "--arg", "name=Ada"],
    )
    .await;
    let key = ok(&h, &["keys", "mint", "--context", &context, "--ttl", "60"]).await;
    assert_eq!(key.split('.').count(), 3, "a JWT: {key}");
    let keys: Value =
        serde_json::from_str(&ok(&h, &["--json", "keys", "list", "--kind", "client"]).await)
            .expect("JSON");
    let minted = keys
        .as_array()
        .expect("an array")
        .iter()
        .find(|k| k["context_id"] == context.as_str())
        .expect("the minted key is listed");
    let id = minted["api_key_id"].as_str().expect("an id");
    assert!(ok(&h, &["keys", "revoke", id]).await.starts_with("revoked"));
    let token = ok(&h, &["stream-token", "--ttl", "30"]).await;
    assert!(token.starts_with("pub_tok_"), "{token}");

    // The reply, through one `send`, and the history it left.
    let reply = run(&h, &["send", &context, "hello"]).await;
    assert_eq!(reply.code, 0, "{}", reply.stderr);
    assert_eq!(reply.stdout.trim_end(), "t0 t1 t2");
    let history = ok(&h, &["contexts", "show", &context]).await;
    assert!(
        history.contains("human  hello") && history.contains("ai     t0 t1 t2"),
        "{history}"
    );

    ok(&h, &["contexts", "delete", &context]).await;
    ok(&h, &["agents", "delete", &agent]).await;
    let gone = run(&h, &["agents", "show", &agent]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.starts_with("error: not found") && gone.stderr.contains("[not_found]"),
        "{}",
        gone.stderr
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_the_code_and_a_non_zero_exit() {
    let h = server().await;
    let forged = run_with(
        {
            let mut c = command(&h, &["agents", "list"]);
            c.env("TOKENRELAY_API_KEY", "forged.key.here");
            c
        },
        "",
    )
    .await;
    assert_eq!(forged.code, 1);
    assert_eq!(forged.stderr.lines().count(), 1, "{}", forged.stderr);
    assert!(forged.stderr.contains("unauthorized"), "{}", forged.stderr);
    assert!(
        !forged.stderr.contains("forged.key.here"),
        "the secret is never printed"
    );

    let none = run_with(
        {
            let mut c = command(&h, &["agents", "list"]);
            c.env_remove("TOKENRELAY_API_KEY");
            c
        },
        "",
    )
    .await;
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("TOKENRELAY_API_KEY"),
        "says how: {}",
        none.stderr
    );

    let usage = run(&h, &["keys", "mint"]).await;
    assert_eq!(usage.code, 2, "a usage error: {}", usage.stderr);

    // A reply that does not complete is exit code 3.
    let context = h.context("", false).await;
    let failed = run(&h, &["send", &context, "[tokens=5 fail_after=2]"]).await;
    assert_eq!(failed.code, 3, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed.stderr.contains("[reply failed]"),
        "{}",
        failed.stderr
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_register_log_in_and_use_their_token() {
    let h = server().await;
    let mut register = command(&h, &["users", "register", "--username", "ada"]);
    register.env_remove("TOKENRELAY_API_KEY");
    let r = run_with(register, "a long enough password\n").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut login = command(&h, &["users", "login", "--username", "ada"]);
    login
        .env_remove("TOKENRELAY_API_KEY")
        .env("TOKENRELAY_PASSWORD", "a long enough password");
    let r = run_with(login, "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = r.stdout.trim().to_owned();

    let mut me = command(&h, &["--json", "users", "me"]);
    me.env("TOKENRELAY_API_KEY", &token);
    let r = run_with(me, "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let user: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(user["username"], "ada");
    assert!(user["org_id"].is_string(), "{user}");

    // A user token acts on the user's org, found through /auth/me.
    let mut key = command(&h, &["users", "keys", "create", "laptop"]);
    key.env("TOKENRELAY_API_KEY", &token);
    let r = run_with(key, "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("sk_"), "{}", r.stdout);
    let mut mint = command(&h, &["keys", "mint", "--org-key", "--ttl", "600"]);
    mint.env("TOKENRELAY_API_KEY", &token);
    let r = run_with(mint, "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim().split('.').count(), 3);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_then_environment_then_the_file() {
    let h = server().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "url = \"{}\"\napi_key = \"{}\"\n",
            h.server.http_url(),
            h.org_key
        ),
    )
    .expect("written");

    // The file alone is enough.
    let mut c = command(
        &h,
        &["--config", file.to_str().expect("utf-8"), "agents", "list"],
    );
    c.env_remove("TOKENRELAY_URL")
        .env_remove("TOKENRELAY_API_KEY");
    assert_eq!(run_with(c, "").await.code, 0);

    // The environment beats the file; a flag beats both.
    let mut c = command(
        &h,
        &["--config", file.to_str().expect("utf-8"), "agents", "list"],
    );
    c.env("TOKENRELAY_URL", "http://127.0.0.1:1");
    let r = run_with(c, "").await;
    assert_eq!(
        r.code, 1,
        "the environment's unreachable URL was used: {}",
        r.stderr
    );
    let mut c = command(
        &h,
        &[
            "--config",
            file.to_str().expect("utf-8"),
            "--url",
            &h.server.http_url(),
            "agents",
            "list",
        ],
    );
    c.env("TOKENRELAY_URL", "http://127.0.0.1:1");
    assert_eq!(run_with(c, "").await.code, 0);

    // A typo in the file is refused, not ignored.
    std::fs::write(&file, "urll = \"http://x\"\n").expect("written");
    let r = run(
        &h,
        &["--config", file.to_str().expect("utf-8"), "agents", "list"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("urll"), "{}", r.stderr);

    let completions = ok(&h, &["completions", "bash"]).await;
    assert!(
        completions.contains("_tokenrelay"),
        "a bash completion script"
    );
    h.server.shutdown().await;
}

/// Reads `child`'s stdout (a line reader) until a line satisfies `pred`.
async fn until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("readable")
                .unwrap_or_else(|| panic!("the output ended before {what}"));
            let event: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_every_event_of_the_context_as_json_lines() {
    let h = server().await;
    let context = h.context("", false).await;
    let mut tail: Child = command(&h, &["--json", "tail", &context])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail starts");
    let mut lines = BufReader::new(tail.stdout.take().expect("stdout")).lines();
    until(&mut lines, "connected", |e| e["type"] == "connected").await;

    let sent = run(&h, &["send", &context, "[tokens=4 tool=search events=1]"]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    // The scripted engine calls the tool before it writes.
    let call = until(&mut lines, "the tool call", |e| e["type"] == "tool_call").await;
    assert_eq!(call["tool_name"], "search");
    let first = until(&mut lines, "a token", |e| e["type"] == "token").await;
    assert_eq!(first["token"], "t0 ");
    let done = until(&mut lines, "the reply", |e| e["type"] == "response").await;
    assert_eq!(done["status"], "complete");
    assert_eq!(done["text"], "t0 t1 t2 t3");

    // Ctrl-C ends it cleanly.
    let pid = tail.id().expect("running");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(WAIT, tail.wait())
        .await
        .expect("tail exits on Ctrl-C")
        .expect("status");
    assert!(status.success(), "{status:?}");
    h.server.shutdown().await;
}

/// A terminal session: the binary under `script`, which gives it a
/// pseudo-terminal; what we write is typed, what it prints we read.
struct Terminal {
    child: Child,
    input: tokio::process::ChildStdin,
    output: tokio::process::ChildStdout,
    seen: String,
}

impl Terminal {
    fn open(h: &Harness, args: &str) -> Terminal {
        let mut c = isolated("script", h);
        // `exec`: `script` runs the command through `sh -c`, and a shell
        // left waiting in the foreground would take the Ctrl-C itself.
        c.args([
            "-q",
            "-e",
            "-f",
            "-c",
            &format!("exec {BIN} {args}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("script starts");
        Terminal {
            input: child.stdin.take().expect("stdin"),
            output: child.stdout.take().expect("stdout"),
            child,
            seen: String::new(),
        }
    }

    async fn type_keys(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).await.expect("typed");
        self.input.flush().await.expect("flushed");
    }

    /// Waits until the screen shows `text` after everything already
    /// consumed; consumes up to its end.
    async fn expect(&mut self, text: &str) {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(at) = self.seen.find(text) {
                    self.seen.drain(..at + text.len());
                    return;
                }
                let mut buf = [0u8; 4096];
                let n = self.output.read(&mut buf).await.expect("readable");
                assert!(
                    n > 0,
                    "the terminal closed before showing {text:?}; it showed {:?}",
                    self.seen
                );
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "the terminal never showed {text:?}; it showed {:?}",
            self.seen
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_terminal_streams_survives_a_drop_and_stops_on_ctrl_c() {
    let h = server().await;
    let context = h.context("", false).await;
    let mut t = Terminal::open(&h, &format!("chat {context}"));
    t.expect("✓ connected").await;

    t.type_keys("[tokens=5] hello\n").await;
    t.expect("t0 t1 t2 t3 t4").await;

    // A reply slow to start: the progress line counts the wait, and is
    // erased just before the first token is written.
    t.type_keys("[tokens=2 pace_ms=1300] slow to start\n").await;
    t.expect(" waiting for the reply… 1 s").await;
    t.expect("\r\x1b[2Kt0 t1").await;

    // The socket dies mid-reply: the status line says so, and the reply
    // carries on where it was cut, every token once.
    t.type_keys("[tokens=60 pace_ms=10] go on\n").await;
    t.expect("t5 ").await;
    h.fault(&context, "drop").await.expect("the fault hook");
    t.expect("reconnect").await;
    t.expect("t58 t59").await;

    // Ctrl-C while a reply is being written stops it; the reply says so.
    t.type_keys("[tokens=100000 pace_ms=5] a long one\n").await;
    t.expect("t3 ").await;
    t.type_keys("\u{3}").await;
    t.expect("[reply stopped]").await;

    // Ctrl-C while idle exits, cleanly.
    t.type_keys("\u{3}").await;
    let status = tokio::time::timeout(WAIT, t.child.wait())
        .await
        .expect("chat exits")
        .expect("status");
    assert!(status.success(), "{status:?}: {:?}", t.seen);

    // The stopped reply is in the history, cut short.
    let history = h.admin.get_context(&context).await.expect("the context");
    assert!(history.messages.len() >= 6, "{:?}", history.messages);
    h.server.shutdown().await;
}
