//! The CSV connector against a native parse of the same file, in the same
//! run: 100,000 store purchases (member id, phone, time with a zone, amount,
//! quantity, store, receipt number) become events with identities and typed
//! properties. The native baseline is the `csv` crate reading the same bytes
//! and building the same records (dates parsed, numbers converted), so the
//! ratio is the price of the sandbox: copying the chunk in, the records out,
//! and running as wasm. Results in `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_runtime::api::records::Record;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Plugin, PluginKind, Runtime, RuntimeConfig};
use tessera_tests::{install, param, plugins};

const ROWS: usize = 100_000;
/// Bytes per call: the runtime caps one call's output (32 MiB), and each
/// record costs a few hundred bytes once lifted.
const CHUNK: usize = 2 << 20;

const MAPPING: &str = r#"{
    "source": "pos-east",
    "timezone": "+08:00",
    "identities": {"member_no": "member_id", "mobile": "phone"},
    "event": {
        "type": "purchase",
        "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
        "properties": {"amount": "number", "qty": "integer", "store": "string"}
    },
    "source_id": {"column": "receipt_no"}
}"#;

const HEADER: &str = "receipt_no,member_no,mobile,purchased_at,amount,qty,store";

fn file() -> Vec<u8> {
    let mut out = format!("{HEADER}\n");
    let stores = [
        "Shanghai Jing'an",
        "Beijing Sanlitun",
        "Shenzhen Futian",
        "\"Chengdu, Taikoo Li\"",
    ];
    for i in 0..ROWS {
        out.push_str(&format!(
            "R{i:08},M{:06},+86 138 {:04} {:04},2026-{:02}-{:02} {:02}:{:02}:{:02},{}.{:02},{},{}\n",
            i % 40_000,
            (i / 10_000) % 10_000,
            i % 10_000,
            1 + i % 12,
            1 + i % 28,
            i % 24,
            i % 60,
            (i * 7) % 60,
            10 + i % 490,
            i % 100,
            1 + i % 5,
            stores[i % stores.len()],
        ));
    }
    out.into_bytes()
}

/// Chunks cut right after a newline outside quotes (the host's job).
fn chunks(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let (mut start, mut row, mut quoted) = (0usize, 1usize, false);
    let mut rows_before = 1usize;
    for (i, byte) in data.iter().enumerate() {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                row += 1;
                if i + 1 - start >= CHUNK {
                    out.push((rows_before, &data[start..=i]));
                    start = i + 1;
                    rows_before = row;
                }
            }
            _ => {}
        }
    }
    if start < data.len() {
        out.push((rows_before, &data[start..]));
    }
    out
}

fn connector_parse(plugin: &Plugin, base: &[FieldValue], data: &[u8]) -> usize {
    let mut records = 0;
    for (first_row, chunk) in chunks(data) {
        let mut params = base.to_vec();
        if first_row > 1 {
            params.retain(|p| p.name != "header" && p.name != "first_row");
            params.push(param("header", Value::Text(HEADER.into())));
            params.push(param("first_row", Value::Integer(first_row as i64)));
        }
        let out = plugin.parse(&params, chunk).expect("the file parses").value;
        assert!(out.rejections.is_empty(), "{:?}", &out.rejections[..1]);
        records += out
            .records
            .iter()
            .filter(|r| matches!(r, Record::Event(_)))
            .count();
    }
    records
}

/// What the native baseline builds per row: the same fields, typed. Built
/// to be measured, never read (only `black_box` sees it).
#[allow(dead_code)]
struct NativeEvent {
    source_id: String,
    identities: [(String, String); 2],
    at_ms: i64,
    amount: f64,
    qty: i64,
    store: String,
}

fn civil_to_ms(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64, offset_s: i64) -> i64 {
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3_600 + mm * 60 + ss) - offset_s) * 1_000
}

fn native_parse(data: &[u8]) -> usize {
    let mut reader = csv::ReaderBuilder::new().from_reader(data);
    let mut events = Vec::with_capacity(ROWS);
    for row in reader.records() {
        let row = row.expect("a record");
        let when = &row[3];
        let n = |a: usize, b: usize| when[a..b].parse::<i64>().expect("a number");
        events.push(NativeEvent {
            source_id: format!("pos-east:{}", &row[0]),
            identities: [
                ("member_id".to_owned(), row[1].to_owned()),
                ("phone".to_owned(), row[2].to_owned()),
            ],
            at_ms: civil_to_ms(
                n(0, 4),
                n(5, 7),
                n(8, 10),
                n(11, 13),
                n(14, 16),
                n(17, 19),
                8 * 3_600,
            ),
            amount: row[4].parse().expect("an amount"),
            qty: row[5].parse().expect("a quantity"),
            store: row[6].to_owned(),
        });
    }
    black_box(&events);
    events.len()
}

fn bench(c: &mut Criterion) {
    let data = file();
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = install(&runtime, plugins::CSV, PluginKind::Connector);
    let base = plugin
        .validate(&[param("mapping", Value::Text(MAPPING.into()))])
        .expect("the mapping is valid");
    assert_eq!(connector_parse(&plugin, &base, &data), ROWS);
    assert_eq!(native_parse(&data), ROWS);

    let mut group = c.benchmark_group("csv_100k_rows");
    group
        .throughput(Throughput::Elements(ROWS as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("native_csv_crate", |b| {
        b.iter(|| native_parse(black_box(&data)))
    });
    group.bench_function("wasm_connector", |b| {
        b.iter(|| connector_parse(&plugin, &base, black_box(&data)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
