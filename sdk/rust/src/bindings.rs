//! Generated bindings for `tessera:plugin@0.1.0`, one module per world. Each
//! world is extended with the optional capabilities (`state`, and `http` for
//! connectors) so plugins can call them; a component imports only what its
//! code uses, so a plugin that never touches state does not ask for it. The
//! interfaces shared by the worlds are generated once, in the connector module.
//!
//! Segments are built for `tessera:plan/planned-segment@0.1.0` (`wit-plan`,
//! loaded after `wit`, on which it depends): the `segment` world plus the
//! `segment-plan` export, so every Rust segment plugin can plan its columns
//! from its parameters ([`crate::Segment::plan`]).
//!
//! Strategies are built for `tessera:strategy/planned-strategy@0.1.0`
//! (`wit-strategy`, loaded after the two it depends on): the `strategy`
//! world plus the `campaign-plan` export, so every Rust strategy can take
//! its actions and columns from its parameters
//! ([`crate::Strategy::actions_for`], [`crate::Strategy::plan`]). Its
//! `needs` are the segments' type, generated once in the segment module.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]

pub mod connector {
    wit_bindgen::generate!({
        inline: "package tessera:sdk; world connector { include tessera:plugin/connector@0.1.0; import tessera:plugin/state@0.1.0; import tessera:plugin/http@0.1.0; }",
        path: "wit",
        world: "tessera:sdk/connector",
        default_bindings_module: "tessera_sdk::bindings::connector",
        pub_export_macro: true,
        export_macro_name: "export_connector_world",
        generate_all,
    });
}

pub mod segment {
    wit_bindgen::generate!({
        inline: "package tessera:sdk; world segment { include tessera:plan/planned-segment@0.1.0; import tessera:plugin/state@0.1.0; }",
        path: ["wit", "wit-plan"],
        world: "tessera:sdk/segment",
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
        inline: "package tessera:sdk; world strategy { include tessera:strategy/planned-strategy@0.1.0; import tessera:plugin/state@0.1.0; }",
        path: ["wit", "wit-plan", "wit-strategy"],
        world: "tessera:sdk/strategy",
        default_bindings_module: "tessera_sdk::bindings::strategy",
        pub_export_macro: true,
        export_macro_name: "export_strategy_world",
        with: {
            "tessera:plugin/types@0.1.0": crate::bindings::types,
            "tessera:plugin/host@0.1.0": crate::bindings::host,
            "tessera:plugin/state@0.1.0": crate::bindings::state,
            "tessera:plan/segment-plan@0.1.0": crate::bindings::plan,
        },
        generate_all,
    });
}

pub use connector::tessera::plugin::{host, http, records, state, types};
pub use segment::exports::tessera::plan::segment_plan as plan;
pub use segment::tessera::plugin::segments;
pub use strategy::exports::tessera::strategy::campaign_plan as campaign;
pub use strategy::tessera::plugin::strategies;
