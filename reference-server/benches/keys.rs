//! Client-key mint and verify throughput (the third benchmark):
//! `mint` signs a JWT and records the key in the in-memory store, as
//! `POST /generate-api-key` does; `verify` checks signature, algorithm,
//! expiry and the store record, as `connect_to_context` does.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenrelay_server::auth::{authenticate, mint_api_key};
use tokenrelay_server::store::KeyKind;
use tokenrelay_server::Server;

fn keys(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (state, _stop) = rt
        .block_on(
            Server::builder()
                .jwt_secret("a benchmark secret of at least 32 bytes")
                .build_state(),
        )
        .expect("state");
    let (org_id, _) = rt
        .block_on(tokenrelay_server::server::bootstrap_org(&state, "bench"))
        .expect("org");

    let mut group = c.benchmark_group("client_key");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint", |b| {
        b.iter(|| {
            rt.block_on(mint_api_key(
                &state,
                &org_id,
                KeyKind::Client,
                None,
                None,
                120,
                None,
            ))
            .map(|k| black_box(k.token))
            .expect("minted")
        })
    });
    let token = rt
        .block_on(mint_api_key(
            &state,
            &org_id,
            KeyKind::Client,
            None,
            None,
            3600,
            None,
        ))
        .expect("minted")
        .token;
    group.bench_function("verify", |b| {
        b.iter(|| {
            rt.block_on(authenticate(&state, black_box(&token)))
                .expect("valid")
        })
    });
    group.bench_function("jwt_only", |b| {
        b.iter(|| state.jwt.verify(black_box(&token)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, keys);
criterion_main!(benches);
