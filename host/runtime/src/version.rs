//! Which contract version a component was built against, read before anything
//! is compiled or instantiated: the `tessera:wit-version` custom section that
//! the SDKs embed, cross-checked with the versions in its import names.

use wasmparser::{Parser, Payload};

use crate::bindings::SUPPORTED;
use crate::{InstallError, PluginKind};

/// The custom section holding the contract version (e.g. `0.1.0`).
pub const WIT_VERSION_SECTION: &str = "tessera:wit-version";

/// A contract version this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WitVersion {
    /// `tessera:plugin@0.1.0`.
    V0_1,
}

impl WitVersion {
    /// The version as written in WIT (`0.1.0`).
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
        }
    }

    fn parse(text: &str) -> Result<Self, InstallError> {
        match text {
            "0.1.0" => Ok(WitVersion::V0_1),
            other => Err(InstallError::UnsupportedVersion {
                found: other.to_string(),
                supported: SUPPORTED.join(", "),
            }),
        }
    }
}

/// Reads the contract version of a component from its `tessera:wit-version`
/// section and, failing that, from the `tessera:plugin/*@X` names it imports.
/// Only the outer component counts: its own sections and imports, and the
/// sections of the core modules it embeds directly (where a Rust SDK's marker
/// lands). Nested components are not read, so an adapter for one version
/// may wrap a plugin built for another. Refuses binaries that are not
/// components, versions the host does not serve, and markers that disagree.
pub fn detect_version(bytes: &[u8]) -> Result<WitVersion, InstallError> {
    if !Parser::is_component(bytes) {
        return Err(InstallError::NotAComponent(
            if Parser::is_core_wasm(bytes) {
                "this is a core wasm module; wrap it into a component (wasm32-wasip2 target, \
             wasm-tools component new, or an SDK's build)"
                    .into()
            } else {
                "the bytes do not start with the wasm component header".into()
            },
        ));
    }
    let mut markers: Vec<String> = Vec::new();
    let mut imported: Vec<String> = Vec::new();
    // What the parser is inside: the outer component, then nested items.
    let mut nesting: Vec<bool> = Vec::new(); // true = a nested component
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InstallError::NotAComponent(e.to_string()))?;
        let outer = nesting.len() == 1;
        let in_nested_component = nesting.iter().skip(1).any(|component| *component);
        match payload {
            Payload::Version { .. } if nesting.is_empty() => nesting.push(true),
            Payload::ModuleSection { .. } => nesting.push(false),
            Payload::ComponentSection { .. } => nesting.push(true),
            Payload::End(_) => {
                nesting.pop();
            }
            Payload::CustomSection(reader)
                if reader.name() == WIT_VERSION_SECTION
                    && !in_nested_component
                    && nesting.len() <= 2 =>
            {
                let text = std::str::from_utf8(reader.data()).map_err(|_| {
                    InstallError::ConflictingVersion(format!(
                        "the `{WIT_VERSION_SECTION}` section is not UTF-8"
                    ))
                })?;
                markers.push(text.trim().to_string());
            }
            Payload::ComponentImportSection(reader) if outer => {
                for import in reader {
                    let import = import.map_err(|e| InstallError::NotAComponent(e.to_string()))?;
                    if let Some(version) = import
                        .name
                        .name
                        .strip_prefix("tessera:plugin/")
                        .and_then(|rest| rest.split_once('@'))
                        .map(|(_, version)| version.to_string())
                    {
                        imported.push(version);
                    }
                }
            }
            _ => {}
        }
    }
    markers.sort();
    markers.dedup();
    imported.sort();
    imported.dedup();
    if markers.len() > 1 {
        return Err(InstallError::ConflictingVersion(format!(
            "it carries several `{WIT_VERSION_SECTION}` markers: {}",
            markers.join(", ")
        )));
    }
    if imported.len() > 1 {
        return Err(InstallError::ConflictingVersion(format!(
            "it imports several tessera:plugin versions: {}",
            imported.join(", ")
        )));
    }
    match (markers.first(), imported.first()) {
        (Some(marker), Some(import)) if marker != import => {
            Err(InstallError::ConflictingVersion(format!(
                "its `{WIT_VERSION_SECTION}` marker says {marker} but it imports \
                 tessera:plugin@{import}"
            )))
        }
        (Some(version), _) | (None, Some(version)) => WitVersion::parse(version),
        (None, None) => Err(InstallError::MissingVersion),
    }
}

/// Which world a component implements, from the names it exports at the top
/// level (`evaluate` → segment, `decide` → strategy, `supports` → connector).
/// For tools that load a component without being told its kind.
pub fn detect_kind(bytes: &[u8]) -> Option<PluginKind> {
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let has = |name: &str| exports.iter().any(|e| e == name);
    if has("evaluate") {
        Some(PluginKind::Segment)
    } else if has("decide") {
        Some(PluginKind::Strategy)
    } else if has("supports") {
        Some(PluginKind::Connector)
    } else {
        None
    }
}
