//! `cargo xtask bench [--short]`: every benchmark of every package, one after
//! the other, then one summary table (bench, metric, value, and the peer's
//! value where the bench runs a peer client beside ours).
//!
//! Each bench prints its usual human output, which is passed through as it
//! comes; the summary is read from it:
//!
//! * criterion benches (the core's `session` and `decoders`, the server's
//!   `keys`): their `time:`/`thrpt:` lines, the median of each;
//! * every other bench: lines of the form
//!   `bench-result<TAB>bench<TAB>metric<TAB>value<TAB>peer` (the peer may be
//!   empty), which they print beside their tables for this purpose.
//!
//! `--short` runs each briefly (criterion with a short warm-up and
//! measurement, fewer frames, rounds and replies): a check that every bench
//! still runs and reports, not figures to record. docs/benchmarks.md says
//! how the recorded figures were taken.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// How a bench's rows are read from its output.
#[derive(Clone, Copy)]
enum Read {
    /// Criterion's `time:`/`thrpt:` lines; `peer` pairs a bench id with the
    /// id of the peer measured beside it (`None` when it has none).
    Criterion {
        bench: &'static str,
        peer: fn(&str) -> Option<String>,
    },
    /// `bench-result` lines.
    Lines,
    /// A build step before a bench: no figures.
    Nothing,
}

/// One benchmark: a command from the workspace root, its arguments for a
/// full and for a `--short` run, and how to read its figures.
struct Bench {
    program: Program,
    full: &'static [&'static str],
    short: &'static [&'static str],
    read: Read,
}

#[derive(Clone, Copy)]
enum Program {
    /// `cargo <args>`.
    Cargo,
    /// `bash <script> <args>`.
    Script(&'static str),
}

/// Criterion's options for a `--short` run.
const CRITERION_SHORT: [&str; 6] = [
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

macro_rules! criterion {
    ($($arg:literal),*) => {
        (&[$($arg),*, "--", "--warm-up-time", "2", "--measurement-time", "5"],
         &[$($arg),*, "--", CRITERION_SHORT[0], CRITERION_SHORT[1], CRITERION_SHORT[2],
           CRITERION_SHORT[3], CRITERION_SHORT[4], CRITERION_SHORT[5]])
    };
}

/// Every benchmark, in the order they run.
fn benches() -> Vec<Bench> {
    let (session_full, session_short) =
        criterion!("bench", "-p", "tokenrelay", "--bench", "session");
    let (decoders_full, decoders_short) = criterion!(
        "bench",
        "-p",
        "tokenrelay",
        "--features",
        "fuzzing",
        "--bench",
        "decoders"
    );
    let (keys_full, keys_short) = criterion!("bench", "-p", "tokenrelay-server", "--bench", "keys");
    vec![
        Bench {
            program: Program::Cargo,
            full: session_full,
            short: session_short,
            read: Read::Criterion {
                bench: "core session (decode + accumulate)",
                // The hand-written serde app beside the session.
                peer: |id| {
                    id.contains("/session/")
                        .then(|| id.replace("/session/", "/baseline/"))
                },
            },
        },
        Bench {
            program: Program::Cargo,
            full: decoders_full,
            short: decoders_short,
            read: Read::Criterion {
                bench: "core decoders (compact; peer: serde)",
                peer: |id| {
                    id.ends_with("/compact")
                        .then(|| id.replace("/compact", "/native"))
                },
            },
        },
        Bench {
            program: Program::Cargo,
            full: &["bench", "-p", "tokenrelay", "--bench", "loopback"],
            short: &[
                "bench",
                "-p",
                "tokenrelay",
                "--bench",
                "loopback",
                "--",
                "200000",
                "--rounds",
                "1",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Cargo,
            full: &["bench", "-p", "tokenrelay-e2e", "--bench", "latency"],
            short: &[
                "bench",
                "-p",
                "tokenrelay-e2e",
                "--bench",
                "latency",
                "--",
                "--short",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Cargo,
            full: &["bench", "-p", "tokenrelay-e2e", "--bench", "long_session"],
            short: &[
                "bench",
                "-p",
                "tokenrelay-e2e",
                "--bench",
                "long_session",
                "--",
                "--short",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Cargo,
            full: keys_full,
            short: keys_short,
            read: Read::Criterion {
                bench: "server client keys",
                peer: |_| None,
            },
        },
        Bench {
            program: Program::Cargo,
            full: &[
                "bench",
                "-p",
                "tokenrelay-server",
                "--bench",
                "ws_throughput",
            ],
            short: &[
                "bench",
                "-p",
                "tokenrelay-server",
                "--bench",
                "ws_throughput",
                "--",
                "--short",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Cargo,
            full: &[
                "bench",
                "-p",
                "tokenrelay-server",
                "--bench",
                "idle_connections",
            ],
            short: &[
                "bench",
                "-p",
                "tokenrelay-server",
                "--bench",
                "idle_connections",
                "--",
                "--short",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Cargo,
            full: &["bench", "-p", "tokenrelay-server", "--bench", "cluster"],
            short: &[
                "bench",
                "-p",
                "tokenrelay-server",
                "--bench",
                "cluster",
                "--",
                "--short",
            ],
            read: Read::Lines,
        },
        Bench {
            program: Program::Script("sdk-python/bench/run.sh"),
            full: &[],
            short: &["--tokens", "100000"],
            read: Read::Lines,
        },
        // The package as a user gets it, then its size and Node throughput.
        Bench {
            program: Program::Script("sdk-wasm/build.sh"),
            full: &[],
            short: &[],
            read: Read::Nothing,
        },
        Bench {
            program: Program::Script("sdk-wasm/bench/run.sh"),
            full: &[],
            short: &["100000"],
            read: Read::Lines,
        },
        Bench {
            program: Program::Script("sdk-mobile/bench/run.sh"),
            full: &[],
            short: &["100000"],
            read: Read::Lines,
        },
    ]
}

/// One line of the summary.
struct Row {
    bench: String,
    metric: String,
    value: String,
    peer: String,
}

/// Runs every bench and prints the summary; fails if any bench fails or
/// reports nothing.
pub(crate) fn run(root: &Path, args: &[String]) -> ExitCode {
    let short = args.iter().any(|a| a == "--short");
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for bench in benches() {
        let args = if short { bench.short } else { bench.full };
        let (label, mut cmd) = match bench.program {
            Program::Cargo => {
                let mut cmd = Command::new(env!("CARGO"));
                cmd.args(args);
                (format!("cargo {}", args.join(" ")), cmd)
            }
            Program::Script(path) => {
                let mut cmd = Command::new("bash");
                cmd.arg(path).args(args);
                (format!("bash {path} {}", args.join(" ")), cmd)
            }
        };
        eprintln!("\n==> {label}");
        if short {
            // Scripts that take their sizes from the environment.
            cmd.env("ROUNDS", "1");
        }
        let output = match run_passing_through(cmd.current_dir(root)) {
            Ok(output) => output,
            Err(e) => {
                eprintln!("xtask: `{label}` failed: {e}");
                failed.push(label);
                continue;
            }
        };
        let before = rows.len();
        match bench.read {
            Read::Criterion { bench, peer } => criterion_rows(&output, bench, peer, &mut rows),
            Read::Lines => rows.extend(output.lines().filter_map(result_line)),
            Read::Nothing => continue,
        }
        // A bench that runs but reports nothing is broken.
        if rows.len() == before {
            eprintln!("xtask: `{label}` reported no figures");
            failed.push(label);
        }
    }
    print_table(&rows, short);
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask: failed: {}", failed.join("; "));
        ExitCode::FAILURE
    }
}

/// Runs `cmd`, echoing its stdout line by line as it comes (stderr is
/// inherited), and returns that stdout.
fn run_passing_through(cmd: &mut Command) -> Result<String, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| e.to_string())?;
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(text)
    } else {
        Err(status.to_string())
    }
}

/// `bench-result<TAB>bench<TAB>metric<TAB>value<TAB>peer`.
fn result_line(line: &str) -> Option<Row> {
    let mut f = line.strip_prefix("bench-result\t")?.split('\t');
    Some(Row {
        bench: f.next()?.to_owned(),
        metric: f.next()?.to_owned(),
        value: f.next()?.to_owned(),
        peer: f.next().unwrap_or("").to_owned(),
    })
}

/// One criterion measurement: the bench id and the medians of its `time:`
/// and (when it has one) `thrpt:` lines.
struct Measured {
    id: String,
    time: String,
    thrpt: Option<String>,
}

/// Criterion prints `id  time: [low median high]` (the id on the line before
/// when it is long), then `thrpt: [low median high]` when the group has a
/// throughput.
fn criterion_measurements(output: &str) -> Vec<Measured> {
    let mut found: Vec<Measured> = Vec::new();
    let mut previous = "";
    for line in output.lines() {
        if let Some((head, values)) = line.split_once("time:") {
            let id = match head.trim() {
                "" => previous.trim(),
                id => id,
            };
            if let Some(median) = median(values) {
                found.push(Measured {
                    id: id.to_owned(),
                    time: median,
                    thrpt: None,
                });
            }
        } else if let Some((_, values)) = line.split_once("thrpt:") {
            if let (Some(last), Some(m)) = (found.last_mut(), median(values)) {
                last.thrpt.get_or_insert(m);
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    found
}

/// The middle of `[low median high]`, each a number and a unit.
fn median(values: &str) -> Option<String> {
    let inner = values.trim().strip_prefix('[')?.split(']').next()?;
    let words: Vec<&str> = inner.split_whitespace().collect();
    (words.len() == 6).then(|| format!("{} {}", words[2], words[3]))
}

fn criterion_rows(
    output: &str,
    bench: &str,
    peer_of: fn(&str) -> Option<String>,
    rows: &mut Vec<Row>,
) {
    let measured = criterion_measurements(output);
    let figure = |m: &Measured| m.thrpt.clone().unwrap_or_else(|| m.time.clone());
    // Peers are shown beside the bench they pair with, not as rows.
    let peers: Vec<String> = measured.iter().filter_map(|m| peer_of(&m.id)).collect();
    for m in measured.iter().filter(|m| !peers.contains(&m.id)) {
        let peer = peer_of(&m.id)
            .and_then(|p| measured.iter().find(|o| o.id == p))
            .map(|p| format!("{}: {}", short_id(&p.id), figure(p)))
            .unwrap_or_default();
        rows.push(Row {
            bench: bench.to_owned(),
            metric: short_id(&m.id).to_owned(),
            value: figure(m),
            peer,
        });
    }
}

/// A criterion id without its group (`group/…/name` → `…/name`).
fn short_id(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, rest)| rest)
}

fn print_table(rows: &[Row], short: bool) {
    println!(
        "\n## Summary{}\n",
        if short {
            " (--short: a check, not figures)"
        } else {
            ""
        }
    );
    println!("| bench | metric | value | peer |");
    println!("|---|---|---:|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.bench, r.metric, r.value, r.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_medians_and_pairs_peers() {
        let out = "\
Benchmarking g/session/1 response: Analyzing
g/session/1 response    time:   [520.12 µs 521.90 µs 523.88 µs]
                        thrpt:  [7.8187 Melem/s 7.8482 Melem/s 7.8751 Melem/s]
g/baseline/1 response
                        time:   [600.00 µs 610.00 µs 620.00 µs]
                        thrpt:  [6.6 Melem/s 6.7 Melem/s 6.8 Melem/s]
                 change: [-1.0% +0.5% +2.0%] (p = 0.50 > 0.05)
";
        let mut rows = Vec::new();
        criterion_rows(
            out,
            "core",
            |id| {
                id.contains("/session/")
                    .then(|| id.replace("/session/", "/baseline/"))
            },
            &mut rows,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].metric, "session/1 response");
        assert_eq!(rows[0].value, "7.8482 Melem/s");
        assert_eq!(rows[0].peer, "baseline/1 response: 6.7 Melem/s");
    }

    #[test]
    fn reads_result_lines_only() {
        let row = result_line("bench-result\tloopback\tevents\t4.1 M frames/s\traw: 6.8 M")
            .expect("a row");
        assert_eq!(
            (row.bench, row.metric, row.value, row.peer),
            (
                "loopback".into(),
                "events".into(),
                "4.1 M frames/s".into(),
                "raw: 6.8 M".into()
            )
        );
        assert!(result_line("| raw | 1000000 |").is_none());
    }
}
