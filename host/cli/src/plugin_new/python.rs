//! `tessera plugin new --lang python`: the Python project. The same plugins
//! as the Rust templates (same manifests, same answers), written against the
//! Python SDK, which is written into the project (`tessera_sdk/`) so it
//! builds with nothing but PyPI (componentize-py, fetched on first build).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use tessera_runtime::PluginKind;

use super::{ManifestNotes, NewArgs, bundle_manifest, fixtures, valid_name, write};

/// The Python SDK, as written into a new project.
const SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../../sdk/python/tessera_sdk/__init__.py"),
    ),
    (
        "build.py",
        include_str!("../../../../sdk/python/tessera_sdk/build.py"),
    ),
    (
        "core.py",
        include_str!("../../../../sdk/python/tessera_sdk/core.py"),
    ),
    (
        "connector.py",
        include_str!("../../../../sdk/python/tessera_sdk/connector.py"),
    ),
    (
        "segment.py",
        include_str!("../../../../sdk/python/tessera_sdk/segment.py"),
    ),
    (
        "strategy.py",
        include_str!("../../../../sdk/python/tessera_sdk/strategy.py"),
    ),
    (
        "host.py",
        include_str!("../../../../sdk/python/tessera_sdk/host.py"),
    ),
    (
        "state.py",
        include_str!("../../../../sdk/python/tessera_sdk/state.py"),
    ),
    (
        "schema.py",
        include_str!("../../../../sdk/python/tessera_sdk/schema.py"),
    ),
    ("py.typed", ""),
    (
        "wit/plugin.wit",
        include_str!("../../../../wit/v0.1/plugin.wit"),
    ),
    (
        "wit-plan/plan.wit",
        include_str!("../../../../wit/plan/v0.1/plan.wit"),
    ),
    (
        "wit-strategy/strategy.wit",
        include_str!("../../../../wit/strategy/v0.1/strategy.wit"),
    ),
];

fn template(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Connector => include_str!("../../templates/python/connector.py"),
        PluginKind::Segment => include_str!("../../templates/python/segment.py"),
        PluginKind::Strategy => include_str!("../../templates/python/strategy.py"),
    }
}

/// The connector's sample input: `tessera plugin test --input sample.csv`.
const SAMPLE_CSV: &str = "email,event_type,amount\nann@example.com,purchase,12.50\nnot a row\n";

pub(super) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    if !valid_name(&args.name) {
        bail!(
            "plugin name `{}` must be 1-64 lowercase letters, digits or `-`, starting with a letter",
            args.name
        );
    }
    if args.publisher.trim().is_empty() || args.publisher.chars().any(char::is_control) {
        bail!("--publisher must be printable text");
    }
    if args.sdk.is_some() {
        bail!("--sdk is for Rust projects; a Python project carries its SDK in tessera_sdk/");
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} exists; a new project is never written over anything",
            dir.display()
        );
    }
    let name = &args.name;
    let kind = args.kind.as_str();
    let test = if args.kind == PluginKind::Connector {
        format!("tessera plugin test dist/{name}.wasm --input sample.csv --fixtures fixtures.json")
    } else {
        format!("tessera plugin test dist/{name}.wasm --fixtures fixtures.json")
    };
    let mut files: Vec<(String, String)> = vec![
        (
            "app.py".into(),
            template(args.kind).replace("{{name}}", name),
        ),
        (
            "bundle.toml".into(),
            bundle_manifest(
                name,
                args.kind,
                &args.publisher,
                &ManifestNotes {
                    outbound: "the hosts it may call.",
                    state: "Bytes of plugin state; 0 = none (build with `--import state` to use it).",
                    limits: "# A Python component starts at about 12 MiB of linear memory.\n\
                             memory_bytes = 33554432\n",
                },
            ),
        ),
        (
            "build.sh".into(),
            format!(
                r#"#!/bin/sh
# Builds the component into dist/ and the unsigned bundle {name}.tsb.
# Needs Python 3.10+; componentize-py {cpy} is installed on first use if
# it is missing (or: python3 -m pip install -r requirements-build.txt).
# Then: {test}
#       tessera bundle sign {name}.tsb --key publisher.key
set -eu
cd "$(dirname "$0")"
"${{PYTHON:-python3}}" -m tessera_sdk.build --world {kind} --app app --out "dist/{name}.wasm"
"${{TESSERA:-tessera}}" bundle build dist --manifest bundle.toml --out "{name}.tsb"
"#,
                cpy = COMPONENTIZE_PY_VERSION,
            ),
        ),
        ("fixtures.json".into(), fixtures(args.kind).into()),
        (
            "requirements-build.txt".into(),
            format!("componentize-py=={COMPONENTIZE_PY_VERSION}\n"),
        ),
        (
            ".gitignore".into(),
            "/dist\n__pycache__/\n*.tsb\npublisher.key\n".into(),
        ),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA Tessera {kind} plugin, in Python (`app.py`, with the SDK in `tessera_sdk/`).\n\n```sh\n./build.sh                          # dist/{name}.wasm and {name}.tsb\n{test}\ntessera keys publisher new --out .    # once: publisher.key, publisher.pub\ntessera bundle sign {name}.tsb --key publisher.key\n```\n\nGive `publisher.pub` and `{name}.tsb` to the operator, who trusts the key\n(`tessera keys publisher trust`), installs the bundle (`tessera plugin\ninstall`) and approves what it asks for (`tessera plugin approve`).\n"
            ),
        ),
    ];
    if args.kind == PluginKind::Connector {
        files.push(("sample.csv".into(), SAMPLE_CSV.into()));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in &files {
        write(&dir, path, text)?;
    }
    for (path, text) in SDK {
        write(&dir.join("tessera_sdk"), path, text)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    println!("created {} ({kind} plugin `{name}`, Python)", dir.display());
    println!("next: cd {} && ./build.sh", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The componentize-py the SDK's build helper pins.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
