//! One person online and in a store, end to end through imports: a web
//! export (the `ndjson` connector, lines chunking) and a store's purchases
//! (the `csv` connector) make two subjects; a loyalty-members export that
//! carries the member's email with their member id and mobile shows they
//! are one person, and the import merges them. An operator un-merges them
//! through the vault, and re-importing every file does not merge them again
//! (`docs/privacy.md`, Identities and resolution). A second person who is
//! only online and a third who only shops in the store are never merged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tessera_bundle::Kind;
use tessera_imports::{Chunking, ImportRecord, ImportReport, ImportSpec, ImportStatus, Importer};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_vault::{
    Actor, Aggregate, AuditEntry, Channel, IdentityKind, NormalizeRules, SubjectView,
    TenantSettings, Vault,
};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z: the exports are of May 2026, within retention.
const NOW_MS: i64 = 1_780_272_000_000;

/// The shop's web and app analytics export. Li Na browses signed in (email
/// and her phone's advertising id), then once signed out (the device id
/// alone); Wang Wei only ever shops online.
const WEB: &str = concat!(
    r#"{"id":"w-1","type":"track","event":"page_view","at":"2026-05-10T09:00:00Z","identities":{"email":"li.na@example.com","device_id":"6F9619FF-8B86-D011-B42D-00C04FC964FF"},"properties":{"path":"/"}}"#,
    "\n",
    r#"{"id":"w-2","type":"track","event":"product_view","at":"2026-05-10T09:01:00Z","identities":{"email":"li.na@example.com","device_id":"6F9619FF-8B86-D011-B42D-00C04FC964FF"},"properties":{"sku":"SKU-1","price":59.5}}"#,
    "\n",
    r#"{"id":"w-3","type":"track","event":"add_to_cart","at":"2026-05-10T09:02:00Z","identities":{"email":"li.na@example.com","device_id":"6F9619FF-8B86-D011-B42D-00C04FC964FF"},"properties":{"sku":"SKU-1","price":59.5,"quantity":1}}"#,
    "\n",
    r#"{"id":"w-4","type":"track","event":"page_view","at":"2026-05-11T10:00:00Z","identities":{"email":"wang.wei@example.com","device_id":"a3c1e2f0-5b7d-4c1e-9f00-00000000b7e1"},"properties":{"path":"/"}}"#,
    "\n",
    r#"{"id":"w-5","type":"track","event":"product_view","at":"2026-05-11T10:05:00Z","identities":{"email":"wang.wei@example.com","device_id":"a3c1e2f0-5b7d-4c1e-9f00-00000000b7e1"},"properties":{"sku":"SKU-3","price":35.25}}"#,
    "\n",
    r#"{"id":"w-6","type":"track","event":"add_to_cart","at":"2026-05-11T10:06:00Z","identities":{"email":"wang.wei@example.com","device_id":"a3c1e2f0-5b7d-4c1e-9f00-00000000b7e1"},"properties":{"sku":"SKU-3","price":35.25,"quantity":2}}"#,
    "\n",
    r#"{"id":"w-7","type":"track","event":"page_view","at":"2026-05-12T20:00:00Z","identities":{"email":"li.na@example.com","device_id":"6F9619FF-8B86-D011-B42D-00C04FC964FF"},"properties":{"path":"/shoes"}}"#,
    "\n",
    r#"{"id":"w-8","type":"track","event":"product_view","at":"2026-05-12T20:01:00Z","identities":{"email":"li.na@example.com","device_id":"6F9619FF-8B86-D011-B42D-00C04FC964FF"},"properties":{"sku":"SKU-2","price":120}}"#,
    "\n",
    r#"{"id":"w-9","type":"track","event":"page_view","at":"2026-05-13T08:00:00Z","identities":{"device_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff"},"properties":{"path":"/sale"}}"#,
    "\n",
);

/// The store's till export, in local time (+08:00), keyed by member number
/// and mobile: Li Na buys twice, Zhang Min (never online) twice.
const POS: &str = "\
receipt_no,member_no,mobile,purchased_at,amount,qty,store
R-5001,M-1001,13900001111,2026-05-14 15:30:00,299.00,1,East
R-5002,M-2002,13700002222,2026-05-15 10:00:00,88.00,1,East
R-5003,M-1001,13900001111,2026-05-20 11:00:00,120.50,2,West
R-5004,M-2002,13700002222,2026-05-22 18:45:00,45.50,1,East
";

const POS_MAPPING: &str = r#"{
    "source": "pos-east",
    "timezone": "+08:00",
    "identities": {"member_no": "member_id", "mobile": {"kind": "phone", "required": true}},
    "event": {
        "type": "purchase",
        "time": {"column": "purchased_at", "format": "%Y-%m-%d %H:%M:%S"},
        "properties": {"amount": "number", "qty": "integer", "store": "string"}
    },
    "source_id": {"column": "receipt_no"}
}"#;

/// The loyalty programme's member list, written by the sign-up desk: Li Na
/// gave her email when she joined, which is what links her web browsing to
/// her purchases. Zhang Min gave no email.
const LOYALTY: &str = "\
member_no,email,mobile,tier
M-2002,,137 0000 2222,silver
M-1001,Li.Na@Example.com,+86 139-0000-1111,gold
";

const LOYALTY_MAPPING: &str = r#"{
    "source": "crm-loyalty",
    "identities": {
        "member_no": {"kind": "member_id", "required": true},
        "email": "email",
        "mobile": "phone"
    },
    "traits": {"tier": "string"},
    "source_id": {"column": "member_no"}
}"#;

/// The normalised identities of each person.
const LI_NA_WEB: [(&str, &str); 2] = [
    ("device_id", "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
    ("email", "li.na@example.com"),
];
const LI_NA_STORE: [(&str, &str); 2] = [("member_id", "M-1001"), ("phone", "+8613900001111")];
const WANG_WEI: [(&str, &str); 2] = [
    ("device_id", "a3c1e2f0-5b7d-4c1e-9f00-00000000b7e1"),
    ("email", "wang.wei@example.com"),
];
const ZHANG_MIN: [(&str, &str); 2] = [("member_id", "M-2002"), ("phone", "+8613700002222")];

/// Milliseconds of a UTC time of 2026-05.
fn may(day: i64, hour: i64, minute: i64) -> i64 {
    // 2026-05-01T00:00:00Z.
    const MAY_1: i64 = 1_777_593_600_000;
    MAY_1 + (day - 1) * 86_400_000 + hour * 3_600_000 + minute * 60_000
}

fn importer_actor() -> Actor {
    Actor::new("operator", "tok-imports")
}

fn desk() -> Actor {
    Actor::new("operator", "ops-desk")
}

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    importer: Importer,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A clock that moves 1 ms per reading: subjects created by
        // successive imports have distinct creation times (the oldest
        // survives a merge), and imports list in the order they ran.
        let ticks = Arc::new(AtomicI64::new(0));
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().unwrap(),
            )
            .unwrap()
            .with_clock(Arc::new(move || {
                NOW_MS + ticks.fetch_add(1, Ordering::Relaxed)
            })),
        );
        // National mobiles are Chinese, as the store's systems write them.
        let settings = TenantSettings {
            identity_rules: NormalizeRules {
                default_country_code: Some(86),
                ..NormalizeRules::default()
            },
            ..TenantSettings::default()
        };
        vault.create_tenant(TENANT, settings, &desk()).unwrap();
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let registry = Registry::new(runtime, vault.clone(), false);
        for plugin in [
            tessera_guests::plugins::CSV,
            tessera_guests::plugins::NDJSON,
        ] {
            registry
                .install_builtin(TENANT, plugin, Kind::Connector, 0)
                .unwrap();
        }
        let importer = Importer::new(registry, vault.clone());
        Fixture {
            _dir: dir,
            vault,
            importer,
        }
    }

    fn import(
        &self,
        connector: &str,
        chunking: Chunking,
        params: &[(&str, &str)],
        source: &str,
        channel: Option<Channel>,
        bytes: &str,
    ) -> ImportRecord {
        let record = self
            .importer
            .run(
                TENANT,
                ImportSpec {
                    connector: connector.into(),
                    params: params
                        .iter()
                        .map(|(name, value)| FieldValue {
                            name: (*name).into(),
                            value: Value::Text((*value).into()),
                        })
                        .collect(),
                    chunking,
                    source: source.into(),
                    channel,
                },
                bytes.as_bytes(),
                &importer_actor(),
                |_| {},
            )
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(record.status, ImportStatus::Completed, "{source}");
        let r = &record.report;
        assert_eq!(
            (r.rows_rejected, r.records_refused, r.dead_letters),
            (0, 0, 0),
            "{source}: {:#?}",
            r.examples
        );
        record
    }

    /// The web export; the channel is left to the importer (email and
    /// device ids are web identities: online).
    fn import_web(&self) -> ImportRecord {
        self.import(
            "ndjson",
            Chunking::Lines,
            &[("id_prefix", "shop-web:")],
            "web-2026-05.ndjson",
            None,
            WEB,
        )
    }

    /// The till export, offline by the operator's choice.
    fn import_pos(&self) -> ImportRecord {
        self.import(
            "csv",
            Chunking::Csv,
            &[("mapping", POS_MAPPING)],
            "pos-east-2026-05.csv",
            Some(Channel::Offline),
            POS,
        )
    }

    fn import_loyalty(&self) -> ImportRecord {
        self.import(
            "csv",
            Chunking::Csv,
            &[("mapping", LOYALTY_MAPPING)],
            "crm-loyalty-members.csv",
            None,
            LOYALTY,
        )
    }

    fn find(&self, kind: IdentityKind, raw: &str) -> String {
        self.vault
            .find_subject(TENANT, &kind, raw, &desk())
            .unwrap()
            .unwrap_or_else(|| panic!("{raw} finds no one"))
    }

    fn view(&self, subject: &str) -> SubjectView {
        self.vault.access(TENANT, subject, &desk()).unwrap()
    }

    /// The people of the tenant (root subjects), by id.
    fn people(&self) -> Vec<String> {
        let (people, cursor) = self.vault.people(TENANT, None, 100).unwrap();
        assert_eq!(cursor, None);
        let mut ids: Vec<String> = people.into_iter().map(|p| p.subject).collect();
        ids.sort();
        ids
    }

    fn audit(&self, action: &str) -> Vec<AuditEntry> {
        self.vault
            .audit_entries(TENANT, 0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

/// What an import did, as (rows read, records, events, trait updates,
/// accepted, events inserted, duplicates, people new, people matched,
/// merges).
fn counts(r: &ImportReport) -> [u64; 10] {
    [
        r.rows_read,
        r.records,
        r.events,
        r.trait_updates,
        r.accepted,
        r.events_inserted,
        r.duplicates,
        r.subjects_new,
        r.subjects_matched,
        r.identities_merged,
    ]
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// (count, first, last) of an aggregate, and its sums by property.
type Summary<'a> = ((u64, i64, i64), Vec<(&'a str, f64)>);

fn aggregate(a: &Aggregate) -> Summary<'_> {
    (
        (a.count, a.first_ms, a.last_ms),
        a.sums.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
    )
}

/// Events as (type, time, channel, the subject record they are stored under).
fn events(view: &SubjectView) -> Vec<(&str, i64, Channel, &str)> {
    view.events
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.at_ms,
                e.channel,
                e.subject.as_str(),
            )
        })
        .collect()
}

fn traits(view: &SubjectView) -> BTreeMap<String, serde_json::Value> {
    view.traits
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

fn tier(value: &str) -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([("tier".to_owned(), serde_json::json!(value))])
}

/// The view without its access log, which grows with every read.
fn unlogged(mut view: SubjectView) -> SubjectView {
    view.access_log.clear();
    view
}

/// Li Na's web history, stored under `web`.
fn li_na_online(web: &str) -> Vec<(&'static str, i64, Channel, &str)> {
    vec![
        ("page_view", may(10, 9, 0), Channel::Online, web),
        ("product_view", may(10, 9, 1), Channel::Online, web),
        ("add_to_cart", may(10, 9, 2), Channel::Online, web),
        ("page_view", may(12, 20, 0), Channel::Online, web),
        ("product_view", may(12, 20, 1), Channel::Online, web),
        ("page_view", may(13, 8, 0), Channel::Online, web),
    ]
}

/// Li Na's purchases (15:30 and 11:00 at +08:00), stored under `store`.
fn li_na_offline(store: &str) -> Vec<(&'static str, i64, Channel, &str)> {
    vec![
        ("purchase", may(14, 7, 30), Channel::Offline, store),
        ("purchase", may(20, 3, 0), Channel::Offline, store),
    ]
}

/// Asserts the online person `web` alone: Li Na's web identities, history
/// and aggregates, and no purchase.
fn assert_li_na_web_alone(view: &SubjectView, web: &str) {
    assert_eq!(view.subject, web);
    assert!(view.merged_subjects.is_empty());
    assert_eq!(view.identities, pairs(&LI_NA_WEB));
    assert_eq!(events(view), li_na_online(web));
    assert_eq!(view.aggregates.len(), 3, "{:?}", view.aggregates.keys());
    assert_eq!(
        aggregate(&view.aggregates["page_view"]),
        ((3, may(10, 9, 0), may(13, 8, 0)), vec![])
    );
    assert_eq!(
        aggregate(&view.aggregates["product_view"]),
        ((2, may(10, 9, 1), may(12, 20, 1)), vec![("price", 179.5)])
    );
    assert_eq!(
        aggregate(&view.aggregates["add_to_cart"]),
        (
            (1, may(10, 9, 2), may(10, 9, 2)),
            vec![("price", 59.5), ("quantity", 1.0)]
        )
    );
}

/// Asserts the store person `store` alone: Li Na's store identities and
/// purchases, and no trait (the loyalty record arrived under the survivor).
fn assert_li_na_store_alone(view: &SubjectView, store: &str) {
    assert_eq!(view.subject, store);
    assert!(view.merged_subjects.is_empty());
    assert_eq!(view.identities, pairs(&LI_NA_STORE));
    assert_eq!(events(view), li_na_offline(store));
    assert_eq!(view.aggregates.len(), 1, "{:?}", view.aggregates.keys());
    assert_eq!(
        aggregate(&view.aggregates["purchase"]),
        (
            (2, may(14, 7, 30), may(20, 3, 0)),
            vec![("amount", 419.5), ("qty", 3.0)]
        )
    );
    assert!(view.traits.is_empty(), "{:?}", view.traits);
}

/// Wang Wei and Zhang Min are as their own records made them, whatever
/// happened to Li Na.
fn assert_bystanders(f: &Fixture, wang: &str, zhang: &str) {
    let view = f.view(wang);
    assert_eq!(view.subject, wang);
    assert!(view.merged_subjects.is_empty());
    assert_eq!(view.identities, pairs(&WANG_WEI));
    assert_eq!(
        events(&view),
        [
            ("page_view", may(11, 10, 0), Channel::Online, wang),
            ("product_view", may(11, 10, 5), Channel::Online, wang),
            ("add_to_cart", may(11, 10, 6), Channel::Online, wang),
        ]
    );
    assert_eq!(
        aggregate(&view.aggregates["add_to_cart"]),
        (
            (1, may(11, 10, 6), may(11, 10, 6)),
            vec![("price", 35.25), ("quantity", 2.0)]
        )
    );
    assert!(view.traits.is_empty());
    assert!(view.merge_history.is_empty());

    let view = f.view(zhang);
    assert_eq!(view.subject, zhang);
    assert!(view.merged_subjects.is_empty());
    assert_eq!(view.identities, pairs(&ZHANG_MIN));
    assert_eq!(
        events(&view),
        [
            ("purchase", may(15, 2, 0), Channel::Offline, zhang),
            ("purchase", may(22, 10, 45), Channel::Offline, zhang),
        ]
    );
    assert_eq!(view.aggregates.len(), 1);
    assert_eq!(
        aggregate(&view.aggregates["purchase"]),
        (
            (2, may(15, 2, 0), may(22, 10, 45)),
            vec![("amount", 133.5), ("qty", 2.0)]
        )
    );
    assert_eq!(traits(&view), tier("silver"));
    assert!(view.merge_history.is_empty());
}

#[test]
fn a_person_seen_online_and_in_store_is_merged_by_the_loyalty_export_and_unmerged_for_good() {
    let f = Fixture::new();

    // 1. The web export: two people, nine events, all online.
    let web_import = f.import_web();
    assert_eq!(counts(&web_import.report), [9, 9, 9, 0, 9, 9, 0, 2, 0, 0]);
    assert_eq!(web_import.report.chunks, 1);
    let web = f.find(IdentityKind::Email, "li.na@example.com");
    let wang = f.find(IdentityKind::Email, "wang.wei@example.com");
    assert_ne!(web, wang);
    assert_eq!(
        f.find(
            IdentityKind::DeviceId,
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        ),
        web,
        "the signed-out page view went to the device's person"
    );

    // 2. The till export: two more people (nothing there links to the web).
    let pos_import = f.import_pos();
    assert_eq!(counts(&pos_import.report), [4, 4, 4, 0, 4, 4, 0, 2, 0, 0]);
    let store = f.find(IdentityKind::MemberId, "M-1001");
    let zhang = f.find(IdentityKind::MemberId, "M-2002");
    let mut four = vec![web.clone(), wang.clone(), store.clone(), zhang.clone()];
    four.sort();
    four.dedup();
    assert_eq!(four.len(), 4);
    assert_eq!(f.people(), four);
    assert_li_na_web_alone(&f.view(&web), &web);
    assert!(f.audit("subject.merge").is_empty());

    // 3. The loyalty export: Li Na's row names her email (the web subject)
    // with her member id and mobile (the store subject): one merge, into
    // the older subject. Zhang Min's row only matches her.
    let loyalty_import = f.import_loyalty();
    assert_eq!(
        counts(&loyalty_import.report),
        [2, 2, 0, 2, 2, 0, 0, 0, 2, 1]
    );
    let mut three = vec![web.clone(), wang.clone(), zhang.clone()];
    three.sort();
    assert_eq!(f.people(), three, "the store subject is part of Li Na now");
    for (kind, raw) in [
        (IdentityKind::Email, "LI.NA@example.com"),
        (
            IdentityKind::DeviceId,
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        ),
        (IdentityKind::MemberId, "M-1001"),
        (IdentityKind::Phone, "+86 139 0000 1111"),
        (IdentityKind::Phone, "13900001111"),
    ] {
        assert_eq!(f.find(kind.clone(), raw), web, "{kind:?} {raw}");
    }

    // One person with both histories, through either subject id.
    let merged = f.view(&store);
    assert_eq!(unlogged(merged.clone()), unlogged(f.view(&web)));
    assert_eq!(merged.subject, web);
    assert_eq!(merged.merged_subjects, std::slice::from_ref(&store));
    let mut all = [LI_NA_WEB, LI_NA_STORE].concat();
    all.sort();
    assert_eq!(merged.identities, pairs(&all));
    let mut history = li_na_online(&web);
    history.extend(li_na_offline(&store));
    history.sort_by_key(|e| e.1);
    assert_eq!(events(&merged), history);
    let by_channel = |channel| {
        merged
            .events
            .iter()
            .filter(|e| e.channel == channel)
            .count()
    };
    assert_eq!(
        (by_channel(Channel::Online), by_channel(Channel::Offline)),
        (6, 2)
    );
    let per_type: BTreeMap<&str, u64> = merged
        .aggregates
        .iter()
        .map(|(k, a)| (k.as_str(), a.count))
        .collect();
    assert_eq!(
        per_type,
        BTreeMap::from([
            ("add_to_cart", 1),
            ("page_view", 3),
            ("product_view", 2),
            ("purchase", 2),
        ])
    );
    assert_eq!(
        aggregate(&merged.aggregates["purchase"]),
        (
            (2, may(14, 7, 30), may(20, 3, 0)),
            vec![("amount", 419.5), ("qty", 3.0)]
        )
    );
    let first_seen = merged.aggregates.values().map(|a| a.first_ms).min();
    let last_seen = merged.aggregates.values().map(|a| a.last_ms).max();
    assert_eq!(
        (first_seen, last_seen),
        (Some(may(10, 9, 0)), Some(may(20, 3, 0))),
        "first seen online, last seen in the store"
    );
    assert_eq!(traits(&merged), tier("gold"));
    // The merge is in the profile's history: made by the import's actor,
    // on the store subject's merging kinds, moving its two links.
    assert_eq!(merged.merge_history.len(), 1);
    let merge = &merged.merge_history[0];
    assert_eq!(
        (
            merge.action.as_str(),
            merge.survivor.as_str(),
            merge.absorbed.as_str(),
            merge.because.clone(),
            merge.identities_moved,
            &merge.actor,
        ),
        (
            "merge",
            web.as_str(),
            store.as_str(),
            vec!["member_id".to_owned(), "phone".to_owned()],
            2,
            &importer_actor(),
        )
    );
    // And in the audit trail, before the loyalty import's own entry.
    let merges = f.audit("subject.merge");
    assert_eq!(merges.len(), 1);
    assert_eq!(
        (
            &merges[0].actor,
            merges[0].subject.as_deref(),
            merges[0].detail.as_deref()
        ),
        (
            &importer_actor(),
            Some(web.as_str()),
            Some(format!("absorbed {store}").as_str())
        )
    );
    let runs = f.audit("import.run");
    assert_eq!(runs.len(), 3);
    assert!(runs[1].seq < merges[0].seq && merges[0].seq < runs[2].seq);
    assert_bystanders(&f, &wang, &zhang);

    // 4. The sign-up desk typed the wrong email: an operator reads the
    // survivor and the absorbed subject off the merge history and un-merges.
    let unmerged = f
        .vault
        .unmerge(TENANT, &merge.survivor, &merge.absorbed, &desk())
        .unwrap();
    assert_eq!(
        (
            unmerged.action.as_str(),
            unmerged.survivor.as_str(),
            unmerged.absorbed.as_str(),
            unmerged.identities_moved,
            &unmerged.actor,
        ),
        ("unmerge", web.as_str(), store.as_str(), 2, &desk())
    );
    let check_split = |f: &Fixture| {
        assert_eq!(f.people(), four, "two people again");
        let web_view = f.view(&web);
        assert_li_na_web_alone(&web_view, &web);
        // The loyalty record arrived under the survivor, and records stay
        // with the subject they arrived under.
        assert_eq!(traits(&web_view), tier("gold"));
        let store_view = f.view(&store);
        assert_li_na_store_alone(&store_view, &store);
        for view in [&web_view, &store_view] {
            let actions: Vec<&str> = view
                .merge_history
                .iter()
                .map(|m| m.action.as_str())
                .collect();
            assert_eq!(actions, ["merge", "unmerge"]);
            assert_eq!(view.merge_history[1], unmerged);
        }
        for (kind, raw, subject) in [
            (IdentityKind::Email, "li.na@example.com", &web),
            (
                IdentityKind::DeviceId,
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                &web,
            ),
            (IdentityKind::MemberId, "M-1001", &store),
            (IdentityKind::Phone, "13900001111", &store),
        ] {
            assert_eq!(&f.find(kind.clone(), raw), subject, "{kind:?} {raw}");
        }
        assert_bystanders(f, &wang, &zhang);
    };
    check_split(&f);
    let unmerges = f.audit("subject.unmerge");
    assert_eq!(unmerges.len(), 1);
    assert_eq!(
        (
            &unmerges[0].actor,
            unmerges[0].subject.as_deref(),
            unmerges[0].detail.as_deref()
        ),
        (
            &desk(),
            Some(web.as_str()),
            Some(format!("separated {store}").as_str())
        )
    );

    // 5. The same files again: the un-merge recorded the pair as separated,
    // so the same evidence does not merge them again (docs/privacy.md).
    // Every event is a duplicate; each record finds its person.
    let again = [f.import_web(), f.import_pos(), f.import_loyalty()];
    assert_eq!(counts(&again[0].report), [9, 9, 9, 0, 9, 0, 9, 0, 2, 0]);
    assert_eq!(counts(&again[1].report), [4, 4, 4, 0, 4, 0, 4, 0, 2, 0]);
    // Li Na's loyalty row names both separated subjects: it goes to the
    // older one, as before, and merges nothing.
    assert_eq!(counts(&again[2].report), [2, 2, 0, 2, 2, 0, 0, 0, 2, 0]);
    check_split(&f);
    assert_eq!(f.audit("subject.merge").len(), 1);
    assert_eq!(f.audit("subject.unmerge").len(), 1);
    assert_eq!(f.audit("import.run").len(), 6);
    assert!(f.vault.verify_audit(TENANT).unwrap().intact());
}
