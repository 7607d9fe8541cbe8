//! Benchmarks of the plugin call path. Run with
//! `cargo bench -p tessera-runtime --bench runtime`; results and their reading
//! are in `docs/BENCHMARKS.md`.
//!
//! Every group has a baseline measured in the same run, and the ratios to it
//! are printed at the end (from the medians criterion saved for this run), so
//! the figures stay comparable on a shared, noisy machine.
//!
//! Groups:
//! - `call`: a no-op call (and the threshold rule) on a batch of 1 row, in a
//!   fresh instance per call vs one instance reused for many calls.
//! - `rule_10k`: `total_spend >= 500` over 10,000 rows natively vs in the
//!   threshold plugin (fresh and reused instance) vs the no-op plugin (which
//!   isolates copying the batch in and the memberships out).
//! - `limits_10k`: the 10,000-row threshold call with fuel and epoch checks
//!   on and off (fresh instance; both on vs both off also in a reused one).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Bencher, BenchmarkGroup, Criterion, measurement::WallTime};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind, Runtime, RuntimeConfig,
};

/// Rows of the large batch.
const ROWS: usize = 10_000;
/// Calls of 1 row made in one reused instance (one `Plugin::evaluation`).
const SMALL_CALLS_PER_INSTANCE: usize = 256;
/// Calls of `ROWS` rows made in one reused instance.
const LARGE_CALLS_PER_INSTANCE: usize = 16;
/// The rule: `total_spend >= THRESHOLD`.
const THRESHOLD: f64 = 500.0;

fn runtime(fuel: bool, epochs: bool) -> Runtime {
    Runtime::new(RuntimeConfig {
        concurrent_calls: 16,
        fuel,
        epochs,
        ..RuntimeConfig::default()
    })
    .expect("the runtime starts")
}

/// Installs a segment plugin the way a segment is installed in production:
/// default limits, no state grant.
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

fn noop_bytes() -> Vec<u8> {
    let path = tessera_guests::test_programs::NOOP;
    std::fs::read(path).unwrap_or_else(|e| panic!("test program {path} is missing: {e}"))
}

fn threshold_params() -> Vec<FieldValue> {
    vec![FieldValue {
        name: "threshold".into(),
        value: Value::Number(THRESHOLD),
    }]
}

/// Deterministic spend values spread over 0..1000 (about half are members).
fn spend(rows: usize) -> Vec<f64> {
    (0..rows as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) % 100_000) as f64 / 100.0)
        .collect()
}

/// A batch with one dense `total_spend` number column (as the tests build it).
fn spend_batch(values: &[f64]) -> ProfileBatch {
    ProfileBatch {
        rows: values.len() as u32,
        keys: (0..values.len() as u64).collect(),
        fields: vec![Column {
            data: ColumnData::Number(values.to_vec()),
            present: Vec::new(),
        }],
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

/// A batch of `rows` rows with no keys and no columns: what is left of a call
/// of the no-op plugin is instantiation and lifting `rows` memberships out.
fn bare_batch(rows: usize) -> ProfileBatch {
    ProfileBatch {
        rows: rows as u32,
        keys: Vec::new(),
        fields: Vec::new(),
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// One fresh instance per call.
fn fresh(b: &mut Bencher<'_>, plugin: &Plugin, params: &[FieldValue], batch: &ProfileBatch) {
    b.iter(|| black_box(plugin.evaluate(params, batch).expect("evaluate")));
}

/// Calls made `batches.len()` at a time in one instance; reports the time per
/// call (per batch), so one instantiation is spread over `batches.len()` calls.
fn reused(b: &mut Bencher<'_>, plugin: &Plugin, params: &[FieldValue], batches: &[ProfileBatch]) {
    b.iter_custom(|iters| {
        let per_instance = batches.len() as u64;
        let rounds = iters.div_ceil(per_instance);
        let started = Instant::now();
        for _ in 0..rounds {
            let mut evaluation = plugin.evaluation(params).expect("evaluation");
            for batch in batches {
                black_box(evaluation.evaluate(batch).expect("evaluate"));
            }
        }
        started
            .elapsed()
            .mul_f64(iters as f64 / (rounds * per_instance) as f64)
    });
}

fn call(c: &mut Criterion, rt: &Runtime) {
    let noop = install(rt, &noop_bytes());
    let threshold = install(rt, tessera_guests::plugins::THRESHOLD);
    let params = threshold_params();
    let one = spend_batch(&[600.0]);
    let many = vec![one.clone(); SMALL_CALLS_PER_INSTANCE];

    let mut group = c.benchmark_group("call");
    configure(&mut group);
    group.bench_function("noop_fresh", |b| fresh(b, &noop, &[], &one));
    group.bench_function("noop_reused", |b| reused(b, &noop, &[], &many));
    group.bench_function("threshold_fresh", |b| fresh(b, &threshold, &params, &one));
    group.bench_function("threshold_reused", |b| {
        reused(b, &threshold, &params, &many)
    });
    group.finish();
}

fn rule_10k(c: &mut Criterion, rt: &Runtime) {
    let noop = install(rt, &noop_bytes());
    let threshold = install(rt, tessera_guests::plugins::THRESHOLD);
    let params = threshold_params();
    let values = spend(ROWS);
    let batch = spend_batch(&values);
    let batches = vec![batch.clone(); LARGE_CALLS_PER_INSTANCE];
    let bare = bare_batch(ROWS);
    let bare_batches = vec![bare.clone(); LARGE_CALLS_PER_INSTANCE];

    // The plugin must agree with the native rule before it is timed.
    let native: Vec<u8> = values.iter().map(|v| u8::from(*v >= THRESHOLD)).collect();
    let called = threshold.evaluate(&params, &batch).expect("evaluate");
    assert_eq!(
        called.value.member, native,
        "the plugin disagrees with Rust"
    );

    let mut group = c.benchmark_group("rule_10k");
    configure(&mut group);
    group.bench_function("native", |b| {
        b.iter(|| {
            let threshold = black_box(THRESHOLD);
            let member: Vec<u8> = black_box(&values)
                .iter()
                .map(|v| u8::from(*v >= threshold))
                .collect();
            black_box(member)
        })
    });
    group.bench_function("threshold_fresh", |b| fresh(b, &threshold, &params, &batch));
    group.bench_function("threshold_reused", |b| {
        reused(b, &threshold, &params, &batches)
    });
    group.bench_function("noop_fresh", |b| fresh(b, &noop, &[], &batch));
    group.bench_function("noop_reused", |b| reused(b, &noop, &[], &batches));
    group.bench_function("noop_reused_no_columns", |b| {
        reused(b, &noop, &[], &bare_batches)
    });
    group.finish();
}

fn limits_10k(c: &mut Criterion) {
    let params = threshold_params();
    let batch = spend_batch(&spend(ROWS));
    let variants = [
        ("both_on", true, true),
        ("fuel_only", true, false),
        ("epochs_only", false, true),
        ("both_off", false, false),
    ];
    let runtimes: Vec<_> = variants
        .iter()
        .map(|&(name, fuel, epochs)| {
            let rt = runtime(fuel, epochs);
            let plugin = install(&rt, tessera_guests::plugins::THRESHOLD);
            (name, rt, plugin)
        })
        .collect();

    let mut group = c.benchmark_group("limits_10k");
    configure(&mut group);
    for (name, _rt, plugin) in &runtimes {
        group.bench_function(*name, |b| fresh(b, plugin, &params, &batch));
    }
    // In a reused instance the call is mostly guest code, which is what the
    // checks instrument: this pair shows their cost on guest code itself.
    let batches = vec![batch.clone(); LARGE_CALLS_PER_INSTANCE];
    let extremes = runtimes
        .iter()
        .filter(|(name, ..)| matches!(*name, "both_on" | "both_off"));
    for (name, _rt, plugin) in extremes {
        group.bench_function(format!("{name}_reused"), |b| {
            reused(b, plugin, &params, &batches)
        });
    }
    group.finish();
}

/// Guest instructions per call (fuel), printed once: deterministic, unlike
/// times, and it shows what the guest itself does per call.
fn print_fuel(rt: &Runtime) {
    let noop = install(rt, &noop_bytes());
    let threshold = install(rt, tessera_guests::plugins::THRESHOLD);
    let params = threshold_params();
    let one = spend_batch(&[600.0]);
    let large = spend_batch(&spend(ROWS));
    let bare = bare_batch(ROWS);
    println!("\nGuest fuel (≈ wasm instructions) per fresh call, incl. instantiation:");
    let cases: [(&str, &Plugin, &[FieldValue], &ProfileBatch); 5] = [
        ("noop, 1 row", &noop, &[], &one),
        ("threshold, 1 row", &threshold, &params, &one),
        ("noop, 10,000 rows, no columns", &noop, &[], &bare),
        ("noop, 10,000 rows", &noop, &[], &large),
        ("threshold, 10,000 rows", &threshold, &params, &large),
    ];
    for (what, plugin, params, batch) in cases {
        let cost = plugin.evaluate(params, batch).expect("evaluate").cost;
        println!(
            "  {what:<32} fuel {:>9}  peak memory {:>5} KiB",
            cost.fuel,
            cost.peak_memory >> 10
        );
    }
}

/// Where criterion saves its estimates (the same rules criterion follows).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")))
        .join("criterion")
}

/// The median of a benchmark measured by this run, in nanoseconds; `None` if
/// it did not run (filtered out, or `--test`).
fn median_ns(group: &str, id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json = std::fs::read_to_string(&path).ok()?;
    // {"mean":{..},"median":{"confidence_interval":{..},"point_estimate":N,..},..}
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn format_ns(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.3} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

/// Prints each benchmark's median and its ratio to its group's baseline.
fn print_ratios(since: SystemTime) {
    let groups: [(&str, &str, &[&str]); 4] = [
        (
            "call",
            "noop_reused",
            &[
                "noop_fresh",
                "noop_reused",
                "threshold_fresh",
                "threshold_reused",
            ],
        ),
        (
            "rule_10k",
            "native",
            &[
                "native",
                "threshold_fresh",
                "threshold_reused",
                "noop_fresh",
                "noop_reused",
                "noop_reused_no_columns",
            ],
        ),
        (
            "limits_10k",
            "both_off",
            &["both_off", "epochs_only", "fuel_only", "both_on"],
        ),
        (
            "limits_10k",
            "both_off_reused",
            &["both_off_reused", "both_on_reused"],
        ),
    ];
    println!("\nMedians of this run, and ratios to each group's baseline:");
    for (group, baseline, ids) in groups {
        let Some(base) = median_ns(group, baseline, since) else {
            continue;
        };
        for id in ids {
            if let Some(median) = median_ns(group, id, since) {
                println!(
                    "  {:<34} {:>12}  {:>7.2}x {baseline}",
                    format!("{group}/{id}"),
                    format_ns(median),
                    median / base
                );
            }
        }
    }
    let pair = |group: &str, a: &str, b: &str| {
        Some(median_ns(group, a, since)? / median_ns(group, b, since)?)
    };
    for (what, ratio) in [
        (
            "threshold, 1 row: fresh / reused instance",
            pair("call", "threshold_fresh", "threshold_reused"),
        ),
        (
            "noop, 10,000 rows: fresh / reused instance",
            pair("rule_10k", "noop_fresh", "noop_reused"),
        ),
        (
            "10,000 rows: threshold / noop (fresh)",
            pair("rule_10k", "threshold_fresh", "noop_fresh"),
        ),
    ] {
        if let Some(ratio) = ratio {
            println!("  {what:<48} {ratio:>7.2}x");
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    let rt = runtime(true, true);
    call(&mut c, &rt);
    rule_10k(&mut c, &rt);
    limits_10k(&mut c);
    c.final_summary();
    print_fuel(&rt);
    print_ratios(since);
}
