//! A progress line for the waits a person would otherwise stare at: a REST
//! call to a slow or retrying server, connecting, a reply that has not
//! started yet (a model thinking, a tool running). Shown on stderr only
//! when stderr is a terminal and the output is for people (never with
//! `--json`, never in a pipe), only once a wait has lasted
//! [`FIRST_DRAW`] (a quick answer shows nothing), and redrawn in place with
//! the time waited so far. Anything the CLI prints erases it first
//! ([`erase`], called by `output`), so it never ends up inside a reply.

use std::cell::Cell;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

/// How long a wait lasts before the line appears.
pub(crate) const FIRST_DRAW: Duration = Duration::from_millis(500);

/// How often the line is redrawn (the spinner turns, the seconds count).
pub(crate) const REDRAW: Duration = Duration::from_millis(250);

/// The spinner's frames.
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Moves to the start of the line and clears it (ANSI).
const CLEAR_LINE: &str = "\r\x1b[2K";

thread_local! {
    /// Whether a progress line is on the terminal now. Shared with every
    /// printer, which must erase it; per thread because the CLI draws and
    /// prints on its one runtime thread (and each test on its own).
    static DRAWN: Cell<bool> = const { Cell::new(false) };
}

/// Erases the progress line if one is drawn; `output` calls it before
/// writing anything.
pub(crate) fn erase() {
    if DRAWN.replace(false) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(CLEAR_LINE.as_bytes());
        let _ = err.flush();
    }
}

/// The progress line of one command.
pub(crate) struct Progress {
    /// Where the line is drawn; `None`: progress is not shown.
    sink: Option<Box<dyn Write + Send>>,
    /// What is being waited for, and since when.
    wait: Option<(String, Instant)>,
    /// When the line is drawn next.
    next_draw: Option<Instant>,
    /// The spinner's next frame.
    frame: usize,
}

impl Progress {
    /// Progress on stderr when it is a terminal (and `TERM` is not
    /// `dumb`) and the output is for people; otherwise none.
    pub(crate) fn for_stderr(json: bool) -> Progress {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let shown = !json && !dumb && std::io::stderr().is_terminal();
        Progress::to(shown.then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>))
    }

    /// Progress drawn into `sink` (`None`: not shown).
    pub(crate) fn to(sink: Option<Box<dyn Write + Send>>) -> Progress {
        Progress {
            sink,
            wait: None,
            next_draw: None,
            frame: 0,
        }
    }

    /// A wait for `label` begins now, unless one is already going on
    /// (its start time is kept: the count goes on through the events that
    /// do not end it).
    pub(crate) fn start(&mut self, label: &str) {
        if self.sink.is_none() || self.wait.is_some() {
            return;
        }
        let now = Instant::now();
        self.wait = Some((label.to_owned(), now));
        self.next_draw = Some(now + FIRST_DRAW);
    }

    /// The wait is over: the line is erased (unless a printer already
    /// did, and may have written on that line since).
    pub(crate) fn stop(&mut self) {
        self.wait = None;
        self.next_draw = None;
        if DRAWN.replace(false) {
            if let Some(sink) = &mut self.sink {
                let _ = sink.write_all(CLEAR_LINE.as_bytes());
                let _ = sink.flush();
            }
        }
    }

    /// Resolves when the line is due to be drawn, and draws it; never
    /// resolves while nothing is waited for. Cancel-safe: nothing changes
    /// until the draw, which happens in the same poll as the wake-up.
    pub(crate) async fn tick(&mut self) {
        let Some(at) = self.next_draw else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(at).await;
        self.draw();
    }

    fn draw(&mut self) {
        let now = Instant::now();
        let (Some(sink), Some((label, since))) = (&mut self.sink, &self.wait) else {
            return;
        };
        let line = format!(
            "{CLEAR_LINE}{} {label}… {} s",
            FRAMES[self.frame % FRAMES.len()],
            now.duration_since(*since).as_secs()
        );
        let _ = sink.write_all(line.as_bytes());
        let _ = sink.flush();
        DRAWN.set(true);
        self.frame += 1;
        self.next_draw = Some(now + REDRAW);
    }

    /// Awaits `work`, with the line for `label` shown while it lasts.
    pub(crate) async fn during<F: Future>(&mut self, label: &str, work: F) -> F::Output {
        self.start(label);
        let mut work = std::pin::pin!(work);
        let out = loop {
            tokio::select! {
                out = &mut work => break out,
                () = self.tick() => {}
            }
        };
        self.stop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Screen {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_wait_shows_nothing() {
        let screen = Screen::default();
        let mut progress = Progress::to(Some(Box::new(screen.clone())));
        let out = progress
            .during("waiting", async {
                tokio::time::sleep(FIRST_DRAW / 2).await;
                7
            })
            .await;
        assert_eq!(out, 7);
        assert_eq!(screen.take(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_is_drawn_counted_and_erased() {
        let screen = Screen::default();
        let mut progress = Progress::to(Some(Box::new(screen.clone())));
        progress
            .during("waiting for the server", async {
                tokio::time::sleep(Duration::from_millis(1_100)).await;
            })
            .await;
        let drawn = screen.take();
        // Drawn at 0.5, 0.75 and 1.0 s, then erased at 1.1 s.
        let frames: Vec<&str> = drawn.split(CLEAR_LINE).filter(|f| !f.is_empty()).collect();
        assert_eq!(
            frames,
            [
                "⠋ waiting for the server… 0 s",
                "⠙ waiting for the server… 0 s",
                "⠹ waiting for the server… 1 s",
            ],
            "{drawn:?}"
        );
        assert!(drawn.ends_with(CLEAR_LINE), "{drawn:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_started_twice_keeps_its_first_start() {
        let screen = Screen::default();
        let mut progress = Progress::to(Some(Box::new(screen.clone())));
        progress.start("waiting for the reply");
        tokio::time::sleep(Duration::from_secs(2)).await;
        progress.start("waiting for the reply");
        progress.tick().await;
        assert_eq!(
            screen.take(),
            format!("{CLEAR_LINE}⠋ waiting for the reply… 2 s")
        );
        progress.stop();
        assert_eq!(screen.take(), CLEAR_LINE);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_terminal_nothing_is_waited_for() {
        let mut progress = Progress::to(None);
        progress.start("waiting");
        // `tick` never resolves: the select in `during` only sees the work.
        let ticked = tokio::time::timeout(Duration::from_secs(60), progress.tick()).await;
        assert!(ticked.is_err());
        assert_eq!(progress.during("waiting", async { 1 }).await, 1);
    }
}
