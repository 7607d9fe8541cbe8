//! Exports of a segment's members through a destination connector: the
//! first-party `webhook-out` connector installed from a signed bundle and
//! granted a loopback receiver, a real vault on sled and the `threshold`
//! segment plugin. What reaches the receiver is checked against who is in
//! the segment, who consents now and whose address a trusted source gave.

#[path = "common/webhook.rs"]
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_bundle::Kind;
use tessera_imports::Deliverer;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_segments::{
    EXPORT_ACTION, EXPORT_PAGE, ExportSpec, ExportStatus, SegmentError, SegmentSpec, Segments,
};
use tessera_vault::{
    Actor, ConsentChange, IdentityKind, Incoming, TenantSettings, TraitClass, TraitSpec, TraitType,
    Vault,
};
use webhook::{Destination, Received};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const PURPOSE: &str = "email_marketing";

fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

struct World {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    segments: Segments,
    deliverer: Deliverer,
    received: Arc<Received>,
    url: String,
}

impl World {
    /// `webhook-out` granted the receiver, `purposes` and `pii`, and the
    /// segment `spenders` (`total_spend >= 500`) saved.
    fn new(purposes: &[&str], pii: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ticks = Arc::new(AtomicI64::new(NOW));
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().unwrap(),
            )
            .unwrap()
            .with_clock(Arc::new(move || ticks.fetch_add(1, Ordering::SeqCst))),
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
        vault.create_tenant(TENANT, settings, &operator()).unwrap();
        let registry = webhook::registry(vault.clone());
        registry
            .install_builtin(TENANT, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
            .unwrap();
        let Destination {
            deliverer,
            received,
            url,
        } = Destination::install(&registry, &vault, TENANT, purposes, pii);
        let segments = Segments::new(vault.clone(), registry);
        let spec = SegmentSpec {
            plugin: "threshold".into(),
            params: vec![FieldValue {
                name: "threshold".into(),
                value: Value::Number(500.0),
            }],
            purpose: Some(PURPOSE.into()),
            description: String::new(),
        };
        segments.put(TENANT, "spenders", spec, &operator()).unwrap();
        World {
            _dir: dir,
            vault,
            segments,
            deliverer,
            received,
            url,
        }
    }

    /// A person from a trusted source, consenting to email marketing.
    fn person(&self, identities: &[(IdentityKind, &str)], spend: f64) -> String {
        self.ingest(identities, spend, true, false)
    }

    fn ingest(
        &self,
        identities: &[(IdentityKind, &str)],
        spend: f64,
        consents: bool,
        untrusted: bool,
    ) -> String {
        let item = Incoming {
            identities: identities
                .iter()
                .map(|(kind, value)| (kind.clone(), (*value).to_owned()))
                .collect(),
            traits: BTreeMap::from([("total_spend".to_owned(), json!(spend))]),
            events: Vec::new(),
            consents: vec![ConsentChange {
                purpose: PURPOSE.into(),
                granted: consents,
                method: "web_form".into(),
                given_at_ms: None,
            }],
        };
        let actor = Actor::new("ingest", "pipeline");
        let (_, outcomes) = if untrusted {
            self.vault.ingest_batch_untrusted(TENANT, &[item], &actor)
        } else {
            self.vault.ingest_batch(TENANT, &[item], &actor)
        }
        .unwrap();
        outcomes[0].subject.clone().expect("a subject")
    }

    fn spec(&self, recipient: IdentityKind) -> ExportSpec {
        ExportSpec {
            connector: "webhook-out".into(),
            params: vec![FieldValue {
                name: "url".into(),
                value: Value::Text(self.url.clone()),
            }],
            recipient,
        }
    }

    fn export(&self, recipient: IdentityKind) -> Result<tessera_segments::Export, SegmentError> {
        let (export, params) = self.segments.start_export(
            &self.deliverer,
            TENANT,
            "spenders",
            self.spec(recipient),
            &operator(),
        )?;
        self.segments
            .run_export(&self.deliverer, TENANT, export, params)
    }
}

#[test]
fn members_who_consent_now_are_sent_at_their_trusted_address_and_the_rest_are_accounted_for() {
    let world = World::new(&[PURPOSE], &["email"]);
    let ann = world.person(&[(IdentityKind::Email, "Ann@Example.com")], 900.0);
    let bob = world.person(&[(IdentityKind::Email, "bob@example.com")], 700.0);
    // A member known by a member id only.
    world.person(&[(IdentityKind::MemberId, "M-7")], 800.0);
    // A member whose only email an untrusted source (a public write key)
    // attached to her member id.
    world.person(&[(IdentityKind::MemberId, "M-8")], 600.0);
    world.ingest(
        &[
            (IdentityKind::MemberId, "M-8"),
            (IdentityKind::Email, "attacker@evil.test"),
        ],
        600.0,
        true,
        true,
    );
    // Not a member.
    world.person(&[(IdentityKind::Email, "cat@example.com")], 100.0);
    world.segments.recompute(TENANT, "spenders").unwrap();
    assert_eq!(world.segments.size(TENANT, "spenders").unwrap(), 4);
    // Bob revokes his consent after the recompute: the export reads it now.
    world
        .vault
        .set_consent(
            TENANT,
            &bob,
            &ConsentChange {
                purpose: PURPOSE.into(),
                granted: false,
                method: "portal".into(),
                given_at_ms: None,
            },
            &Actor::new("subject", &bob),
        )
        .unwrap();

    let export = world.export(IdentityKind::Email).unwrap();

    let actions = world.received.actions();
    assert_eq!(actions.len(), 1, "only Ann is sent: {actions:?}");
    assert_eq!(actions[0]["recipient"], "ann@example.com");
    assert_eq!(actions[0]["action"], EXPORT_ACTION);
    assert_eq!(actions[0]["attributes"]["segment"], "spenders");
    assert!(actions[0]["attributes"]["entered_at"].as_i64().unwrap() > NOW);
    assert_eq!(export.status, ExportStatus::Completed);
    assert_eq!(
        (
            export.members,
            export.sent,
            export.delivered,
            export.dead_letters
        ),
        (4, 1, 1, 0)
    );
    assert_eq!(
        (
            export.without_consent,
            export.without_address,
            export.unconfirmed,
            export.gone
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(export.runs.len(), 1);
    // The record is stored as returned, and the export is audited.
    assert_eq!(world.segments.export(TENANT, &export.id).unwrap(), export);
    assert_eq!(
        world.segments.exports(TENANT, Some("spenders")).unwrap(),
        vec![export.clone()]
    );
    let audited: Vec<String> = world
        .vault
        .audit_entries(TENANT, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "segment.export")
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].contains(&export.id) && audited[0].contains("1 sent"),
        "{audited:?}"
    );
    // Ann's address never appears in the audit trail.
    assert!(!audited[0].contains("ann@"));
    assert!(!ann.is_empty());
}

#[test]
fn member_ids_need_no_pii_class_and_pages_become_runs() {
    let world = World::new(&[PURPOSE], &[]);
    let people = EXPORT_PAGE + 3;
    for i in 0..people {
        world.person(&[(IdentityKind::MemberId, &format!("M-{i:05}"))], 600.0);
    }
    world.segments.recompute(TENANT, "spenders").unwrap();

    let export = world.export(IdentityKind::MemberId).unwrap();

    assert_eq!(export.sent, people as u64);
    assert_eq!(export.delivered, people as u64);
    assert_eq!(export.runs.len(), 2, "one delivery run per page of members");
    let mut recipients: Vec<String> = world
        .received
        .actions()
        .iter()
        .map(|a| a["recipient"].as_str().unwrap().to_owned())
        .collect();
    let mut ids: Vec<String> = world
        .received
        .actions()
        .iter()
        .map(|a| a["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    recipients.sort();
    recipients.dedup();
    ids.sort();
    ids.dedup();
    assert_eq!(recipients.len(), people, "each member once");
    assert_eq!(ids.len(), people, "delivery ids are unique");
}

#[test]
fn a_destination_not_granted_the_purpose_or_the_address_class_gets_nothing() {
    let world = World::new(&["analytics"], &[]);
    world.person(&[(IdentityKind::Email, "ann@example.com")], 900.0);
    world.segments.recompute(TENANT, "spenders").unwrap();

    let error = world.export(IdentityKind::MemberId).unwrap_err();
    assert!(
        matches!(&error, SegmentError::ExportNotGranted { what, .. } if what.contains(PURPOSE)),
        "{error}"
    );

    let world = World::new(&[PURPOSE], &["phone"]);
    world.person(&[(IdentityKind::Email, "ann@example.com")], 900.0);
    world.segments.recompute(TENANT, "spenders").unwrap();
    let error = world.export(IdentityKind::Email).unwrap_err();
    assert!(
        matches!(&error, SegmentError::ExportNotGranted { what, .. } if what.contains("email")),
        "{error}"
    );
    assert!(error.to_string().contains("an operator must grant it"));

    // Refused before anything was stored or sent.
    assert!(world.segments.exports(TENANT, None).unwrap().is_empty());
    assert!(world.received.actions().is_empty());

    // An unknown connector and an unknown segment are named.
    let mut spec = world.spec(IdentityKind::Email);
    spec.connector = "nowhere".into();
    let error = world
        .segments
        .start_export(&world.deliverer, TENANT, "spenders", spec, &operator())
        .unwrap_err();
    assert!(error.to_string().contains("nowhere"), "{error}");
    let error = world
        .segments
        .start_export(
            &world.deliverer,
            TENANT,
            "nobody",
            world.spec(IdentityKind::Email),
            &operator(),
        )
        .unwrap_err();
    assert!(matches!(error, SegmentError::Unknown { .. }), "{error}");
}
