//! A tenant's plugins, from a signed bundle to a call: which publishers the
//! tenant trusts, what each plugin asked for and what the operator granted,
//! the install pipeline (verify → type-check → check the world and imports
//! against the grants → precompile → store, all or nothing), the lifecycle
//! (pending upgrades with their permission diff, rollback, removal,
//! quarantine), and the data view the host builds before every call.
//!
//! Grants use the bundle's own [`Permissions`] shape: a grant is a subset of
//! a request, field by field.

pub use tessera_bundle::{Permissions, PiiClass};

mod params;
pub mod permissions;
mod records;
mod registry;

pub use params::{ParamValue, field_values, stored_params};
pub use permissions::{Change, LimitChange, PermissionDiff};
pub use records::{PluginRecord, PublisherRecord, QuarantineRecord, VersionRecord};
pub use registry::{
    Entry, EvaluatedPage, Evaluation, Live, Planned, Registry, RegistryError, RemovalListener,
    Source, runtime_grants,
};
pub mod views;

pub use views::{
    NeedKind, SEGMENT_DOCUMENT_KIND, Subjects, Ungranted, View, ViewError, ViewRequest, build_view,
    query_granted, query_refusal, trait_kinds, trait_value_kind,
};
