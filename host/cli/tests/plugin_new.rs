//! `tessera plugin new`: each kind of project builds into a component with
//! its own `build.sh` and passes `tessera plugin test` unchanged; bad input
//! is refused before anything is written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ok;

fn tessera(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir)
        .env("TESSERA_LOG", "warn")
        .output()
        .expect("tessera runs")
}

#[test]
fn every_kind_of_new_project_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Shared across runs: the SDK and wit-bindgen compile once.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-projects");
    std::fs::write(
        root.join("sample.csv"),
        "email,event_type,amount\nann@example.com,purchase,12.50\nnot a row\n",
    )
    .unwrap();
    for (kind, check) in [
        ("segment", "members"),
        ("strategy", "discount"),
        ("connector", "1 events"),
    ] {
        let name = format!("my-{kind}");
        let created = ok(&tessera(root, &["plugin", "new", "--kind", kind, &name]));
        assert!(created.contains(&format!("created {name}")), "{created}");
        let manifest = std::fs::read_to_string(root.join(&name).join("bundle.toml")).unwrap();
        assert!(
            manifest.contains(&format!("kind = \"{kind}\"")),
            "{manifest}"
        );

        let built = Command::new("sh")
            .arg(root.join(&name).join("build.sh"))
            .env("TESSERA", env!("CARGO_BIN_EXE_tessera"))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("sh runs");
        ok(&built);
        assert!(root.join(&name).join(format!("{name}.tsb")).is_file());

        let component = root.join(&name).join("dist").join(format!("{name}.wasm"));
        let mut args = vec!["plugin", "test", component.to_str().unwrap()];
        if kind == "connector" {
            args.extend(["--input", "sample.csv"]);
        }
        let tested = ok(&tessera(root, &args));
        assert!(tested.contains(check), "{kind}: {tested}");
        assert!(
            tested.contains(&format!("type-checked against the {kind} world")),
            "{tested}"
        );
        let fixtures = root.join(&name).join("fixtures.json");
        let cases = ok(&tessera(
            root,
            &[
                "plugin",
                "test",
                component.to_str().unwrap(),
                "--fixtures",
                fixtures.to_str().unwrap(),
            ],
        ));
        assert!(
            cases.contains("view        under the grants"),
            "{kind}: {cases}"
        );
        assert!(cases.contains(fixture_check(kind)), "{kind}: {cases}");
        if kind == "connector" {
            // A later chunk of a file, as the host sends it with `lines`
            // chunking: rows (and so source ids) are the file's line numbers.
            args.extend(["--param", "first_row=10"]);
            let tested = ok(&tessera(root, &args));
            assert!(tested.contains("line 12: expected 3 fields"), "{tested}");
        }
    }
}

/// What the project's fixtures show, the same in every language.
fn fixture_check(kind: &str) -> &'static str {
    match kind {
        "segment" => {
            "evaluate    3 rows → 1 members\n            row 1: member\n            row 2: not a member"
        }
        "strategy" => "row 2: no_offer (propensity 1.00): lifetime value at least 100",
        _ => "line 11: expected 3 fields",
    }
}

/// The Python projects make the same plugins as the Rust ones, so
/// `tessera plugin test` says the same of them. Each is built once per run
/// (componentize-py, ~20 s and ~400 MB each): the slow part of this test.
#[test]
fn every_kind_of_new_python_project_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cache = root.join("component-cache").display().to_string();
    for (kind, check) in [
        ("segment", "members"),
        ("strategy", "discount"),
        ("connector", "1 events"),
    ] {
        let name = format!("py-{kind}");
        let created = ok(&tessera(
            root,
            &["plugin", "new", "--lang", "python", "--kind", kind, &name],
        ));
        assert!(created.contains(&format!("created {name}")), "{created}");
        assert!(created.contains("Python"), "{created}");
        let project = root.join(&name);
        let manifest = std::fs::read_to_string(project.join("bundle.toml")).unwrap();
        assert!(
            manifest.contains(&format!("kind = \"{kind}\"")),
            "{manifest}"
        );
        assert!(project.join("tessera_sdk/build.py").is_file());

        let built = Command::new("sh")
            .arg(project.join("build.sh"))
            .env("TESSERA", env!("CARGO_BIN_EXE_tessera"))
            .output()
            .expect("sh runs");
        ok(&built);
        assert!(project.join(format!("{name}.tsb")).is_file());

        let component = format!("dist/{name}.wasm");
        // Each build is new bytes (componentize-py bakes in a random seed),
        // so its ~40 MB compiled form is never reused: keep it in the
        // temporary directory, not in the user's cache.
        let mut args = vec![
            "plugin",
            "test",
            component.as_str(),
            "--cache-dir",
            cache.as_str(),
        ];
        if kind == "connector" {
            // The project's own sample input.
            args.extend(["--input", "sample.csv"]);
        }
        let tested = ok(&tessera(&project, &args));
        assert!(tested.contains(check), "{kind}: {tested}");
        assert!(
            tested.contains(&format!("type-checked against the {kind} world")),
            "{tested}"
        );
        assert!(
            tested.contains(&format!("plugin      {name}@0.1.0")),
            "{tested}"
        );
        let cases = ok(&tessera(
            &project,
            &[
                "plugin",
                "test",
                &component,
                "--fixtures",
                "fixtures.json",
                "--cache-dir",
                &cache,
            ],
        ));
        assert!(
            cases.contains("view        under the grants bundle.toml requests"),
            "{kind}: {cases}"
        );
        assert!(cases.contains(fixture_check(kind)), "{kind}: {cases}");
        if kind == "connector" {
            args.extend(["--param", "first_row=10"]);
            let tested = ok(&tessera(&project, &args));
            assert!(tested.contains("line 12: expected 3 fields"), "{tested}");
        }
    }
}

#[test]
fn bad_names_existing_directories_and_other_languages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (args, says) in [
        (vec!["--kind", "segment", "My Rule"], "lowercase"),
        (vec!["--kind", "segment", "1rule"], "lowercase"),
        (
            vec!["--kind", "segment", "--lang", "cobol", "rule"],
            "--lang cobol",
        ),
        (vec!["--kind", "miner", "rule"], "unknown plugin kind"),
    ] {
        let out = tessera(root, &[&["plugin", "new"][..], &args].concat());
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(
        std::fs::read_dir(root).unwrap().count(),
        0,
        "nothing written"
    );
    std::fs::create_dir(root.join("taken")).unwrap();
    std::fs::write(root.join("taken/keep.txt"), "mine").unwrap();
    let out = tessera(root, &["plugin", "new", "--kind", "segment", "taken"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(
        std::fs::read_to_string(root.join("taken/keep.txt")).unwrap(),
        "mine"
    );
}
