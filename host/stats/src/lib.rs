//! Statistics for Tessera's strategy simulation and effect evaluation:
//! holdout assignment ([`assign`]), off-policy estimates of a strategy's value
//! from logged decisions ([`ope`]) and treatment-versus-control evaluation
//! ([`uplift`]).
//!
//! Everything here is a pure function or a small accumulator: no I/O, no
//! clocks, no randomness. Accumulators keep counts, means and co-moments
//! only, so the host can aggregate millions of subjects (or merge shards)
//! without holding them in memory. Intervals are two-sided at 95%; each
//! function's documentation states the method and its assumptions, and
//! `docs/strategies.md` explains them for readers of the reports.

pub mod assign;
