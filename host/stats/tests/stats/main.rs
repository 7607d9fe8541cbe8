//! Tessera-stats' tests: seeded simulations with planted truths (does each
//! interval cover what was planted as often as it claims?) and edge cases.

mod assign;
mod ope;
mod uplift;

/// Share of `hits` in `total`, for coverage figures.
fn share(hits: usize, total: usize) -> f64 {
    hits as f64 / total as f64
}
