//! Python plugins built from source for tests: the examples in
//! `examples/plugins/python` and the hostile Python guest, each built once
//! with the Python SDK's build helper and cached by the hash of its inputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A Python plugin: name, source directory (from the repository root),
/// world and the optional imports it is built with.
#[derive(Debug, Clone, Copy)]
pub struct PythonPlugin {
    pub name: &'static str,
    pub dir: &'static str,
    pub world: &'static str,
    pub imports: &'static [&'static str],
}

/// The examples: one plugin of each kind.
pub const EXAMPLES: [PythonPlugin; 3] = [ORDERS_JSONL, ENGAGEMENT_TIERS, PROPENSITY_OFFERS];

pub const ORDERS_JSONL: PythonPlugin = PythonPlugin {
    name: "orders-jsonl",
    dir: "examples/plugins/python/orders-jsonl",
    world: "connector",
    imports: &[],
};

pub const ENGAGEMENT_TIERS: PythonPlugin = PythonPlugin {
    name: "engagement-tiers",
    dir: "examples/plugins/python/engagement-tiers",
    world: "segment",
    imports: &[],
};

pub const PROPENSITY_OFFERS: PythonPlugin = PythonPlugin {
    name: "propensity-offers",
    dir: "examples/plugins/python/propensity-offers",
    world: "strategy",
    imports: &["state"],
};

/// A segment that loops, allocates without end or raises on request.
pub const HOSTILE: PythonPlugin = PythonPlugin {
    name: "python-hostile",
    dir: "tests/guests/python-hostile",
    world: "segment",
    imports: &[],
};

/// A segment that plans its columns (an event query, a segment, a field).
pub const PLANNED_SEGMENT: PythonPlugin = PythonPlugin {
    name: "recent-buyers",
    dir: "tests/guests/python-plans/segment",
    world: "segment",
    imports: &[],
};

/// A strategy that plans its actions and columns, and can call the
/// imported `segment-plan.plan`.
pub const PLANNED_STRATEGY: PythonPlugin = PythonPlugin {
    name: "campaign-offers",
    dir: "tests/guests/python-plans/strategy",
    world: "strategy",
    imports: &[],
};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One build at a time in a process: each takes ~400 MB and a core.
static BUILDING: Mutex<()> = Mutex::new(());

/// The component of `plugin`, built into `cache` unless a build of the same
/// inputs (its sources, the SDK, the WIT) is there; or why it failed.
pub fn component(plugin: &PythonPlugin, cache: &Path) -> Result<PathBuf, String> {
    let root = root();
    let src = root.join(plugin.dir);
    let sdk = root.join("sdk/python");
    let mut inputs = Vec::new();
    for dir in [src.clone(), sdk.join("tessera_sdk")] {
        python_files(&dir, &mut inputs)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    }
    inputs.push(root.join("wit/v0.1/plugin.wit"));
    inputs.push(root.join("wit/plan/v0.1/plan.wit"));
    inputs.push(root.join("wit/strategy/v0.1/strategy.wit"));
    inputs.sort();
    let mut fingerprint = format!("{} {:?}\n", plugin.world, plugin.imports);
    for input in &inputs {
        let bytes =
            std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        let rel = input.strip_prefix(&root).unwrap_or(input);
        writeln!(fingerprint, "{} {:016x}", rel.display(), fnv1a(&bytes)).unwrap();
    }
    let out = cache.join(format!(
        "{}-{:016x}.wasm",
        plugin.name,
        fnv1a(fingerprint.as_bytes())
    ));
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if out.is_file() {
        return Ok(out);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut command = Command::new(&python);
    command
        .env("PYTHONPATH", &sdk)
        .args([
            "-m",
            "tessera_sdk.build",
            "--quiet",
            "--world",
            plugin.world,
        ])
        .arg("--src")
        .arg(&src)
        .arg("--out")
        .arg(&out);
    for import in plugin.imports {
        command.args(["--import", import]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building {} failed: {}",
            plugin.name,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    remove_older_builds(plugin.name, &out);
    Ok(out)
}

/// Deletes the builds of older inputs (~18 MB each), keeping `current`.
fn remove_older_builds(name: &str, current: &Path) {
    let Some(dir) = current.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let older = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| {
                n.strip_prefix(name)?
                    .strip_prefix('-')?
                    .strip_suffix(".wasm")
            })
            .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        if older && path != current {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The `.py` files under `dir`, recursively (caches and outputs aside).
fn python_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" && name != "dist" {
                python_files(&path, out)?;
            }
        } else if name.ends_with(".py") {
            out.push(path);
        }
    }
    Ok(())
}

/// A stable 64-bit hash for change detection (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
