//! Builds the guest workspaces for `wasm32-wasip2` with a nested cargo into a
//! target directory of their own (sharing the outer one deadlocks on its
//! lock), then writes `guests.rs` with one constant per artifact.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (constant name, crate name) of the first-party plugins.
const PLUGINS: &[(&str, &str)] = &[
    ("NDJSON", "tessera_plugin_ndjson"),
    ("CSV", "tessera_plugin_csv"),
    ("THRESHOLD", "tessera_plugin_threshold"),
    ("EPSILON_GREEDY", "tessera_plugin_epsilon_greedy"),
    ("WEBHOOK_OUT", "tessera_plugin_webhook_out"),
    ("REST_PULL", "tessera_plugin_rest_pull"),
    ("RULES", "tessera_plugin_rules"),
    ("RFM", "tessera_plugin_rfm"),
    ("THOMPSON", "tessera_plugin_thompson"),
    ("RULE_BASED", "tessera_plugin_rule_based"),
    ("LINUCB", "tessera_plugin_linucb"),
    ("PROPENSITY", "tessera_plugin_propensity"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let guest_target = guest_target_dir(&out_dir);
    let test_programs = env::var_os("CARGO_FEATURE_TEST_PROGRAMS").is_some();

    // The rules plugin embeds the host's rules crate.
    for path in [
        "wit",
        "sdk/rust/src",
        "sdk/rust/Cargo.toml",
        "plugins",
        "host/rules/src",
        "host/rules/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    ensure_target();

    let mut code =
        String::from("/// First-party plugins, as component bytes.\npub mod plugins {\n");
    let built = cargo_build(&root.join("plugins"), &guest_target);
    for (name, krate) in PLUGINS {
        let path = built.join(format!("{krate}.wasm"));
        writeln!(
            code,
            "    pub const {name}: &[u8] = include_bytes!({:?});",
            path.display()
        )
        .unwrap();
    }
    code.push_str("}\n");

    if test_programs {
        let guests = root.join("tests/guests");
        println!("cargo:rerun-if-changed={}", guests.display());
        let built = cargo_build(&guests, &guest_target);
        code.push_str("\n/// Guest test programs, by path.\npub mod test_programs {\n");
        let mut artifacts: Vec<PathBuf> = fs::read_dir(&built)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        artifacts.sort();
        for path in artifacts {
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let example = RUST_EXAMPLES.iter().any(|(_, _, lib)| *lib == stem);
            if path.extension().is_some_and(|e| e == "wasm")
                && !stem.starts_with("tessera_plugin_")
                && !example
            {
                writeln!(
                    code,
                    "    pub const {}: &str = {:?};",
                    stem.to_uppercase(),
                    path.display()
                )
                .unwrap();
            }
        }
        for (name, project, lib) in RUST_EXAMPLES {
            let project = root.join(project);
            // Not the whole project: a partner-style `./build.sh` or native
            // `cargo test` in it writes target/ and dist/ there.
            for input in ["src", "Cargo.toml", "Cargo.lock"] {
                println!("cargo:rerun-if-changed={}", project.join(input).display());
            }
            let built = cargo_build(&project, &guest_target).join(format!("{lib}.wasm"));
            writeln!(
                code,
                "    /// A Rust example plugin (examples/plugins/rust), by path.\n    \
                 pub const {name}: &str = {:?};",
                built.display()
            )
            .unwrap();
        }
        let python = python_twin(&root, &guest_target);
        writeln!(
            code,
            "    /// The Python twin of the threshold plugin, or why it could not be built.\n    \
             pub const THRESHOLD_PY: Result<&str, &str> = {python:?};"
        )
        .unwrap();
        for (name, built) in js_guests(&root, &guest_target) {
            writeln!(
                code,
                "    /// A JavaScript component (componentize-js), or why it could not be built.\n    \
                 pub const {name}: Result<&str, &str> = {built:?};"
            )
            .unwrap();
        }
        code.push_str("}\n");
    }
    fs::write(out_dir.join("guests.rs"), code).unwrap();
}

/// `<target>/wasm-guests`, beside the outer build's profile directories, so
/// debug, release and test builds share one guest build.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .expect("OUT_DIR is inside <target>/<profile>/build");
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory has a parent");
    target_dir.join("wasm-guests")
}

/// (constant name, project directory, library name) of the Rust examples:
/// standalone projects, each a workspace of its own, built into the one
/// guest target directory (so they share the SDK's compiled dependencies).
const RUST_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "RUST_EXAMPLE_CONNECTOR",
        "examples/plugins/rust/pos-receipts",
        "pos_receipts",
    ),
    (
        "RUST_EXAMPLE_SEGMENT",
        "examples/plugins/rust/rfm-lifecycle",
        "rfm_lifecycle",
    ),
    (
        "RUST_EXAMPLE_STRATEGY",
        "examples/plugins/rust/winback-ladder",
        "winback_ladder",
    ),
];

/// Adds the wasm target with rustup if it is missing; stops with one sentence if it cannot.
fn ensure_target() {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Option<PathBuf>| {
        root.as_ref()
            .is_some_and(|r| r.join("lib/rustlib").join(TARGET).exists())
    };
    if installed(&sysroot) {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added || !installed(&sysroot) {
        panic!(
            "Tessera's plugins need the {TARGET} Rust target, which is missing and could not be \
             added: run `rustup target add {TARGET}` and build again."
        );
    }
}

/// Builds every crate of a guest workspace in release; returns the artifact directory.
fn cargo_build(workspace: &Path, target_dir: &Path) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"));
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("cargo runs");
    if !status.success() {
        panic!(
            "building the guests in {} for {TARGET} failed (see the errors above)",
            workspace.display()
        );
    }
    target_dir.join(TARGET).join("release")
}

/// Builds the Python twin with componentize-py, only when its inputs changed.
/// Never fails the build: a failure is reported to the test that needs it.
fn python_twin(root: &Path, target_dir: &Path) -> Result<String, String> {
    let source = root.join("tests/guests/python");
    // build.py builds with the Python SDK's build module.
    let sdk = root.join("sdk/python/tessera_sdk");
    let inputs = [
        source.join("build.py"),
        source.join("threshold/app.py"),
        sdk.join("build.py"),
        sdk.join("__init__.py"),
        root.join("wit/v0.1/plugin.wit"),
    ];
    println!("cargo:rerun-if-changed={}", source.display());
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    let mut fingerprint = String::new();
    for input in &inputs {
        let bytes = fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        writeln!(fingerprint, "{} {:016x}", input.display(), fnv1a(&bytes)).unwrap();
    }
    let out = target_dir.join("python/threshold_py.wasm");
    let stamp = out.with_extension("inputs");
    if out.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
        return Ok(out.display().to_string());
    }
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let result = Command::new(&python)
        .arg(source.join("build.py"))
        .arg("--wit")
        .arg(root.join("wit/v0.1"))
        .arg("--out")
        .arg(&out)
        .output();
    match result {
        Ok(output) if output.status.success() => {
            fs::write(&stamp, fingerprint).map_err(|e| e.to_string())?;
            Ok(out.display().to_string())
        }
        Ok(output) => {
            let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
            println!(
                "cargo:warning=the Python twin plugin was not built: {}",
                why.lines().last().unwrap_or("")
            );
            Err(why)
        }
        Err(e) => {
            let why = format!("cannot run {python}: {e}");
            println!("cargo:warning=the Python twin plugin was not built: {why}");
            Err(why)
        }
    }
}

/// (constant name, project directory, kind, entry module) of the JavaScript
/// components tests use: the twin of `threshold`, the hostile guest, a
/// strategy that plans, and the examples in every kind.
const JS_GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "THRESHOLD_JS",
        "tests/guests/js/threshold",
        "segment",
        "plugin.js",
    ),
    (
        "JS_HOSTILE",
        "tests/guests/js/hostile",
        "segment",
        "plugin.js",
    ),
    (
        "JS_CAMPAIGN_OFFERS",
        "tests/guests/js/campaign-offers",
        "strategy",
        "plugin.js",
    ),
    (
        "JS_EXAMPLE_SEGMENT",
        "examples/plugins/js/lapsed-vip",
        "segment",
        "src/plugin.js",
    ),
    (
        "JS_EXAMPLE_STRATEGY",
        "examples/plugins/js/next-best-offer",
        "strategy",
        "src/plugin.js",
    ),
    (
        "JS_EXAMPLE_CONNECTOR",
        "examples/plugins/js/json-orders",
        "connector",
        "src/plugin.js",
    ),
];

/// Builds the JavaScript components with the SDK's build script
/// (componentize-js, pinned by `sdk/js/package-lock.json`), each only when
/// its inputs changed: a build takes seconds and hundreds of MB. Never fails
/// the build: a failure is reported to the test that needs it.
fn js_guests(root: &Path, target_dir: &Path) -> Vec<(&'static str, Result<String, String>)> {
    let sdk = root.join("sdk/js");
    for path in ["sdk/js/src", "sdk/js/build.js", "sdk/js/package-lock.json"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let mut shared = String::new();
    let mut inputs = vec![
        sdk.join("build.js"),
        sdk.join("package-lock.json"),
        root.join("wit/v0.1/plugin.wit"),
        root.join("wit/plan/v0.1/plan.wit"),
        root.join("wit/strategy/v0.1/strategy.wit"),
    ];
    inputs.extend(files_under(&sdk.join("src")));
    for input in &inputs {
        match fs::read(input) {
            Ok(bytes) => writeln!(shared, "{} {:016x}", input.display(), fnv1a(&bytes)).unwrap(),
            Err(e) => {
                let why = format!("cannot read {}: {e}", input.display());
                return JS_GUESTS.iter().map(|g| (g.0, Err(why.clone()))).collect();
            }
        }
    }
    let mut tools: Option<Result<(), String>> = None;
    JS_GUESTS
        .iter()
        .map(|&(name, project, kind, entry)| {
            let project = root.join(project);
            // The project's own files, not the whole directory: `npm install`
            // and `npm run build` in it write node_modules/ and dist/.
            let inputs = files_under(&project);
            for input in &inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            let mut fingerprint = shared.clone();
            for input in inputs {
                let bytes = fs::read(&input).unwrap_or_default();
                writeln!(fingerprint, "{} {:016x}", input.display(), fnv1a(&bytes)).unwrap();
            }
            writeln!(fingerprint, "{kind} {entry}").unwrap();
            let out = target_dir.join(format!("js/{}.wasm", name.to_lowercase()));
            let stamp = out.with_extension("inputs");
            if out.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
                return (name, Ok(out.display().to_string()));
            }
            let ready = tools.get_or_insert_with(|| js_tools(&sdk)).clone();
            let built = ready.and_then(|()| {
                let output = Command::new("node")
                    .arg(sdk.join("build.js"))
                    .args(["--quiet", "--kind", kind, "--entry", entry, "--project"])
                    .arg(&project)
                    .arg("--out")
                    .arg(&out)
                    .output()
                    .map_err(|e| format!("cannot run node: {e}"))?;
                if !output.status.success() {
                    return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
                }
                fs::write(&stamp, &fingerprint).map_err(|e| e.to_string())?;
                Ok(out.display().to_string())
            });
            if let Err(why) = &built {
                println!(
                    "cargo:warning=the JavaScript component {name} was not built: {}",
                    why.lines().last().unwrap_or("")
                );
            }
            (name, built)
        })
        .collect()
}

/// Installs the SDK's build tools (`npm ci` from its lockfile) if they are
/// missing; `.ci/run` installs them beforehand.
fn js_tools(sdk: &Path) -> Result<(), String> {
    let installed = sdk.join("node_modules/@bytecodealliance/componentize-js/package.json");
    if installed.is_file() {
        return Ok(());
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(sdk)
        .output()
        .map_err(|e| format!("cannot run npm (Node.js 20 or later is needed): {e}"))?;
    if output.status.success() && installed.is_file() {
        Ok(())
    } else {
        Err(format!(
            "`npm ci` in {} failed: {}",
            sdk.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Every file under `dir` except `node_modules` and `dist`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "node_modules" && name != "dist" {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A stable 64-bit hash for change detection (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
