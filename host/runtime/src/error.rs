//! Errors of installing and calling plugins. Two channels (STYLE): a plugin
//! that *fails* returns a [`PluginError`]; a plugin that *traps* or breaks a
//! limit is a [`CallError::Trap`] naming the plugin, its version and the reason.

use std::fmt;
use std::time::Duration;

/// Why installing a component failed. Each message names the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(
        "the component has no `tessera:wit-version` section and imports no tessera:plugin \
         interface, so its contract version is unknown; build it with a Tessera SDK"
    )]
    MissingVersion,
    #[error(
        "the component was built against tessera:plugin@{found}, which this host does not \
         serve (it serves {supported}); rebuild it with an SDK for a served version"
    )]
    UnsupportedVersion { found: String, supported: String },
    #[error("the component's contract version is ambiguous: {0}")]
    ConflictingVersion(String),
    #[error("compiling the component failed: {0}")]
    Compile(String),
    #[error("the component imports `{import}`, which is not granted to this {kind} plugin: {why}")]
    UngrantedImport {
        import: String,
        kind: String,
        why: String,
    },
    #[error(
        "the component does not implement the `{world}` world of tessera:plugin@{version}: {detail}"
    )]
    WorldMismatch {
        world: String,
        version: String,
        detail: String,
    },
    /// The component exports a `tessera:plan` interface the host cannot
    /// serve: from a kind of plugin that does not plan, in a version the
    /// host does not serve, or with other types than the served version's.
    #[error("the component's export `{export}` is refused: {detail}")]
    PlanExport { export: String, detail: String },
    #[error("the plugin's requested limits are refused: {0}")]
    LimitsOverCap(String),
    #[error("describe() failed: {0}")]
    Describe(Box<CallError>),
    #[error("the plugin's manifest is invalid: {0}")]
    InvalidManifest(String),
    #[error("the component cache failed: {0}")]
    Cache(String),
}

/// The error a plugin returned (the WIT `error` variant), independent of the
/// contract version it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why the sandbox stopped a call. Every one of these is contained: the host
/// keeps serving, and the plugin's trap count goes up.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrapReason {
    /// The fuel budget ran out (a long or endless computation).
    OutOfFuel { budget: u64 },
    /// The wall-time deadline passed (epoch interruption).
    Timeout { limit: Duration },
    /// Linear memory would have grown past the limit.
    MemoryLimit { limit: u64, requested: u64 },
    /// A table would have grown past the limit.
    TableLimit { limit: u64, requested: u64 },
    /// The wasm call stack overflowed.
    StackOverflow,
    /// A load or store outside linear memory (often a shadow-stack overflow
    /// from deep recursion in compiled languages).
    MemoryOutOfBounds,
    /// The plugin panicked or reached unreachable code.
    Panic,
    /// The plugin tried to sleep or wait on I/O; plugins may not block.
    Blocked,
    /// Too many host calls in one call.
    HostCallLimit { limit: u64 },
    /// Too many bytes copied out of the guest through host calls.
    GuestBytesLimit { limit: u64 },
    /// The result was larger than the output cap (measured after lifting).
    OutputTooLarge { limit: u64, size: u64 },
    /// One transfer out of the guest (a result, or a host call's arguments)
    /// would have made the host copy more than the output cap: stopped while
    /// copying, before the host allocated it.
    TransferTooLarge { limit: u64 },
    /// Any other wasm trap.
    Other(String),
}

impl fmt::Display for TrapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapReason::OutOfFuel { budget } => write!(f, "out of fuel (budget {budget})"),
            TrapReason::Timeout { limit } => write!(f, "time limit of {limit:?} exceeded"),
            TrapReason::MemoryLimit { limit, requested } => {
                write!(
                    f,
                    "memory limit of {limit} bytes exceeded (asked for {requested})"
                )
            }
            TrapReason::TableLimit { limit, requested } => {
                write!(
                    f,
                    "table limit of {limit} elements exceeded (asked for {requested})"
                )
            }
            TrapReason::StackOverflow => f.write_str("call stack overflow"),
            TrapReason::MemoryOutOfBounds => {
                f.write_str("memory access out of bounds (often a stack overflow in the guest)")
            }
            TrapReason::Panic => f.write_str("panicked (reached unreachable code)"),
            TrapReason::Blocked => f.write_str("tried to block (sleep or wait on I/O)"),
            TrapReason::HostCallLimit { limit } => write!(f, "more than {limit} host calls"),
            TrapReason::GuestBytesLimit { limit } => {
                write!(f, "more than {limit} bytes passed to host calls")
            }
            TrapReason::OutputTooLarge { limit, size } => {
                write!(f, "result of {size} bytes is over the limit of {limit}")
            }
            TrapReason::TransferTooLarge { limit } => {
                write!(f, "tried to pass the host more than {limit} bytes at once")
            }
            TrapReason::Other(message) => write!(f, "trapped: {message}"),
        }
    }
}

/// Why a plugin call did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The sandbox stopped the plugin.
    #[error("plugin {plugin} was stopped: {reason}")]
    Trap { plugin: String, reason: TrapReason },
    /// The plugin returned an error.
    #[error("plugin {plugin} failed: {error}")]
    Plugin { plugin: String, error: PluginError },
    /// The plugin returned something that breaks the contract (wrong row
    /// count, unknown action, propensity outside 0..=1, …).
    #[error("plugin {plugin} returned an invalid result: {detail}")]
    InvalidOutput { plugin: String, detail: String },
    /// The plugin trapped too often and is quarantined until an operator releases it.
    #[error(
        "plugin {plugin} is quarantined after {traps} traps (last: {last}); an operator must release it"
    )]
    Quarantined {
        plugin: String,
        traps: usize,
        last: TrapReason,
    },
    /// The parameters do not match the plugin's schema.
    #[error("invalid parameters for plugin {plugin}: {detail}")]
    InvalidParams { plugin: String, detail: String },
    /// The plugin does not offer this operation (e.g. a push-only connector asked to pull).
    #[error("plugin {plugin} does not support `{operation}`")]
    Unsupported {
        plugin: String,
        operation: &'static str,
    },
    /// The host could not set the call up (state store failed, …).
    #[error("the host could not run plugin {plugin}: {detail}")]
    Host { plugin: String, detail: String },
    /// Every instance slot stayed in use for the runtime's `slot_wait`:
    /// the host is overloaded. Nothing ran; the call may be retried.
    #[error(
        "plugin {plugin} could not run: all {slots} plugin instance slots stayed busy for {waited_ms} ms"
    )]
    Busy {
        plugin: String,
        slots: u32,
        waited_ms: u64,
    },
}

impl CallError {
    /// The trap reason, if the sandbox stopped the call.
    pub fn trap_reason(&self) -> Option<&TrapReason> {
        match self {
            CallError::Trap { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
