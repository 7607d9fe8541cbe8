//! Imports end to end: the first-party CSV connector installed through the
//! registry, a real vault on sled in a temporary directory, files with
//! planted duplicates, bad rows, quoted newlines and GB18030 text.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tessera_bundle::Kind;
use tessera_imports::{
    Chunking, Fix, ImportError, ImportItem, ImportReport, ImportSpec, ImportStatus, Importer,
    ImporterConfig, LetterContent, LetterOrigin, LetterState,
};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_vault::{Actor, IdentityKind, NormalizeRules, TenantSettings, Vault};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW_MS: i64 = 1_780_272_000_000;
const PLANTED_EMAIL: &str = "planted.person@example.com";

const MAPPING: &str = r#"{
    "source": "pos-east",
    "timezone": "+08:00",
    "identities": {"member_no": "member_id", "mobile": "phone", "email": "email"},
    "event": {
        "type": "purchase",
        "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
        "properties": {"amount": "number", "store": {"name": "store_name", "type": "string"}}
    },
    "source_id": {"column": "receipt_no"}
}"#;

struct Fixture {
    dir: tempfile::TempDir,
    vault: Arc<Vault>,
    importer: Importer,
}

fn operator() -> Actor {
    Actor::new("operator", "tok-ops")
}

impl Fixture {
    fn new(tenants: &[&str], config: ImporterConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().unwrap(),
            )
            .unwrap()
            // The vault's clock stays in the receipts' season: their events
            // are within the retention period whenever the test runs.
            // A clock that starts at NOW_MS and moves 1 ms per reading, so
            // that imports started one after the other have distinct times
            // (ids and listings order by time) and the data stays in retention.
            .with_clock({
                let ticks = Arc::new(std::sync::atomic::AtomicI64::new(0));
                Arc::new(move || NOW_MS + ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            }),
        );
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let registry = Registry::new(runtime, vault.clone(), false);
        for tenant in tenants {
            vault
                .create_tenant(tenant, settings(), &operator())
                .unwrap();
            for plugin in [
                tessera_guests::plugins::CSV,
                tessera_guests::plugins::NDJSON,
            ] {
                registry
                    .install_builtin(tenant, plugin, Kind::Connector, 0)
                    .unwrap();
            }
        }
        let importer = Importer::new(registry, vault.clone()).with_config(config);
        Fixture {
            dir,
            vault,
            importer,
        }
    }

    fn import(
        &self,
        tenant: &str,
        file: &[u8],
        extra: &[(&str, &str)],
    ) -> tessera_imports::ImportRecord {
        let mut params = vec![param("mapping", MAPPING)];
        params.extend(extra.iter().map(|(n, v)| param(n, v)));
        let mut calls = 0;
        let record = self
            .importer
            .run(
                tenant,
                ImportSpec {
                    connector: "csv".into(),
                    params,
                    chunking: Chunking::Csv,
                    source: "purchases.csv".into(),
                    channel: None,
                },
                file,
                &operator(),
                |_| calls += 1,
            )
            .unwrap_or_else(|e| panic!("import failed: {e}"));
        assert_eq!(calls as u64, record.report.chunks);
        record
    }
}

/// Mobiles without a country code are Chinese, as the store's exports write them.
fn settings() -> TenantSettings {
    TenantSettings {
        identity_rules: NormalizeRules {
            default_country_code: Some(86),
            ..NormalizeRules::default()
        },
        ..TenantSettings::default()
    }
}

fn param(name: &str, value: &str) -> FieldValue {
    FieldValue {
        name: name.into(),
        value: Value::Text(value.into()),
    }
}

fn small_chunks(bytes: usize) -> ImporterConfig {
    ImporterConfig {
        chunk_bytes: bytes,
        batch: 64,
        ..ImporterConfig::default()
    }
}

/// What the generator planted, counted as it wrote the file.
#[derive(Debug, Default)]
struct Truth {
    rows: u64,
    bad_dates: u64,
    bad_amounts: u64,
    no_identity: u64,
    bad_emails: u64,
    duplicates: u64,
    people: u64,
    merges: u64,
}

/// A store's purchases: 100 loyalty members (member number and mobile),
/// 5 members known only by number and 5 web customers known only by email,
/// then 5 receipts that show each of those pairs is one person; with
/// repeated receipts, bad dates, bad amounts, rows without an identity,
/// invalid emails, and store names with quoted newlines.
fn purchases() -> (String, Truth) {
    let mut t = Truth::default();
    let mut file = String::from("receipt_no,member_no,mobile,email,purchased_at,amount,store\n");
    let mut good: Vec<String> = Vec::new();
    for r in 0..300u32 {
        let c = r % 100;
        let store = if r % 7 == 0 {
            "\"Store\nEast, 2nd floor\"".to_string()
        } else {
            "West".to_string()
        };
        let date = format!("2026-03-{:02} 10:{:02}:00", 1 + r % 28, r % 60);
        let row = match r {
            _ if r % 31 == 5 => {
                t.bad_dates += 1;
                let email = if r == 5 { PLANTED_EMAIL } else { "" };
                format!("R{r},M{c},1380000{c:04},{email},2026-02-30 10:00:00,{r}.5,{store}\n")
            }
            _ if r % 53 == 7 => {
                t.bad_amounts += 1;
                format!("R{r},M{c},1380000{c:04},,{date},abc,{store}\n")
            }
            _ if r % 59 == 11 => {
                t.no_identity += 1;
                format!("R{r},,,,{date},{r},{store}\n")
            }
            _ if r % 61 == 13 => {
                t.bad_emails += 1;
                format!("R{r},M{c},1380000{c:04},not-an-email,{date},{r},{store}\n")
            }
            _ => {
                let row = format!("R{r},M{c},1380000{c:04},,{date},{r}.25,{store}\n");
                good.push(row.clone());
                row
            }
        };
        push(&mut file, &mut t, row);
        if r % 12 == 0 && good.len() > 3 {
            let again = good[good.len() / 2].clone();
            t.duplicates += 1;
            push(&mut file, &mut t, again);
        }
    }
    for i in 0..5 {
        push(
            &mut file,
            &mut t,
            format!("S{i},X{i},,,2026-04-01 09:00:00,5,West\n"),
        );
        push(
            &mut file,
            &mut t,
            format!("W{i},,,web{i}@example.com,2026-04-01 09:00:00,7,Web\n"),
        );
    }
    for i in 0..5 {
        push(
            &mut file,
            &mut t,
            format!("L{i},X{i},,web{i}@example.com,2026-04-02 09:00:00,9,West\n"),
        );
    }
    // Every customer of 0..100 has at least one good row, since bad rows
    // are sparse; the 10 from the merge block are people too.
    t.people = 100 + 10;
    t.merges = 5;
    (file, t)
}

fn push(file: &mut String, t: &mut Truth, row: String) {
    file.push_str(&row);
    t.rows += 1;
}

fn counted(report: &ImportReport) -> BTreeMap<String, u64> {
    report.rejected.clone()
}

#[test]
fn a_report_counts_exactly_what_the_generator_planted_and_a_reimport_adds_no_events() {
    let (file, truth) = purchases();
    let f = Fixture::new(&[TENANT], small_chunks(4096));
    let record = f.import(TENANT, file.as_bytes(), &[]);
    let r = &record.report;
    assert_eq!(record.status, ImportStatus::Completed);
    assert!(r.chunks > 3, "{} chunks", r.chunks);
    assert_eq!(r.rows_read, truth.rows);
    let rejected_rows = truth.bad_dates + truth.bad_amounts + truth.no_identity;
    let expected: BTreeMap<String, u64> = [
        ("invalid_field:purchased_at".to_string(), truth.bad_dates),
        ("invalid_field:amount".to_string(), truth.bad_amounts),
        ("invalid_field:email".to_string(), truth.no_identity),
        ("invalid_identity".to_string(), truth.bad_emails),
    ]
    .into_iter()
    .collect();
    assert_eq!(counted(r), expected, "{:#?}", r.examples);
    assert_eq!(r.rows_rejected, rejected_rows);
    assert_eq!(r.records, truth.rows - rejected_rows);
    assert_eq!(r.records_refused, truth.bad_emails);
    assert_eq!(r.accepted, r.records - truth.bad_emails);
    assert_eq!(r.duplicates, truth.duplicates);
    assert_eq!(r.events_inserted, r.accepted - truth.duplicates);
    assert_eq!(r.subjects_new, truth.people);
    assert_eq!(r.subjects_matched, 0);
    assert_eq!(r.identities_merged, truth.merges);
    assert_eq!(r.dead_letters, rejected_rows + truth.bad_emails);
    assert!(r.connector.fuel > 0 && r.connector.calls == r.chunks);
    assert_eq!(r.examples.len(), 20);
    // The first bad date is the sixth receipt, on line 8: the first receipt
    // has a quoted newline.
    let example = r
        .examples
        .iter()
        .find(|e| e.code == "invalid_field:purchased_at")
        .unwrap();
    assert_eq!(example.row, Some(8));
    assert_eq!(example.field.as_deref(), Some("purchased_at"));

    let again = f.import(TENANT, file.as_bytes(), &[]);
    let r2 = &again.report;
    assert_eq!(r2.events_inserted, 0, "a re-import adds no events");
    assert_eq!(r2.duplicates, r.accepted);
    assert_eq!(r2.subjects_new, 0);
    assert_eq!(r2.subjects_matched, truth.people - truth.merges);
    assert_eq!(counted(r2), expected);

    let imports = f.importer.imports(TENANT).unwrap();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0].id, record.id);
    assert_eq!(f.importer.import(TENANT, &again.id).unwrap(), again);
    let audit = f.vault.audit_entries(TENANT, 0, 1000).unwrap();
    let runs: Vec<_> = audit.iter().filter(|e| e.action == "import.run").collect();
    assert_eq!(runs.len(), 2);
    assert!(
        runs[0]
            .detail
            .as_ref()
            .unwrap()
            .contains(&format!("{} rows read", truth.rows))
    );
}

#[test]
fn fixed_dead_letters_replayed_are_stored_exactly_once() {
    let (file, truth) = purchases();
    let f = Fixture::new(&[TENANT], small_chunks(2048));
    let record = f.import(TENANT, file.as_bytes(), &[]);
    let letters = f
        .importer
        .dead_letters(TENANT, &record.id, None, 1000)
        .unwrap();
    assert_eq!(letters.len() as u64, record.report.dead_letters);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = f
            .importer
            .dead_letters(TENANT, &record.id, after.as_deref(), 7)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        paged.extend(page);
    }
    assert_eq!(paged, letters, "pages list every letter once");

    let mut fixed = Vec::new();
    for summary in &letters {
        let letter = f
            .importer
            .dead_letter(TENANT, &record.id, &summary.id, &operator())
            .unwrap();
        match (&letter.origin, &letter.content) {
            (LetterOrigin::Rejected, LetterContent::Raw { bytes, header })
                if summary.code == "invalid_field:purchased_at" =>
            {
                assert!(header.as_deref().unwrap().starts_with("receipt_no,"));
                let text = String::from_utf8(bytes.clone()).unwrap();
                assert!(text.contains("2026-02-30"), "{text:?}");
                let repaired = text.replace("2026-02-30", "2026-02-28");
                f.importer
                    .fix_dead_letter(
                        TENANT,
                        &record.id,
                        &summary.id,
                        Fix::Raw(repaired.into_bytes()),
                        &operator(),
                    )
                    .unwrap();
                fixed.push(summary.id.clone());
            }
            (LetterOrigin::Refused, LetterContent::Item { item }) => {
                assert_eq!(summary.code, "invalid_identity");
                let mut item = item.clone();
                if let ImportItem::Event { identities, .. } = &mut item {
                    identities.retain(|i| i.kind != "email");
                }
                f.importer
                    .fix_dead_letter(
                        TENANT,
                        &record.id,
                        &summary.id,
                        Fix::Item(item),
                        &operator(),
                    )
                    .unwrap();
                fixed.push(summary.id.clone());
            }
            _ => {}
        }
    }
    assert_eq!(fixed.len() as u64, truth.bad_dates + truth.bad_emails);
    let replay = f
        .importer
        .replay(TENANT, &record.id, &fixed, &operator())
        .unwrap();
    assert_eq!(
        replay.replayed,
        fixed.len() as u64,
        "{replay:?}: {:#?}",
        f.importer
            .dead_letters(TENANT, &record.id, None, 3)
            .unwrap()
    );
    assert_eq!(replay.failed, 0);
    assert_eq!(replay.events_inserted, fixed.len() as u64, "{replay:?}");

    let again = f
        .importer
        .replay(TENANT, &record.id, &fixed, &operator())
        .unwrap();
    assert_eq!(again.already_replayed, fixed.len() as u64);
    assert_eq!(again.replayed + again.events_inserted, 0);
    for summary in f
        .importer
        .dead_letters(TENANT, &record.id, None, 1000)
        .unwrap()
    {
        let replayed = summary.state == LetterState::Replayed;
        assert_eq!(replayed, fixed.contains(&summary.id), "{summary:?}");
    }
    // A letter that was not fixed fails again and stays open with its reason.
    let open = letters
        .iter()
        .find(|l| l.code == "invalid_field:amount")
        .unwrap();
    let failed = f
        .importer
        .replay(
            TENANT,
            &record.id,
            std::slice::from_ref(&open.id),
            &operator(),
        )
        .unwrap();
    assert_eq!(failed.failed, 1);
    // A re-import of the file stores the rows that were fixed as duplicates.
    let reimport = f.import(TENANT, file.as_bytes(), &[]);
    assert_eq!(reimport.report.events_inserted, 0);
}

#[test]
fn a_chunk_the_connector_fails_on_is_dead_lettered_and_the_others_are_stored() {
    let (file, truth) = purchases();
    // A row that starts with a GB18030 byte order mark in a UTF-8 file: the
    // connector fails the chunk that starts with it.
    let mut bytes = file.into_bytes();
    let at = bytes.windows(6).position(|w| w == b"\nR150,").unwrap() + 1;
    let planted = b"\x84\x31\x95\x33Z1,Z1,,,2026-03-01 10:00:00,1,West\n";
    bytes.splice(at..at, planted.iter().copied());
    let f = Fixture::new(&[TENANT], small_chunks(at));
    let record = f.import(TENANT, &bytes, &[]);
    let r = &record.report;
    assert_eq!(record.status, ImportStatus::Completed);
    assert_eq!(r.chunks_failed, 1, "{r:#?}");
    assert_eq!(r.connector.failed_calls, 1);
    let lost = r.rejected["connector_failed"];
    assert!(lost > 10, "{lost}");
    assert_eq!(r.rows_read, truth.rows + 1);
    let letters = f
        .importer
        .dead_letters(TENANT, &record.id, None, 1000)
        .unwrap();
    let failed: Vec<_> = letters
        .iter()
        .filter(|l| l.code == "connector_failed")
        .collect();
    assert_eq!(failed.len() as u64, lost);
    assert!(
        failed[0].reason.contains("byte order mark"),
        "{}",
        failed[0].reason
    );
    assert!(r.accepted > 0 && r.accepted + lost < r.rows_read);
    // Replaying the chunk's rows one by one stores all but the planted row.
    let ids: Vec<String> = failed.iter().map(|l| l.id.clone()).collect();
    let replay = f
        .importer
        .replay(TENANT, &record.id, &ids, &operator())
        .unwrap();
    assert_eq!(replay.failed, 1 + count_bad_among(&f, &record.id, &ids));
    assert_eq!(replay.replayed + replay.failed, lost);
}

/// Letters among `ids` whose row is one of the planted bad rows (they fail
/// again when replayed).
fn count_bad_among(f: &Fixture, import: &str, ids: &[String]) -> u64 {
    ids.iter()
        .filter(|id| {
            let letter = f
                .importer
                .dead_letter(TENANT, import, id, &operator())
                .unwrap();
            let LetterContent::Raw { bytes, .. } = letter.content else {
                return false;
            };
            let text = String::from_utf8_lossy(&bytes);
            text.contains("2026-02-30")
                || text.contains(",abc,")
                || text.starts_with("R") && text.contains(",,,,")
                || text.contains("not-an-email")
        })
        .count() as u64
}

/// A file under a name, with the parameters it is read with.
type Case = (&'static str, Vec<u8>, Vec<(&'static str, String)>);

/// The report without what depends on where chunks were cut.
fn comparable(report: &ImportReport) -> ImportReport {
    let mut r = report.clone();
    r.chunks = 0;
    r.connector = Default::default();
    // Examples are the first rejections in the order they were found, which
    // depends on where chunks were cut (a chunk's rows, then its records).
    r.examples.clear();
    r
}

#[test]
fn chunks_cut_inside_quoted_newlines_and_in_gb18030_files_give_the_result_of_one_chunk() {
    let (file, _) = purchases();
    let gb_text = file
        .replace("store\n", "门店\n")
        .replace("West", "西店")
        .replace("Store\nEast", "东店\n二楼");
    let (gb, _, unmappable) = encoding_rs::GB18030.encode(&gb_text);
    assert!(!unmappable);
    let mut gb_bom = b"\x84\x31\x95\x33".to_vec();
    gb_bom.extend_from_slice(&gb);
    let mapping_gb = MAPPING.replace("\"store\"", "\"门店\"");
    let cases: [Case; 3] = [
        ("utf-8", file.clone().into_bytes(), vec![]),
        (
            "gb18030",
            gb_bom.clone(),
            vec![
                ("encoding", "gb18030".into()),
                ("mapping", mapping_gb.clone()),
            ],
        ),
        (
            "gb18030 with |",
            encoding_rs::GB18030
                .encode(&gb_text.replace(',', "|"))
                .0
                .into_owned(),
            vec![
                ("encoding", "gb18030".into()),
                ("delimiter", "|".into()),
                ("mapping", mapping_gb.clone()),
            ],
        ),
    ];
    for (name, bytes, extra) in cases {
        let mut reports = Vec::new();
        for size in [usize::MAX / 4, 1, 97, 1000] {
            let f = Fixture::new(&[TENANT], small_chunks(size));
            let mut params: Vec<FieldValue> = vec![param("mapping", MAPPING)];
            for (n, v) in &extra {
                params.retain(|p| p.name != *n);
                params.push(param(n, v));
            }
            let record = f
                .importer
                .run(
                    TENANT,
                    ImportSpec {
                        connector: "csv".into(),
                        params,
                        chunking: Chunking::Csv,
                        source: name.into(),
                        channel: None,
                    },
                    &bytes[..],
                    &operator(),
                    |_| {},
                )
                .unwrap();
            assert!(size > 1 << 20 || record.report.chunks > 1, "{name} {size}");
            let letters = f
                .importer
                .dead_letters(TENANT, &record.id, None, 1000)
                .unwrap();
            let mut rows: Vec<(Option<u32>, String)> =
                letters.iter().map(|l| (l.row, l.code.clone())).collect();
            rows.sort();
            reports.push((comparable(&record.report), rows));
        }
        for other in &reports[1..] {
            assert_eq!(other, &reports[0], "{name}");
        }
        assert!(reports[0].0.accepted > 200, "{name}: {:#?}", reports[0].0);
    }
}

#[test]
fn the_dead_letter_store_and_import_records_hold_no_clear_text() {
    let (file, _) = purchases();
    let f = Fixture::new(&[TENANT], small_chunks(4096));
    let record = f.import(TENANT, file.as_bytes(), &[]);
    let letter = f
        .importer
        .dead_letters(TENANT, &record.id, None, 1000)
        .unwrap()
        .into_iter()
        .find(|l| l.code == "invalid_field:purchased_at")
        .unwrap();
    let opened = f
        .importer
        .dead_letter(TENANT, &record.id, &letter.id, &operator())
        .unwrap();
    let LetterContent::Raw { bytes, .. } = &opened.content else {
        panic!("{opened:?}")
    };
    assert!(String::from_utf8_lossy(bytes).contains(PLANTED_EMAIL));
    f.vault.flush().unwrap();
    let found = files_containing(&f.dir.path().join("data"), PLANTED_EMAIL.as_bytes());
    assert!(
        found.is_empty(),
        "the planted email is in clear in {found:?}"
    );
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn expired_dead_letters_are_purged_and_whole_inputs_over_the_cap_are_refused() {
    let (file, _) = purchases();
    let f = Fixture::new(
        &[TENANT],
        ImporterConfig {
            dead_letter_days: 0,
            whole_max_bytes: 1000,
            ..ImporterConfig::default()
        },
    );
    let record = f.import(TENANT, file.as_bytes(), &[]);
    assert!(record.report.dead_letters > 0);
    let purged = f.importer.purge_dead_letters(TENANT).unwrap();
    assert_eq!(purged.expired, record.report.dead_letters);
    assert!(
        f.importer
            .dead_letters(TENANT, &record.id, None, 10)
            .unwrap()
            .is_empty()
    );

    let error = f
        .importer
        .run(
            TENANT,
            ImportSpec {
                connector: "csv".into(),
                params: vec![param("mapping", MAPPING)],
                chunking: Chunking::Whole,
                source: "big.csv".into(),
                channel: None,
            },
            file.as_bytes(),
            &operator(),
            |_| {},
        )
        .unwrap_err();
    let ImportError::Failed { import, error } = error else {
        panic!("{error}")
    };
    assert!(
        matches!(*error, ImportError::TooLarge { limit: 1000 }),
        "{error}"
    );
    let failed = f.importer.import(TENANT, &import).unwrap();
    assert_eq!(failed.status, ImportStatus::Failed);
    assert!(failed.error.unwrap().contains("larger than 1000 bytes"));

    let refused = f.importer.run(
        TENANT,
        ImportSpec {
            connector: "csv".into(),
            params: vec![param(
                "mapping",
                "{\"source\": \"s\", \"identities\": {\"m\": \"memberid\"}}",
            )],
            chunking: Chunking::Csv,
            source: "x.csv".into(),
            channel: None,
        },
        file.as_bytes(),
        &operator(),
        |_| {},
    );
    assert!(
        matches!(refused, Err(ImportError::Params(_))),
        "{refused:?}"
    );
    let unknown = f.importer.run(
        TENANT,
        ImportSpec {
            connector: "nope".into(),
            params: vec![],
            chunking: Chunking::Csv,
            source: "x.csv".into(),
            channel: None,
        },
        file.as_bytes(),
        &operator(),
        |_| {},
    );
    assert!(
        matches!(unknown, Err(ImportError::Connector(_))),
        "{unknown:?}"
    );
}

/// Web events, one per line, with a broken line every 23rd and a blank
/// line every 40th: (file, the file rows of the broken lines).
fn web_events() -> (String, Vec<u32>) {
    let mut file = String::new();
    let mut broken = Vec::new();
    for i in 0..300u32 {
        let line = 1 + i;
        if i % 40 == 39 {
            file.push('\n');
        } else if i % 23 == 5 {
            broken.push(line);
            file.push_str(&format!(
                "{{\"id\":\"e{i}\",\"type\":\"track\",\"event\":\"page_view\"\n"
            ));
        } else {
            file.push_str(&format!(
                "{{\"id\":\"e{i}\",\"type\":\"track\",\"event\":\"page_view\",\"at\":\"2026-05-{:02}T10:00:00Z\",\
                 \"identities\":{{\"email\":\"u{}@example.com\"}},\"properties\":{{\"path\":\"/p/{i}\"}}}}\n",
                1 + i % 28,
                i % 50
            ));
        }
    }
    (file, broken)
}

#[test]
fn lines_in_small_chunks_give_the_result_of_one_call_with_rows_counted_in_the_file() {
    let (file, broken) = web_events();
    let mut results = Vec::new();
    for (chunking, size) in [
        (Chunking::Whole, 1 << 20),
        (Chunking::Lines, 1),
        (Chunking::Lines, 700),
    ] {
        let f = Fixture::new(&[TENANT], small_chunks(size));
        let record = f
            .importer
            .run(
                TENANT,
                ImportSpec {
                    connector: "ndjson".into(),
                    params: vec![],
                    chunking,
                    source: "web.ndjson".into(),
                    channel: None,
                },
                file.as_bytes(),
                &operator(),
                |_| {},
            )
            .unwrap();
        let r = &record.report;
        assert_eq!(r.rows_read, 300 - 300 / 40, "{chunking:?} {size}");
        assert_eq!(r.rows_rejected, broken.len() as u64);
        assert_eq!(r.events_inserted, r.rows_read - broken.len() as u64);
        assert_eq!(r.subjects_new, 50);
        let mut rows = Vec::new();
        for summary in f
            .importer
            .dead_letters(TENANT, &record.id, None, 1000)
            .unwrap()
        {
            let letter = f
                .importer
                .dead_letter(TENANT, &record.id, &summary.id, &operator())
                .unwrap();
            if chunking == Chunking::Lines {
                let LetterContent::Raw { bytes, header } = letter.content else {
                    panic!("{letter:?}")
                };
                assert_eq!(header, None);
                let line = file
                    .split_inclusive('\n')
                    .nth(summary.row.unwrap() as usize - 1);
                assert_eq!(Some(String::from_utf8(bytes).unwrap().as_str()), line);
            }
            rows.push(summary.row.unwrap());
        }
        assert_eq!(rows, broken, "{chunking:?} {size}");
        results.push(comparable(r));
    }
    assert!(results.iter().all(|r| r == &results[0]), "{results:#?}");
}

#[test]
fn an_erasure_reaches_the_refused_records_that_name_the_erased_person() {
    let (file, truth) = purchases();
    let f = Fixture::new(&[TENANT], small_chunks(4096));
    let record = f.import(TENANT, file.as_bytes(), &[]);
    // Receipt R13 of member M13 was refused for its email; M13 has other
    // receipts, so the person exists, and asks to be erased.
    let subject = f
        .vault
        .find_subject(TENANT, &IdentityKind::MemberId, "M13", &operator())
        .unwrap()
        .unwrap();
    f.vault
        .request_deletion(TENANT, &subject, "subject request", &operator())
        .unwrap();
    let purged = f.importer.purge_dead_letters(TENANT).unwrap();
    assert_eq!((purged.erased, purged.expired), (1, 0));
    let left = f
        .importer
        .dead_letters(TENANT, &record.id, None, 1000)
        .unwrap();
    assert_eq!(left.len() as u64, record.report.dead_letters - 1);
    assert_eq!(
        left.iter().filter(|l| l.code == "invalid_identity").count() as u64,
        truth.bad_emails - 1
    );
    assert_eq!(
        f.importer.purge_dead_letters(TENANT).unwrap(),
        Default::default()
    );
}

#[test]
fn an_event_the_tenant_schema_refuses_is_set_aside_and_the_others_are_stored() {
    let f = Fixture::new(&[TENANT], small_chunks(4096));
    let mut settings = f.vault.settings(TENANT).unwrap();
    settings.events.insert(
        "purchase".into(),
        serde_json::from_value(serde_json::json!({
            "properties": {"store_name": {"type": "string", "allowed": ["West"]}}
        }))
        .unwrap(),
    );
    f.vault
        .update_settings(TENANT, settings, &operator())
        .unwrap();
    let file = "receipt_no,member_no,mobile,email,purchased_at,amount,store\n\
                R1,M1,,,2026-03-01 10:00:00,5,West\n\
                R2,M2,,,2026-03-01 10:05:00,6,East\n\
                R3,M3,,,2026-03-01 10:10:00,7,West\n";
    let record = f.import(TENANT, file.as_bytes(), &[]);
    let r = &record.report;
    assert_eq!(record.status, ImportStatus::Completed);
    assert_eq!(r.records, 3);
    assert_eq!(r.accepted, 2);
    assert_eq!(r.events_inserted, 2);
    assert_eq!(counted(r), BTreeMap::from([("invalid_property".into(), 1)]));
    let letters = f
        .importer
        .dead_letters(TENANT, &record.id, None, 10)
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].code, "invalid_property");
    assert_eq!(letters[0].field.as_deref(), Some("purchase.store_name"));
    assert_eq!(letters[0].origin, LetterOrigin::Refused);
}
