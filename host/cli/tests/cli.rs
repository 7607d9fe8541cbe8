//! The `tessera` binary as a partner and an operator run it.

use std::path::Path;
use std::process::{Command, Output};

use tessera_guests::test_programs;

fn tessera(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .expect("tessera runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn first_party(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn plugin_test_prints_the_manifest_and_the_cost_of_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = first_party(
        dir.path(),
        "threshold.wasm",
        tessera_guests::plugins::THRESHOLD,
    );
    let out = tessera(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--param",
            "threshold=250",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("threshold@0.1.0  (segment · tessera:plugin@0.1.0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("total_spend (number, standard)"),
        "{stdout}"
    );
    assert!(stdout.contains("threshold (number; required)"), "{stdout}");
    assert!(stdout.contains("1000 synthetic rows →"), "{stdout}");
    assert!(stdout.contains("cost        fuel "), "{stdout}");
    assert!(stdout.contains("peak memory"), "{stdout}");
}

#[test]
fn plugin_test_runs_a_strategy_and_a_connector() {
    let dir = tempfile::tempdir().unwrap();
    let bandit = first_party(
        dir.path(),
        "bandit.wasm",
        tessera_guests::plugins::EPSILON_GREEDY,
    );
    let out = tessera(
        &["plugin", "test", bandit.to_str().unwrap(), "--rows", "50"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("actions     discount_10, free_shipping, double_points, no_offer"),
        "{stdout}"
    );
    assert!(stdout.contains("decide      50 synthetic rows"), "{stdout}");
    assert!(stdout.contains("simulate    expected reward"), "{stdout}");

    let ndjson = first_party(dir.path(), "ndjson.wasm", tessera_guests::plugins::NDJSON);
    let input = dir.path().join("sample.ndjson");
    std::fs::write(
        &input,
        "{\"id\":1,\"event\":\"page_view\",\"at\":1777600000000,\"identities\":{\"email\":\"a@example.com\"}}\nnot json\n",
    )
    .unwrap();
    let out = tessera(
        &[
            "plugin",
            "test",
            ndjson.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("→ 1 events, 0 trait updates, 0 identity links, 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: not valid JSON"), "{stdout}");
}

#[test]
fn plugin_test_on_a_hostile_plugin_prints_the_typed_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        &[
            "plugin",
            "test",
            test_programs::LOOP_FOREVER,
            "--rows",
            "10",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: plugin loop-forever@0.1.0 was stopped: out of fuel (budget"),
        "{stderr}"
    );

    let out = tessera(&["plugin", "test", test_programs::HTTP_IMPORT], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("imports `tessera:plugin/http@0.1.0`, which is not granted"),
        "{stderr}"
    );
}

#[test]
fn plugin_test_refuses_bad_parameters_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = first_party(
        dir.path(),
        "threshold.wasm",
        tessera_guests::plugins::THRESHOLD,
    );
    let out = tessera(
        &["plugin", "test", wasm.to_str().unwrap(), "--param", "op=!="],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`!=` is not one of >=, >, <=, <, =="),
        "{}",
        text(&out.stderr)
    );
    let out = tessera(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--param",
            "threshold=lots",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`lots` is not a number"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_ingests_segments_and_runs_a_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(&["demo"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("3 rows rejected"), "{stdout}");
    assert!(stdout.contains("160 customers"), "{stdout}");
    assert!(
        stdout.contains("in both (merged by alias records)"),
        "{stdout}"
    );
    assert!(stdout.contains("customers are in the segment"), "{stdout}");
    assert!(stdout.contains("round 8:"), "{stdout}");
    // The simulated world rewards double_points most; the strategy must find it.
    assert!(
        stdout.contains("next round forecast: mostly double_points"),
        "{stdout}"
    );
}

#[test]
fn keys_init_creates_a_private_master_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .output()
            .expect("tessera runs")
    };
    let key = key_file.to_str().unwrap();
    let out = run(&["keys", "init", "--key-file", key]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = run(&["keys", "id", "--key-file", key]);
    let id = text(&id.stdout).trim().to_string();
    assert_eq!(id.len(), 16, "a 16-hex-digit id: {id}");
    assert!(
        stdout.contains(&format!("created master key {id}")),
        "{stdout}"
    );
    let secret = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !stdout.contains(secret.trim()),
        "the key itself is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let again = run(&["keys", "init", "--key-file", key]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("master.key"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        secret,
        "the existing key is untouched"
    );
}
