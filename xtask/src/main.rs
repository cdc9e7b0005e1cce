//! `cargo xtask <task>`: the project's tasks, in Rust so they run the same
//! on every machine.
//!
//! * `cargo xtask test`: every test suite (the README's test command; CI
//!   runs it): the Rust workspace, then each language package's own
//!   `test.sh`, which installs what it needs, builds the package as a user
//!   gets it and runs its suite against the real reference server; last,
//!   a bounded run of every fuzz target (`fuzz/run.sh`).
//! * `cargo xtask latency`: the latency benchmark with every round, through
//!   every SDK: the Rust one (`tests/e2e/benches/latency.rs`), then each
//!   language package's `bench/latency.sh`, which builds what it needs and
//!   runs the same suite through that SDK. `test` runs each short (the Rust
//!   one as its own step, the others at the end of each package's
//!   `test.sh`).
//! * `cargo xtask bench [--short]`: every benchmark of every package (the
//!   core's, the server's, the E2E ones, each language package's
//!   `bench/run.sh` with its peer clients), then one summary table
//!   (`bench.rs`); `--short` runs each briefly, to check they all still run.
//! * `cargo xtask lint`: rustfmt, clippy (the host, and wasm32 for the
//!   browser crate and the core without its client) and rustdoc as CI
//!   checks them (the core also as docs.rs builds it: nightly, every
//!   feature, `--cfg docsrs`), and `cargo deny check licenses bans sources`
//!   (`deny.toml`; needs `cargo install cargo-deny --locked`). Advisories
//!   are checked by hand (CONTRIBUTING.md): they need the RustSec database,
//!   which CI does not fetch.
//!
//! Under CI (`CI` set and not `false`) every cargo step runs with
//! `--locked`: the build uses the committed `Cargo.lock` or fails, never
//! a freshly resolved one.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod bench;

/// One step of a task.
enum Step {
    /// `cargo <args>`.
    Cargo(&'static [&'static str]),
    /// `cargo <args>` of the test suite's own build: on the toolchain
    /// `$TOKENRELAY_TEST_TOOLCHAIN` names when it is set (`cargo
    /// +<toolchain>`), else as [`Step::Cargo`]. CI sets it to the
    /// manifest's `rust-version`, so the one build of the suite also
    /// proves that promise (libraries, binaries, tests, benches), instead
    /// of a second full build for it; every step of it must use the same
    /// toolchain, or the later ones compile everything again.
    Tests(&'static [&'static str]),
    /// `cargo +nightly <args>`, through rustup's `cargo` on the `PATH` (the
    /// toolchain's own cargo, which runs the other steps, takes no
    /// `+toolchain`).
    Nightly(&'static [&'static str]),
    /// `bash <script>` from the workspace root.
    Script(&'static str),
}

// Every workspace-wide cargo step here (and the MSRV check in .ci/run)
// leaves out the uniffi-bindgen crate: selecting it turns on uniffi's `cli`
// feature for the whole build (features unify across the selected
// packages), which compiles the code generator (askama, goblin, clap, …)
// into every step and recompiles uniffi for the mobile library; that cost
// CI minutes per step. The crate is one line calling uniffi's own main:
// sdk-mobile's build.sh compiles it (a build error fails the mobile suite)
// and runs it.
const TEST: &[Step] = &[
    Step::Tests(&[
        "test",
        "--workspace",
        "--exclude",
        "tokenrelay-uniffi-bindgen",
        "--all-targets",
    ]),
    Step::Tests(&[
        "test",
        "--workspace",
        "--exclude",
        "tokenrelay-uniffi-bindgen",
        "--doc",
    ]),
    Step::Script("sdk-python/test.sh"),
    Step::Script("sdk-wasm/test.sh"),
    Step::Script("sdk-mobile/test.sh"),
    // Latency figures (first token, jitter, reconnect freezes), short run:
    // printed so a reintroduced Nagle or sleep shows in the CI log; never
    // a pass/fail on time (docs/benchmarks.md judges speed, from `cargo
    // xtask latency`'s release build). This runs the binary the first step
    // built (the test profile, the same package selection, so nothing is
    // compiled again): a release build of the server and the client only
    // for this short run cost CI four minutes. A debug build's figures are
    // higher, but a 40 ms Nagle delay or a fixed sleep still stands out,
    // and the bench prints NODELAY off and on side by side. Each package's
    // test.sh above ends with its own short run, on its release build.
    Step::Tests(&[
        "test",
        "--workspace",
        "--exclude",
        "tokenrelay-uniffi-bindgen",
        "--bench",
        "latency",
        "--",
        "--bench",
        "--short",
    ]),
    // Every fuzz target for 10 s (nightly + cargo-fuzz; docs/fuzzing.md).
    Step::Script("fuzz/run.sh"),
];

/// `cargo xtask latency`: the latency benchmark with every round, the Rust
/// SDK then each language package (figures in docs/benchmarks.md).
const LATENCY: &[Step] = &[
    Step::Cargo(&["bench", "-p", "tokenrelay-e2e", "--bench", "latency"]),
    Step::Script("sdk-python/bench/latency.sh"),
    Step::Script("sdk-wasm/bench/latency.sh"),
    Step::Script("sdk-mobile/bench/latency.sh"),
];

const LINT: &[Step] = &[
    Step::Cargo(&["fmt", "--all", "--check"]),
    Step::Cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "tokenrelay-uniffi-bindgen",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]),
    Step::Cargo(&[
        "clippy",
        "-p",
        "tokenrelay",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ]),
    // Each feature alone: an app that only streams (no reqwest) and a
    // backend that only mints keys (no WebSocket stack) must build.
    Step::Cargo(&[
        "clippy",
        "-p",
        "tokenrelay",
        "--no-default-features",
        "--features",
        "client",
        "--",
        "-D",
        "warnings",
    ]),
    Step::Cargo(&[
        "clippy",
        "-p",
        "tokenrelay",
        "--no-default-features",
        "--features",
        "admin",
        "--",
        "-D",
        "warnings",
    ]),
    // What ships to browsers: the wasm-bindgen crate and the core without
    // its tokio client, built for wasm32 (cfg(target_arch) code the host
    // clippy never sees).
    Step::Cargo(&[
        "clippy",
        "-p",
        "tokenrelay-wasm",
        "-p",
        "tokenrelay",
        "--no-default-features",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]),
    Step::Cargo(&[
        "doc",
        "--workspace",
        "--exclude",
        "tokenrelay-uniffi-bindgen",
        "--no-deps",
    ]),
    // The core as docs.rs builds it (`[package.metadata.docs.rs]`: every
    // feature, `--cfg docsrs`, nightly): each feature-gated item must be
    // labelled (`doc(cfg)`) and every intra-doc link must resolve in the
    // public API, not only in the module tree.
    Step::Nightly(&["doc", "-p", "tokenrelay", "--all-features", "--no-deps"]),
    Step::Cargo(&[
        "deny",
        "check",
        "--hide-inclusion-graph",
        "licenses",
        "bans",
        "sources",
    ]),
];

/// The command of a cargo step (`cmd` is the cargo to run) and how it is
/// shown; a `doc` step runs with `rustdocflags`.
fn cargo(mut cmd: Command, args: &[&str], locked: bool, rustdocflags: &str) -> (String, Command) {
    let (sub, rest) = args.split_first().expect("a cargo step names a subcommand");
    cmd.arg(sub);
    // rustfmt reads no lock file (and takes no `--locked`).
    if locked && *sub != "fmt" {
        cmd.arg("--locked");
    }
    cmd.args(rest);
    if *sub == "doc" {
        cmd.env("RUSTDOCFLAGS", rustdocflags);
    }
    let shown: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    (format!("cargo {}", shown.join(" ")), cmd)
}

/// Whether this runs in CI (`CI=true`, as CI services and `.ci/run` set it).
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    // Scripts and cargo both run from the workspace root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if task == "bench" {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return bench::run(&root, &args);
    }
    let steps = match task.as_str() {
        "test" => TEST,
        "lint" => LINT,
        "latency" => LATENCY,
        _ => {
            eprintln!("usage: cargo xtask <test|lint|latency|bench [--short]>");
            return ExitCode::FAILURE;
        }
    };
    let locked = in_ci();
    // Each step's wall time, printed as it ends and again as a table at
    // the end: CI has a time budget, and this shows where it goes.
    let mut timings: Vec<(String, Duration)> = Vec::new();
    for step in steps {
        let (label, mut cmd) = match step {
            Step::Cargo(args) => cargo(Command::new(env!("CARGO")), args, locked, "-D warnings"),
            Step::Tests(args) => match std::env::var("TOKENRELAY_TEST_TOOLCHAIN") {
                Ok(toolchain) if !toolchain.is_empty() => {
                    // rustup's `cargo`, which takes a `+toolchain`.
                    let mut cmd = Command::new("cargo");
                    cmd.arg(format!("+{toolchain}"));
                    cargo(cmd, args, locked, "-D warnings")
                }
                _ => cargo(Command::new(env!("CARGO")), args, locked, "-D warnings"),
            },
            Step::Nightly(args) => {
                let mut cmd = Command::new("cargo");
                cmd.arg("+nightly");
                cargo(cmd, args, locked, "--cfg docsrs -D warnings")
            }
            Step::Script(path) => {
                // A missing suite is a failure, never a skip: a rename must
                // not drop a language from CI without a word.
                if !root.join(path).exists() {
                    eprintln!("xtask: `{path}` is missing");
                    return ExitCode::FAILURE;
                }
                let mut cmd = Command::new("bash");
                cmd.arg(path);
                (format!("bash {path}"), cmd)
            }
        };
        eprintln!("\n==> {label}");
        let started = Instant::now();
        let status = cmd.current_dir(&root).status();
        let took = started.elapsed();
        eprintln!("<== {label}: {:.0} s", took.as_secs_f64());
        timings.push((label.clone(), took));
        match status {
            Ok(s) if s.success() => {}
            Ok(_) | Err(_) => {
                eprintln!("xtask: `{label}` failed");
                print_timings(&timings);
                return ExitCode::FAILURE;
            }
        }
    }
    print_timings(&timings);
    ExitCode::SUCCESS
}

/// The steps that ran, with their wall time, and the total.
fn print_timings(timings: &[(String, Duration)]) {
    eprintln!("\nxtask: time per step");
    for (label, took) in timings {
        eprintln!("{:>7.0} s  {label}", took.as_secs_f64());
    }
    let total: Duration = timings.iter().map(|(_, t)| *t).sum();
    eprintln!("{:>7.0} s  total", total.as_secs_f64());
}
