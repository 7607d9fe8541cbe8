//! Shared fixtures for Tessera's end-to-end tests: a runtime, installers with
//! the usual grants, batch builders and components assembled from WAT.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_runtime::api::segments::Memberships;
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind, Runtime, RuntimeConfig,
};

pub use tessera_guests::{plugins, test_programs};

/// A runtime sized for tests, caching compiled components under `cache`.
pub fn runtime_with_cache(cache: Option<std::path::PathBuf>) -> Runtime {
    Runtime::new(RuntimeConfig {
        concurrent_calls: 32,
        cache_dir: cache,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// An install request with a 1 MiB state quota and the given limits, as a
/// new installation (its own state) in tenant `acme`.
pub fn request(kind: PluginKind, limits: Limits) -> InstallRequest {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    InstallRequest {
        kind,
        grants: Grants {
            state_quota: 1 << 20,
            ..Grants::default()
        },
        limits,
        tenant: "acme".into(),
        installation: format!("installation-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        state: Arc::new(MemoryState::new()),
    }
}

/// Reads a test program built by `tessera-guests`.
pub fn program(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("test program {path} is missing: {e}"))
}

/// Installs a component with default limits and a state grant.
pub fn install(runtime: &Runtime, bytes: &[u8], kind: PluginKind) -> Plugin {
    install_with(runtime, bytes, kind, Limits::default())
}

/// Installs a component with the given limits and a state grant.
pub fn install_with(runtime: &Runtime, bytes: &[u8], kind: PluginKind, limits: Limits) -> Plugin {
    runtime
        .install(bytes, request(kind, limits))
        .unwrap_or_else(|e| panic!("install failed: {e}"))
}

/// A parameter.
pub fn param(name: &str, value: Value) -> FieldValue {
    FieldValue {
        name: name.into(),
        value,
    }
}

/// A dense number column.
pub fn numbers(values: &[f64]) -> Column {
    Column {
        data: ColumnData::Number(values.to_vec()),
        present: Vec::new(),
    }
}

/// A batch with the given field columns, keys 0..rows and a fixed "now".
pub fn batch(rows: u32, fields: Vec<Column>) -> ProfileBatch {
    ProfileBatch {
        rows,
        keys: (0..u64::from(rows)).collect(),
        fields,
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

/// A batch of `total_spend` values for the threshold plugin.
pub fn spend_batch(values: &[f64]) -> ProfileBatch {
    batch(values.len() as u32, vec![numbers(values)])
}

/// Proves the runtime still serves an honest plugin correctly: the
/// first-party threshold rule over a known batch.
pub fn assert_honest_call_works(runtime: &Runtime) {
    let plugin = install(runtime, plugins::THRESHOLD, PluginKind::Segment);
    assert_honest_plugin_works(&plugin);
}

/// Proves an installed threshold plugin answers a known batch correctly.
pub fn assert_honest_plugin_works(plugin: &Plugin) {
    let params = [param("threshold", Value::Number(500.0))];
    let out = plugin
        .evaluate(&params, &spend_batch(&[100.0, 500.0, 499.99, 12_000.0]))
        .expect("the honest plugin is served");
    assert_eq!(members(&out.value), vec![false, true, false, true]);
}

/// Memberships as booleans (the contract sends one byte per row).
pub fn members(out: &Memberships) -> Vec<bool> {
    out.member.iter().map(|m| *m == 1).collect()
}

/// The WAT of a segment's `describe` (a manifest with `name` and `version`
/// and nothing else), its strings at 0x300, the record at 0x200, and an
/// empty list at 0x400: for the core modules of [`wat_segment_component`],
/// which must leave 0x200–0x4ff to it.
pub fn wat_describe(name: &str, version: &str) -> String {
    let (n, v) = (name.len(), version.len());
    assert!(n + v < 0x100, "the manifest's strings fit below 0x400");
    let version_at = 0x300 + n;
    format!(
        r#"(data (i32.const 0x300) "{name}{version}")
  (func (export "describe") (result i32)
    ;; manifest: name, version, description, parameters, fields, aggregates, purposes
    (i32.store (i32.const 0x200) (i32.const 0x300)) (i32.store (i32.const 0x204) (i32.const {n}))
    (i32.store (i32.const 0x208) (i32.const {version_at})) (i32.store (i32.const 0x20c) (i32.const {v}))
    (i32.store (i32.const 0x210) (i32.const 0x400)) (i32.store (i32.const 0x214) (i32.const 0))
    (i32.store (i32.const 0x218) (i32.const 0x400)) (i32.store (i32.const 0x21c) (i32.const 0))
    (i32.store (i32.const 0x220) (i32.const 0x400)) (i32.store (i32.const 0x224) (i32.const 0))
    (i32.store (i32.const 0x228) (i32.const 0x400)) (i32.store (i32.const 0x22c) (i32.const 0))
    (i32.store (i32.const 0x230) (i32.const 0x400)) (i32.store (i32.const 0x234) (i32.const 0))
    i32.const 0x200)"#
    )
}

/// A core module for [`wat_segment_component`]: plugin `name` (version
/// 0.1.0) with `pages` of memory and `fields` (globals, data) beside its
/// functions, whose `validate` traps and whose `evaluate` runs `body` (its
/// locals and instructions after the world's parameters, ending with the
/// result's address; 0x200–0x4ff belongs to `describe`).
pub fn wat_segment(name: &str, pages: u32, fields: &str, body: &str) -> String {
    format!(
        r#"
(module
  (memory (export "memory") {pages})
  {fields}
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0x1000)
  {describe}
  (func (export "validate") (param i32 i32) (result i32) unreachable)
  (func (export "evaluate")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i64) (result i32)
{body})
)
"#,
        describe = wat_describe(name, "0.1.0")
    )
}

/// Builds a `segment` component from a core module in WAT that implements the
/// world's canonical ABI by hand: for attacks no language compiler emits.
pub fn wat_segment_component(core_wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(core_wat).expect("valid WAT");
    let mut resolve = wit_parser::Resolve::default();
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/v0.1");
    let (package, _) = resolve.push_dir(wit).expect("the WIT parses");
    let world = resolve
        .select_world(&[package], Some("segment"))
        .expect("segment world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}
