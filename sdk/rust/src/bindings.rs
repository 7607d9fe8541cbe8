//! Generated bindings for `tessera:plugin@0.1.0`, one module per world. The
//! interfaces shared by the worlds (`types`, `host`, `state`) are generated once,
//! in the connector module, and reused by the others.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]

pub mod connector {
    wit_bindgen::generate!({
        world: "connector",
        path: "wit",
        default_bindings_module: "tessera_sdk::bindings::connector",
        pub_export_macro: true,
        export_macro_name: "export_connector_world",
        generate_all,
    });
}

pub mod segment {
    wit_bindgen::generate!({
        world: "segment",
        path: "wit",
        default_bindings_module: "tessera_sdk::bindings::segment",
        pub_export_macro: true,
        export_macro_name: "export_segment_world",
        with: {
            "tessera:plugin/types@0.1.0": crate::bindings::types,
            "tessera:plugin/host@0.1.0": crate::bindings::host,
            "tessera:plugin/state@0.1.0": crate::bindings::state,
        },
        generate_all,
    });
}

pub mod strategy {
    wit_bindgen::generate!({
        world: "strategy",
        path: "wit",
        default_bindings_module: "tessera_sdk::bindings::strategy",
        pub_export_macro: true,
        export_macro_name: "export_strategy_world",
        with: {
            "tessera:plugin/types@0.1.0": crate::bindings::types,
            "tessera:plugin/host@0.1.0": crate::bindings::host,
            "tessera:plugin/state@0.1.0": crate::bindings::state,
        },
        generate_all,
    });
}

pub use connector::tessera::plugin::{host, http, records, state, types};
pub use segment::tessera::plugin::segments;
pub use strategy::tessera::plugin::strategies;
