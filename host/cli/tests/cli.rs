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
fn plugin_test_shapes_the_sample_batch_by_the_plan_of_a_planned_segment() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        &[
            "plugin",
            "test",
            test_programs::PLAN_PROBE,
            "--param",
            "event=purchase",
            "--param",
            "window=30",
            "--param",
            "trait=city",
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
        stdout
            .contains("plan        1 fields, 2 aggregates for these parameters: city, last, count"),
        "{stdout}"
    );
    assert!(stdout.contains("1000 synthetic rows →"), "{stdout}");
}

#[test]
fn plugin_test_decides_among_the_actions_a_planned_strategy_takes_from_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let thompson = first_party(
        dir.path(),
        "thompson.wasm",
        tessera_guests::plugins::THOMPSON,
    );
    let out = tessera(
        &[
            "plugin",
            "test",
            thompson.to_str().unwrap(),
            "--param",
            "actions=a,b,c,d,e,f",
            "--rows",
            "200",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let decide = stdout
        .lines()
        .find(|l| l.starts_with("decide "))
        .unwrap_or_else(|| panic!("no decide line: {stdout}"));
    // Six offers from the parameters, not the four defaults.
    for offer in ["a ", "b ", "c ", "d ", "e ", "f "] {
        assert!(decide.contains(offer), "{decide}");
    }
    assert!(!decide.contains("discount_10"), "{decide}");
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

/// The large retail example's ground truth (`examples/retail/large/truth.json`).
fn retail_truth() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail/large/truth.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The numbers in a line, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn demo_imports_the_retail_example_as_its_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // The default store is a temporary directory, removed at exit.
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["demo", "--cache-dir"])
        .arg(&cache)
        .env("TMPDIR", &temp)
        .output()
        .expect("tessera runs");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("removed at exit; master key in memory only"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(&temp).unwrap().count(),
        0,
        "the temporary store is removed"
    );
    assert!(
        stdout.contains("phones without a country code are +86"),
        "{stdout}"
    );

    // Each file's quality report, as the ground truth says.
    let truth = retail_truth();
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    for file in truth["import_order"].as_array().unwrap() {
        let file = file.as_str().unwrap();
        let t = &truth["files"][file];
        let report: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(&format!("{file} · ")))
            .take(3)
            .collect();
        assert_eq!(report.len(), 3, "no report of {file}: {stdout}");
        assert!(
            report[0].contains(&format!("{file} · {} · ", t["connector"].as_str().unwrap()))
                && report[0].contains(&format!(": {} rows read in ", n(&t["rows"]))),
            "{file}: {}",
            report[0]
        );
        assert!(
            report[1].contains(&format!(
                "{} records stored, {} rejected",
                n(&t["accepted"]),
                n(&t["rejected"])
            )) && report[1].ends_with(&format!("; {} dead letters", n(&t["rejected"]))),
            "{file}: {}",
            report[1]
        );
        let resolution = &t["resolution_in_import_order"];
        assert!(
            report[2].starts_with(&format!("     {} events stored, ", n(&t["events_stored"])))
                && report[2].contains(&format!("people: {} new, ", n(&resolution["new_subjects"])))
                && report[2].ends_with(&format!(" {} merged", n(&resolution["merges"]))),
            "{file}: {}",
            report[2]
        );
    }
    let files = truth["files"].as_object().unwrap();
    let rows: u64 = files.values().map(|t| n(&t["rows"])).sum();
    let rejected: u64 = files.values().map(|t| n(&t["rejected"])).sum();
    assert!(
        stdout.contains(&format!(
            "   in all: {rows} rows read, {rejected} rows rejected, 0 records refused, {} events stored, {rejected} dead letters",
            n(&truth["events"]["stored"])
        )),
        "{stdout}"
    );
    let people = &truth["people"];
    assert!(
        stdout.contains(&format!(
            "{} customers: {} seen only online, {} only offline (stores, loyalty programme), {} in both",
            n(&people["distinct"]),
            n(&people["online_only"]),
            n(&people["offline_only"]),
            n(&people["both"])
        )),
        "{stdout}"
    );
    assert!(stdout.contains("   as truth.json says: "), "{stdout}");

    // The one dead letter with an ISO date in stores_eu.csv is fixed in the
    // column's format and replayed; the impossible dates are not touched.
    let eu = &truth["files"]["stores_eu.csv"]["rejected_by_reason"]["bad_date"]["rows"];
    assert!(
        eu.as_array()
            .unwrap()
            .iter()
            .any(|row| stdout.contains(&format!("(stores_eu.csv row {}, date): \"", n(row)))),
        "{stdout}"
    );
    assert!(
        stdout.contains("is an ISO date, not %d/%m/%Y %H:%M;")
            && stdout.contains("and replayed: 1 stored, 1 event stored, 0 failed"),
        "{stdout}"
    );
    // A file imported again adds nothing: every event is already stored.
    let us = &truth["files"]["stores_us.csv"];
    assert!(
        stdout.contains(&format!(
            "stores_us.csv imported again: {} rows read, 0 events stored, {} already stored (source ids), 0 people new",
            n(&us["rows"]),
            n(&us["accepted"])
        )),
        "{stdout}"
    );

    // The segments of the rules and RFM plugins, over the loyalty members
    // who consented at sign-up: each evaluated them all, and the segments
    // built on others hold no one the others do not.
    let consented = stdout
        .lines()
        .find(|l| l.contains("loyalty members consented to email marketing"))
        .map(|l| numbers(l)[0])
        .unwrap_or_else(|| panic!("no consents: {stdout}"));
    assert!(consented > 0, "{stdout}");
    // Every segment evaluated the same people: those who consented (two
    // members the import found to be one person count once).
    let size = |name: &str| -> (u64, u64) {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no segment {name}: {stdout}"));
        let counts = numbers(line);
        (counts[0], counts[1])
    };
    let names = [
        "frequent-buyers",
        "shoe-browsers",
        "champions",
        "loyal-regulars",
        "champions-on-shoes",
    ];
    let sizes: Vec<(u64, u64)> = names.iter().map(|name| size(name)).collect();
    let evaluated = sizes[0].1;
    assert!(evaluated > 0 && evaluated <= consented, "{stdout}");
    assert!(sizes.iter().all(|(_, e)| *e == evaluated), "{stdout}");
    let [frequent, browsers, champions, regulars, both] = [0, 1, 2, 3, 4].map(|i| sizes[i].0);
    assert!(frequent > 0 && browsers > 0 && champions > 0, "{stdout}");
    assert!(frequent < evaluated && champions < evaluated, "{stdout}");
    assert!(regulars <= frequent, "{stdout}");
    assert!(both <= champions.min(browsers), "{stdout}");

    let segment = stdout
        .lines()
        .find(|l| l.ends_with("customers are in the segment"))
        .unwrap_or_else(|| panic!("no segment: {stdout}"));
    let counts = numbers(segment);
    assert!(
        counts.len() == 2 && counts[0] > 0 && counts[0] < counts[1],
        "{segment}"
    );
    assert_eq!(counts[1], n(&people["distinct"]), "{segment}");
    // The campaign: eight cohorts; the simulated world rewards
    // double_points most, and the strategy must find it; the evaluation
    // finds a positive uplift, with the holdout as configured.
    assert!(stdout.contains("   cohort 8: "), "{stdout}");
    assert!(
        stdout.contains("the strategy converged on double_points"),
        "{stdout}"
    );
    let evaluation = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("evaluation: "))
        .unwrap_or_else(|| panic!("no evaluation: {stdout}"));
    assert!(
        evaluation.contains("uplift +") && evaluation.contains("(95% interval +"),
        "{evaluation}"
    );
    assert!(stdout.contains("sample ratio as configured"), "{stdout}");
    assert!(
        stdout.contains("recommended for champions next: thompson (track_record)"),
        "{stdout}"
    );

    // The subject rights: a customer seen online and offline is exported and
    // erased, with a receipt, and their rows are refused when their store
    // file is imported again.
    assert!(
        stdout.contains("export (the access right) of one customer, seen online and offline: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("subject key(s) destroyed at once"),
        "{stdout}"
    );
    assert!(stdout.contains("its MAC verifies"), "{stdout}");
    let reimport = stdout
        .lines()
        .find(|l| l.contains("of its records name an erased customer"))
        .unwrap_or_else(|| panic!("no re-import after the erasure: {stdout}"));
    assert!(
        reimport
            .trim()
            .starts_with("stores_us.csv imported again: "),
        "{reimport}"
    );
    assert!(numbers(reimport)[0] > 0, "{reimport}");
    assert!(
        reimport.ends_with("0 events stored, 0 people created"),
        "{reimport}"
    );
    // Every plugin batch read is audited (the segments' pages, 1 threshold
    // segment, the campaign's forecast, decisions and learning), every import and
    // dead-letter operation too, and the chain verifies.
    assert!(stdout.contains("chain intact"), "{stdout}");
    let reads = stdout
        .split(" plugin.read")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no plugin.read count: {stdout}"));
    assert!(
        reads >= 18 + 5,
        "each segment's recompute reads at least one page: {stdout}"
    );
    assert!(stdout.contains("7 import.run"), "{stdout}");
    assert!(
        stdout.contains("1 import.dead_letter.fix, 1 import.replay"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("subject.access"),
        "building a plugin view is audited as the plugin's read, not as 10,000 accesses: {stdout}"
    );
    for pii in [
        "@example",
        "mail.example",
        "example.cn",
        "+86 1",
        " HD0",
        " HD1",
    ] {
        assert!(
            !stdout.contains(pii),
            "no personal data in the output: {pii}"
        );
    }
}

#[test]
fn demo_without_its_example_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        &["demo", "--examples", dir.path().to_str().unwrap()],
        &dir.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("has no truth.json; pass --examples DIR"),
        "{stderr}"
    );
}

#[test]
fn demo_on_a_data_dir_imports_again_and_keeps_erased_people_erased() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A data directory of one's own, with a small NDJSON file: Bob's store
    // purchase arrives before the alias record that links it to his email
    // (a merge), a trait is not in the schema, and one record has an
    // invalid email.
    /// Ann (web and store, linked by an alias record), Bob (web, then a
    /// store purchase under a member id, then the alias that merges the
    /// two), a store-only customer with a trait outside the schema, and a
    /// record with an invalid email.
    const SMALL: &str = r#"{"id":"a1","type":"alias","at":1777593600000,"identities":{"email":"ann@example.com","member_id":"M1"}}
{"id":"e1","type":"track","event":"purchase","at":1777600000000,"identities":{"email":"ann@example.com","device_id":"d1"},"properties":{"amount":120.5,"channel":"web"}}
{"id":"e2","type":"track","event":"store_purchase","at":1777700000000,"identities":{"member_id":"M1"},"properties":{"amount":300}}
{"id":"e3","type":"track","event":"page_view","at":1777600000000,"identities":{"email":"bob@example.com"},"properties":{"path":"/shoes"}}
{"id":"t1","type":"identify","at":1777593600000,"identities":{"member_id":"M2"},"traits":{"tier":"gold","favourite_colour":"red"}}
{"id":"e4","type":"track","event":"store_purchase","at":1777800000000,"identities":{"member_id":"M2"},"properties":{"amount":80}}
{"id":"e5","type":"track","event":"store_purchase","at":1777800000000,"identities":{"member_id":"M3"},"properties":{"amount":50}}
{"id":"a2","type":"alias","at":1777900000000,"identities":{"email":"bob@example.com","member_id":"M3"}}
{"id":"bad","type":"track","event":"page_view","at":1777600000000,"identities":{"email":"not-an-email"}}
"#;
    let input = dir.path().join("small.ndjson");
    std::fs::write(&input, SMALL).unwrap();
    let data = dir.path().join("store");
    let run = || {
        let out = tessera(
            &[
                "demo",
                "--data",
                input.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--threshold",
                "100",
                "--rounds",
                "2",
            ],
            &cache,
        );
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(!stdout.contains("@example.com"), "{stdout}");
        assert!(!stdout.contains("not-an-email"), "{stdout}");
        assert!(stdout.contains("chain intact"), "{stdout}");
        stdout
    };
    let stdout = run();
    // The identify record with a trait outside the schema and the record
    // with the invalid email are refused and kept as dead letters.
    assert!(
        stdout.contains(
            "7 records stored, 2 rejected (invalid_identity 1, unknown_trait 1); 2 dead letters"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("5 events stored, 0 already stored; people: 4 new, 0 matched, 1 merged"),
        "{stdout}"
    );
    assert!(stdout.contains("invalid identity: email:"), "{stdout}");
    assert!(
        stdout.contains("3 customers (3 created or changed by this run"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "small.ndjson imported again: 9 rows read, 0 events stored, 5 already stored"
        ),
        "{stdout}"
    );
    // Ann (alias, web purchase 120.50, store purchase 300) is the big spender.
    assert!(
        stdout.contains("1 of 3 customers are in the segment"),
        "{stdout}"
    );
    // Ann is erased (the demo takes the customer whose purchases come
    // first; nobody here is split by channel); her three records are
    // refused when the file is imported again.
    assert!(
        stdout.contains("receipt removed 1 subject records, 3 identities, 2 events"),
        "{stdout}"
    );
    assert!(
        stdout.contains("small.ndjson imported again: 3 of its records name an erased customer"),
        "{stdout}"
    );
    assert!(dir.path().join("store.keys/master.key").is_file());
    assert!(dir.path().join("store.keys/subject-keys").is_file());

    let stdout = run();
    assert!(
        stdout.contains("tenant \"demo\" exists from an earlier run"),
        "{stdout}"
    );
    // Nothing is stored twice, and Ann, erased by the first run, stays erased.
    assert!(
        stdout.contains(
            "4 records stored, 5 rejected (invalid_identity 1, suppressed 3, unknown_trait 1); 2 dead letters"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 events stored, 3 already stored; people: 0 new, 2 matched, 0 merged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 customers (0 created or changed by this run"),
        "{stdout}"
    );
    // Bob is two merged subjects: erasing him destroys both keys.
    assert!(
        stdout.contains("erase them: 2 subject key(s) destroyed at once"),
        "{stdout}"
    );
    assert!(
        stdout.contains("receipt removed 2 subject records, 2 identities, 2 events"),
        "{stdout}"
    );
    // The store holds no plaintext identities.
    let mut stack = vec![data];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(12).any(|w| w == b"@example.com"),
                    "plaintext email in {}",
                    path.display()
                );
            }
        }
    }
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
