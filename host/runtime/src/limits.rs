//! Sandbox limits: per-plugin [`Limits`] (what one call may use) and the
//! engine-wide [`RuntimeConfig`] (pool sizes and the caps no grant may exceed).
//! The defaults and why they were chosen are in `docs/architecture.md`.

use std::sync::Arc;
use std::time::Duration;

use crate::outbound::{Resolve, SystemResolver, TrustedRoots};

/// What one plugin call may use. Fuel and time scale with the call's size
/// (rows of a batch, bytes of a chunk, actions to deliver), so a batch of
/// 10,000 gets proportionally more than a batch of one.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Fuel for any call, before scaling (one unit ≈ one wasm instruction).
    pub fuel_base: u64,
    /// Extra fuel per unit of work (row, 64-byte block, action).
    pub fuel_per_unit: u64,
    /// Wall time for any call, before scaling.
    pub time_base: Duration,
    /// Extra wall time per unit of work.
    pub time_per_unit: Duration,
    /// Linear memory, all memories of the instance together.
    pub memory_bytes: u64,
    /// Elements of all tables together.
    pub table_elements: u64,
    /// Core instances, tables and memories one component may create.
    pub instances: usize,
    /// Host calls (log, clock, state) in one call.
    pub host_calls: u64,
    /// Bytes the host copies out of the guest through host calls
    /// (log lines, state keys and values).
    pub guest_bytes: u64,
    /// Size of one call's result, measured after lifting it.
    pub output_bytes: u64,
    /// Log lines kept per call; the rest are dropped and counted.
    pub log_lines: u32,
    /// Longest log line kept; longer ones are cut.
    pub log_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_base: 200_000_000,
            fuel_per_unit: 50_000,
            time_base: Duration::from_secs(2),
            time_per_unit: Duration::from_micros(200),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 64,
            host_calls: 100_000,
            guest_bytes: 8 << 20,
            output_bytes: 32 << 20,
            log_lines: 100,
            log_line_bytes: 2048,
        }
    }
}

impl Limits {
    /// Fuel for a call of `units` units of work.
    pub fn fuel_for(&self, units: u64) -> u64 {
        self.fuel_base
            .saturating_add(self.fuel_per_unit.saturating_mul(units))
    }

    /// Wall time for a call of `units` units of work.
    pub fn time_for(&self, units: u64) -> Duration {
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.time_base
            .saturating_add(self.time_per_unit.saturating_mul(units))
    }

    /// Checks these limits against the operator's caps: every limit must be
    /// at or below its cap.
    pub fn check_within(&self, caps: &Limits) -> Result<(), String> {
        let checks: [(&str, u128, u128); 12] = [
            ("fuel_base", self.fuel_base.into(), caps.fuel_base.into()),
            (
                "fuel_per_unit",
                self.fuel_per_unit.into(),
                caps.fuel_per_unit.into(),
            ),
            (
                "time_base (ms)",
                self.time_base.as_millis(),
                caps.time_base.as_millis(),
            ),
            (
                "time_per_unit (µs)",
                self.time_per_unit.as_micros(),
                caps.time_per_unit.as_micros(),
            ),
            ("memory", self.memory_bytes.into(), caps.memory_bytes.into()),
            (
                "table_elements",
                self.table_elements.into(),
                caps.table_elements.into(),
            ),
            ("instances", self.instances as u128, caps.instances as u128),
            ("host_calls", self.host_calls.into(), caps.host_calls.into()),
            (
                "guest_bytes",
                self.guest_bytes.into(),
                caps.guest_bytes.into(),
            ),
            (
                "output_bytes",
                self.output_bytes.into(),
                caps.output_bytes.into(),
            ),
            ("log_lines", self.log_lines.into(), caps.log_lines.into()),
            (
                "log_line_bytes",
                self.log_line_bytes as u128,
                caps.log_line_bytes as u128,
            ),
        ];
        match checks.iter().find(|(_, asked, cap)| asked > cap) {
            Some((what, asked, cap)) => Err(format!(
                "{what} of {asked} is over the operator cap of {cap}"
            )),
            None => Ok(()),
        }
    }
}

/// Engine-wide settings: fixed for the life of a [`crate::Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The caps no plugin's limits may exceed; also the pool's slot sizes.
    pub caps: Limits,
    /// Plugin calls that may run at once (the pool's instance slots).
    pub concurrent_calls: u32,
    /// How long a call waits for a free instance slot when all
    /// `concurrent_calls` are in use before it fails with
    /// [`crate::CallError::Busy`].
    pub slot_wait: Duration,
    /// How often the epoch ticker advances; the granularity of time limits.
    pub epoch_tick: Duration,
    /// Fuel metering. Off only in benchmarks that measure its cost.
    pub fuel: bool,
    /// Epoch interruption. Off only in benchmarks that measure its cost.
    pub epochs: bool,
    /// Where compiled components are cached; `None` keeps them in memory only.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bytes of each pool slot's linear memory (and of its tables) reset with
    /// `memset` and kept resident when a call ends, instead of being returned
    /// to the kernel: the next call on that slot takes no page faults there.
    /// Costs up to this much resident memory per used slot.
    pub keep_resident: usize,
    /// How connectors' outbound requests resolve host names: the system's
    /// resolver, or a [`crate::StaticResolver`] that pins names to addresses
    /// (tests, partners reached over a private link). What it returns is
    /// vetted like any other answer.
    pub resolver: Arc<dyn Resolve>,
    /// The certificate authorities connectors' HTTPS requests trust:
    /// Mozilla's roots, or only an operator's bundle. Certificates are
    /// always verified.
    pub outbound_roots: TrustedRoots,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            caps: Limits {
                fuel_base: 20_000_000_000,
                fuel_per_unit: 5_000_000,
                time_base: Duration::from_secs(60),
                time_per_unit: Duration::from_millis(10),
                memory_bytes: 1 << 30,
                table_elements: 200_000,
                instances: 128,
                host_calls: 10_000_000,
                guest_bytes: 256 << 20,
                output_bytes: 512 << 20,
                log_lines: 10_000,
                log_line_bytes: 16 << 10,
            },
            concurrent_calls: 256,
            slot_wait: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(1),
            fuel: true,
            epochs: true,
            cache_dir: None,
            keep_resident: 2 << 20,
            resolver: Arc::new(SystemResolver),
            outbound_roots: TrustedRoots::default(),
        }
    }
}
