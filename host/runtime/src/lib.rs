//! Tessera's plugin runtime: one wasmtime [`Runtime`] per process, the sandbox
//! each plugin call runs in, the host-owned compile cache and the bindings of
//! every contract version the host serves.
//!
//! The runtime knows nothing about customer data: callers hand it columnar
//! views and get results back with their cost. It never loads precompiled code
//! it did not compile itself.

pub mod bindings;
mod cache;
mod call;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod host;
mod limits;
mod manifest;
mod outbound;
mod output;
mod plugin;
mod quarantine;
mod runtime;
mod version;

pub use bindings::plan_v0_1::{EventQuery, Needs};
pub use bindings::v0_1 as api;
pub use cache::ComponentCache;
pub use call::{Called, Cost, LogLine};
pub use error::{CallError, InstallError, PluginError, TrapReason};
pub use limits::{Limits, RuntimeConfig};
pub use manifest::{ParamError, kind_name, resolve_params};
pub use outbound::{
    GrantedHost, IpNet, Outbound, Resolve, Scheme, StaticResolver, SystemResolver, TrustedRoots,
};
pub use output::{
    MAX_PLANNED_AGGREGATES, MAX_PLANNED_FIELDS, MAX_PLANNED_QUERIES, MAX_PLANNED_SEGMENTS,
    MAX_QUERY_NAME, MAX_QUERY_SUMS, MAX_WINDOW_DAYS, MAX_WINDOW_MS,
};
pub use plugin::{
    CallScope, Evaluation, Grants, InstallRequest, Plugin, PluginInfo, PluginKind, PluginStats,
    TraitKinds,
};
pub use quarantine::QuarantinePolicy;
pub use runtime::Runtime;
pub use runtime::StartError;
pub use tessera_state::{
    MemoryState, RETIRED, StateError, StateKeys, StateScope, StateStore, StateWrite, key_text,
};
pub use version::{WIT_VERSION_SECTION, WitVersion, detect_kind, detect_version};
