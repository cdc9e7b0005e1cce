//! A private Redis for tests: `redis-server` on 127.0.0.1 at a free port,
//! its working directory a fresh temporary directory, no persistence (no
//! RDB snapshots, no AOF) unless a test asks for it with
//! [`Redis::with_persistence`]; stopped (`SIGKILL`, as a crash looks to its
//! clients) and deleted when the handle drops, a failing test's included
//! (unwinding drops it).
//!
//! Include it from a test binary with
//! `#[path = "common/redis.rs"] mod redis;` and start one per test with
//! [`require`] (a Redis starts in milliseconds, and a private one lets a
//! test stop and restart it without disturbing the others).
//!
//! The binary: `$TOKENRELAY_REDIS_SERVER`, else `redis-server` on `PATH`
//! (Debian's `redis-server` package). Not found: under CI (`CI` set and not
//! `false`) the test fails; elsewhere it is skipped with a message.
#![allow(dead_code)]

// Both engines' harnesses include it; a test binary with both holds
// two copies, which is fine for two private functions.
#[allow(clippy::duplicate_mod)]
#[path = "unique.rs"]
mod unique;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use unique::{free_port, random_u64};

/// A running private Redis.
pub(crate) struct Redis {
    exe: PathBuf,
    dir: PathBuf,
    port: u16,
    persistent: bool,
    child: Option<Child>,
}

/// A private instance for the test, or `None` (with a message on stderr)
/// when `redis-server` is not installed outside CI. Panics when it is
/// missing under CI, or installed but fails to start.
pub(crate) fn require(test: &str) -> Option<Redis> {
    let exe = find_or_skip(test)?;
    Some(Redis::start(exe, false).unwrap_or_else(|e| panic!("{test}: {e}")))
}

fn find_or_skip(test: &str) -> Option<PathBuf> {
    let Some(exe) = server_binary() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if ci {
            panic!(
                "{test}: redis-server is required under CI and was not found \
                 (apt-get install -y redis-server, or set TOKENRELAY_REDIS_SERVER)"
            );
        }
        eprintln!(
            "SKIPPED {test}: redis-server not found (apt-get install -y redis-server, \
             or set TOKENRELAY_REDIS_SERVER to its path)"
        );
        return None;
    };
    Some(exe)
}

/// Where `redis-server` is, if anywhere.
pub(crate) fn server_binary() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("TOKENRELAY_REDIS_SERVER") {
        let exe = PathBuf::from(exe);
        return exe.is_file().then_some(exe);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|exe| exe.is_file())
}

impl Redis {
    /// Starts `exe` in a fresh temporary directory. With `persistent`, it
    /// keeps an append-only file there, so [`Self::stop`] then
    /// [`Self::start_again`] finds its data (fsync every write).
    pub(crate) fn start(exe: PathBuf, persistent: bool) -> Result<Redis, String> {
        let dir = std::env::temp_dir().join(format!(
            "tokenrelay-redis-{}-{:x}",
            std::process::id(),
            random_u64() as u32
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut redis = Redis {
            exe,
            dir,
            port: 0,
            persistent,
            child: None,
        };
        // A port picked free can be taken before the server binds it:
        // try a few. From here on, Drop cleans up whatever got started.
        let mut last = String::new();
        for _ in 0..5 {
            redis.port = free_port()?;
            match redis.start_again() {
                Ok(()) => return Ok(redis),
                Err(e) => last = e,
            }
        }
        Err(format!("redis-server did not start: {last}"))
    }

    /// A private instance that keeps its data across [`Self::stop`] and
    /// [`Self::start_again`], with the same skip rules as [`require`].
    pub(crate) fn with_persistence(test: &str) -> Option<Redis> {
        let exe = find_or_skip(test)?;
        Some(Redis::start(exe, true).unwrap_or_else(|e| panic!("{test}: {e}")))
    }

    /// Starts the server on the instance's port (again, after
    /// [`Self::stop`]) and waits until it answers `PING`.
    pub(crate) fn start_again(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_str().ok_or("temp dir is not UTF-8")?.to_owned();
        let log = self.dir.join("server.log");
        let appendonly = if self.persistent { "yes" } else { "no" };
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--dir",
            &dir,
            // No snapshots; the append-only file only when asked.
            "--save",
            "",
            "--appendonly",
            appendonly,
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            log.to_str().ok_or("log path is not UTF-8")?,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}):\n{log}"));
            }
            if self.ping().is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (`SIGKILL`: as a crash looks to its
    /// clients). A persistent instance keeps its data for
    /// [`Self::start_again`].
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `PING` over a plain socket (RESP inline command), so the harness
    /// needs nothing beyond std.
    pub(crate) fn ping(&self) -> Result<(), String> {
        let reply = self.command("PING")?;
        if reply == "+PONG" {
            Ok(())
        } else {
            Err(format!("PING answered {reply:?}"))
        }
    }

    /// Sends one inline command (space-separated words, no quoting) and
    /// returns the first line of the reply, e.g. `+OK`, `:3`, `$5`.
    pub(crate) fn command(&self, line: &str) -> Result<String, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .map_err(|e| e.to_string())?;
        Ok(reply.trim_end().to_owned())
    }

    /// The TCP port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The URL, as `--hub` takes it.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
