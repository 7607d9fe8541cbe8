//! `tessera plugin new`: a working plugin project to start from. The
//! project builds into a component (`./build.sh`), passes `tessera plugin
//! test` unchanged, and carries a bundle manifest that asks for exactly what
//! the plugin declares. The Rust SDK is written into the project
//! (`tessera-sdk/`), so it builds with nothing but the crates registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use tessera_runtime::PluginKind;

mod python;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`, starting with a letter.
    name: String,
    /// The world it implements: connector, segment or strategy.
    #[arg(long)]
    kind: PluginKind,
    /// The language: rust, python or js (JavaScript).
    #[arg(long, default_value = "rust")]
    lang: String,
    /// The directory to create the project in [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the SDK at this path (sdk/rust, or sdk/js for js) instead of writing a copy into the project.
    #[arg(long)]
    sdk: Option<PathBuf>,
    /// The publisher named in the bundle manifest.
    #[arg(long, default_value = "Example Partner")]
    publisher: String,
}

/// The Rust SDK, as written into a new project.
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../sdk/rust/Cargo.toml")),
    ("README.md", include_str!("../../../sdk/rust/README.md")),
    ("src/lib.rs", include_str!("../../../sdk/rust/src/lib.rs")),
    (
        "src/bindings.rs",
        include_str!("../../../sdk/rust/src/bindings.rs"),
    ),
    (
        "src/batch.rs",
        include_str!("../../../sdk/rust/src/batch.rs"),
    ),
    (
        "src/manifest.rs",
        include_str!("../../../sdk/rust/src/manifest.rs"),
    ),
    (
        "src/params.rs",
        include_str!("../../../sdk/rust/src/params.rs"),
    ),
    (
        "src/connector.rs",
        include_str!("../../../sdk/rust/src/connector.rs"),
    ),
    (
        "src/segment.rs",
        include_str!("../../../sdk/rust/src/segment.rs"),
    ),
    (
        "src/strategy.rs",
        include_str!("../../../sdk/rust/src/strategy.rs"),
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

fn template(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Connector => include_str!("../templates/rust/connector.rs"),
        PluginKind::Segment => include_str!("../templates/rust/segment.rs"),
        PluginKind::Strategy => include_str!("../templates/rust/strategy.rs"),
    }
}

/// The project's sample inputs for `tessera plugin test --fixtures`: the
/// same plugins in every language, so the same cases.
fn fixtures(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Connector => include_str!("../templates/fixtures/connector.json"),
        PluginKind::Segment => include_str!("../templates/fixtures/segment.json"),
        PluginKind::Strategy => include_str!("../templates/fixtures/strategy.json"),
    }
}

/// What the template's plugin declares, and so what its bundle asks for:
/// (traits, purposes, description).
pub(crate) fn request(
    kind: PluginKind,
) -> (
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
) {
    match kind {
        PluginKind::Connector => (&[], &[], "Parses email,event_type,amount lines into events"),
        PluginKind::Segment => (
            &["lifetime_value"],
            &["analytics"],
            "Subjects whose lifetime value is at least a threshold",
        ),
        PluginKind::Strategy => (
            &["lifetime_value"],
            &["personalization"],
            "A discount for customers below a lifetime value, nothing for the others",
        ),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    match args.lang.as_str() {
        "rust" | "js" => {}
        "python" => return python::run(&args),
        other => bail!(
            "--lang {other}: this version of tessera creates Rust, Python and JavaScript \
             projects (--lang rust, --lang python, --lang js)"
        ),
    }
    if !valid_name(&args.name) {
        bail!(
            "plugin name `{}` must be 1-64 lowercase letters, digits or `-`, starting with a letter",
            args.name
        );
    }
    if args.publisher.trim().is_empty() || args.publisher.chars().any(char::is_control) {
        bail!("--publisher must be printable text");
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
    if args.lang == "js" {
        return crate::plugin_new_js::run(
            &args.name,
            args.kind,
            &dir,
            args.sdk.as_deref(),
            &args.publisher,
        );
    }
    let sdk_dep = match &args.sdk {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("--sdk {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!("--sdk {}: no Cargo.toml there", path.display());
            }
            path.display().to_string()
        }
        None => "tessera-sdk".to_string(),
    };
    let name = &args.name;
    let lib = name.replace('-', "_");
    let files: Vec<(String, String)> = vec![
        (
            "Cargo.toml".into(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
tessera-sdk = {{ path = {sdk_dep:?} }}

[profile.release]
opt-level = "s"
codegen-units = 1
strip = true

# A project of its own, even when created inside another workspace.
[workspace]
"#
            ),
        ),
        (
            "src/lib.rs".into(),
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
                    state: "Bytes of plugin state; 0 = none.",
                    limits: "memory_bytes = 16777216\n",
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
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2
target="${{CARGO_TARGET_DIR:-target}}"
mkdir -p dist
cp "$target/wasm32-wasip2/release/{lib}.wasm" "dist/{name}.wasm"
"${{TESSERA:-tessera}}" bundle build dist --manifest bundle.toml --out "{name}.tsb"
"#
            ),
        ),
        ("fixtures.json".into(), fixtures(args.kind).into()),
        (
            ".gitignore".into(),
            "/target\n/dist\n*.tsb\npublisher.key\n".into(),
        ),
        (
            "README.md".into(),
            format!(
                "# {name}\n\nA Tessera {kind} plugin.\n\n```sh\n./build.sh                          # dist/{name}.wasm and {name}.tsb\ntessera plugin test dist/{name}.wasm --fixtures fixtures.json   # and the cases of fixtures.json\ntessera keys publisher new --out .    # once: publisher.key, publisher.pub\ntessera bundle sign {name}.tsb --key publisher.key\n```\n\nGive `publisher.pub` and `{name}.tsb` to the operator, who trusts the key\n(`tessera keys publisher trust`), installs the bundle (`tessera plugin\ninstall`) and approves what it asks for (`tessera plugin approve`).\n",
                kind = args.kind.as_str()
            ),
        ),
    ];
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in &files {
        write(&dir, path, text)?;
    }
    if args.sdk.is_none() {
        for (path, text) in SDK {
            write(&dir.join("tessera-sdk"), path, text)?;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    println!(
        "created {} ({} plugin `{name}`, Rust)",
        dir.display(),
        args.kind.as_str()
    );
    println!("next: cd {} && ./build.sh", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// What a new project's bundle manifest says differently by language.
pub(crate) struct ManifestNotes<'a> {
    /// After "Connectors only: " above `outbound_hosts`.
    pub outbound: &'a str,
    /// The comment above `state_quota`.
    pub state: &'a str,
    /// The body of `[plugins.limits]`, lines ending in a newline.
    pub limits: &'a str,
}

/// A new project's bundle manifest: what the plugin is and what it asks
/// for ([`request`]), as the operator installing it will see it.
pub(crate) fn bundle_manifest(
    name: &str,
    kind: PluginKind,
    publisher: &str,
    notes: &ManifestNotes<'_>,
) -> String {
    let (traits, purposes, description) = request(kind);
    format!(
        r#"# The bundle manifest: what the plugin is and what it asks for. The
# operator installing it sees this request and grants all or part of it.
publisher = {publisher:?}
version = "0.1.0"

[[plugins]]
name = "{name}"
kind = "{kind}"
wit_version = "0.1.0"
description = {description:?}
component = "{name}.wasm"

[plugins.permissions]
# The profile traits and event types the plugin reads: exactly the fields
# and aggregates `describe` declares (the host checks it at install).
traits = {traits:?}
events = []
# PII classes (email, phone, name, …) are never implied by a trait grant.
pii = []
# It only ever sees subjects who consented to one of these.
purposes = {purposes:?}
# Connectors only: {outbound}
outbound_hosts = []
# {state}
state_quota = 0

[plugins.limits]
{limits}"#,
        kind = kind.as_str(),
        outbound = notes.outbound,
        state = notes.state,
        limits = notes.limits,
    )
}

pub(crate) fn write(dir: &Path, path: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
