//! Every scenario of `tests/scenarios/` through the Rust SDK against the
//! real reference server: as it runs alone, in base-protocol mode, and on
//! a Redis hub (the cluster's shared state).

use crate::redis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes() {
    let scenarios = tokenrelay_e2e::scenario::all();
    assert!(scenarios.len() >= 6, "the scenario folder is missing files");
    let mut failures = Vec::new();
    for (path, scenario) in &scenarios {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(
            stem,
            scenario.name,
            "{} names itself {}",
            path.display(),
            scenario.name
        );
        if let Err(e) = tokenrelay_e2e::scenario::run(scenario).await {
            failures.push(format!("{}: {e}", scenario.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failed scenarios:\n{}",
        failures.join("\n")
    );
}

/// The same files against the server in base-protocol mode (no extensions,
/// results after the reply, trailing notifications after the stop): what
/// the hosted service does. Scenarios that need an extension say so
/// (`needs`) and are skipped by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_against_a_base_protocol_server() {
    let scenarios = tokenrelay_e2e::scenario::all();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for (_, scenario) in &scenarios {
        if !scenario.needs.is_empty() {
            skipped.push(format!(
                "{} (needs {})",
                scenario.name,
                scenario.needs.join(", ")
            ));
            continue;
        }
        if let Err(e) = tokenrelay_e2e::scenario::run_on(scenario, true).await {
            failures.push(format!("{}: {e}", scenario.name));
        }
    }
    println!(
        "base protocol: {} scenarios run, {} skipped: {}",
        scenarios.len() - skipped.len(),
        skipped.len(),
        skipped.join("; ")
    );
    assert!(
        skipped.len() < scenarios.len() / 2,
        "most scenarios must run in base mode: {skipped:?}"
    );
    assert!(
        failures.is_empty(),
        "failed scenarios (base protocol):\n{}",
        failures.join("\n")
    );
}

/// The same files against a server on a Redis hub (`--hub`): `seq`, the
/// replay buffer, the live fan-out and the generation lock in Redis, as
/// every instance of a cluster has them. (Two instances behind a balancer:
/// below; instance processes killed and drained: `cluster.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_on_a_redis_hub() {
    let Some(redis) = redis::require("every_scenario_passes_on_a_redis_hub") else {
        return;
    };
    let scenarios = tokenrelay_e2e::scenario::all();
    assert!(scenarios.len() >= 6, "the scenario folder is missing files");
    let mut failures = Vec::new();
    for (_, scenario) in &scenarios {
        let url = redis.url();
        let server = tokenrelay_e2e::builder().configure(move |c| c.hub = Some(url));
        if let Err(e) = tokenrelay_e2e::scenario::run_with(scenario, server).await {
            failures.push(format!("{}: {e}", scenario.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failed scenarios (Redis hub):\n{}",
        failures.join("\n")
    );
}

/// The same files against a cluster: two instances on one Redis hub, one
/// SQLite store and one JWT secret, the SDK behind a round-robin balancer,
/// so a reconnect after each fault lands on the other instance and resumes
/// from Redis (`scenario::run_on_cluster`). The kill, drain and rolling
/// restart of instance processes are `cluster.rs`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_on_a_two_instance_cluster() {
    let Some(redis) = redis::require("every_scenario_passes_on_a_two_instance_cluster") else {
        return;
    };
    let scenarios = tokenrelay_e2e::scenario::all();
    let mut failures = Vec::new();
    let mut on_second = 0;
    for (_, scenario) in &scenarios {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = tokenrelay_server::StoreConfig::Sqlite(dir.path().join("store.sqlite3"));
        let instance = || {
            let url = redis.url();
            tokenrelay_e2e::builder()
                .store(store.clone())
                .jwt_secret("e2e-scenario-cluster-secret-of-at-least-32-bytes")
                .configure(move |c| c.hub = Some(url))
        };
        match tokenrelay_e2e::scenario::run_on_cluster(scenario, instance(), instance()).await {
            Ok(served) => on_second += served[1],
            Err(e) => failures.push(format!("{}: {e}", scenario.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "failed scenarios (two instances):\n{}",
        failures.join("\n")
    );
    // The scenarios that cut the socket reconnected to the other instance.
    assert!(on_second > 0, "no connection reached the second instance");
}
