//! Session decode + accumulate of `on_token` frames, single thread.
//!
//! A connected [`Session`] (server with `seq` and `resume`) is fed
//! pre-built, realistic `on_token` frames, and every event is drained after
//! each frame as a driver would. The baseline is what an application would
//! write by hand: a derived struct, `serde_json::from_str`, and a
//! `HashMap<String, String>` of texts.
//!
//! ```text
//! cargo bench -p tokenrelay --bench session -- --warm-up-time 2 --measurement-time 5
//! ```

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde::Deserialize;
use serde_json::json;
use tokenrelay::{Action, Session, SessionConfig};
use tokenrelay::{Credential, Timestamp};

/// Frames per iteration: one long response's worth.
const FRAMES: usize = 4096;

/// Tokens of 3 to 8 characters, as a tokenizer cuts English text (a few
/// carry a newline, which the JSON escapes).
const WORDS: [&str; 24] = [
    " the", " word", " and", " stream", " token", " of", " relay", " model", ", and", " which",
    ".\n\n", " is", " every", " server", " client", " with", " a", " to", " it's", " agent",
    " reply", " then", ":\n", " more",
];

/// A session connected to a `seq` + `resume` server, with `messages`
/// requests waiting for their responses.
fn connected(messages: usize) -> Session {
    let now = Timestamp::from_millis(1_000);
    let mut s = Session::new("ctx-bench", SessionConfig::new("ws://relay.test/ws"), 1);
    s.start(now);
    let Some(Action::FetchToken { fetch_id, .. }) = s.poll_action() else {
        panic!("the session should ask for a token first")
    };
    s.handle_token(
        fetch_id,
        Ok(Credential::access_token("sk_bench")),
        now,
        1_700_000_000,
    );
    while s.poll_action().is_some() {}
    s.handle_transport_open(now);
    let connect: serde_json::Value = serde_json::from_str(&s.poll_transmit().unwrap()).unwrap();
    let result = json!({"id": connect["id"], "result": {"success": true, "seq": 0,
        "server": {"name": "bench", "version": "1", "capabilities": ["seq", "resume"]}}});
    s.handle_frame(&result.to_string(), now);
    assert!(s.state().is_connected());
    for i in 0..messages {
        s.send_message(format!("question {i}"), now).unwrap();
    }
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    s
}

/// `FRAMES` `on_token` frames of `responses` responses interleaved
/// pseudo-randomly, with seq 1..=FRAMES.
fn token_frames(responses: usize) -> Vec<String> {
    let mut state: u32 = 0x2545_f491;
    let mut next = move || {
        // xorshift32: deterministic, good enough to vary words and order.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    (0..FRAMES)
        .map(|i| {
            let word = WORDS[next() % WORDS.len()];
            let response = next() % responses;
            json!({"method": "on_token", "params": {
                "token": word,
                "response_id": format!("resp-7f3a9c2e-{response}"),
                "seq": i + 1,
            }})
            .to_string()
        })
        .collect()
}

fn feed_session(s: &mut Session, frames: &[String]) {
    let now = Timestamp::from_millis(2_000);
    for f in frames {
        s.handle_frame(f, now);
        while let Some(e) = s.poll_event() {
            black_box(e);
        }
    }
}

#[derive(Deserialize)]
struct BaselineFrame {
    method: String,
    params: BaselineParams,
}

#[derive(Deserialize)]
struct BaselineParams {
    token: String,
    response_id: String,
    seq: Option<u64>,
}

fn feed_baseline(texts: &mut HashMap<String, String>, frames: &[String]) {
    for f in frames {
        let frame: BaselineFrame = serde_json::from_str(f).unwrap();
        if frame.method == "on_token" {
            black_box(frame.params.seq);
            texts
                .entry(frame.params.response_id)
                .or_default()
                .push_str(&frame.params.token);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("session decode + accumulate");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (name, responses) in [("1 response", 1), ("2 interleaved", 2)] {
        let frames = token_frames(responses);
        // Both sides must assemble the same texts, or the race is not fair.
        let mut s = connected(responses);
        feed_session(&mut s, &frames);
        let mut texts = HashMap::new();
        feed_baseline(&mut texts, &frames);
        assert_eq!(texts.len(), responses);
        for (id, text) in &texts {
            assert_eq!(&s.response(id).expect("the session kept it").text, text);
        }
        group.bench_function(format!("session/{name}"), |b| {
            b.iter_batched_ref(
                || connected(responses),
                |s| feed_session(s, &frames),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("baseline/{name}"), |b| {
            b.iter_batched_ref(
                HashMap::new,
                |texts| feed_baseline(texts, &frames),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
