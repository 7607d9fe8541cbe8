//! Benchmarks of the data core's write path. Run with
//! `cargo bench -p tessera-vault --bench ingest`; results and their reading
//! are in `docs/BENCHMARKS.md`.
//!
//! The baseline is measured in the same run, and the ratios to it are printed
//! at the end (from the medians criterion saved for this run), so the figures
//! stay comparable on a shared, noisy machine.
//!
//! Groups:
//! - `ingest`: batches of [`BATCH_EVENTS`] events. `raw_sled` inserts each
//!   event's plaintext JSON (the serialised `NewEvent`) under a
//!   `tenant/subject/time/seq` key in a bare sled database and flushes once a
//!   batch: the same durability as the vault, which acknowledges a batch once
//!   it is flushed. `vault_*` ingests the same events through
//!   `Vault::ingest_batch`: records of one email and 1 to 5 events, for
//!   people the vault already knows (`known`: 1,000 subjects, the steady
//!   state) or for a new person each record (`new`: a subject key and a
//!   subject record each), without or with 4 traits a record (`_traits`).
//!   `raw_sled_100` and `vault_known_100` are the same as `raw_sled` and
//!   `vault_known` with batches of [`SMALL_BATCH_EVENTS`].
//! - `erase`: a subject with 100 or 1,000 events: `request_*` times
//!   `request_deletion` (suppression, key destruction, request, purge job,
//!   audit), `purge_*` the purge job that follows (`run_jobs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime,
};
use serde_json::{Value, json};
use tessera_privacy::MasterKey;
use tessera_vault::{
    Actor, Channel, DeletionStatus, IdentityKind, Incoming, NewEvent, TenantSettings, Vault,
};

const TENANT: &str = "acme";
/// Events in one batch (one `ingest_batch` call, one flush).
const BATCH_EVENTS: usize = 500;
/// Events in one batch of the `_100` pair: the size of a typical HTTP
/// request, where the per-batch flush weighs more.
const SMALL_BATCH_EVENTS: usize = 100;
/// People the vault knows before the `known` benchmarks start.
const SUBJECTS: u64 = 1_000;
/// Events of the subjects the `erase` group deletes.
const ERASE_EVENTS: [usize; 2] = [100, 1_000];
/// 2026-06-01T00:00:00Z; event times count up from here.
const BASE_MS: i64 = 1_780_272_000_000;
const CITIES: [&str; 6] = [
    "Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan",
];
const TIERS: [&str; 3] = ["silver", "gold", "platinum"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum People {
    /// Every record is about one of the [`SUBJECTS`] people seeded first.
    Known,
    /// Every record is about someone never seen before.
    New,
}

/// Generates records and events; every event has a new source id, so that
/// nothing is a duplicate, and the same generator feeds the baseline.
struct Workload {
    people: People,
    traits: bool,
    record: u64,
    event: u64,
}

impl Workload {
    fn new(people: People, traits: bool) -> Self {
        Self {
            people,
            traits,
            record: 0,
            event: 0,
        }
    }

    fn event(&mut self) -> NewEvent {
        let n = self.event;
        self.event += 1;
        let (event_type, properties) = match n % 4 {
            0 => (
                "page_view",
                json!({
                    "url": format!("/products/sku-{:05}", n % 20_000),
                    "referrer": "https://search.example/?q=running+shoes",
                    "duration_ms": 1_000 + n % 60_000,
                }),
            ),
            1 => (
                "add_to_cart",
                json!({
                    "sku": format!("SKU-{:05}", n % 20_000),
                    "price": 59.9 + (n % 100) as f64,
                    "quantity": 1 + n % 3,
                }),
            ),
            2 => (
                "purchase",
                json!({
                    "order": format!("ORD-{n:09}"),
                    "amount": 129.5 + (n % 500) as f64,
                    "currency": "CNY",
                    "items": 1 + n % 4,
                    "store": format!("SH-{:03}", n % 120),
                }),
            ),
            _ => (
                "email_open",
                json!({
                    "campaign": "spring-sale-2026",
                    "message": format!("msg-{n:09}"),
                    "client": "mobile",
                }),
            ),
        };
        let Value::Object(properties) = properties else {
            unreachable!("the properties are an object")
        };
        NewEvent {
            source_id: Some(format!("src-{n:010}")),
            event_type: event_type.to_owned(),
            at_ms: BASE_MS + n as i64 * 1_000,
            channel: if n.is_multiple_of(5) {
                Channel::Offline
            } else {
                Channel::Online
            },
            properties: properties.into_iter().collect(),
        }
    }

    fn traits(&self, person: u64) -> BTreeMap<String, Value> {
        if !self.traits {
            return BTreeMap::new();
        }
        BTreeMap::from([
            ("name".to_owned(), json!(format!("Person {person}"))),
            (
                "city".to_owned(),
                json!(CITIES[(person % CITIES.len() as u64) as usize]),
            ),
            (
                "tier".to_owned(),
                json!(TIERS[(self.record % TIERS.len() as u64) as usize]),
            ),
            (
                "lifetime_value".to_owned(),
                json!(100.0 + (self.record % 1_000) as f64 * 1.5),
            ),
        ])
    }

    fn record(&mut self, email: String, person: u64, events: usize) -> Incoming {
        let traits = self.traits(person);
        self.record += 1;
        Incoming {
            identities: vec![(IdentityKind::Email, email)],
            traits,
            events: (0..events).map(|_| self.event()).collect(),
            consents: Vec::new(),
        }
    }

    /// One record with one event for each of the [`SUBJECTS`] people.
    fn seed(&mut self) -> Vec<Incoming> {
        (0..SUBJECTS)
            .map(|person| self.record(known_email(person), person, 1))
            .collect()
    }

    /// Records with exactly `events` events in all: 1 to 5 a record (the
    /// last one cut to fit).
    fn batch(&mut self, events: usize) -> Vec<Incoming> {
        let mut records = Vec::new();
        let mut left = events;
        while left > 0 {
            let r = self.record;
            let count = (1 + (r * 7 + 3) % 5) as usize;
            let count = count.min(left);
            let record = match self.people {
                // 7919 is prime to SUBJECTS: each run of 1,000 records
                // visits every person once, in a scattered order.
                People::Known => {
                    let person = r * 7_919 % SUBJECTS;
                    self.record(known_email(person), person, count)
                }
                People::New => self.record(format!("new{r:09}@bench.example"), r, count),
            };
            records.push(record);
            left -= count;
        }
        records
    }
}

fn known_email(person: u64) -> String {
    format!("person{person:05}@bench.example")
}

/// The baseline's entries: per event, key `tenant/subject/time/seq` (time as
/// sortable big-endian bytes) and value the event's plaintext JSON.
fn raw_entries(records: &[Incoming], seq: &mut u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    for record in records {
        let subject = &record.identities[0].1;
        for event in &record.events {
            let mut key = format!("{TENANT}/{subject}/").into_bytes();
            key.extend_from_slice(&(event.at_ms.cast_unsigned() ^ (1 << 63)).to_be_bytes());
            key.extend_from_slice(&seq.to_be_bytes());
            *seq += 1;
            let value = serde_json::to_vec(event).expect("an event serialises");
            entries.push((key, value));
        }
    }
    entries
}

fn actor() -> Actor {
    Actor::new("ingest", "bench")
}

/// A new vault in a temporary directory, with the tenant created.
fn open_vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().expect("temp dir");
    let master = MasterKey::generate().expect("master key");
    let vault =
        Vault::open(dir.path().join("data"), dir.path().join("keys"), master).expect("open vault");
    vault
        .create_tenant(
            TENANT,
            TenantSettings::default(),
            &Actor::new("operator", "bench"),
        )
        .expect("create tenant");
    (dir, vault)
}

fn ingest_all(vault: &Vault, records: &[Incoming]) {
    for chunk in records.chunks(200) {
        vault
            .ingest_batch(TENANT, chunk, &actor())
            .expect("ingest the seed");
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
}

/// `raw_sled` with batches of `events`: a bare sled database seeded like the
/// vaults, each batch inserted and flushed.
fn raw_sled(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, events: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path().join("raw"))
        .flush_every_ms(Some(500))
        .open()
        .expect("open sled");
    let mut work = Workload::new(People::Known, false);
    let mut seq = 0;
    for (key, value) in raw_entries(&work.seed(), &mut seq) {
        db.insert(key, value).expect("insert the seed");
    }
    db.flush().expect("flush");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || raw_entries(&work.batch(events), &mut seq),
            |entries| {
                for (key, value) in entries {
                    db.insert(key, value).expect("insert");
                }
                db.flush().expect("flush")
            },
            BatchSize::PerIteration,
        )
    });
}

/// A `vault_*` benchmark with batches of `events`.
fn vault(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    people: People,
    traits: bool,
    events: usize,
) {
    let (_dir, vault) = open_vault();
    let mut work = Workload::new(people, traits);
    // Every variant starts from the same 1,000 people.
    ingest_all(&vault, &work.seed());
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || work.batch(events),
            |records| {
                let (outcome, _) = vault
                    .ingest_batch(TENANT, &records, &actor())
                    .expect("ingest");
                assert_eq!(outcome.events_inserted, events as u64);
                let created = if people == People::New {
                    records.len() as u64
                } else {
                    0
                };
                assert_eq!(outcome.subjects_created, created);
                outcome
            },
            BatchSize::PerIteration,
        )
    });
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    configure(&mut group);
    raw_sled(&mut group, "raw_sled", BATCH_EVENTS);
    let variants = [
        ("vault_known", People::Known, false),
        ("vault_known_traits", People::Known, true),
        ("vault_new", People::New, false),
        ("vault_new_traits", People::New, true),
    ];
    for (name, people, traits) in variants {
        vault(&mut group, name, people, traits, BATCH_EVENTS);
    }
    raw_sled(&mut group, "raw_sled_100", SMALL_BATCH_EVENTS);
    vault(
        &mut group,
        "vault_known_100",
        People::Known,
        false,
        SMALL_BATCH_EVENTS,
    );
    group.finish();
}

/// A new subject with `events` events; returns its id.
fn subject_with(vault: &Vault, work: &mut Workload, n: &mut u64, events: usize) -> String {
    *n += 1;
    let record = work.record(format!("erase{n:09}@bench.example"), *n, events);
    let (outcome, mut outcomes) = vault
        .ingest_batch(TENANT, &[record], &actor())
        .expect("ingest");
    assert_eq!(outcome.events_inserted, events as u64);
    outcomes.pop().and_then(|o| o.subject).expect("a subject")
}

fn erase(c: &mut Criterion) {
    let (_dir, vault) = open_vault();
    let mut work = Workload::new(People::Known, false);
    ingest_all(&vault, &work.seed());
    let mut n = 0;

    // The purge must remove what it is timed removing.
    for events in ERASE_EVENTS {
        let subject = subject_with(&vault, &mut work, &mut n, events);
        let request = vault
            .request_deletion(TENANT, &subject, "bench", &actor())
            .expect("request deletion");
        assert_eq!(
            vault
                .run_jobs("bench")
                .expect("purge")
                .purges_completed
                .len(),
            1
        );
        let done = vault
            .deletion_request(TENANT, &request.id)
            .expect("request");
        assert_eq!(done.status, DeletionStatus::Completed);
        let removed = done.receipt.expect("receipt").removed;
        assert_eq!((removed.subjects, removed.events), (1, events as u64));
    }

    let mut group = c.benchmark_group("erase");
    configure(&mut group);
    for events in ERASE_EVENTS {
        group.bench_function(format!("request_{events}"), |b| {
            b.iter_batched(
                || {
                    // Purges the previous iteration's subject, untimed.
                    vault.run_jobs("bench").expect("purge");
                    subject_with(&vault, &mut work, &mut n, events)
                },
                |subject| {
                    vault
                        .request_deletion(TENANT, &subject, "bench", &actor())
                        .expect("request deletion")
                },
                BatchSize::PerIteration,
            )
        });
        vault.run_jobs("bench").expect("purge");
        group.bench_function(format!("purge_{events}"), |b| {
            b.iter_batched(
                || {
                    let subject = subject_with(&vault, &mut work, &mut n, events);
                    vault
                        .request_deletion(TENANT, &subject, "bench", &actor())
                        .expect("request deletion");
                },
                |()| {
                    let report = vault.run_jobs("bench").expect("purge");
                    assert_eq!(report.purges_completed.len(), 1);
                    report
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
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
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

/// Prints each benchmark's median; for ingest, events per second and the
/// rate of each variant as a share of the raw sled rate.
fn print_summary(since: SystemTime) {
    let mut lines = Vec::new();
    let raw = median_ns("ingest", "raw_sled", since);
    let raw_small = median_ns("ingest", "raw_sled_100", since);
    for (id, events, baseline, baseline_id) in [
        ("raw_sled", BATCH_EVENTS, raw, "raw_sled"),
        ("vault_known", BATCH_EVENTS, raw, "raw_sled"),
        ("vault_known_traits", BATCH_EVENTS, raw, "raw_sled"),
        ("vault_new", BATCH_EVENTS, raw, "raw_sled"),
        ("vault_new_traits", BATCH_EVENTS, raw, "raw_sled"),
        (
            "raw_sled_100",
            SMALL_BATCH_EVENTS,
            raw_small,
            "raw_sled_100",
        ),
        (
            "vault_known_100",
            SMALL_BATCH_EVENTS,
            raw_small,
            "raw_sled_100",
        ),
    ] {
        let Some(median) = median_ns("ingest", id, since) else {
            continue;
        };
        let rate = events as f64 / (median / 1e9);
        let share = baseline.map_or(String::new(), |baseline| {
            format!("  {:>6.1} % of {baseline_id}", baseline / median * 100.0)
        });
        lines.push(format!(
            "  {:<26} {:>10} / {events:>3} events  {rate:>9.0} events/s{share}",
            format!("ingest/{id}"),
            format_ns(median),
        ));
    }
    for events in ERASE_EVENTS {
        for step in ["request", "purge"] {
            let id = format!("{step}_{events}");
            if let Some(median) = median_ns("erase", &id, since) {
                lines.push(format!(
                    "  {:<26} {:>10}",
                    format!("erase/{id}"),
                    format_ns(median)
                ));
            }
        }
    }
    if !lines.is_empty() {
        println!("\nMedians of this run:\n{}", lines.join("\n"));
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    erase(&mut c);
    c.final_summary();
    print_summary(since);
}
