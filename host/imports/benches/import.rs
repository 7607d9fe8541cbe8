//! One import of a generated 100,000-row store export through the CSV
//! connector into a vault on sled, timed end to end, with the connector's
//! share. `cargo bench -p tessera-imports` (release); `ROWS` changes the size.

use std::sync::Arc;
use std::time::Instant;

use tessera_bundle::Kind;
use tessera_imports::{Chunking, ImportSpec, Importer};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_vault::{Actor, NormalizeRules, TenantSettings, Vault};

const MAPPING: &str = r#"{
    "source": "pos-east",
    "timezone": "+08:00",
    "identities": {"member_no": "member_id", "mobile": "phone"},
    "event": {
        "type": "purchase",
        "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
        "properties": {"amount": "number", "qty": "integer", "store": {"name": "store_name", "type": "string"}}
    },
    "source_id": {"column": "receipt_no"}
}"#;

fn main() {
    let rows: u32 = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    let mut file = String::from("receipt_no,member_no,mobile,purchased_at,amount,qty,store\n");
    for r in 0..rows {
        let c = r % 20_000;
        file.push_str(&format!(
            "R{r:07},M{c:06},138{c:08},2026-{:02}-{:02} {:02}:{:02}:00,{}.{:02},{},Store {}\n",
            1 + r % 5,
            1 + r % 28,
            9 + r % 12,
            r % 60,
            10 + r % 490,
            r % 100,
            1 + r % 9,
            r % 40
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(
        Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().unwrap(),
        )
        .unwrap(),
    );
    let actor = Actor::new("operator", "bench");
    let settings = TenantSettings {
        identity_rules: NormalizeRules {
            default_country_code: Some(86),
            ..NormalizeRules::default()
        },
        ..TenantSettings::default()
    };
    vault.create_tenant("acme", settings, &actor).unwrap();
    let registry = Registry::new(
        Runtime::new(RuntimeConfig::default()).unwrap(),
        vault.clone(),
        false,
    );
    registry
        .install_builtin("acme", tessera_guests::plugins::CSV, Kind::Connector, 0)
        .unwrap();
    let importer = Importer::new(registry, vault);
    let spec = ImportSpec {
        connector: "csv".into(),
        params: vec![FieldValue {
            name: "mapping".into(),
            value: Value::Text(MAPPING.into()),
        }],
        chunking: Chunking::Csv,
        source: "bench.csv".into(),
        channel: None,
    };
    for pass in ["first import", "re-import"] {
        let start = Instant::now();
        let record = importer
            .run("acme", spec.clone(), file.as_bytes(), &actor, |_| {})
            .unwrap();
        let took = start.elapsed().as_secs_f64();
        let r = &record.report;
        println!(
            "{pass}: {} rows ({:.1} MB) in {took:.2} s = {:.0} rows/s end to end; {} chunks; \
             connector {:.2} s ({:.0} rows/s), {:.2e} fuel, peak memory {:.1} MB; \
             {} events stored, {} duplicates, {} new and {} matched people, {} rejected",
            r.rows_read,
            r.bytes as f64 / 1e6,
            r.rows_read as f64 / took,
            r.chunks,
            r.connector.wall_ms as f64 / 1e3,
            r.rows_read as f64 / (r.connector.wall_ms.max(1) as f64 / 1e3),
            r.connector.fuel as f64,
            r.connector.peak_memory_bytes as f64 / 1e6,
            r.events_inserted,
            r.duplicates,
            r.subjects_new,
            r.subjects_matched,
            r.rejected_total()
        );
    }
}
