//! Host bindings, one module per contract version the host serves. A released
//! version's module is never edited; a new version gets a new module, and the
//! runtime picks the module from the version embedded in the component.
//!
//! Optional capabilities that are packages of their own (`tessera:plan`,
//! `tessera:strategy`) get one module per version too, named after the
//! package; the runtime finds them among a component's exports.

pub mod plan_v0_1;
pub mod strategy_v0_1;
pub mod v0_1;

/// Contract versions this host serves, newest last.
pub const SUPPORTED: &[&str] = &["0.1.0"];

/// Versions of the `tessera:plan` capability this host serves, newest last.
pub const PLAN_SUPPORTED: &[&str] = &["0.1.0"];

/// Versions of the `tessera:strategy` capability this host serves, newest last.
pub const STRATEGY_SUPPORTED: &[&str] = &["0.1.0"];
