//! The server-frame decoders side by side on the same frames: what native
//! builds used (`native`: the `on_token` scanners, then a one-pass serde
//! decoder, then the careful two-pass one) and what the browser build uses
//! (`compact`: the same scanners, then the compact reader). Issue #12 asked
//! whether one decoder can serve every target; these figures decide it.
//!
//! ```text
//! cargo bench -p tokenrelay --features fuzzing --bench decoders
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use tokenrelay::wire::fuzzing::{decode_compact, decode_native};

/// Frames of one kind, a few hundred of them.
fn frames(kind: &str) -> Vec<String> {
    (0..512)
        .map(|i| match kind {
            // serde's own layout: the canonical scanner takes them.
            "token canonical" => json!({"method": "on_token",
                "params": {"token": format!(" word{i}"), "response_id": "r-1", "seq": i}})
            .to_string(),
            // Another key order and spacing: the general scanner.
            "token other layout" => format!(
                r#"{{ "params" : {{ "seq": {i}, "response_id": "r-1", "token": " wörd\n{i}" }}, "method": "on_token" }}"#
            ),
            "tool call" => json!({"method": "on_tool_call", "params": {"tool_call_id": format!("t{i}"),
                "tool_name": "search", "tool_input": {"q": "weather in Paris", "n": i, "deep": {"a": [1, 2, 3]}},
                "response_id": "r-1", "seq": i}})
            .to_string(),
            "events" => json!({"method": "on_events", "params": {"response_id": "r-1", "seq": i,
                "events": [{"type": "usage", "data": {"in": 120, "out": i}}, {"type": "note", "data": "x"}]}})
            .to_string(),
            "stop" => json!({"method": "on_stop_token", "params": {"response_id": "r-1", "seq": i, "reason": "complete"}})
                .to_string(),
            "result" => json!({"id": i.to_string(), "result": {"success": true, "response_id": format!("r-{i}")}})
                .to_string(),
            other => panic!("{other}"),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for kind in [
        "token canonical",
        "token other layout",
        "tool call",
        "events",
        "stop",
        "result",
    ] {
        let frames = frames(kind);
        let mut group = c.benchmark_group(format!("decode/{kind}"));
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function("native", |b| {
            b.iter(|| {
                for f in &frames {
                    black_box(decode_native(black_box(f)).unwrap());
                }
            })
        });
        group.bench_function("compact", |b| {
            b.iter(|| {
                for f in &frames {
                    black_box(decode_compact(black_box(f)).unwrap());
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
