//! Segments end to end over a real vault on sled and the sandboxed
//! `threshold` segment plugin (members: `total_spend >= threshold`): save,
//! preview, batch recompute with membership history and sizes, streaming
//! updates as people change, consent revocation, erasure, and streaming
//! and batch agreeing on a generated population.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_bundle::Kind;
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_segments::{SegmentError, SegmentSpec, Segments};
use tessera_vault::{
    Actor, ConsentChange, IdentityKind, Incoming, TenantSettings, TraitClass, TraitSpec, TraitType,
    Vault,
};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const HOUR_MS: i64 = 3_600_000;

struct World {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    segments: Segments,
    clock: Arc<AtomicI64>,
}

fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

fn ingester() -> Actor {
    Actor::new("ingest", "pipeline")
}

fn consent(granted: bool) -> ConsentChange {
    ConsentChange {
        purpose: "email_marketing".into(),
        granted,
        method: "web_form".into(),
        given_at_ms: None,
    }
}

fn threshold(value: f64) -> SegmentSpec {
    SegmentSpec {
        plugin: "threshold".into(),
        params: vec![FieldValue {
            name: "threshold".into(),
            value: Value::Number(value),
        }],
        purpose: None,
        description: "big spenders".into(),
    }
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(AtomicI64::new(NOW));
        let time = clock.clone();
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().expect("master key"),
            )
            .expect("vault")
            .with_clock(Arc::new(move || time.load(Ordering::SeqCst))),
        );
        let mut settings = TenantSettings::default();
        settings.schema.insert(
            "total_spend".into(),
            TraitSpec {
                class: TraitClass::Standard,
                kind: TraitType::Number,
                pii_class: None,
                allowed: Vec::new(),
            },
        );
        vault
            .create_tenant(TENANT, settings, &operator())
            .expect("tenant");
        let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
        let registry = Registry::new(runtime, vault.clone(), false);
        registry
            .install_builtin(TENANT, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
            .expect("threshold plugin");
        let segments = Segments::new(vault.clone(), registry);
        World {
            _dir: dir,
            vault,
            segments,
            clock,
        }
    }

    /// A person with a spend and a marketing consent; returns the subject.
    fn person(&self, email: &str, spend: f64, consents: bool) -> String {
        let item = Incoming {
            identities: vec![(IdentityKind::Email, email.to_owned())],
            traits: BTreeMap::from([("total_spend".to_owned(), json!(spend))]),
            events: Vec::new(),
            consents: vec![consent(consents)],
        };
        self.vault
            .ingest(TENANT, &item, &ingester())
            .expect("ingest")
            .subject
            .expect("a subject")
    }

    fn set_spend(&self, subject: &str, spend: f64) {
        self.vault
            .rectify(
                TENANT,
                subject,
                &BTreeMap::from([("total_spend".to_owned(), Some(json!(spend)))]),
                &operator(),
            )
            .expect("rectify");
    }

    fn members(&self, segment: &str) -> BTreeSet<String> {
        self.vault
            .segment_members(TENANT, segment, None, 10_000)
            .expect("members")
            .into_iter()
            .map(|m| m.subject)
            .collect()
    }

    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }
}

#[test]
fn a_saved_segment_is_recomputed_with_history_and_sizes() {
    let world = World::new();
    let ann = world.person("ann@example.com", 800.0, true);
    let bob = world.person("bob@example.com", 120.0, true);
    let cat = world.person("cat@example.com", 950.0, false);

    let preview = world
        .segments
        .preview(TENANT, &threshold(500.0))
        .expect("preview");
    assert_eq!(preview.purpose, "email_marketing");
    // Cat spends enough but does not consent: not evaluated at all.
    assert_eq!((preview.evaluated, preview.members), (2, 1));
    assert_eq!(preview.sample, vec![ann.clone()]);
    assert!(world.members("big").is_empty(), "a preview writes nothing");

    let saved = world
        .segments
        .put(TENANT, "big", threshold(500.0), &operator())
        .expect("save");
    // The plugin's default for `op` is stored with the segment.
    assert!(saved.params.iter().any(|(name, _)| name == "op"));
    let report = world.segments.recompute(TENANT, "big").expect("recompute");
    assert_eq!(
        (
            report.evaluated,
            report.members,
            report.entered,
            report.left
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(world.members("big"), BTreeSet::from([ann.clone()]));
    let view = world
        .vault
        .access(TENANT, &ann, &operator())
        .expect("access");
    assert_eq!(view.segments.len(), 1);
    assert_eq!(
        (
            view.segments[0].segment.as_str(),
            view.segments[0].entered_at_ms
        ),
        ("big", NOW)
    );

    // Bob spends more, Ann spends less: a recompute moves both.
    world.advance(HOUR_MS);
    world.set_spend(&bob, 700.0);
    world.set_spend(&ann, 10.0);
    let report = world.segments.recompute(TENANT, "big").expect("recompute");
    assert_eq!((report.members, report.entered, report.left), (1, 1, 1));
    assert_eq!(world.members("big"), BTreeSet::from([bob.clone()]));
    let view = world
        .vault
        .access(TENANT, &ann, &operator())
        .expect("access");
    assert!(view.segments.is_empty());
    assert_eq!(view.past_segments.len(), 1);
    let past = &view.past_segments[0];
    assert_eq!(
        (past.segment.as_str(), past.entered_at_ms, past.left_at_ms),
        ("big", NOW, NOW + HOUR_MS)
    );

    // A recompute with nothing changed writes nothing new.
    let again = world.segments.recompute(TENANT, "big").expect("recompute");
    assert_eq!((again.members, again.entered, again.left), (1, 0, 0));
    let sizes = world.segments.sizes(TENANT, "big").expect("sizes");
    let counts: Vec<(u64, u64, u64)> = sizes
        .iter()
        .map(|p| (p.members, p.entered, p.left))
        .collect();
    assert_eq!(counts, vec![(1, 1, 0), (1, 1, 1), (1, 0, 0)]);
    assert_eq!(
        world
            .segments
            .last_recompute(TENANT, "big")
            .expect("status")
            .map(|r| r.members),
        Some(1)
    );
    let _ = cat;

    // Removing the segment: everyone leaves, with history.
    assert_eq!(
        world
            .segments
            .delete(TENANT, "big", &operator())
            .expect("delete"),
        1
    );
    assert!(world.members("big").is_empty());
    let view = world
        .vault
        .access(TENANT, &bob, &operator())
        .expect("access");
    assert!(view.segments.is_empty());
    assert_eq!(view.past_segments.len(), 1);
    assert!(matches!(
        world.segments.get(TENANT, "big"),
        Err(SegmentError::Unknown { .. })
    ));
}

#[test]
fn streaming_updates_follow_changes_and_consent() {
    let world = World::new();
    world.segments.watch();
    let ann = world.person("ann@example.com", 800.0, true);
    let bob = world.person("bob@example.com", 120.0, true);
    world
        .segments
        .put(TENANT, "big", threshold(500.0), &operator())
        .expect("save");
    world
        .segments
        .put(TENANT, "spenders", threshold(100.0), &operator())
        .expect("save");
    world.segments.recompute_all(TENANT).expect("recompute");
    // Ingesting the people before the segment existed queued them; that
    // round changes nothing now.
    world.segments.process_pending().expect("stream");
    assert_eq!(world.members("big"), BTreeSet::from([ann.clone()]));
    assert_eq!(
        world.members("spenders"),
        BTreeSet::from([ann.clone(), bob.clone()])
    );

    // Bob's new spend reaches the segment through the stream alone.
    world.set_spend(&bob, 900.0);
    let report = world.segments.process_pending().expect("stream");
    assert_eq!((report.people, report.entered, report.left), (1, 1, 0));
    assert_eq!(
        world.members("big"),
        BTreeSet::from([ann.clone(), bob.clone()])
    );

    // Ann revokes her marketing consent: she leaves on the next update.
    world
        .vault
        .set_consent(TENANT, &ann, &consent(false), &Actor::new("portal", "ann"))
        .expect("revoke");
    let report = world.segments.process_pending().expect("stream");
    // She leaves every segment of the purpose at once.
    assert_eq!((report.entered, report.left), (0, 2));
    assert_eq!(world.members("big"), BTreeSet::from([bob.clone()]));
    assert_eq!(world.members("spenders"), BTreeSet::from([bob.clone()]));
    // And a recompute agrees (she is no longer evaluated).
    let report = world.segments.recompute(TENANT, "big").expect("recompute");
    assert_eq!((report.evaluated, report.members, report.left), (1, 1, 0));

    // A new person who qualifies joins through the stream as they arrive.
    let cat = world.person("cat@example.com", 600.0, true);
    world.segments.process_pending().expect("stream");
    assert_eq!(
        world.members("big"),
        BTreeSet::from([bob.clone(), cat.clone()])
    );

    // An erased person leaves the index at once.
    world
        .vault
        .request_deletion(TENANT, &cat, "asked", &operator())
        .expect("erase");
    assert_eq!(world.members("big"), BTreeSet::from([bob.clone()]));
    world.segments.process_pending().expect("stream");
    assert_eq!(world.members("big"), BTreeSet::from([bob]));
}

#[test]
fn the_stream_worker_runs_updates_by_itself() {
    let world = World::new();
    world.segments.watch();
    let ann = world.person("ann@example.com", 100.0, true);
    world
        .segments
        .put(TENANT, "big", threshold(500.0), &operator())
        .expect("save");
    let worker = world
        .segments
        .spawn_stream_worker(std::time::Duration::from_millis(20))
        .expect("worker");
    world.set_spend(&ann, 999.0);
    let mut waited = 0;
    while world.members("big").is_empty() {
        assert!(waited < 500, "the worker never added the member");
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
    }
    drop(worker);
    assert_eq!(world.members("big"), BTreeSet::from([ann]));
}

#[test]
fn streaming_and_batch_agree_on_a_generated_population() {
    let streamed = World::new();
    let batch = World::new();
    streamed.segments.watch();
    for world in [&streamed, &batch] {
        world
            .segments
            .put(TENANT, "big", threshold(500.0), &operator())
            .expect("save");
        world
            .segments
            .put(TENANT, "small", threshold_le(100.0), &operator())
            .expect("save");
    }
    // The same changes, in the same order, to both worlds: 300 people, a
    // third of them changing their spend twice, some revoking consent.
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut people: Vec<(String, String)> = Vec::new();
    for i in 0..300 {
        let spend = (next() % 1_000) as f64;
        let consents = next() % 7 != 0;
        let email = format!("p{i}@example.com");
        let a = streamed.person(&email, spend, consents);
        let b = batch.person(&email, spend, consents);
        people.push((a, b));
        if i % 50 == 49 {
            streamed.segments.process_pending().expect("stream");
        }
    }
    for round in 0..2 {
        for (i, (a, b)) in people.iter().enumerate() {
            if (i + round) % 3 == 0 {
                let spend = (next() % 1_000) as f64;
                streamed.set_spend(a, spend);
                batch.set_spend(b, spend);
            }
            if i % 41 == round {
                let revoke = consent(false);
                streamed
                    .vault
                    .set_consent(TENANT, a, &revoke, &operator())
                    .expect("revoke");
                batch
                    .vault
                    .set_consent(TENANT, b, &revoke, &operator())
                    .expect("revoke");
            }
        }
        streamed.segments.process_pending().expect("stream");
    }
    batch.segments.recompute_all(TENANT).expect("recompute");
    let index_of = |world: &World, segment: &str, column: usize| -> BTreeSet<usize> {
        let members = world.members(segment);
        people
            .iter()
            .enumerate()
            .filter(|(_, pair)| members.contains(if column == 0 { &pair.0 } else { &pair.1 }))
            .map(|(i, _)| i)
            .collect()
    };
    for segment in ["big", "small"] {
        let by_stream = index_of(&streamed, segment, 0);
        let by_batch = index_of(&batch, segment, 1);
        assert!(
            !by_batch.is_empty(),
            "{segment}: a segment of nobody proves little"
        );
        assert_eq!(by_stream, by_batch, "{segment}: streaming and batch differ");
    }
}

fn threshold_le(value: f64) -> SegmentSpec {
    let mut spec = threshold(value);
    spec.params.push(FieldValue {
        name: "op".into(),
        value: Value::Text("<=".into()),
    });
    spec.description = "small spenders".into();
    spec
}

#[test]
fn bad_segments_are_refused_with_the_reason() {
    let world = World::new();
    let refused = |name: &str, spec: SegmentSpec| {
        world
            .segments
            .put(TENANT, name, spec, &operator())
            .expect_err("refused")
            .to_string()
    };
    assert!(refused("Big Spenders", threshold(1.0)).contains("a segment name is"));
    let mut spec = threshold(1.0);
    spec.plugin = "nope".into();
    assert!(refused("x", spec).contains("nope"));
    let mut spec = threshold(1.0);
    spec.params.clear();
    assert!(
        refused("x", spec).contains("threshold"),
        "a missing parameter is named"
    );
    let mut spec = threshold(1.0);
    spec.purpose = Some("third_party_sharing".into());
    assert!(refused("x", spec).contains("works for email_marketing, personalization, analytics"));
    // A column the parameters make the plugin read must be servable: a
    // trait missing from the schema would arrive empty.
    let mut settings = world.vault.settings(TENANT).expect("settings");
    settings.schema.remove("total_spend");
    world
        .vault
        .update_settings(TENANT, settings, &operator())
        .expect("settings");
    let refusal = refused("x", threshold(1.0));
    assert!(
        refusal.contains("`total_spend` is not in the tenant's schema"),
        "{refusal}"
    );
    assert!(world.segments.list(TENANT).expect("list").is_empty());
}

#[test]
fn a_sharded_recompute_survives_a_dead_worker_and_agrees_with_a_whole_one() {
    let whole = World::new();
    let sharded = World::new();
    let mut state: u64 = 0xfeed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut people = Vec::new();
    for i in 0..300 {
        let spend = (next() % 1_000) as f64;
        let consents = next() % 5 != 0;
        let email = format!("p{i}@example.com");
        people.push((
            whole.person(&email, spend, consents),
            sharded.person(&email, spend, consents),
        ));
    }
    for world in [&whole, &sharded] {
        world
            .segments
            .put(TENANT, "big", threshold(500.0), &operator())
            .expect("save");
    }
    let expected = whole.segments.recompute(TENANT, "big").expect("recompute");

    // A run whose shard 0..16 jobs are queued; a worker that claims one
    // and dies (it never renews nor completes it).
    sharded
        .segments
        .start_recompute(TENANT, "big")
        .expect("queued");
    let ghost = sharded
        .vault
        .store()
        .claim_job(tessera_segments::SHARD_JOB, "ghost", 1_000, NOW)
        .expect("claim")
        .expect("a shard to claim");
    let work = sharded.segments.work_shards().expect("work");
    assert_eq!(
        (work.shards, work.finished),
        (u64::from(tessera_segments::SHARDS) - 1, 0),
        "every shard but the dead worker's: {work:?}"
    );
    assert!(
        sharded
            .segments
            .last_recompute(TENANT, "big")
            .expect("status")
            .is_none(),
        "not finished while a shard is held"
    );
    // The dead worker's lease runs out: its shard is done by another.
    sharded.advance(1_500);
    let work = sharded.segments.work_shards().expect("work");
    assert_eq!((work.shards, work.finished), (1, 1), "{work:?}");
    assert!(
        !sharded
            .vault
            .store()
            .complete_job(&ghost.id)
            .expect("complete"),
        "the taken-over shard is done and gone"
    );
    let report = sharded
        .segments
        .last_recompute(TENANT, "big")
        .expect("status")
        .expect("finished");
    assert_eq!(
        (report.evaluated, report.members, report.entered),
        (expected.evaluated, expected.members, expected.entered),
        "{report:?} vs {expected:?}"
    );
    let members = |world: &World, column: usize| -> BTreeSet<usize> {
        let members = world.members("big");
        people
            .iter()
            .enumerate()
            .filter(|(_, p)| members.contains(if column == 0 { &p.0 } else { &p.1 }))
            .map(|(i, _)| i)
            .collect()
    };
    assert!(!members(&whole, 0).is_empty());
    assert_eq!(members(&whole, 0), members(&sharded, 1));
    assert_eq!(
        sharded.segments.sizes(TENANT, "big").expect("sizes").len(),
        1,
        "one size point for the run"
    );
    // A second run: people who left are found shard by shard.
    for (_, subject) in people.iter().take(100) {
        sharded.set_spend(subject, 0.0);
    }
    for (subject, _) in people.iter().take(100) {
        whole.set_spend(subject, 0.0);
    }
    let expected = whole.segments.recompute(TENANT, "big").expect("recompute");
    let report = sharded
        .segments
        .recompute_sharded(TENANT, "big")
        .expect("recompute");
    assert!(expected.left > 0, "{expected:?}");
    assert_eq!(
        (report.left, report.members),
        (expected.left, expected.members)
    );
    assert_eq!(members(&whole, 0), members(&sharded, 1));
}
