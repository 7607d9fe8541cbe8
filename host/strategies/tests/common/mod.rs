//! The world of the campaign tests: a real vault on sled, the `threshold`
//! segment plugin and its `spenders` segment, the sandboxed
//! `epsilon-greedy` strategy, and a registry whose connectors may reach a
//! loopback receiver ([`webhook`]).
#![allow(dead_code)]

#[path = "../../../segments/tests/common/webhook.rs"]
pub mod webhook;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_bundle::Kind;
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_segments::{SegmentSpec, Segments};
use tessera_strategies::{
    Arm, CampaignSpec, CampaignStatus, DecideRequest, DecisionOutcome, FeedbackKind, FeedbackSpec,
    Goal, GoalSource, Strategies,
};
use tessera_vault::{
    Actor, Channel, ConsentChange, EventSpec, IdentityKind, Incoming, NewEvent, PropertySpec,
    TenantSettings, TraitClass, TraitSpec, TraitType, Vault,
};

pub const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
pub const NOW: i64 = 1_780_272_000_000;
pub const DAY_MS: i64 = 86_400_000;
pub const PURPOSE: &str = "personalization";

pub fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

pub fn marketer() -> Actor {
    Actor::new("marketer", "tok-marketer")
}

pub struct World {
    pub vault: Arc<Vault>,
    pub registry: Registry,
    pub segments: Segments,
    pub strategies: Strategies,
    pub clock: Arc<AtomicI64>,
}

impl World {
    /// A vault in `dir` (created on first open), the plugins installed, and
    /// on first open the tenant and its `spenders` segment.
    pub fn open(dir: &Path) -> Self {
        let key_file = dir.join("master.key");
        if !key_file.exists() {
            MasterKey::generate().unwrap().write_new(&key_file).unwrap();
        }
        let clock = Arc::new(AtomicI64::new(NOW));
        let time = clock.clone();
        let vault = Arc::new(
            Vault::open(
                dir.join("data"),
                dir.join("keys"),
                MasterKey::from_file(&key_file).unwrap(),
            )
            .unwrap()
            .with_clock(Arc::new(move || time.fetch_add(1, Ordering::SeqCst))),
        );
        let fresh = vault.tenant_ids().unwrap().is_empty();
        if fresh {
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
            settings.events.insert(
                "purchase".into(),
                EventSpec {
                    properties: BTreeMap::from([(
                        "amount".into(),
                        PropertySpec::new(TraitType::Number),
                    )]),
                    ..EventSpec::default()
                },
            );
            vault.create_tenant(TENANT, settings, &operator()).unwrap();
        }
        let registry = webhook::registry(vault.clone());
        registry
            .install_builtin(TENANT, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
            .unwrap();
        registry
            .install_builtin(
                TENANT,
                tessera_guests::plugins::EPSILON_GREEDY,
                Kind::Strategy,
                65_536,
            )
            .unwrap();
        let segments = Segments::new(vault.clone(), registry.clone());
        if fresh {
            segments
                .put(
                    TENANT,
                    "spenders",
                    SegmentSpec {
                        plugin: "threshold".into(),
                        params: vec![FieldValue {
                            name: "threshold".into(),
                            value: Value::Number(100.0),
                        }],
                        purpose: Some(PURPOSE.into()),
                        description: String::new(),
                    },
                    &operator(),
                )
                .unwrap();
        }
        let strategies = Strategies::new(vault.clone(), registry.clone());
        World {
            vault,
            registry,
            segments,
            strategies,
            clock,
        }
    }

    /// People who spent enough to be in `spenders`, consenting; their
    /// subject ids.
    pub fn people(&self, n: usize) -> Vec<String> {
        let items: Vec<Incoming> = (0..n)
            .map(|i| Incoming {
                identities: vec![(IdentityKind::MemberId, format!("M-{i:05}"))],
                traits: BTreeMap::from([("total_spend".to_owned(), json!(500))]),
                events: Vec::new(),
                consents: vec![consent(true)],
            })
            .collect();
        let mut subjects = Vec::new();
        for chunk in items.chunks(500) {
            let (_, outcomes) = self
                .vault
                .ingest_batch(TENANT, chunk, &Actor::new("ingest", "pipeline"))
                .unwrap();
            subjects.extend(outcomes.into_iter().map(|o| o.subject.unwrap()));
        }
        self.segments.recompute(TENANT, "spenders").unwrap();
        subjects
    }

    pub fn spec(&self, holdout: f64) -> CampaignSpec {
        CampaignSpec {
            strategy: "epsilon-greedy".into(),
            params: vec![FieldValue {
                name: "epsilon".into(),
                value: Value::Number(0.2),
            }],
            segment: "spenders".into(),
            purpose: None,
            holdout,
            frequency_cap: None,
            budget: None,
            starts_at_ms: None,
            ends_at_ms: None,
            goal: Goal {
                event: "purchase".into(),
                value: Some("amount".into()),
                window_days: 7,
                source: GoalSource::Events,
            },
            fallback: Some("no_offer".into()),
            shadow: None,
            description: "spring offers".into(),
        }
    }

    /// Saves, simulates and runs a campaign.
    pub fn launch(&self, name: &str, spec: CampaignSpec) {
        self.strategies
            .put(TENANT, name, spec, &marketer())
            .unwrap();
        self.strategies
            .simulate(TENANT, name, None, &marketer())
            .unwrap();
        self.strategies
            .transition(TENANT, name, CampaignStatus::Running, &marketer())
            .unwrap();
    }

    pub fn decide(&self, campaign: &str, subject: &str) -> DecisionOutcome {
        self.strategies
            .decide(
                TENANT,
                &DecideRequest {
                    campaign: campaign.into(),
                    subject: subject.into(),
                    channel: "web".into(),
                    attributes: Vec::new(),
                },
            )
            .unwrap()
    }

    /// Feedback of `kind` on the decision `id`, without a value or key.
    pub fn feedback(&self, id: &str, kind: FeedbackKind) {
        self.strategies
            .feedback(
                TENANT,
                &FeedbackSpec {
                    decision: id.to_owned(),
                    kind,
                    value: None,
                    key: None,
                },
            )
            .unwrap();
    }

    pub fn audited(&self, action: &str) -> usize {
        self.vault
            .audit_entries(TENANT, 0, 100_000)
            .unwrap()
            .iter()
            .filter(|e| e.action == action)
            .count()
    }

    /// A purchase now by the person with member id `M-<index>`.
    pub fn purchase(&self, index: usize, amount: f64) {
        let at_ms = self.clock.load(Ordering::SeqCst);
        let item = Incoming {
            identities: vec![(IdentityKind::MemberId, format!("M-{index:05}"))],
            traits: BTreeMap::new(),
            events: vec![NewEvent {
                source_id: Some(format!("buy-{index}-{at_ms}")),
                event_type: "purchase".into(),
                at_ms,
                channel: Channel::Offline,
                properties: BTreeMap::from([("amount".to_owned(), json!(amount))]),
            }],
            consents: Vec::new(),
        };
        self.vault
            .ingest(TENANT, &item, &Actor::new("ingest", "pipeline"))
            .unwrap();
    }
}

pub fn consent(granted: bool) -> ConsentChange {
    ConsentChange {
        purpose: PURPOSE.into(),
        granted,
        method: "web_form".into(),
        given_at_ms: None,
    }
}

pub fn arm(outcome: &DecisionOutcome) -> Arm {
    match outcome {
        DecisionOutcome::Logged(record) => record.arm,
        other => panic!("expected a logged decision, got {other:?}"),
    }
}
