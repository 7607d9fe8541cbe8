//! Host bindings, one module per contract version the host serves. A released
//! version's module is never edited; a new version gets a new module, and the
//! runtime picks the module from the version embedded in the component.

pub mod v0_1;

/// Contract versions this host serves, newest last.
pub const SUPPORTED: &[&str] = &["0.1.0"];
