//! The runnable examples, run as a reader runs them: each binary from start
//! to end (it starts its own relay on 127.0.0.1:0), its exit status and
//! what it printed checked.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs an example binary to its end; fails the test if it takes longer
/// than a minute (it would otherwise hang the suite).
fn run(binary: &str) -> Output {
    let mut child = Command::new(binary)
        // The examples pick a real model when a key is set: never here.
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waitable").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

#[test]
fn the_tools_example_runs_a_webhook_tool_and_a_client_side_tool() {
    let out = run(env!("CARGO_BIN_EXE_tools"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The webhook answered (so the signature checked out)…
    assert!(
        stderr.contains("← order A-17: shipped on Monday, arriving Thursday"),
        "{stderr}"
    );
    // …and the device's answer reached the agent's continuation.
    assert!(
        stdout.contains("=2 × espresso beans (1 kg), 1 × milk frother"),
        "{stdout}"
    );
    assert!(stderr.contains("the reply is complete"), "{stderr}");
}

#[test]
fn the_quickstart_resumes_its_cut_reply_exactly() {
    let out = run(env!("CARGO_BIN_EXE_quickstart"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("reconnected and resumed"), "{stderr}");
    assert!(stderr.contains("every word exactly once"), "{stderr}");
}
