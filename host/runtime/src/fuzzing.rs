//! The host's checks of what a plugin returns, reachable from the fuzz
//! targets in `fuzz/` (feature `fuzzing`); the host calls the same functions.
//! Nothing here is an API for embedders: it only forwards to the real checks.

use crate::api::segments::Memberships;
use crate::api::strategies::{ActionSpec, Decision, Forecast};
use crate::api::types::Manifest;
use crate::bindings::plan_v0_1::Needs;
use crate::output::OutputSize;

/// [`crate::output`]'s check of a segment's memberships for `rows` rows.
pub fn check_memberships(out: &Memberships, rows: u32) -> Result<(), String> {
    crate::output::check_memberships(out, rows)
}

/// The check of a segment's or strategy's plan.
pub fn check_needs(out: &Needs) -> Result<(), String> {
    crate::output::check_needs(out)
}

/// The check of a strategy's declared or planned actions.
pub fn check_actions(actions: &[ActionSpec]) -> Result<(), String> {
    crate::output::check_actions(actions)
}

/// The check of a strategy's decisions for `rows` rows among `actions`.
pub fn check_decisions(out: &[Decision], rows: u32, actions: usize) -> Result<(), String> {
    crate::output::check_decisions(out, rows, actions)
}

/// The check of a strategy's forecast among `actions`.
pub fn check_forecast(out: &Forecast, actions: usize) -> Result<(), String> {
    crate::output::check_forecast(out, actions)
}

/// The check of a plugin's manifest at install.
pub fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    crate::manifest::check_manifest(manifest)
}

/// The bytes counted against the output cap for a manifest.
pub fn manifest_size(out: &Manifest) -> u64 {
    out.output_size()
}

/// The bytes counted against the output cap for a plan.
pub fn needs_size(out: &Needs) -> u64 {
    out.output_size()
}

/// The bytes counted against the output cap for memberships.
pub fn memberships_size(out: &Memberships) -> u64 {
    out.output_size()
}

/// The bytes counted against the output cap for a forecast.
pub fn forecast_size(out: &Forecast) -> u64 {
    out.output_size()
}
