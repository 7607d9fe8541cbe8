//! Tessera's end-to-end tests: one binary, one module per concern.

mod contract;
mod csv;
mod evaluation;
mod hostile;
mod hostile_js;
mod install;
mod outbound;
mod planned;
mod plugins;
mod python;
mod strategies;

use tessera_runtime::Runtime;

/// A runtime whose compiled components are cached across test runs.
fn runtime() -> Runtime {
    tessera_tests::runtime_with_cache(Some(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
    ))
}
