//! The [`Runtime`]: one wasmtime `Engine` per process (component model,
//! pooling allocator, copy-on-write memory images, fuel, epoch interruption
//! driven by a ticker thread) and the component cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::plugin::{InstallRequest, Plugin};
use crate::{ComponentCache, InstallError, QuarantinePolicy, RuntimeConfig};

/// The plugin runtime. Cheap to clone; the engine and ticker stop when the
/// last clone and every plugin installed through it are dropped.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

#[derive(Debug)]
pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub config: RuntimeConfig,
    pub cache: ComponentCache,
    pub quarantine: QuarantinePolicy,
    /// The pool's instance slots, handed to calls in turn.
    pub slots: Slots,
    /// How many of them jobs' evaluations keep between calls now
    /// ([`RuntimeInner::take_keep`]).
    kept: std::sync::Mutex<u32>,
    ticker: Option<Ticker>,
}

/// A counting gate over the pooling allocator's instance slots: a call
/// takes a slot before it instantiates and gives it back when its store is
/// gone, so that more concurrent calls than slots wait their turn instead
/// of failing in the allocator.
#[derive(Debug)]
pub(crate) struct Slots {
    total: u32,
    free: Mutex<u32>,
    freed: Condvar,
}

/// A taken slot; given back on drop. It holds the runtime, so a store kept
/// across calls ([`crate::Evaluation`]) can hold its slot as long.
#[derive(Debug)]
pub(crate) struct Slot(Arc<RuntimeInner>);

impl Slots {
    fn new(total: u32) -> Self {
        Self {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Waits at most `wait` for a free slot and takes it (false: still busy).
    fn take(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        true
    }

    fn give_back(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        drop(free);
        self.freed.notify_one();
    }
}

impl RuntimeInner {
    /// Takes a pool slot, waiting at most the configured `slot_wait` for
    /// one (none: every slot is still busy).
    pub fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        self.slots
            .take(self.config.slot_wait)
            .then(|| Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.give_back();
    }
}

/// Leave to keep a store between the calls of a job ([`crate::Evaluation`]);
/// given back on drop.
#[derive(Debug)]
pub(crate) struct Keep(Arc<RuntimeInner>);

impl RuntimeInner {
    /// At most a quarter of the pool's slots (at least one) are kept by
    /// jobs between their calls at any time: the rest always serve other
    /// calls, among them the plans a job's pages ask for while it keeps
    /// its slot. None: that many are kept now (the job's call then runs in
    /// a store of its own, as any call).
    pub fn take_keep(self: &Arc<Self>) -> Option<Keep> {
        let most = (self.slots.total() / 4).max(1);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        (*kept < most).then(|| {
            *kept += 1;
            Keep(self.clone())
        })
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        *self.0.kept.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
    }
}

#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        if let Some(ticker) = &mut self.ticker {
            ticker.stop.store(true, Ordering::Relaxed);
            if let Some(handle) = ticker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin runtime: {0}")]
pub struct StartError(String);

impl Runtime {
    /// Starts a runtime with the given engine-wide configuration.
    pub fn new(config: RuntimeConfig) -> Result<Self, StartError> {
        Self::with_quarantine(config, QuarantinePolicy::default())
    }

    /// Starts a runtime with a quarantine policy of its own.
    pub fn with_quarantine(
        config: RuntimeConfig,
        quarantine: QuarantinePolicy,
    ) -> Result<Self, StartError> {
        let engine =
            Engine::new(&engine_config(&config)).map_err(|e| StartError(format!("{e:#}")))?;
        let cache = ComponentCache::new(&engine, config.cache_dir.clone())
            .map_err(|e| StartError(e.to_string()))?;
        let ticker = config.epochs.then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let tick = config.epoch_tick;
            let (engine, flag) = (engine.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name("tessera-epoch".into())
                .spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| StartError(format!("cannot start the epoch ticker: {e}")));
            handle.map(|handle| Ticker {
                stop,
                handle: Some(handle),
            })
        });
        let ticker = ticker.transpose()?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                slots: Slots::new(config.concurrent_calls.max(1)),
                kept: std::sync::Mutex::new(0),
                engine,
                config,
                cache,
                quarantine,
                ticker,
            }),
        })
    }

    /// The engine-wide configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The wasmtime engine (for benchmarks and tools).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Installs a component: reads its contract version, compiles it (or loads
    /// it from the host's cache), checks every import against the grants,
    /// type-checks it against its world, and asks it to describe itself.
    pub fn install(&self, bytes: &[u8], request: InstallRequest) -> Result<Plugin, InstallError> {
        Plugin::install(self.inner.clone(), bytes, request)
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let caps = &config.caps;
    let slots = config.concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        // Python components hold ~14 core instances, several memories and tables.
        .total_core_instances(slots.saturating_mul(16))
        .total_memories(slots.saturating_mul(4))
        .total_tables(slots.saturating_mul(8))
        .max_core_instances_per_component(caps.instances as u32)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        .max_memory_size(caps.memory_bytes as usize)
        .table_elements(caps.table_elements as usize)
        // Resetting a slot by memset and keeping it resident halves a fresh
        // 10,000-row call (page faults dominated it; docs/BENCHMARKS.md), and
        // PAGEMAP_SCAN (Linux >= 6.7) resets only the pages a call dirtied.
        .linear_memory_keep_resident(config.keep_resident)
        .table_keep_resident(config.keep_resident)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(config.fuel)
        .epoch_interruption(config.epochs)
        .memory_init_cow(true)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}
