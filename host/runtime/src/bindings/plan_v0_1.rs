//! Bindings for `tessera:plan@0.1.0` (`wit/plan/v0.1`), the optional
//! interface a segment plugin exports to plan its columns from its
//! parameters. Frozen with the WIT.
//!
//! The package depends on `tessera:plugin@0.1.0`, which is loaded first
//! (`path` lists both folders, dependency first); its interfaces are the
//! ones generated in [`super::v0_1`], so a planned field or aggregate has the
//! same Rust type as a declared one.

pub mod planned_segment {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.1", "../../wit/plan/v0.1"],
        world: "tessera:plan/planned-segment@0.1.0",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "tessera:plugin/types": super::super::v0_1::types,
            "tessera:plugin/host": super::super::v0_1::host,
            "tessera:plugin/segments": super::super::v0_1::segments,
        },
    });
}

pub use planned_segment::exports::tessera::plan::segment_plan::{self, EventQuery, Needs};
pub use planned_segment::tessera::plan::schema;
pub use planned_segment::{PlannedSegment, PlannedSegmentPre};

/// The interface's name as a component exports it.
pub const SEGMENT_PLAN: &str = "tessera:plan/segment-plan@0.1.0";
/// The schema interface's name as a component imports it.
pub const SCHEMA: &str = "tessera:plan/schema@0.1.0";
/// The package prefix of this capability's interfaces in export names.
pub const PACKAGE: &str = "tessera:plan";
/// This module's version of the capability.
pub const VERSION: &str = "0.1.0";
