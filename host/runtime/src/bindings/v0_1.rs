//! Bindings for `tessera:plugin@0.1.0` (`wit/v0.1`). Frozen with the WIT.
//!
//! The shared interfaces (`types`, `host`, `state`, `http`, `records`) are
//! generated once, in the connector module, and reused by the other worlds.
//! `state` and `http` belong to no world (a plugin imports them only if it
//! needs them), so the connector module is generated for a host-side world
//! that adds them.

pub mod connector {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        inline: "
            package tessera:host;
            world connector {
                include tessera:plugin/connector@0.1.0;
                import tessera:plugin/state@0.1.0;
                import tessera:plugin/http@0.1.0;
            }
        ",
        world: "tessera:host/connector",
        imports: { default: trappable },
        additional_derives: [PartialEq],
    });
}

pub mod segment {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "segment",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "tessera:plugin/types": super::connector::tessera::plugin::types,
            "tessera:plugin/host": super::connector::tessera::plugin::host,
        },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "strategy",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "tessera:plugin/types": super::connector::tessera::plugin::types,
            "tessera:plugin/host": super::connector::tessera::plugin::host,
        },
    });
}

pub use connector::tessera::plugin::{host, http, records, state, types};
pub use segment::tessera::plugin::segments;
pub use strategy::tessera::plugin::strategies;

/// The package prefix of this version's interfaces in import names.
pub const PACKAGE: &str = "tessera:plugin";
/// This module's contract version.
pub const VERSION: &str = "0.1.0";
