//! A private PostgreSQL for tests: `initdb` into a temporary directory,
//! `pg_ctl start` on 127.0.0.1 at a free port (its unix socket in that
//! directory too), trust authentication, `fsync` off (commits survive a
//! crash of PostgreSQL, not of the machine); stopped
//! (`pg_ctl stop -m immediate`) and deleted when the last handle drops,
//! a failing test's included (unwinding drops it).
//!
//! Include it from a test binary with
//! `#[path = "common/postgres.rs"] mod postgres;` and start with
//! [`require`]: every test of the binary shares one instance while any of
//! them holds it, each on its own database ([`Postgres::fresh_database`]).
//!
//! PostgreSQL refuses to run as root: as root, the server runs as the
//! `postgres` user (Debian's package creates it), else `nobody`, through
//! `runuser`, in a directory handed to that user.
//!
//! Binaries (`initdb`, `pg_ctl`, `createdb`): `$TOKENRELAY_PG_BIN`, else
//! the directory `initdb` on `PATH` resolves to, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's package puts none on `PATH`). None found: under CI (`CI` set
//! and not `false`) the test fails; elsewhere it is skipped with a message.
#![allow(dead_code)]

// Both engines' harnesses include it; a test binary with both holds
// two copies, which is fine for two private functions.
#[allow(clippy::duplicate_mod)]
#[path = "unique.rs"]
mod unique;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use unique::{free_port, random_u64};

/// A running private PostgreSQL.
pub(crate) struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
}

static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());

/// The binary's shared instance, started on first use; `None` (with a
/// message on stderr) when PostgreSQL is not installed outside CI. Panics
/// when it is missing under CI, or installed but fails to start.
pub(crate) fn require(test: &str) -> Option<Arc<Postgres>> {
    let bin = find_or_skip(test)?;
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pg) = shared.upgrade() {
        return Some(pg);
    }
    let pg = Arc::new(Postgres::start(bin).unwrap_or_else(|e| panic!("{test}: {e}")));
    *shared = Arc::downgrade(&pg);
    Some(pg)
}

/// An instance of the test's own (to stop and start again), with the
/// same skip rules as [`require`].
pub(crate) fn private(test: &str) -> Option<Postgres> {
    let bin = find_or_skip(test)?;
    Some(Postgres::start(bin).unwrap_or_else(|e| panic!("{test}: {e}")))
}

fn find_or_skip(test: &str) -> Option<PathBuf> {
    let Some(bin) = bin_dir() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if ci {
            panic!(
                "{test}: PostgreSQL is required under CI and was not found \
                 (apt-get install -y postgresql, or set TOKENRELAY_PG_BIN)"
            );
        }
        eprintln!(
            "SKIPPED {test}: PostgreSQL not found (apt-get install -y postgresql, \
             or set TOKENRELAY_PG_BIN to the directory holding initdb and pg_ctl)"
        );
        return None;
    };
    Some(bin)
}

/// Where `initdb` and `pg_ctl` are, if anywhere.
pub(crate) fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TOKENRELAY_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // `initdb` on PATH is often a symlink into the versioned
            // directory, which also holds `pg_ctl` and `createdb`.
            let Ok(initdb) = std::fs::canonicalize(dir.join("initdb")) else {
                continue;
            };
            if let Some(bin) = initdb.parent() {
                if ["pg_ctl", "createdb"].iter().all(|t| bin.join(t).is_file()) {
                    return Some(bin.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    run_output(Command::new("id").arg("-u")).is_ok_and(|out| out.trim() == "0")
}

fn run_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(uid, gid)` of a user, if it exists.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let uid = run_output(Command::new("id").args(["-u", user])).ok()?;
    let gid = run_output(Command::new("id").args(["-g", user])).ok()?;
    Some((uid.trim().parse().ok()?, gid.trim().parse().ok()?))
}

impl Postgres {
    /// `initdb` + `pg_ctl start` in a fresh temporary directory.
    pub(crate) fn start(bin: PathBuf) -> Result<Postgres, String> {
        let dir = std::env::temp_dir().join(format!(
            "tokenrelay-pg-{}-{:x}",
            std::process::id(),
            random_u64() as u32
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let run_as = if is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| ids_of(u).is_some())
                .ok_or("running as root, and neither `postgres` nor `nobody` exists")?;
            let (uid, gid) = ids_of(user).unwrap_or((65534, 65534));
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            Some(user.to_owned())
        } else {
            None
        };
        let mut pg = Postgres {
            bin,
            dir,
            port: 0,
            run_as,
        };
        // From here on, Drop cleans up whatever got started.
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "tokenrelay",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        // A port picked free can be taken before the server binds it:
        // try a few.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            match pg.start_again() {
                Ok(()) => return Ok(pg),
                Err(e) => last = e,
            }
        }
        Err(format!("PostgreSQL did not start: {last}"))
    }

    /// `pg_ctl start` on the instance's port (again, after [`Self::stop`]).
    pub(crate) fn start_again(&self) -> Result<(), String> {
        // `fsync=off` is safe for a test: a commit still reaches the OS
        // before it is acknowledged, so a crash of PostgreSQL alone
        // (`stop`) loses nothing. (`synchronous_commit=off` would lose the
        // last commits to it.)
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            path_str(&self.dir)?
        );
        let log = self.dir.join("server.log");
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(drop)
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\n{log}")
        })
    }

    /// Stops the server at once (`-m immediate`: as a crash looks to its
    /// clients); the data stays for [`Self::start_again`].
    pub(crate) fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-m", "immediate", "-w", "stop"],
        )
        .map(drop)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of PostgreSQL's binaries, as the unprivileged user when
    /// the tests run as root.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // The server's cwd must be readable by its user.
        cmd.args(args).current_dir(&self.dir);
        run_output(&mut cmd)
    }

    /// The TCP port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its unix socket.
    pub(crate) fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db`, as `--db` takes it.
    pub(crate) fn dsn(&self, db: &str) -> String {
        format!("postgres://tokenrelay@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database with a random name (`createdb`, so the
    /// harness needs nothing beyond std); returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        let name = format!("t_{:016x}", random_u64());
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "tokenrelay", &name],
        )
        .unwrap_or_else(|e| panic!("create a test database: {e}"));
        self.dsn(&name)
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Stopped already (or never started) is fine; anything else is
        // worth a line, since a leaked server outlives the test.
        let running = self.data_dir().join("postmaster.pid").exists();
        if self.port != 0 && running {
            if let Err(e) = self.stop() {
                eprintln!("stopping the test PostgreSQL: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
