//! What the Rust SDK logs through `tracing` over a connection's life
//! against the real server: the attachment, a lost socket with its cause
//! and the delay before the next attempt, the resumed attachment with the
//! count of what the server replayed, the close with the connection's
//! stats; and never a credential. `Connection::stats()` counts the same
//! reconnect.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tokenrelay::{Client, Event, ResponseStatus};
use tokenrelay_e2e::{key_minter, Harness, WAIT};
use tracing_subscriber::fmt::MakeWriter;

/// Everything the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_logs_its_life_and_never_a_credential() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tokenrelay::client=trace")
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    // Global: the connection's task runs on the runtime's other threads.
    // (The one test of this binary.)
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let h = Harness::start().await;
    let context_id = h.context("", false).await;
    // The provider remembers every key it handed out, to look for them in
    // the log afterwards.
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let minted = keys.clone();
    let mint = key_minter(h.admin.clone(), h.org_id.clone());
    let client = Client::builder(h.server.ws_url())
        .token_provider(move |ctx: String| {
            let (mint, minted) = (mint.clone(), minted.clone());
            async move {
                let key = mint(ctx).await?;
                minted.lock().expect("keys").push(key.clone());
                Ok::<_, tokenrelay::Error>(key)
            }
        })
        .build()
        .expect("client");
    let mut conn = tokio::time::timeout(WAIT, client.connect(&context_id))
        .await
        .expect("in time")
        .expect("connects");
    conn.send_message("[tokens=40 pace_ms=5]")
        .await
        .expect("sent");
    // Cut the socket five tokens into the reply; the reply resumes.
    let mut tokens = 0;
    let reply = loop {
        let event = tokio::time::timeout(WAIT, conn.next_event())
            .await
            .expect("an event in time")
            .expect("open");
        match event {
            Event::Token { .. } => {
                tokens += 1;
                if tokens == 5 {
                    h.fault(&context_id, "drop").await.expect("the fault hook");
                }
            }
            Event::ResponseComplete(r) => break r,
            _ => {}
        }
    };
    assert_eq!(reply.status, ResponseStatus::Complete);
    assert_eq!(reply.text.split(' ').count(), 40, "{}", reply.text);
    let stats = conn.stats();
    assert_eq!(
        (stats.connects, stats.reconnects, stats.resumes),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!(stats.tokens, 40, "{stats:?}");
    assert_eq!(stats.interrupted, 0, "{stats:?}");
    assert!(stats.token_fetches >= 2, "{stats:?}");
    assert!(
        stats.frames_received > 40 && stats.bytes_received > 40 * 20,
        "{stats:?}"
    );
    conn.close().await;
    h.server.shutdown().await;

    let text = log.text();
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{text}");
    }
    let first = text
        .find("attached to the context")
        .expect("the attachment is logged");
    // The attachment's own line names the context (from the connection's
    // span), so a log of many connections can be told apart.
    let attached = text[..first]
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .to_owned()
        + text[first..].lines().next().unwrap_or_default();
    assert!(
        attached.contains(&format!("context_id={context_id}")),
        "the attachment line carries the context: {attached}"
    );
    let lost = text
        .find("connection lost; reconnecting")
        .expect("the lost socket is logged");
    assert!(lost > first, "in order: {text}");
    let line = text[lost..].lines().next().unwrap_or_default();
    assert!(
        line.contains("retry_in_ms") && line.contains("cause"),
        "{line}"
    );
    let again = text[lost..]
        .find("attached to the context again")
        .map(|i| text[lost + i..].lines().next().unwrap_or_default())
        .expect("the reattachment is logged");
    assert!(
        again.contains("resumed=true")
            && again.contains(&format!("replayed={}", stats.replayed))
            && again.contains("reconnects=1"),
        "the second attachment resumed, with counts: {again}"
    );
    let closed = text
        .find("connection closed")
        .map(|i| text[i..].lines().next().unwrap_or_default())
        .expect("the close is logged");
    assert!(
        closed.contains("tokens=40") && closed.contains("resumes=1"),
        "{closed}"
    );
    assert!(text.contains("opening a socket"), "{text}");

    let keys = keys.lock().expect("keys");
    assert!(
        keys.len() >= 2,
        "a fresh key per connection: {}",
        keys.len()
    );
    for key in keys.iter().chain([&h.org_key]) {
        // Any 20 characters of a key would be a leak, not only the whole.
        let piece = &key[key.len() - 20..];
        assert!(!text.contains(piece), "a credential reached the log");
    }
}
