//! Bindings for `tessera:strategy@0.1.0` (`wit/strategy/v0.1`), the optional
//! interface a strategy plugin exports to take its actions and columns from
//! its parameters. Frozen with the WIT.
//!
//! The package depends on `tessera:plugin@0.1.0` and `tessera:plan@0.1.0`,
//! loaded first (`path` lists the folders, dependencies first). The
//! `tessera:plugin` interfaces are the ones generated in [`super::v0_1`], so
//! a planned action has the type of a declared one. `tessera:plan/segment-plan`
//! is generated again here: the world imports it (for its types), where the
//! segment world exports it, and an export's generated module cannot serve
//! as an import's. [`Needs`] converts to the segments' own type, which the
//! host checks.

pub mod planned_strategy {
    wasmtime::component::bindgen!({
        path: ["../../wit/v0.1", "../../wit/plan/v0.1", "../../wit/strategy/v0.1"],
        world: "tessera:strategy/planned-strategy@0.1.0",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "tessera:plugin/types": super::super::v0_1::types,
            "tessera:plugin/host": super::super::v0_1::host,
            "tessera:plugin/strategies": super::super::v0_1::strategies,
        },
    });
}

pub use planned_strategy::exports::tessera::strategy::campaign_plan;
pub use planned_strategy::tessera::plan::segment_plan::{self, EventQuery, Needs};
pub use planned_strategy::{PlannedStrategy, PlannedStrategyPre};

impl From<Needs> for super::plan_v0_1::Needs {
    fn from(needs: Needs) -> Self {
        super::plan_v0_1::Needs {
            fields: needs.fields,
            aggregates: needs.aggregates,
            queries: needs
                .queries
                .into_iter()
                .map(|q| super::plan_v0_1::EventQuery {
                    name: q.name,
                    event_type: q.event_type,
                    filter: q.filter,
                    window_ms: q.window_ms,
                    sums: q.sums,
                })
                .collect(),
            segments: needs.segments,
        }
    }
}

/// The interface's name as a component exports it.
pub const CAMPAIGN_PLAN: &str = "tessera:strategy/campaign-plan@0.1.0";
/// The interface whose types (`needs`, `event-query`) the world imports;
/// its one function, `plan`, is linked only as a stub that traps with
/// [`NOT_A_HOST_FUNCTION`] (a segment *exports* `plan`; no host serves one).
pub const SEGMENT_PLAN_TYPES: &str = "tessera:plan/segment-plan@0.1.0";
/// Why a strategy's call of the imported `segment-plan.plan` traps.
pub const NOT_A_HOST_FUNCTION: &str =
    "segment-plan.plan is not a host function; a strategy exports campaign-plan.plan";
/// The package prefix of this capability's interfaces in export names.
pub const PACKAGE: &str = "tessera:strategy";
/// This module's version of the capability.
pub const VERSION: &str = "0.1.0";
