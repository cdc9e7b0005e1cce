//! `cargo xtask <task>`: the project's tasks, in Rust so they run the same
//! on every machine.
//!
//! * `cargo xtask test`: every test suite of the workspace (the README's
//!   test command; CI runs it). Suites for the language bindings join here
//!   as they land.
//! * `cargo xtask lint`: rustfmt and clippy as CI checks them.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let steps: &[&[&str]] = match task.as_str() {
        "test" => &[
            &["test", "--workspace", "--all-targets"],
            &["test", "--workspace", "--doc"],
        ],
        "lint" => &[
            &["fmt", "--all", "--check"],
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[
                "clippy",
                "-p",
                "tokenrelay",
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ],
            &["doc", "--workspace", "--no-deps"],
        ],
        _ => {
            eprintln!("usage: cargo xtask <test|lint>");
            return ExitCode::FAILURE;
        }
    };
    for args in steps {
        eprintln!("\n==> cargo {}", args.join(" "));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(*args);
        if args[0] == "doc" {
            cmd.env("RUSTDOCFLAGS", "-D warnings");
        }
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(_) | Err(_) => {
                eprintln!("xtask: `cargo {}` failed", args.join(" "));
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
