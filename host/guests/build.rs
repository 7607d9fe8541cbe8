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
            if path.extension().is_some_and(|e| e == "wasm") && !stem.starts_with("tessera_plugin_")
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
        let python = python_twin(&root, &guest_target);
        writeln!(
            code,
            "    /// The Python twin of the threshold plugin, or why it could not be built.\n    \
             pub const THRESHOLD_PY: Result<&str, &str> = {python:?};"
        )
        .unwrap();
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
    println!("cargo:rerun-if-changed={}", source.display());
    let inputs = [
        source.join("build.py"),
        source.join("threshold/app.py"),
        root.join("wit/v0.1/plugin.wit"),
    ];
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

/// A stable 64-bit hash for change detection (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
