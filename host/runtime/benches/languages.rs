//! The same segment rule in Rust, Python and JavaScript: the `threshold`
//! plugin (`total_spend >= 500`) and its twins, which keep the same
//! contract (`tests/e2e/contract.rs`). Run with
//! `cargo bench -p tessera-runtime --bench languages`; results and their
//! reading are in `docs/BENCHMARKS.md` (section 11).
//!
//! For each language, in one run, with the Rust plugin as the baseline:
//! - the component's size;
//! - compiling it at install (a runtime without a compiled-component cache),
//!   and installing it again from a warm cache (what a restart costs);
//! - a call on a 1-row batch in a fresh instance (what every production
//!   call pays: instantiation and the call), and the same call in one
//!   reused instance (the call alone, instantiation spread over 64 calls);
//! - a call on a 10,000-row batch in a fresh instance;
//! - the fuel (≈ wasm instructions) and peak linear memory of each call.
//!
//! Times are medians of repeated runs (`--seconds` of calls per case, at
//! least 5 calls). Not criterion: a cold compile of a Python component
//! takes seconds, and what matters is the ratio between languages in the
//! same run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind, Runtime, RuntimeConfig,
};

const THRESHOLD: f64 = 500.0;
const ROWS: usize = 10_000;
const REUSED_CALLS: usize = 64;

fn runtime(cache_dir: Option<std::path::PathBuf>) -> Runtime {
    Runtime::new(RuntimeConfig {
        concurrent_calls: 4,
        cache_dir,
        ..RuntimeConfig::default()
    })
    .expect("the runtime starts")
}

fn install(runtime: &Runtime, bytes: &[u8]) -> Plugin {
    let request = InstallRequest {
        kind: PluginKind::Segment,
        grants: Grants::default(),
        limits: Limits::default(),
        tenant: "bench".into(),
        installation: "bench".into(),
        state: Arc::new(MemoryState::new()),
    };
    runtime
        .install(bytes, request)
        .unwrap_or_else(|e| panic!("install failed: {e}"))
}

/// Deterministic spend values spread over 0..1000 (about half are members).
fn spend(rows: usize) -> Vec<f64> {
    (0..rows as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) % 100_000) as f64 / 100.0)
        .collect()
}

fn batch(rows: usize) -> ProfileBatch {
    ProfileBatch {
        rows: rows as u32,
        keys: (0..rows as u64).collect(),
        fields: vec![Column {
            data: ColumnData::Number(spend(rows)),
            present: Vec::new(),
        }],
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

/// The median of `f`'s times, run for about `budget` (at least 5 times).
fn median(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 5 || (started.elapsed() < budget && times.len() < 100_000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    times[times.len() / 2]
}

struct Measured {
    name: &'static str,
    size: usize,
    compile: Duration,
    from_cache: Duration,
    fresh_1: Duration,
    reused_1: Duration,
    fresh_10k: Duration,
    fuel_1: u64,
    fuel_10k: u64,
    memory_kib: u64,
}

fn measure(name: &'static str, bytes: &[u8], budget: Duration) -> Measured {
    let compile = median(Duration::ZERO, || {
        black_box(install(&runtime(None), bytes));
    });
    let cache = tempfile::tempdir().expect("a temporary directory");
    install(&runtime(Some(cache.path().to_owned())), bytes);
    let from_cache = median(Duration::ZERO, || {
        black_box(install(&runtime(Some(cache.path().to_owned())), bytes));
    });
    let rt = runtime(None);
    let plugin = install(&rt, bytes);
    let params = [FieldValue {
        name: "threshold".into(),
        value: Value::Number(THRESHOLD),
    }];
    let one = batch(1);
    let many = vec![one.clone(); REUSED_CALLS];
    let large = batch(ROWS);
    let small = plugin.evaluate(&params, &one).expect("evaluate");
    let big = plugin.evaluate(&params, &large).expect("evaluate");
    let expected: Vec<u8> = spend(ROWS)
        .iter()
        .map(|v| u8::from(*v >= THRESHOLD))
        .collect();
    assert_eq!(big.value.member, expected, "{name}: the rule's answer");
    let fresh_1 = median(budget, || {
        black_box(plugin.evaluate(&params, &one).expect("evaluate"));
    });
    let reused_1 = median(budget, || {
        let mut evaluation = plugin.evaluation(&params).expect("evaluation");
        for batch in &many {
            black_box(evaluation.evaluate(batch).expect("evaluate"));
        }
    }) / REUSED_CALLS as u32;
    let fresh_10k = median(budget, || {
        black_box(plugin.evaluate(&params, &large).expect("evaluate"));
    });
    Measured {
        name,
        size: bytes.len(),
        compile,
        from_cache,
        fresh_1,
        reused_1,
        fresh_10k,
        fuel_1: small.cost.fuel,
        fuel_10k: big.cost.fuel,
        memory_kib: big.cost.peak_memory >> 10,
    }
}

fn read(path: Result<&str, &str>, language: &str) -> Vec<u8> {
    let path = path.unwrap_or_else(|why| panic!("the {language} twin was not built: {why}"));
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.1} µs", ms * 1e3)
    }
}

fn main() {
    let mut seconds = 2.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .filter(|s: &f64| (0.1..=60.0).contains(s))
                .expect("--seconds takes 0.1 to 60");
        }
    }
    let budget = Duration::from_secs_f64(seconds);
    let python = read(tessera_guests::test_programs::THRESHOLD_PY, "Python");
    let javascript = read(tessera_guests::test_programs::THRESHOLD_JS, "JavaScript");
    let all = [
        measure("Rust", tessera_guests::plugins::THRESHOLD, budget),
        measure("Python", &python, budget),
        measure("JavaScript", &javascript, budget),
    ];
    let rust = &all[0];
    println!(
        "\nthe threshold rule in three languages ({seconds} s of calls per case; ratio to Rust)\n"
    );
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    println!("| | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(all.len()));
    let row = |what: &str, cell: &dyn Fn(&Measured) -> String| {
        let cells: Vec<String> = all.iter().map(cell).collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    let ratio = |d: Duration, base: Duration| d.as_secs_f64() / base.as_secs_f64();
    row("component size", &|m| {
        format!(
            "{:.1} MB ({:.0}×)",
            m.size as f64 / 1e6,
            m.size as f64 / rust.size as f64
        )
    });
    row("compile at install", &|m| {
        format!("{} ({:.0}×)", ms(m.compile), ratio(m.compile, rust.compile))
    });
    row("install from the compiled cache", &|m| {
        format!(
            "{} ({:.0}×)",
            ms(m.from_cache),
            ratio(m.from_cache, rust.from_cache)
        )
    });
    row("1 row, fresh instance", &|m| {
        format!("{} ({:.1}×)", ms(m.fresh_1), ratio(m.fresh_1, rust.fresh_1))
    });
    row("1 row, reused instance", &|m| {
        format!(
            "{} ({:.1}×)",
            ms(m.reused_1),
            ratio(m.reused_1, rust.reused_1)
        )
    });
    row("10,000 rows, fresh instance", &|m| {
        format!(
            "{} ({:.1}×)",
            ms(m.fresh_10k),
            ratio(m.fresh_10k, rust.fresh_10k)
        )
    });
    row("fuel, 1 row (fresh)", &|m| m.fuel_1.to_string());
    row("fuel, 10,000 rows (fresh)", &|m| m.fuel_10k.to_string());
    row("peak linear memory, 10,000 rows", &|m| {
        format!("{:.1} MiB", m.memory_kib as f64 / 1024.0)
    });
}
