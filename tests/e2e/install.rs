//! Installation: contract versions, worlds, imports and the compile cache.

use tessera_runtime::{InstallError, Limits, PluginKind, WitVersion, detect_version};
use tessera_tests::{assert_honest_plugin_works, plugins, request};

use super::runtime;

/// Rewrites every `0.1.0` in a component (its version marker and the versions
/// in its import names) to another version of the same length: a component
/// as a future SDK would build it.
fn as_if_built_for(bytes: &[u8], version: &str) -> Vec<u8> {
    assert_eq!(version.len(), 5);
    let mut out = bytes.to_vec();
    let mut i = 0;
    while let Some(at) = out[i..].windows(5).position(|w| w == b"0.1.0") {
        out[i + at..i + at + 5].copy_from_slice(version.as_bytes());
        i += at + 5;
    }
    out
}

#[test]
fn first_party_plugins_carry_the_contract_version() {
    for bytes in [plugins::NDJSON, plugins::THRESHOLD, plugins::EPSILON_GREEDY] {
        let marker = tessera_runtime::WIT_VERSION_SECTION.as_bytes();
        assert!(
            bytes.windows(marker.len()).any(|w| w == marker),
            "the SDK embeds the marker section"
        );
        assert_eq!(detect_version(bytes).unwrap(), WitVersion::V0_1);
    }
}

#[test]
fn component_built_against_an_unknown_wit_version_is_refused() {
    let runtime = runtime();
    let future = as_if_built_for(plugins::THRESHOLD, "0.9.0");
    match runtime.install(&future, request(PluginKind::Segment, Limits::default())) {
        Err(error @ InstallError::UnsupportedVersion { .. }) => {
            let message = error.to_string();
            assert!(message.contains("tessera:plugin@0.9.0"), "{message}");
            assert!(message.contains("serves 0.1.0"), "{message}");
        }
        other => panic!("expected an unsupported version, got {other:?}"),
    }
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let runtime = runtime();
    let core = wat::parse_str("(module)").unwrap();
    match runtime.install(&core, request(PluginKind::Segment, Limits::default())) {
        Err(error @ InstallError::NotAComponent(_)) => {
            assert!(error.to_string().contains("core wasm module"), "{error}");
        }
        other => panic!("expected not-a-component, got {other:?}"),
    }
}

#[test]
fn component_of_another_world_is_refused_with_what_is_missing() {
    let runtime = runtime();
    match runtime.install(
        plugins::THRESHOLD,
        request(PluginKind::Strategy, Limits::default()),
    ) {
        Err(error @ InstallError::WorldMismatch { .. }) => {
            let message = error.to_string();
            assert!(message.contains("`strategy` world"), "{message}");
        }
        other => panic!("expected a world mismatch, got {other:?}"),
    }
}

#[test]
fn limits_over_the_operator_cap_are_refused() {
    let runtime = runtime();
    let limits = Limits {
        memory_bytes: 8 << 30,
        ..Limits::default()
    };
    match runtime.install(plugins::THRESHOLD, request(PluginKind::Segment, limits)) {
        Err(error @ InstallError::LimitsOverCap(_)) => {
            assert!(
                error.to_string().contains("memory of 8589934592"),
                "{error}"
            );
        }
        other => panic!("expected limits over the cap, got {other:?}"),
    }
}

#[test]
fn compiled_components_are_cached_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let first = tessera_tests::runtime_with_cache(Some(dir.path().to_path_buf()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the cache of native code is private to the host"
        );
    }
    let plugin = first
        .install(
            plugins::THRESHOLD,
            request(PluginKind::Segment, Limits::default()),
        )
        .unwrap();
    assert!(plugin.info().compiled);
    let again = first
        .install(
            plugins::THRESHOLD,
            request(PluginKind::Segment, Limits::default()),
        )
        .unwrap();
    assert!(
        !again.info().compiled,
        "the same bytes are not compiled twice"
    );

    // A new process (runtime) loads the artifact from disk.
    let second = tessera_tests::runtime_with_cache(Some(dir.path().to_path_buf()));
    let cached = second
        .install(
            plugins::THRESHOLD,
            request(PluginKind::Segment, Limits::default()),
        )
        .unwrap();
    assert!(!cached.info().compiled);
    assert_honest_plugin_works(&cached);

    // A corrupted artifact is detected by its digest and recompiled, never loaded.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = tessera_tests::runtime_with_cache(Some(dir.path().to_path_buf()));
    let recompiled = third
        .install(
            plugins::THRESHOLD,
            request(PluginKind::Segment, Limits::default()),
        )
        .unwrap();
    assert!(recompiled.info().compiled);
    assert_honest_plugin_works(&recompiled);
}

#[test]
fn the_world_of_a_component_is_read_from_its_exports() {
    use tessera_runtime::detect_kind;
    assert_eq!(detect_kind(plugins::THRESHOLD), Some(PluginKind::Segment));
    assert_eq!(
        detect_kind(plugins::EPSILON_GREEDY),
        Some(PluginKind::Strategy)
    );
    assert_eq!(detect_kind(plugins::NDJSON), Some(PluginKind::Connector));
    assert_eq!(detect_kind(&wat::parse_str("(module)").unwrap()), None);
}
