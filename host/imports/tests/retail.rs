//! The retail example (`examples/retail/large`) imported file by file into a
//! fresh tenant, each report compared with the generator's ground truth
//! (`truth.json`): rows read, the rows rejected (by row number), duplicates
//! and events stored per file; people and events in the tenant at the end;
//! and a second import of a file adds nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;
use tessera_bundle::Kind;
use tessera_imports::{Chunking, ImportRecord, ImportSpec, Importer, LetterOrigin};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_vault::{Actor, NormalizeRules, TenantSettings, Vault};

const TENANT: &str = "halden";
/// 2026-12-05T00:00:00Z: after the data's last day, within its retention.
const NOW_MS: i64 = 1_796_428_800_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail/large")
}

fn operator() -> Actor {
    Actor::new("operator", "tok-ops")
}

fn params(file: &str, truth: &Json) -> Vec<FieldValue> {
    let given = &truth["parameters"][file];
    let mut out = Vec::new();
    for (name, value) in given.as_object().expect("parameters") {
        let value = match (name.as_str(), value) {
            ("mapping", Json::String(path)) => {
                Value::Text(std::fs::read_to_string(dir().join(path)).expect("mapping"))
            }
            (_, Json::Bool(b)) => Value::Boolean(*b),
            (_, Json::String(s)) => Value::Text(s.clone()),
            (_, Json::Number(n)) => Value::Integer(n.as_i64().expect("an integer")),
            (name, other) => panic!("parameter {name}: {other}"),
        };
        out.push(FieldValue {
            name: name.clone(),
            value,
        });
    }
    out
}

fn import(importer: &Importer, file: &str, truth: &Json) -> ImportRecord {
    let connector = truth["files"][file]["connector"]
        .as_str()
        .unwrap()
        .to_owned();
    let chunking = if connector == "csv" {
        Chunking::Csv
    } else {
        Chunking::Lines
    };
    let bytes = std::fs::read(dir().join(file)).expect("the example file");
    importer
        .run(
            TENANT,
            ImportSpec {
                connector,
                params: params(file, truth),
                chunking,
                source: file.into(),
                channel: None,
            },
            bytes.as_slice(),
            &operator(),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_retail_example_imports_as_its_ground_truth_says() {
    let truth: Json =
        serde_json::from_str(&std::fs::read_to_string(dir().join("truth.json")).unwrap()).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let vault = Arc::new(
        Vault::open(
            temp.path().join("data"),
            temp.path().join("keys"),
            MasterKey::generate().unwrap(),
        )
        .unwrap()
        .with_clock({
            let ticks = Arc::new(std::sync::atomic::AtomicI64::new(0));
            Arc::new(move || NOW_MS + ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        }),
    );
    let tenant = &truth["tenant"];
    let settings = TenantSettings {
        identity_rules: NormalizeRules {
            default_country_code: tenant["default_country_code"].as_u64().map(|c| c as u16),
            canonical_gmail: tenant["canonical_gmail"].as_bool().unwrap_or(true),
        },
        ..TenantSettings::default()
    };
    vault.create_tenant(TENANT, settings, &operator()).unwrap();
    let registry = Registry::new(
        Runtime::new(RuntimeConfig::default()).unwrap(),
        vault.clone(),
        false,
    );
    for plugin in [
        tessera_guests::plugins::CSV,
        tessera_guests::plugins::NDJSON,
    ] {
        registry
            .install_builtin(TENANT, plugin, Kind::Connector, 0)
            .unwrap();
    }
    let importer = Importer::new(registry, vault.clone());

    let mut problems = Vec::new();
    let mut events = 0;
    let check = |problems: &mut Vec<String>, what: String, got: u64, want: u64| {
        if got != want {
            problems.push(format!("{what}: imported {got}, truth {want}"));
        }
    };
    for file in truth["import_order"].as_array().unwrap() {
        let file = file.as_str().unwrap();
        let t = &truth["files"][file];
        let record = import(&importer, file, &truth);
        let r = &record.report;
        events += r.events_inserted;
        check(
            &mut problems,
            format!("{file} rows read"),
            r.rows_read,
            t["rows"].as_u64().unwrap(),
        );
        check(
            &mut problems,
            format!("{file} rows rejected"),
            r.rows_rejected,
            t["rejected"].as_u64().unwrap(),
        );
        check(
            &mut problems,
            format!("{file} events stored"),
            r.events_inserted,
            t["events_stored"].as_u64().unwrap(),
        );
        if t["events_stored"].as_u64().unwrap() > 0 {
            // The report counts events already stored; the truth lists
            // duplicate rows, which in the web file include alias records
            // (identity links, no event).
            let lines: Vec<String> = if t["connector"] == "ndjson" {
                std::fs::read_to_string(dir().join(file))
                    .unwrap()
                    .split('\n')
                    .map(str::to_owned)
                    .collect()
            } else {
                Vec::new()
            };
            let event_duplicates = t["duplicates"]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    let row = d["row"].as_u64().unwrap() as usize;
                    lines.get(row - 1).is_none_or(|line| {
                        let record: Json = serde_json::from_str(line).unwrap();
                        !matches!(record["type"].as_str(), Some("alias" | "identify"))
                    })
                })
                .count() as u64;
            check(
                &mut problems,
                format!("{file} duplicate events"),
                r.duplicates,
                event_duplicates,
            );
        }
        // The rejected rows, by number.
        let letters = importer
            .dead_letters(TENANT, &record.id, None, 10_000)
            .unwrap();
        let rejected: BTreeSet<u64> = letters
            .iter()
            .filter(|l| l.origin == LetterOrigin::Rejected)
            .filter_map(|l| l.row.map(u64::from))
            .collect();
        let planted: BTreeSet<u64> = t["rejected_by_reason"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|reason| reason["rows"].as_array().unwrap().iter())
            .map(|row| row.as_u64().unwrap())
            .collect();
        if rejected != planted {
            problems.push(format!(
                "{file} rejected rows: imported {rejected:?}, truth {planted:?}"
            ));
        }
    }

    // The tenant: people after resolution, events in all.
    let mut people = 0u64;
    let mut after: Option<String> = None;
    loop {
        let (page, next) = vault.people(TENANT, after.as_deref(), 512).unwrap();
        people += page.len() as u64;
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    check(
        &mut problems,
        "people".into(),
        people,
        truth["people"]["distinct"].as_u64().unwrap(),
    );

    check(
        &mut problems,
        "events".into(),
        events,
        truth["events"]["stored"].as_u64().unwrap(),
    );

    // A file imported again adds no event.
    let again = import(&importer, "stores_cn.csv", &truth);
    check(
        &mut problems,
        "re-import events stored".into(),
        again.report.events_inserted,
        0,
    );

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
