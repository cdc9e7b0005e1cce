//! Every scenario of `tests/scenarios/` through the Rust SDK against the
//! real reference server.

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
