//! `tessera plugin new --lang js`: each kind of JavaScript project builds
//! into a component with its own `build.sh` (npm ci from the lockfile it was
//! written with, then componentize-js) and passes `tessera plugin test`
//! unchanged.

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
fn every_kind_of_new_javascript_project_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Compiled components are cached across runs (a JavaScript component
    // carries its engine: compiling it takes seconds).
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-projects-js-cache");
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
        let name = format!("my-js-{kind}");
        let created = ok(&tessera(
            root,
            &["plugin", "new", "--lang", "js", "--kind", kind, &name],
        ));
        assert!(created.contains(&format!("created {name}")), "{created}");
        assert!(created.contains("JavaScript"), "{created}");
        let project = root.join(&name);
        let manifest = std::fs::read_to_string(project.join("bundle.toml")).unwrap();
        assert!(
            manifest.contains(&format!("kind = \"{kind}\"")),
            "{manifest}"
        );
        assert!(project.join("tessera-sdk/build.js").is_file());
        assert!(project.join("package-lock.json").is_file());

        let built = Command::new("sh")
            .arg(project.join("build.sh"))
            .env("TESSERA", env!("CARGO_BIN_EXE_tessera"))
            .output()
            .expect("sh runs");
        ok(&built);
        assert!(project.join(format!("{name}.tsb")).is_file());

        let component = project.join("dist").join(format!("{name}.wasm"));
        let mut args = vec![
            "plugin",
            "test",
            component.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        if kind == "connector" {
            args.extend(["--input", "sample.csv"]);
        }
        let tested = ok(&tessera(root, &args));
        assert!(tested.contains(check), "{kind}: {tested}");
        assert!(
            tested.contains(&format!("type-checked against the {kind} world")),
            "{tested}"
        );
        assert!(tested.contains("tessera:plugin@0.1.0"), "{tested}");
        if kind == "connector" {
            assert!(
                tested.contains("line 3: expected 3 fields"),
                "the bad row is rejected with its line: {tested}"
            );
            // A later chunk of a file, as the host sends it with `lines`
            // chunking: rows (and so source ids) are the file's line numbers.
            args.extend(["--param", "first_row=10"]);
            let tested = ok(&tessera(root, &args));
            assert!(tested.contains("line 12: expected 3 fields"), "{tested}");
        }
    }
}

#[test]
fn a_javascript_project_that_imports_another_package_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(&tessera(
        root,
        &[
            "plugin", "new", "--lang", "js", "--kind", "segment", "borrows",
        ],
    ));
    let project = root.join("borrows");
    let source = project.join("src/plugin.js");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, format!("import _ from 'lodash';\n{text}")).unwrap();
    // The SDK's build script refuses before it needs the toolchain.
    let out = Command::new("node")
        .arg(project.join("tessera-sdk/build.js"))
        .current_dir(&project)
        .output()
        .expect("node runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("imports `lodash`") && stderr.contains("bundle other packages"),
        "{stderr}"
    );
    assert!(!project.join("dist").exists(), "nothing was written");
}
