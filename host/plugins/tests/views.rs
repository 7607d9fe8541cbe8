//! Data views: what a plugin sees of the vault (granted fields only,
//! consenting people only, pseudonymous keys, audited), and subject-keyed
//! plugin state, through a real vault on sled and a real sandboxed plugin.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use tessera_plugins::views::field_granted;
use tessera_plugins::{Permissions, PiiClass, Subjects, View, ViewError, ViewRequest, build_view};
use tessera_privacy::MasterKey;
use tessera_runtime::api::segments::Memberships;
use tessera_runtime::api::types::{
    AggregateFn, AggregateSpec, ColumnData, FieldClass, FieldSpec, FieldValue, Manifest,
    ProfileBatch, Value, ValueKind,
};
use tessera_runtime::{
    CallError, Grants, InstallRequest, Limits, Needs, Plugin, PluginError, PluginInfo, PluginKind,
    Runtime, RuntimeConfig, StateStore, WitVersion,
};
use tessera_store::SledStore;
use tessera_store::Store as _;
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, NewEvent, TenantSettings, Vault,
};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 86_400_000;
const INSTALLATION: &str = "inst-probe-1";

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime"))
}

fn probe_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        std::fs::read(tessera_guests::test_programs::VIEW_PROBE).expect("view-probe guest")
    })
}

struct World {
    _dir: tempfile::TempDir,
    vault: Vault,
    store: Arc<SledStore>,
}

fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SledStore::open(dir.path().join("data")).expect("store"));
        let master = MasterKey::generate().expect("master key");
        let vault = Vault::new(store.clone(), dir.path().join("keys"), master)
            .expect("vault")
            .with_clock(Arc::new(|| NOW));
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator())
            .expect("tenant");
        World {
            _dir: dir,
            vault,
            store,
        }
    }

    /// Installs the probe with a state quota, as installation `installation`.
    fn install(&self, installation: &str, state_quota: u64) -> Plugin {
        runtime()
            .install(
                probe_bytes(),
                InstallRequest {
                    kind: PluginKind::Segment,
                    grants: Grants {
                        state_quota,
                        ..Grants::default()
                    },
                    limits: Limits::default(),
                    tenant: TENANT.into(),
                    installation: installation.into(),
                    state: self.store.clone() as Arc<dyn StateStore>,
                },
            )
            .expect("install the probe")
    }

    /// A person with an email, a country, two purchases and, if `consents`,
    /// consent to analytics.
    fn person(&self, address: &str, country: &str, consents: bool) -> String {
        let purchase = |n: i64, amount: f64| NewEvent {
            source_id: Some(format!("{address}-{n}")),
            event_type: "purchase".into(),
            at_ms: NOW - n * DAY_MS,
            channel: Channel::Offline,
            properties: BTreeMap::from([("amount".to_owned(), json!(amount))]),
        };
        let item = Incoming {
            identities: vec![(IdentityKind::Email, address.to_owned())],
            traits: BTreeMap::from([
                ("email".to_owned(), json!(address)),
                ("country".to_owned(), json!(country)),
            ]),
            events: vec![purchase(3, 20.0), purchase(40, 100.0)],
            consents: if consents {
                vec![consent("analytics", true)]
            } else {
                Vec::new()
            },
        };
        self.vault
            .ingest(TENANT, &item, &Actor::new("ingest", "pipeline"))
            .expect("ingest")
            .subject
            .expect("a subject")
    }

    fn set_consent(&self, subject: &str, granted: bool) {
        self.vault
            .set_consent(
                TENANT,
                subject,
                &consent("analytics", granted),
                &Actor::new("subject", subject),
            )
            .expect("consent");
    }

    fn view(
        &self,
        plugin: &Plugin,
        installation: &str,
        granted: &Permissions,
        subjects: Subjects<'_>,
    ) -> Result<View, ViewError> {
        build_view(
            &self.vault,
            &ViewRequest {
                tenant: TENANT,
                plugin: plugin.info(),
                needs: &Needs::declared(&plugin.info().manifest),
                installation,
                granted,
                purpose: "analytics",
                now_ms: NOW,
            },
            subjects,
        )
    }
}

fn consent(purpose: &str, granted: bool) -> ConsentChange {
    ConsentChange {
        purpose: purpose.into(),
        granted,
        method: "portal".into(),
        given_at_ms: None,
    }
}

/// Everything the probe asks for.
fn full_grant() -> Permissions {
    Permissions {
        traits: vec!["email".into(), "country".into()],
        events: vec!["purchase".into()],
        pii: vec![PiiClass::Email],
        purposes: vec!["analytics".into()],
        state_quota: 64 << 10,
        ..Permissions::default()
    }
}

fn mode(mode: &str) -> Vec<FieldValue> {
    vec![FieldValue {
        name: "mode".into(),
        value: Value::Text(mode.into()),
    }]
}

fn evaluate(plugin: &Plugin, view: &View, how: &str) -> Result<Memberships, CallError> {
    plugin
        .evaluate_with(&mode(how), &view.batch, &view.scope())
        .map(|called| called.value)
}

/// The tier (country) the probe reported per row.
fn tiers(out: &Memberships) -> Vec<String> {
    let tiers = out.tiers.as_ref().expect("tiers");
    tiers
        .codes
        .iter()
        .map(|c| tiers.dictionary[*c as usize].clone())
        .collect()
}

/// Every string anywhere in a batch's columns.
fn strings(batch: &ProfileBatch) -> Vec<String> {
    batch
        .fields
        .iter()
        .chain(&batch.aggregates)
        .flat_map(|column| match &column.data {
            ColumnData::Text(t) => t.dictionary.clone(),
            ColumnData::TextList(t) => t.dictionary.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn all_people() -> Subjects<'static> {
    Subjects::Page {
        after: None,
        until: None,
        limit: 100,
    }
}

#[test]
fn a_trait_grant_without_its_pii_class_shows_no_email_at_all() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let stored = world
        .vault
        .access(TENANT, &ada, &operator())
        .expect("access");
    assert!(stored.traits.contains_key("email") && stored.traits.contains_key("country"));

    let without_class = Permissions {
        pii: Vec::new(),
        ..full_grant()
    };
    let without_trait = Permissions {
        traits: vec!["country".into()],
        ..full_grant()
    };
    for granted in [&without_class, &without_trait] {
        let view = world
            .view(&plugin, INSTALLATION, granted, all_people())
            .expect("view");
        assert_eq!(view.batch.rows, 1);
        assert_eq!(view.batch.fields.len(), 2, "columns stay positional");
        assert_eq!(view.batch.fields[0].present, vec![0], "email is missing");
        assert!(
            !strings(&view.batch).iter().any(|s| s.contains('@')),
            "no email anywhere in the batch: {:?}",
            strings(&view.batch)
        );
        assert_eq!(view.fields(), ["country"]);
        let out = evaluate(&plugin, &view, "plain").expect("call");
        assert_eq!(out.member, vec![0], "the probe saw no email");
        assert_eq!(tiers(&out), ["FR"], "the probe saw the country");
    }

    let view = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    assert_eq!(view.fields(), ["email", "country"]);
    let out = evaluate(&plugin, &view, "plain").expect("call");
    assert_eq!(out.member, vec![1], "with both grants the email is there");
    assert_eq!(tiers(&out), ["FR"]);
    assert_eq!(out.scores, vec![2.0], "two purchases");
}

#[test]
fn a_pii_trait_without_a_pii_class_in_the_schema_is_never_shown() {
    let world = World::new();
    let mut settings = world.vault.settings(TENANT).expect("settings");
    settings.schema.get_mut("email").expect("email").pii_class = None;
    world
        .vault
        .update_settings(TENANT, settings.clone(), &operator())
        .expect("settings");
    assert!(!field_granted(&settings, &full_grant(), "email"));
    assert!(field_granted(&settings, &full_grant(), "country"));
    assert!(!field_granted(&settings, &full_grant(), "not_in_schema"));

    // A standard trait cannot claim a PII class.
    settings
        .schema
        .get_mut("country")
        .expect("country")
        .pii_class = Some(tessera_vault::PiiClass::Location);
    let refused = world
        .vault
        .update_settings(TENANT, settings, &operator())
        .expect_err("a standard trait with a PII class");
    assert!(refused.to_string().contains("country"), "{refused}");
}

#[test]
fn aggregates_are_computed_only_for_granted_event_types() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    world.person("ada@example.com", "FR", true);
    let granted = Permissions {
        events: Vec::new(),
        ..full_grant()
    };
    let view = world
        .view(&plugin, INSTALLATION, &granted, all_people())
        .expect("view");
    assert_eq!(view.batch.aggregates[0].present, vec![0]);
    assert!(view.event_types().is_empty());
    let out = evaluate(&plugin, &view, "plain").expect("call");
    assert_eq!(out.scores, vec![-1.0], "the probe saw no purchase count");
}

#[test]
fn a_subject_who_revokes_is_absent_from_the_next_view_and_back_once_they_grant_again() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let bob = world.person("bob@example.com", "DE", true);
    let _never = world.person("cy@example.com", "IT", false);

    let rows = |world: &World| {
        let view = world
            .view(&plugin, INSTALLATION, &full_grant(), all_people())
            .expect("view");
        let mut subjects = view.subjects().to_vec();
        subjects.sort();
        (subjects, view.without_consent())
    };
    let mut both = vec![ada.clone(), bob.clone()];
    both.sort();
    assert_eq!(rows(&world), (both.clone(), 1), "never consented: absent");

    world.set_consent(&ada, false);
    assert_eq!(rows(&world), (vec![bob.clone()], 2));
    let by_id = world
        .view(
            &plugin,
            INSTALLATION,
            &full_grant(),
            Subjects::Ids(std::slice::from_ref(&ada)),
        )
        .expect("view");
    assert_eq!(by_id.batch.rows, 0, "asked for by id, still absent");
    let out = evaluate(&plugin, &by_id, "plain").expect("an empty call");
    assert!(out.member.is_empty());

    world.set_consent(&ada, true);
    assert_eq!(rows(&world), (both, 1));
}

#[test]
fn a_purpose_not_granted_is_refused_before_anything_is_read() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    world.person("ada@example.com", "FR", true);
    let granted = Permissions {
        purposes: vec!["email_marketing".into()],
        ..full_grant()
    };
    let before = world
        .vault
        .audit_entries(TENANT, 1, 10_000)
        .expect("audit")
        .len();
    let refused = world
        .view(&plugin, INSTALLATION, &granted, all_people())
        .expect_err("analytics is not granted");
    assert!(
        matches!(&refused, ViewError::PurposeNotGranted { purpose, .. } if purpose == "analytics"),
        "{refused}"
    );
    assert!(refused.to_string().contains("email_marketing"), "{refused}");
    let after = world.vault.audit_entries(TENANT, 1, 10_000).expect("audit");
    assert_eq!(after.len(), before, "nothing was read, nothing audited");
}

#[test]
fn pseudonyms_are_stable_differ_across_installations_and_never_reveal_the_subject() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let bob = world.person("bob@example.com", "DE", true);
    let view = |installation: &str| {
        world
            .view(&plugin, installation, &full_grant(), all_people())
            .expect("view")
    };
    let first = view(INSTALLATION);
    let again = view(INSTALLATION);
    let other = view("inst-other");
    assert_eq!(first.batch.keys, again.batch.keys, "stable across calls");
    assert_eq!(first.subjects(), other.subjects());
    for (row, key) in first.batch.keys.iter().enumerate() {
        assert_ne!(*key, other.batch.keys[row], "differs across installations");
        let hex = format!("{key:016x}");
        let decimal = key.to_string();
        for subject in [&ada, &bob] {
            assert!(!subject.contains(&hex) && !subject.contains(&decimal));
            assert!(!hex.contains(subject.as_str()));
        }
    }
    assert_ne!(first.batch.keys[0], first.batch.keys[1]);
    assert_eq!(
        world
            .vault
            .pseudonym(TENANT, INSTALLATION, first.subject(0).unwrap())
            .unwrap(),
        first.batch.keys[0]
    );
}

#[test]
fn every_view_writes_one_plugin_read_entry_with_fields_and_purpose_and_no_values() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let bob = world.person("bob@example.com", "DE", true);
    let before = world.vault.audit_entries(TENANT, 1, 10_000).unwrap().len();

    let batch = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    let one = world
        .view(
            &plugin,
            INSTALLATION,
            &full_grant(),
            Subjects::Ids(std::slice::from_ref(&bob)),
        )
        .expect("view");
    let entries = world.vault.audit_entries(TENANT, 1, 10_000).unwrap();
    let reads: Vec<_> = entries[before..]
        .iter()
        .filter(|e| e.action == "plugin.read")
        .collect();
    assert_eq!(reads.len(), 2, "one entry per view");
    assert_eq!(Some(reads[0].seq), batch.audit_seq());
    assert_eq!(Some(reads[1].seq), one.audit_seq());
    for entry in &reads {
        assert_eq!(entry.plugin.as_deref(), Some("view-probe"));
        assert_eq!(entry.plugin_version.as_deref(), Some("0.3.1"));
        assert_eq!(entry.purpose.as_deref(), Some("analytics"));
        assert_eq!(entry.actor, Actor::new("plugin", INSTALLATION));
        assert_eq!(entry.fields, ["email", "country", "event:purchase"]);
        let text = serde_json::to_string(entry).unwrap();
        for value in [
            "ada@example.com",
            "bob@example.com",
            "\"FR\"",
            "\"DE\"",
            "20.0",
        ] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
    assert_eq!(reads[0].batch, Some(2));
    assert_eq!(reads[0].subject, None);
    let digest = tessera_plugins::views::batch_digest(&[bob.clone(), ada.clone()]);
    assert_eq!(
        reads[0].detail.as_deref(),
        Some(format!("subjects sha256:{digest}").as_str())
    );
    assert_eq!(reads[1].subject.as_deref(), Some(bob.as_str()));
    // The person sees the single-row read in their own access log.
    let export = world.vault.access(TENANT, &bob, &operator()).unwrap();
    assert!(
        export
            .access_log
            .iter()
            .any(|e| e.action == "plugin.read" && e.seq == reads[1].seq)
    );
}

#[test]
fn subject_state_lives_under_the_subject_reaches_their_export_and_goes_with_their_deletion() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let bob = world.person("bob@example.com", "DE", true);
    let view = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    evaluate(&plugin, &view, "remember").expect("remember");

    for subject in [&ada, &bob] {
        assert_eq!(
            world.store.subject_state(TENANT, subject).expect("state"),
            vec![(
                INSTALLATION.to_owned(),
                format!("subject/{subject}/seen"),
                b"1".to_vec()
            )],
            "stored under the subject id"
        );
    }
    let export = world.vault.access(TENANT, &ada, &operator()).unwrap();
    assert_eq!(
        export.plugin_state,
        vec![(
            INSTALLATION.to_owned(),
            format!("subject/{ada}/seen"),
            "1".to_owned()
        )]
    );

    // The next call reads, and lists, the state by the rows' keys.
    let next = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    assert_eq!(
        evaluate(&plugin, &next, "recall").unwrap().scores,
        [1.0, 1.0]
    );
    // Another installation of the same plugin has keys of its own: nothing.
    let other = world.install("inst-other", 64 << 10);
    let other_view = world
        .view(&other, "inst-other", &full_grant(), all_people())
        .expect("view");
    assert_eq!(
        evaluate(&other, &other_view, "recall").unwrap().scores,
        [0.0, 0.0]
    );

    let request = world
        .vault
        .request_deletion(TENANT, &ada, "subject asked", &operator())
        .expect("deletion");
    world.vault.run_jobs("worker-1").expect("purge");
    let status = world.vault.deletion_request(TENANT, &request.id).unwrap();
    assert!(status.receipt.is_some_and(|r| r.removed.plugin_state == 1));
    assert!(world.store.subject_state(TENANT, &ada).unwrap().is_empty());
    assert_eq!(world.store.subject_state(TENANT, &bob).unwrap().len(), 1);
    let after = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    assert_eq!(after.subjects(), std::slice::from_ref(&bob));
    assert_eq!(evaluate(&plugin, &after, "recall").unwrap().scores, [1.0]);
}

#[test]
fn state_for_a_subject_outside_the_view_is_refused_and_the_next_honest_call_is_served() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 64 << 10);
    let ada = world.person("ada@example.com", "FR", true);
    let view = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");

    let refused = evaluate(&plugin, &view, "foreign").expect_err("a key of no row");
    let CallError::Plugin {
        error: PluginError::InvalidInput(message),
        ..
    } = &refused
    else {
        panic!("expected invalid-input, got {refused}");
    };
    assert!(
        message.contains("does not name a row of this call"),
        "{message}"
    );
    assert!(world.store.subject_state(TENANT, &ada).unwrap().is_empty());

    // Without a view, no subject state at all.
    let unscoped = plugin
        .evaluate(&mode("remember"), &view.batch)
        .expect_err("no subjects in scope");
    assert!(
        matches!(
            &unscoped,
            CallError::Plugin {
                error: PluginError::InvalidInput(_),
                ..
            }
        ),
        "{unscoped}"
    );
    assert!(world.store.subject_state(TENANT, &ada).unwrap().is_empty());

    let out = evaluate(&plugin, &view, "remember").expect("honest call");
    assert_eq!(out.scores, [1.0]);
    assert_eq!(world.store.subject_state(TENANT, &ada).unwrap().len(), 1);
}

#[test]
fn subject_state_over_the_quota_gives_the_quota_error_and_keeps_nothing() {
    let world = World::new();
    let plugin = world.install(INSTALLATION, 6_000);
    let ada = world.person("ada@example.com", "FR", true);
    let bob = world.person("bob@example.com", "DE", true);
    let view = world
        .view(&plugin, INSTALLATION, &full_grant(), all_people())
        .expect("view");
    let refused = evaluate(&plugin, &view, "fill").expect_err("two 4 KiB values");
    let CallError::Plugin {
        error: PluginError::Unavailable(message),
        ..
    } = &refused
    else {
        panic!("expected unavailable, got {refused}");
    };
    assert!(message.contains("quota of 6000 bytes"), "{message}");
    for subject in [&ada, &bob] {
        assert!(
            world
                .store
                .subject_state(TENANT, subject)
                .unwrap()
                .is_empty()
        );
    }
}

/// A plugin as installed, for views built without running it.
fn info(fields: Vec<FieldSpec>, aggregates: Vec<AggregateSpec>) -> PluginInfo {
    PluginInfo {
        kind: PluginKind::Segment,
        wit_version: WitVersion::V0_1,
        manifest: Manifest {
            name: "columns".into(),
            version: "1.0.0".into(),
            description: String::new(),
            parameters: Vec::new(),
            fields,
            aggregates,
            purposes: vec!["analytics".into()],
        },
        actions: Vec::new(),
        modes: None,
        plans: false,
        content_hash: String::new(),
        compiled: false,
    }
}

fn aggregate(
    name: &str,
    function: AggregateFn,
    property: Option<&str>,
    window_days: Option<u32>,
) -> AggregateSpec {
    AggregateSpec {
        name: name.into(),
        event_type: "purchase".into(),
        function,
        property: property.map(Into::into),
        window_days,
    }
}

#[test]
fn aggregates_count_only_events_within_their_window_and_values_convert_to_the_declared_kind() {
    let world = World::new();
    let ada = world.person("ada@example.com", "FR", true);
    world
        .vault
        .rectify(
            TENANT,
            &ada,
            &BTreeMap::from([
                ("lifetime_value".to_owned(), Some(json!(120.5))),
                ("member_since".to_owned(), Some(json!("2024-02-29"))),
                ("tier".to_owned(), Some(json!("gold"))),
            ]),
            &operator(),
        )
        .expect("rectify");
    let field = |name: &str, kind| FieldSpec {
        name: name.into(),
        kind,
        class: FieldClass::Standard,
    };
    let plugin = info(
        vec![
            field("lifetime_value", ValueKind::Number),
            field("member_since", ValueKind::Timestamp),
            field("tier", ValueKind::Integer),
            field("tier", ValueKind::TextList),
        ],
        vec![
            aggregate("n", AggregateFn::Count, None, None),
            aggregate("n_30d", AggregateFn::Count, None, Some(30)),
            aggregate("spend", AggregateFn::Sum, Some("amount"), None),
            aggregate("spend_30d", AggregateFn::Sum, Some("amount"), Some(30)),
            aggregate("smallest", AggregateFn::Min, Some("amount"), None),
            aggregate("largest_30d", AggregateFn::Max, Some("amount"), Some(30)),
            aggregate("first", AggregateFn::FirstAt, None, None),
            aggregate("last_7d", AggregateFn::LastAt, None, Some(7)),
            aggregate("last_1d", AggregateFn::LastAt, None, Some(1)),
        ],
    );
    let granted = Permissions {
        traits: vec![
            "lifetime_value".into(),
            "member_since".into(),
            "tier".into(),
        ],
        ..full_grant()
    };
    let view = build_view(
        &world.vault,
        &ViewRequest {
            tenant: TENANT,
            plugin: &plugin,
            needs: &Needs::declared(&plugin.manifest),
            installation: INSTALLATION,
            granted: &granted,
            purpose: "analytics",
            now_ms: NOW,
        },
        Subjects::Ids(&[ada]),
    )
    .expect("view");
    let batch = &view.batch;
    assert!(matches!(&batch.fields[0].data, ColumnData::Number(v) if v == &[120.5]));
    assert!(matches!(&batch.fields[1].data, ColumnData::Timestamp(v) if v == &[1_709_164_800_000]));
    assert_eq!(batch.fields[2].present, vec![0], "`gold` is no integer");
    assert!(matches!(&batch.fields[3].data, ColumnData::TextList(t) if t.dictionary == ["gold"]));
    let values: Vec<String> = batch
        .aggregates
        .iter()
        .map(|column| {
            if column.present == [0] {
                return "missing".to_owned();
            }
            match &column.data {
                ColumnData::Integer(v) => format!("{}", v[0]),
                ColumnData::Number(v) => format!("{}", v[0]),
                ColumnData::Timestamp(v) => format!("{}d", (NOW - v[0]) / DAY_MS),
                other => format!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        values,
        ["2", "1", "120", "20", "20", "20", "40d", "3d", "missing"]
    );
}

#[test]
fn a_sum_min_or_max_of_a_sensitive_event_property_needs_its_pii_class_as_a_trait_would() {
    use tessera_plugins::views::aggregate_granted;
    use tessera_vault::{PiiClass as SchemaClass, TraitClass};
    let world = World::new();
    let ada = world.person("ada@example.com", "FR", true);
    // A pharmacy's spend says something about health: the tenant classes
    // the purchase amount as sensitive.
    let mut settings = world.vault.settings(TENANT).expect("settings");
    let amount = settings
        .events
        .get_mut("purchase")
        .expect("purchase")
        .properties
        .get_mut("amount")
        .expect("amount");
    amount.class = TraitClass::Sensitive;
    amount.pii_class = Some(SchemaClass::SpecialCategory);
    world
        .vault
        .update_settings(TENANT, settings.clone(), &operator())
        .expect("settings");
    let plugin = info(
        Vec::new(),
        vec![
            aggregate("n", AggregateFn::Count, None, None),
            aggregate("spend", AggregateFn::Sum, Some("amount"), None),
            aggregate("largest", AggregateFn::Max, Some("amount"), Some(365)),
            aggregate("coupons", AggregateFn::Sum, Some("coupon"), None),
        ],
    );
    let present = |granted: &Permissions| -> Vec<u8> {
        let view = build_view(
            &world.vault,
            &ViewRequest {
                tenant: TENANT,
                plugin: &plugin,
                needs: &Needs::declared(&plugin.manifest),
                installation: INSTALLATION,
                granted,
                purpose: "analytics",
                now_ms: NOW,
            },
            Subjects::Ids(std::slice::from_ref(&ada)),
        )
        .expect("view");
        view.batch
            .aggregates
            .iter()
            .map(|column| u8::from(column.present != [0]))
            .collect()
    };
    // The count and a property the schema does not list (standard) are
    // computed; the sensitive amount is not, without its class.
    assert_eq!(present(&full_grant()), [1, 0, 0, 1]);
    let with_class = Permissions {
        pii: vec![PiiClass::Email, PiiClass::SpecialCategory],
        ..full_grant()
    };
    assert_eq!(present(&with_class), [1, 1, 1, 1]);
    // The audit names the property only where it was read.
    let entries = world.vault.audit_entries(TENANT, 1, 10_000).expect("audit");
    let reads: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "plugin.read")
        .map(|e| e.fields.contains(&"event:purchase.amount".to_owned()))
        .collect();
    assert_eq!(reads, [false, true]);

    // Sensitive with no PII class: never aggregated, whatever is granted.
    settings
        .events
        .get_mut("purchase")
        .expect("purchase")
        .properties
        .get_mut("amount")
        .expect("amount")
        .pii_class = None;
    world
        .vault
        .update_settings(TENANT, settings.clone(), &operator())
        .expect("settings");
    assert!(!aggregate_granted(
        &settings,
        &with_class,
        &plugin.manifest.aggregates[1]
    ));
    assert!(aggregate_granted(
        &settings,
        &with_class,
        &plugin.manifest.aggregates[0]
    ));
    assert_eq!(present(&with_class), [1, 0, 0, 1]);
}
