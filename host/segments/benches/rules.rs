//! Segment recompute with a windowed aggregate rule, in three parts, each
//! with its baseline in the same run:
//!
//! 1. **Plugin vs native** over `PROFILES` generated profiles (default
//!    1,000,000): the batches the host sends for the rule
//!    `count(purchase, last 90 days) >= 3 and sum(purchase.amount, last 30
//!    days) > 500` (its plan: two event queries, count/first/last and one
//!    sum), evaluated by the `rules` wasm plugin (one `Plugin::evaluation`
//!    for all batches, a call per batch, as a recompute calls it) and by
//!    the same `tessera-rules` program compiled natively over the same
//!    columns (the rule compiled for the batch's clock, the batch's columns
//!    mapped to its slots, one membership byte per row). `BATCH` sets the
//!    rows per batch (default: a recompute's page, 1,024 people);
//!    `PER_INSTANCE=n` starts a new evaluation, so a fresh instance, every
//!    n batches (1: one per batch). `LIMITS=off` runs the plugin without
//!    fuel and epoch checks (production keeps both), to show what they
//!    cost.
//! 2. **End to end**: `Segments::recompute` over `PEOPLE` people (default
//!    20,000) in a vault on sled, each with purchases: views built from
//!    sealed records, the plugin, membership writes.
//! 3. **Streaming latency**: one purchase ingested for one person, then
//!    the streaming update of every segment for them, `EVENTS` times.
//!
//! Peak memory is the process's high-water mark (`VmHWM`). Run with
//! `cargo bench -p tessera-segments --bench rules`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_bundle::Kind;
use tessera_plugins::{Permissions, Registry};
use tessera_privacy::MasterKey;
use tessera_rules::{CheckedRule, Clock, Columns, Program, QueryColumns};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Grants, InstallRequest, Limits, MemoryState, PluginKind, Runtime, RuntimeConfig,
};
use tessera_segments::{SegmentSpec, Segments};
use tessera_vault::{
    Actor, Channel, ConsentChange, EventSpec, IdentityKind, Incoming, NewEvent, PropertySpec,
    TenantSettings, TraitType, Vault,
};

const RULE: &str =
    "count(purchase, last 90 days) >= 3 and sum(purchase.amount, last 30 days) > 500";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One query's columns, as the host lays them out.
struct QueryData {
    count: Vec<i64>,
    first: Vec<i64>,
    last: Vec<i64>,
    present: Vec<u8>,
    sums: Vec<Vec<f64>>,
}

fn query_data(rows: usize, sums: usize, g: &mut Gen) -> QueryData {
    let mut data = QueryData {
        count: Vec::with_capacity(rows),
        first: Vec::with_capacity(rows),
        last: Vec::with_capacity(rows),
        present: Vec::with_capacity(rows),
        sums: vec![Vec::with_capacity(rows); sums],
    };
    for _ in 0..rows {
        let count = (g.next() % 7) as i64;
        data.count.push(count);
        let last = NOW - (g.next() % (30 * DAY_MS as u64)) as i64;
        data.first
            .push(last - (g.next() % (60 * DAY_MS as u64)) as i64);
        data.last.push(last);
        data.present.push(u8::from(count > 0));
        for sum in &mut data.sums {
            sum.push(if count > 0 {
                (g.next() % 400) as f64 * count as f64
            } else {
                0.0
            });
        }
    }
    data
}

fn batch_of(queries: &[QueryData], rows: usize, offset: u64) -> ProfileBatch {
    let mut aggregates = Vec::new();
    for q in queries {
        aggregates.push(Column {
            data: ColumnData::Integer(q.count.clone()),
            present: Vec::new(),
        });
        aggregates.push(Column {
            data: ColumnData::Timestamp(q.first.clone()),
            present: q.present.clone(),
        });
        aggregates.push(Column {
            data: ColumnData::Timestamp(q.last.clone()),
            present: q.present.clone(),
        });
        for sum in &q.sums {
            aggregates.push(Column {
                data: ColumnData::Number(sum.clone()),
                present: Vec::new(),
            });
        }
    }
    ProfileBatch {
        rows: rows as u32,
        keys: (0..rows as u64).map(|k| k + offset).collect(),
        fields: Vec::new(),
        aggregates,
        now: NOW,
    }
}

/// The rule over the batch the plugin receives, natively: compiled for the
/// batch's clock, its columns mapped to the program's slots once, one
/// membership byte per row, as the plugin does.
fn native(checked: &CheckedRule, batch: &ProfileBatch) -> Vec<u8> {
    let program = checked.compile(&Clock {
        now_ms: batch.now,
        utc_offset_minutes: 0,
    });
    let columns = columns(&program, batch);
    (0..batch.rows as usize)
        .map(|row| u8::from(program.evaluate(&columns.row(row))))
        .collect()
}

/// The batch's aggregates in the program's slots: each query's count,
/// first and last, then its sums, in plan order (the plan is the
/// program's queries).
fn columns<'a>(program: &Program, batch: &'a ProfileBatch) -> Columns<'a> {
    let mut at = batch.aggregates.iter().map(view);
    let mut next = || at.next().expect("a column per planned aggregate");
    let queries = program
        .queries()
        .iter()
        .map(|q| QueryColumns {
            count: next(),
            first: next(),
            last: next(),
            sums: q.sums.iter().map(|_| next()).collect(),
        })
        .collect();
    Columns::new(
        program,
        batch.rows as usize,
        Vec::new(),
        queries,
        Vec::new(),
    )
    .expect("the columns fit the program")
}

fn view(column: &Column) -> tessera_rules::Column<'_> {
    use tessera_rules::ColumnData as Data;
    tessera_rules::Column {
        data: match &column.data {
            ColumnData::Boolean(v) => Data::Boolean(v),
            ColumnData::Integer(v) => Data::Integer(v),
            ColumnData::Number(v) => Data::Number(v),
            ColumnData::Timestamp(v) => Data::Timestamp(v),
            ColumnData::Text(t) => Data::Text {
                dictionary: &t.dictionary,
                codes: &t.codes,
            },
            ColumnData::TextList(t) => Data::TextList {
                dictionary: &t.dictionary,
                offsets: &t.offsets,
                codes: &t.codes,
            },
        },
        present: &column.present,
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn plugin_vs_native() {
    let profiles = env("PROFILES", 1_000_000);
    let batch_rows = env("BATCH", tessera_segments::PAGE).max(1);
    let per_instance = env("PER_INSTANCE", usize::MAX).max(1);
    // LIMITS=off measures the guest code without fuel and epoch checks
    // (production keeps both on): what the checks cost in the ratio.
    let checks = std::env::var("LIMITS").map_or(true, |v| v != "off");
    let runtime = Runtime::new(RuntimeConfig {
        fuel: checks,
        epochs: checks,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let plugin = runtime
        .install(
            tessera_guests::plugins::RULES,
            InstallRequest {
                kind: PluginKind::Segment,
                grants: Grants::default(),
                limits: Limits::default(),
                tenant: "bench".into(),
                installation: "bench-rules".into(),
                state: Arc::new(MemoryState::new()),
            },
        )
        .expect("install");
    let params = plugin
        .validate(&[FieldValue {
            name: "rule".into(),
            value: Value::Text(RULE.into()),
        }])
        .expect("params");
    let needs = plugin.plan(&params).expect("plan").value;
    let rule = tessera_rules::parse(RULE).expect("rule");
    let schema = tessera_rules::Schema::new()
        .with_event("purchase", [("amount", tessera_rules::Type::Number)]);
    let checked = tessera_rules::check(&rule, &schema).expect("checked");
    let queries: Vec<(String, usize)> = needs
        .queries
        .iter()
        .map(|q| (q.name.clone(), q.sums.len()))
        .collect();
    assert_eq!(queries.len(), 2, "the plan: {needs:?}");
    // The native program reads the batch in plan order.
    let program = checked.compile(&Clock::default());
    assert!(
        program
            .queries()
            .iter()
            .map(|q| (q.key.clone(), q.sums.len()))
            .eq(queries.iter().cloned()),
        "the plan: {needs:?}"
    );

    let mut g = Gen(0x5eed_1234);
    let batches = profiles.div_ceil(batch_rows);
    let mut plugin_time = Duration::ZERO;
    let mut native_time = Duration::ZERO;
    let (mut plugin_members, mut native_members) = (0usize, 0usize);
    let mut plugin_fuel = 0u64;
    let mut evaluation = None;
    for b in 0..batches {
        let rows = batch_rows.min(profiles - b * batch_rows);
        let data: Vec<QueryData> = queries
            .iter()
            .map(|(_, sums)| query_data(rows, *sums, &mut g))
            .collect();
        let batch = batch_of(&data, rows, (b * batch_rows) as u64);
        if b % per_instance == 0 {
            // The instance of the batches before (if any) is dropped here.
            evaluation = Some(plugin.evaluation(&params).expect("evaluation"));
        }
        let evaluation = evaluation.as_mut().expect("an evaluation");
        let started = Instant::now();
        let out = evaluation.evaluate(&batch).expect("evaluate");
        plugin_time += started.elapsed();
        plugin_fuel += out.cost.fuel;
        plugin_members += out.value.member.iter().filter(|m| **m == 1).count();
        let started = Instant::now();
        let member = native(&checked, black_box(&batch));
        native_time += started.elapsed();
        native_members += member.iter().filter(|m| **m == 1).count();
    }
    assert_eq!(
        plugin_members, native_members,
        "the plugin and native Rust disagree"
    );
    let rate = |d: Duration| profiles as f64 / d.as_secs_f64();
    let runs = if per_instance == 1 {
        "a fresh instance per batch".to_owned()
    } else if per_instance >= batches {
        "one instance for all batches".to_owned()
    } else {
        format!("one instance per {per_instance} batches")
    };
    let limits = if checks {
        ""
    } else {
        ", no fuel or epoch checks"
    };
    println!(
        "1. plugin vs native, {profiles} profiles in batches of {batch_rows} ({plugin_members} members), \
         {runs}{limits}"
    );
    println!(
        "   rules plugin (wasm):                          {:>10.0} profiles/s  ({:.2} s)",
        rate(plugin_time),
        plugin_time.as_secs_f64()
    );
    println!(
        "   native tessera-rules program, same columns:   {:>10.0} profiles/s  ({:.2} s)",
        rate(native_time),
        native_time.as_secs_f64()
    );
    println!(
        "   plugin / native time: {:.2}x; peak RSS so far {:.0} MiB",
        plugin_time.as_secs_f64() / native_time.as_secs_f64(),
        peak_rss_mib()
    );
    // The plugin's fixed cost per call: a one-row batch, in a fresh
    // instance (instantiation, the parameters, parsing, checking and
    // compiling the rule, the call) and in an instance kept by an
    // evaluation (what is left once the instance has its rule).
    let data: Vec<QueryData> = queries
        .iter()
        .map(|(_, sums)| query_data(1, *sums, &mut g))
        .collect();
    let one = batch_of(&data, 1, 0);
    let median = |call: &mut dyn FnMut() -> u64| {
        let mut walls = Vec::new();
        let mut fuel = 0;
        for _ in 0..200 {
            let started = Instant::now();
            fuel = call();
            walls.push(started.elapsed());
        }
        walls.sort();
        (walls[walls.len() / 2].as_secs_f64() * 1e6, fuel)
    };
    let (fresh_us, fresh_fuel) =
        median(&mut || plugin.evaluate(&params, &one).expect("evaluate").cost.fuel);
    let mut kept = plugin.evaluation(&params).expect("evaluation");
    kept.evaluate(&one).expect("evaluate");
    let (kept_us, kept_fuel) = median(&mut || kept.evaluate(&one).expect("evaluate").cost.fuel);
    let rows_fuel = plugin_fuel.saturating_sub(kept_fuel * batches as u64);
    println!(
        "   per call, a 1-row batch (median of 200): fresh instance {fresh_us:.1} µs, fuel \
         {fresh_fuel}; kept instance {kept_us:.1} µs, fuel {kept_fuel}; fuel per row over the \
         run {:.1}",
        rows_fuel as f64 / profiles as f64
    );
}

fn end_to_end() {
    let people = env("PEOPLE", 20_000);
    let events_per_stream = env("EVENTS", 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = Arc::new(
        Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().expect("key"),
        )
        .expect("vault")
        .with_clock(Arc::new(|| NOW)),
    );
    let mut settings = TenantSettings::default();
    let mut purchase = EventSpec::default();
    purchase
        .properties
        .insert("amount".into(), PropertySpec::new(TraitType::Number));
    settings.events.insert("purchase".into(), purchase);
    let operator = Actor::new("operator", "bench");
    vault
        .create_tenant("bench", settings, &operator)
        .expect("tenant");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let registry = Registry::new(runtime, vault.clone(), false);
    registry
        .install_builtin_granted(
            "bench",
            tessera_guests::plugins::RULES,
            Kind::Segment,
            Permissions {
                traits: vec!["*".into()],
                events: vec!["*".into()],
                purposes: vec!["email_marketing".into()],
                ..Permissions::default()
            },
        )
        .expect("rules");
    let mut g = Gen(42);
    let started = Instant::now();
    let mut items = Vec::with_capacity(500);
    for p in 0..people {
        let events = (0..(g.next() % 6))
            .map(|e| NewEvent {
                source_id: Some(format!("p{p}-e{e}")),
                event_type: "purchase".into(),
                at_ms: NOW - (g.next() % (120 * DAY_MS as u64)) as i64,
                channel: Channel::Offline,
                properties: serde_json::from_value(json!({"amount": (g.next() % 400) as f64}))
                    .unwrap(),
            })
            .collect();
        items.push(Incoming {
            identities: vec![(IdentityKind::MemberId, format!("M{p:07}"))],
            events,
            consents: vec![ConsentChange {
                purpose: "email_marketing".into(),
                granted: true,
                method: "bench".into(),
                given_at_ms: None,
            }],
            ..Incoming::default()
        });
        if items.len() == 500 {
            vault
                .ingest_batch("bench", &items, &operator)
                .expect("ingest");
            items.clear();
        }
    }
    if !items.is_empty() {
        vault
            .ingest_batch("bench", &items, &operator)
            .expect("ingest");
    }
    println!(
        "\n2. end to end: {people} people ingested in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let segments = Segments::new(vault.clone(), registry);
    segments
        .put(
            "bench",
            "regulars",
            SegmentSpec {
                plugin: "rules".into(),
                params: vec![FieldValue {
                    name: "rule".into(),
                    value: Value::Text(RULE.into()),
                }],
                purpose: None,
                description: String::new(),
            },
            &operator,
        )
        .expect("segment");
    let started = Instant::now();
    let report = segments.recompute("bench", "regulars").expect("recompute");
    let first = started.elapsed();
    let started = Instant::now();
    let again = segments.recompute("bench", "regulars").expect("recompute");
    let second = started.elapsed();
    println!(
        "   first recompute: {} evaluated, {} members, {:.0} profiles/s ({:.2} s)",
        report.evaluated,
        report.members,
        report.evaluated as f64 / first.as_secs_f64(),
        first.as_secs_f64()
    );
    println!(
        "   second (nothing changes): {:.0} profiles/s ({:.2} s)",
        again.evaluated as f64 / second.as_secs_f64(),
        second.as_secs_f64()
    );

    segments.watch();
    let mut ingest = Duration::ZERO;
    let mut total = Duration::ZERO;
    for i in 0..events_per_stream {
        let person = (g.next() % people as u64) as usize;
        let item = Incoming {
            identities: vec![(IdentityKind::MemberId, format!("M{person:07}"))],
            events: vec![NewEvent {
                source_id: Some(format!("stream-{i}")),
                event_type: "purchase".into(),
                at_ms: NOW - 1,
                channel: Channel::Online,
                properties: serde_json::from_value(json!({"amount": 250.0})).unwrap(),
            }],
            ..Incoming::default()
        };
        let started = Instant::now();
        vault.ingest("bench", &item, &operator).expect("ingest");
        ingest += started.elapsed();
        let started = Instant::now();
        segments.process_pending().expect("stream");
        total += started.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / events_per_stream as f64;
    println!(
        "\n3. streaming, mean of {events_per_stream} events: the update of the person's segments \
         {:.2} ms per event (baseline, the event's own ingest: {:.2} ms)",
        per(total),
        per(ingest)
    );
    println!("\npeak RSS {:.0} MiB", peak_rss_mib());
}

fn main() {
    plugin_vs_native();
    end_to_end();
}
