//! `tessera plugin new --lang js`: a JavaScript plugin project. It builds
//! into a component with nothing but npm (`./build.sh`: `npm ci`, then the
//! SDK's `tessera-build`, which runs componentize-js) and passes `tessera
//! plugin test` unchanged. The JavaScript SDK is written into the project
//! (`tessera-sdk/`, a `file:` dependency) with a lockfile pinning the
//! toolchain, as the Rust template writes the Rust SDK into its project.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tessera_runtime::PluginKind;

use crate::plugin_new::{ManifestNotes, bundle_manifest, request, write};

/// The JavaScript SDK, as written into a new project.
const SDK: &[(&str, &str)] = &[
    ("package.json", include_str!("../../../sdk/js/package.json")),
    ("README.md", include_str!("../../../sdk/js/README.md")),
    ("build.js", include_str!("../../../sdk/js/build.js")),
    ("index.d.ts", include_str!("../../../sdk/js/index.d.ts")),
    ("src/index.js", include_str!("../../../sdk/js/src/index.js")),
    ("src/state.js", include_str!("../../../sdk/js/src/state.js")),
    ("src/http.js", include_str!("../../../sdk/js/src/http.js")),
    (
        "src/schema.js",
        include_str!("../../../sdk/js/src/schema.js"),
    ),
    (
        "wit/plugin.wit",
        include_str!("../../../wit/v0.1/plugin.wit"),
    ),
    (
        "wit-plan/plan.wit",
        include_str!("../../../wit/plan/v0.1/plan.wit"),
    ),
    (
        "wit-strategy/strategy.wit",
        include_str!("../../../wit/strategy/v0.1/strategy.wit"),
    ),
];

/// The SDK's lockfile: the project's pins the same toolchain.
const SDK_LOCK: &str = include_str!("../../../sdk/js/package-lock.json");

/// The build tool, at the version the SDK is built and tested with.
const COMPONENTIZE_JS: (&str, &str) = ("@bytecodealliance/componentize-js", "0.23.0");

/// The SDK's dev dependencies (the toolchain, pinned exactly): the
/// project's own. componentize-js loads `@bytecodealliance/preview2-shim`
/// without declaring it, so the SDK names it too.
fn toolchain(sdk_package: &Value) -> Value {
    sdk_package["devDependencies"].clone()
}

fn template(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Connector => include_str!("../templates/js/connector.js"),
        PluginKind::Segment => include_str!("../templates/js/segment.js"),
        PluginKind::Strategy => include_str!("../templates/js/strategy.js"),
    }
}

/// `package-lock.json` for the project: its root, the SDK as a linked
/// folder, and every package of the SDK's own lockfile (the toolchain).
fn lockfile(name: &str, sdk_dep: &str, sdk_package: &Value) -> anyhow::Result<String> {
    let sdk_lock: Value = serde_json::from_str(SDK_LOCK).context("the SDK's lockfile")?;
    let mut packages = serde_json::Map::new();
    packages.insert(
        String::new(),
        json!({
            "name": name,
            "version": "0.1.0",
            "dependencies": { "tessera-sdk": format!("file:{sdk_dep}") },
            "devDependencies": toolchain(sdk_package),
        }),
    );
    packages.insert(
        "node_modules/tessera-sdk".into(),
        json!({ "resolved": sdk_dep, "link": true }),
    );
    let mut linked = sdk_package.clone();
    if let Some(object) = linked.as_object_mut() {
        for field in [
            "description",
            "repository",
            "keywords",
            "exports",
            "types",
            "files",
            "type",
        ] {
            object.remove(field);
        }
    }
    packages.insert(sdk_dep.into(), linked);
    for (path, entry) in sdk_lock["packages"].as_object().into_iter().flatten() {
        if path.starts_with("node_modules/") {
            packages.insert(path.clone(), entry.clone());
        }
    }
    let lock = json!({
        "name": name,
        "version": "0.1.0",
        "lockfileVersion": 3,
        "requires": true,
        "packages": packages,
    });
    Ok(serde_json::to_string_pretty(&lock)? + "\n")
}

pub fn run(
    name: &str,
    kind: PluginKind,
    dir: &Path,
    sdk: Option<&Path>,
    publisher: &str,
) -> anyhow::Result<ExitCode> {
    let sdk_dep = match sdk {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("--sdk {}", path.display()))?;
            if !path.join("build.js").is_file() || !path.join("package.json").is_file() {
                bail!(
                    "--sdk {}: not the JavaScript SDK (no package.json and build.js there)",
                    path.display()
                );
            }
            path.display().to_string()
        }
        None => "tessera-sdk".to_string(),
    };
    let sdk_package: Value = serde_json::from_str(SDK[0].1).context("the SDK's package.json")?;
    let (_, _, description) = request(kind);
    let package = json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "type": "module",
        "description": description,
        "tessera": { "kind": kind.as_str(), "entry": "src/plugin.js" },
        "scripts": { "build": "tessera-build" },
        "dependencies": { "tessera-sdk": format!("file:{sdk_dep}") },
        "devDependencies": toolchain(&sdk_package),
    });
    let fuel = if kind == PluginKind::Strategy {
        "# A decision costs ~250,000 instructions in JavaScript (most of it turning\n\
         # it into the WIT record in componentize-js's generated bindings); the\n\
         # default 50,000 per row would stop a batch of decisions.\n\
         fuel_per_unit = 500000\n"
    } else {
        ""
    };
    let limits = format!(
        "# A JavaScript component carries its engine (SpiderMonkey): it starts at\n\
         # about 9 MiB of linear memory, so it needs more than a Rust one.\n\
         memory_bytes = 33554432\n{fuel}"
    );
    let mut files: Vec<(String, String)> = vec![
        (
            "package.json".into(),
            serde_json::to_string_pretty(&package)? + "\n",
        ),
        (
            "src/plugin.js".into(),
            template(kind).replace("{{name}}", name),
        ),
        (
            "bundle.toml".into(),
            bundle_manifest(
                name,
                kind,
                publisher,
                &ManifestNotes {
                    outbound: "the hosts it may call (and `import … from 'tessera-sdk/http'`).",
                    state: "Bytes of plugin state (and `import … from 'tessera-sdk/state'`); 0 = none.",
                    limits: &limits,
                },
            ),
        ),
        (
            "build.sh".into(),
            format!(
                r#"#!/bin/sh
# Builds the component into dist/ and the unsigned bundle {name}.tsb.
# Then: tessera plugin test dist/{name}.wasm
#       tessera bundle sign {name}.tsb --key publisher.key
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
  npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
"${{TESSERA:-tessera}}" bundle build dist --manifest bundle.toml --out "{name}.tsb"
"#
            ),
        ),
        (
            ".gitignore".into(),
            "/node_modules\n/dist\n*.tsb\npublisher.key\n".into(),
        ),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA Tessera {kind} plugin in JavaScript ({componentize} {version}).\n\n```sh\n./build.sh                          # dist/{name}.wasm and {name}.tsb (npm ci, npm run build)\ntessera plugin test dist/{name}.wasm\ntessera keys publisher new --out .    # once: publisher.key, publisher.pub\ntessera bundle sign {name}.tsb --key publisher.key\n```\n\nThe plugin is `src/plugin.js`; the SDK it uses is `tessera-sdk/` (see its\nREADME). Give `publisher.pub` and `{name}.tsb` to the operator, who trusts\nthe key (`tessera keys publisher trust`), installs the bundle (`tessera\nplugin install`) and approves what it asks for (`tessera plugin approve`).\n",
                kind = kind.as_str(),
                componentize = COMPONENTIZE_JS.0,
                version = COMPONENTIZE_JS.1,
            ),
        ),
    ];
    // With `--sdk`, npm writes the lockfile at the first install.
    if sdk.is_none() {
        files.push((
            "package-lock.json".into(),
            lockfile(name, &sdk_dep, &sdk_package)?,
        ));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in &files {
        write(dir, path, text)?;
    }
    if sdk.is_none() {
        for (path, text) in SDK {
            write(&dir.join("tessera-sdk"), path, text)?;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for script in ["build.sh", "tessera-sdk/build.js"] {
            let path = dir.join(script);
            if path.exists() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            }
        }
    }
    println!(
        "created {} ({} plugin `{name}`, JavaScript)",
        dir.display(),
        kind.as_str()
    );
    println!("next: cd {} && ./build.sh", dir.display());
    Ok(ExitCode::SUCCESS)
}
