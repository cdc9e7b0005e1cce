//! The reference server as an operating-system process of its own, run
//! from its real binary (`tokenrelay-server`) as a deployment runs it: what
//! the cluster tests `kill -9` and `SIGTERM`, and what the memory bench
//! measures from outside.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary: `TOKENRELAY_SERVER_BIN` if set, else the one of this
/// build's profile in the workspace's target directory (`debug` for the
/// tests, `release` for the benches), built (once per process) by `cargo
/// build -p tokenrelay-server` so that it is never older than the code
/// under test: a no-op of a second when `cargo test --workspace` has just
/// built it.
///
/// # Panics
/// If the build fails.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(p) = std::env::var("TOKENRELAY_SERVER_BIN") {
                return PathBuf::from(p);
            }
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join("target"));
            let release = !cfg!(debug_assertions);
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args([
                    "build",
                    "-q",
                    "-p",
                    "tokenrelay-server",
                    "--bin",
                    "tokenrelay-server",
                ])
                .current_dir(&root);
            if release {
                build.arg("--release");
            }
            let ok = build.status().expect("cargo runs");
            assert!(ok.success(), "building tokenrelay-server failed");
            target
                .join(if release { "release" } else { "debug" })
                .join("tokenrelay-server")
        })
        .clone()
}

/// Runs `tokenrelay-server ARGS bootstrap --org-name NAME` and returns the
/// org's id and key.
///
/// # Panics
/// If it fails or prints no org.
pub fn bootstrap(args: &[String], org_name: &str) -> (String, String) {
    let out = Command::new(server_binary())
        .args(args)
        .args(["bootstrap", "--org-name", org_name])
        .output()
        .expect("bootstrap runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("bootstrap printed no {name}"))
            .to_owned()
    };
    (field("org_id"), field("org_api_key"))
}

/// A `tokenrelay-server … serve` process on `127.0.0.1:0`; killed (`SIGKILL`)
/// on drop if it is still running.
pub struct ServerProcess {
    child: Child,
    /// Its REST base URL (`http://127.0.0.1:PORT`).
    pub http_url: String,
    /// Its WebSocket URL (`ws://127.0.0.1:PORT/ws`).
    pub ws_url: String,
}

impl ServerProcess {
    /// Starts `tokenrelay-server ARGS --bind 127.0.0.1:0 serve` and waits
    /// (at most 30 s) for its `ready` line.
    ///
    /// # Panics
    /// If it exits or says nothing in time.
    pub fn start(args: &[String]) -> ServerProcess {
        let mut child = Command::new(server_binary())
            .args(args)
            .args(["--bind", "127.0.0.1:0", "serve"])
            .env("NO_COLOR", "1")
            .env("TOKENRELAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("stderr");
        // Read on a thread of its own, so that a server that hangs before
        // its ready line fails the test at the deadline instead of
        // blocking it; the thread then keeps draining the log so the
        // server never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if line.contains("ready") && line.contains("http=") {
                    let _ = tx.send(line);
                    break;
                }
            }
            lines.for_each(drop);
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the server was not ready in time: {:?}", child.wait())
            });
        let value = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line}"))
                .to_owned()
        };
        ServerProcess {
            http_url: value("http="),
            ws_url: value("ws="),
            child,
        }
    }

    /// Its address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.http_url
            .trim_start_matches("http://")
            .parse()
            .expect("an address in the ready line")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `SIGTERM` (the deploy's signal: the server drains, then exits).
    ///
    /// # Panics
    /// If `kill` cannot run.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success(), "kill -TERM failed");
    }

    /// `kill -9`: the process stops where it is, releasing nothing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// If waiting fails.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the server")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
