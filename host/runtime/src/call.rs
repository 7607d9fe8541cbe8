//! What a call returns besides its result — its [`Cost`] and the plugin's log
//! lines — and how a failed call's error is classified.

use std::time::Duration;

use wasmtime::Trap;

use crate::TrapReason;
use crate::host::{HostFault, HostLimit, NotServed};

/// What one call cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Fuel consumed (≈ wasm instructions executed).
    pub fuel: u64,
    /// Fuel the call was allowed.
    pub fuel_budget: u64,
    /// Wall time from instantiation to result.
    pub wall: Duration,
    /// Largest linear memory of the instance during the call, in bytes.
    pub peak_memory: u64,
    /// Host calls the plugin made.
    pub host_calls: u64,
    /// Bytes copied out of the guest by host calls.
    pub guest_bytes: u64,
    /// Bytes received by outbound HTTP requests (headers and bodies).
    pub http_bytes: u64,
    /// Approximate size of the result, in bytes.
    pub output_bytes: u64,
}

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line a plugin logged during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// A call's result with its cost and logs.
#[derive(Debug, Clone)]
pub struct Called<T> {
    pub value: T,
    pub cost: Cost,
    pub logs: Vec<LogLine>,
    /// Log lines over the per-call budget, dropped.
    pub logs_dropped: u32,
}

impl<T> Called<T> {
    /// An answer the host gave without calling the plugin (declared at
    /// install, or remembered): no cost, no logs.
    pub fn free(value: T) -> Self {
        Called {
            value,
            cost: Cost::default(),
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }
}

/// What went wrong inside wasm: the plugin's fault (a trap, counted towards
/// quarantine) or the host's.
#[derive(Debug)]
pub(crate) enum Failure {
    Trap(TrapReason),
    Host(String),
}

/// Classifies a wasmtime error from instantiating or calling a plugin.
/// wasmtime's message when a transfer out of the guest exceeds the store's
/// hostcall fuel (its error type is private, so the message is matched).
const TRANSFER_EXHAUSTED: &str = "too much data is being copied between the host and the guest";

pub(crate) fn classify(
    error: &wasmtime::Error,
    fuel_budget: u64,
    time_limit: Duration,
    transfer_limit: u64,
) -> Failure {
    for cause in error.chain() {
        if let Some(limit) = cause.downcast_ref::<HostLimit>() {
            return Failure::Trap(match limit {
                HostLimit::HostCalls { limit } => TrapReason::HostCallLimit { limit: *limit },
                HostLimit::GuestBytes { limit } => TrapReason::GuestBytesLimit { limit: *limit },
                HostLimit::Memory { limit, requested } => TrapReason::MemoryLimit {
                    limit: *limit,
                    requested: *requested,
                },
                HostLimit::Table { limit, requested } => TrapReason::TableLimit {
                    limit: *limit,
                    requested: *requested,
                },
                HostLimit::Blocking => TrapReason::Blocked,
            });
        }
        if let Some(NotServed(what)) = cause.downcast_ref::<NotServed>() {
            return Failure::Trap(TrapReason::Other((*what).to_string()));
        }
        if let Some(fault) = cause.downcast_ref::<HostFault>() {
            return Failure::Host(fault.0.clone());
        }
        // Every pool slot busy: the host is overloaded, the plugin did nothing wrong.
        if let Some(full) = cause.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            return Failure::Host(full.to_string());
        }
        if let Some(trap) = cause.downcast_ref::<Trap>() {
            return Failure::Trap(match trap {
                Trap::OutOfFuel => TrapReason::OutOfFuel {
                    budget: fuel_budget,
                },
                Trap::Interrupt => TrapReason::Timeout { limit: time_limit },
                Trap::StackOverflow => TrapReason::StackOverflow,
                Trap::MemoryOutOfBounds => TrapReason::MemoryOutOfBounds,
                Trap::UnreachableCodeReached => TrapReason::Panic,
                other => TrapReason::Other(other.to_string()),
            });
        }
    }
    if error
        .chain()
        .any(|cause| cause.to_string().contains(TRANSFER_EXHAUSTED))
    {
        return Failure::Trap(TrapReason::TransferTooLarge {
            limit: transfer_limit,
        });
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return Failure::Trap(TrapReason::Other(trap.to_string()));
    }
    Failure::Trap(TrapReason::Other(format!("{error:#}")))
}
