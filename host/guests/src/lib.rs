//! The wasm artifacts Tessera is built with, compiled by `build.rs` for
//! `wasm32-wasip2` in a nested cargo of their own (no manual pre-build step).
//! First-party plugins are embedded as bytes; test programs are named by path.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Python plugins (the examples, the hostile guest) built from source for tests.
#[cfg(feature = "test-programs")]
pub mod python;
