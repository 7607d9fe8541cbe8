//! The data core at its edges: hostile values, settings changes, merges of
//! merges, suppression rules, retention and consent timing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::*;
use serde_json::json;
use tessera_vault::{
    Actor, Channel, ConsentChange, Incoming, Refusal, TenantSettings, TraitClass, VaultError,
};

#[test]
fn sums_that_overflow_saturate_and_the_person_stays_readable_and_erasable() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let item = record(
        vec![email("big@example.com")],
        vec![
            event("b-1", "purchase", NOW, Channel::Online, 1e308),
            event("b-2", "purchase", NOW, Channel::Online, 1e308),
        ],
    );
    let subject = vault
        .ingest(TENANT, &item, &ingest_actor())
        .expect("ingest")
        .subject
        .expect("subject");
    let view = vault
        .access(TENANT, &subject, &operator())
        .expect("readable");
    assert_eq!(view.aggregates["purchase"].sums["amount"], f64::MAX);
    vault
        .request_deletion(TENANT, &subject, "subject request", &operator())
        .expect("erasable");
}

#[test]
fn identity_rules_cannot_change_once_identities_are_hashed_but_other_settings_can() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    vault
        .ingest(
            TENANT,
            &record(vec![email("a.b@gmail.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    let mut changed = settings();
    changed.identity_rules.canonical_gmail = false;
    let error = vault
        .update_settings(TENANT, changed, &operator())
        .expect_err("refused");
    assert!(error.to_string().contains("identity_rules"), "{error}");
    let mut wider = settings();
    wider.retention.max_days = 5 * 365;
    vault
        .update_settings(TENANT, wider, &operator())
        .expect("other settings change");
    assert_eq!(
        vault.settings(TENANT).expect("settings").retention.max_days,
        5 * 365
    );
    // Writes after the change still resolve to the same people.
    let again = vault
        .ingest(
            TENANT,
            &record(vec![email("ab@gmail.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    assert!(!again.created);
}

#[test]
fn unmerging_from_a_survivor_that_was_merged_again_moves_the_links_back() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let ingest = |ids| {
        vault
            .ingest(TENANT, &record(ids, vec![]), &ingest_actor())
            .expect("ingest")
    };
    let r = ingest(vec![email("r@example.com")]).subject.expect("r");
    fixture.advance(1);
    let s = ingest(vec![email("s@example.com")]).subject.expect("s");
    fixture.advance(1);
    let b = ingest(vec![email("b@example.com")]).subject.expect("b");
    ingest(vec![email("s@example.com"), email("b@example.com")]); // b into s
    ingest(vec![email("r@example.com"), email("s@example.com")]); // s into r
    assert_eq!(
        vault.access(TENANT, &b, &operator()).expect("view").subject,
        r
    );
    let entry = vault.unmerge(TENANT, &s, &b, &operator()).expect("unmerge");
    assert_eq!(entry.identities_moved, 1);
    let found = ingest(vec![email("b@example.com")]);
    assert_eq!(
        found.subject.as_deref(),
        Some(b.as_str()),
        "b's email leads to b again"
    );
}

#[test]
fn separated_people_are_not_merged_again_through_a_third_subject() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let ingest = |ids| {
        vault
            .ingest(TENANT, &record(ids, vec![]), &ingest_actor())
            .expect("ingest")
    };
    let x = ingest(vec![email("x@example.com")]).subject.expect("x");
    fixture.advance(1);
    let a = ingest(vec![email("a@example.com")]).subject.expect("a");
    fixture.advance(1);
    let b = ingest(vec![email("b@example.com")]).subject.expect("b");
    ingest(vec![email("a@example.com"), email("b@example.com")]);
    vault.unmerge(TENANT, &a, &b, &operator()).expect("unmerge");
    ingest(vec![email("x@example.com"), email("b@example.com")]); // b into x
    let third = ingest(vec![email("x@example.com"), email("a@example.com")]);
    assert!(
        third.merged.is_empty(),
        "a is separated from b, who is in x's person"
    );
    let view = vault.access(TENANT, &x, &operator()).expect("x");
    assert!(!view.merged_subjects.contains(&a));
}

#[test]
fn erasure_suppresses_personal_identities_but_not_a_shared_device() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let mum = vault
        .ingest(
            TENANT,
            &record(vec![email("mum@example.com"), device("tablet-1")], vec![]),
            &ingest_actor(),
        )
        .expect("mum");
    let request = vault
        .request_deletion(
            TENANT,
            &mum.subject.expect("mum"),
            "subject request",
            &operator(),
        )
        .expect("delete");
    assert_eq!(request.identities_suppressed, 1, "the email only");
    vault.run_jobs("worker").expect("purge");
    let kid = vault
        .ingest(
            TENANT,
            &record(vec![email("kid@example.com"), device("tablet-1")], vec![]),
            &ingest_actor(),
        )
        .expect("kid");
    assert_eq!(kid.refused, None);
    assert!(kid.created);
}

#[test]
fn a_consent_given_before_the_erasure_does_not_lift_its_suppression() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let subject = vault
        .ingest(
            TENANT,
            &record(vec![email("old@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest")
        .subject
        .expect("subject");
    fixture.advance(DAY_MS);
    vault
        .request_deletion(TENANT, &subject, "subject request", &operator())
        .expect("delete");
    let stale = Incoming {
        consents: vec![ConsentChange {
            given_at_ms: Some(NOW),
            ..consent("email_marketing")
        }],
        ..record(vec![email("old@example.com")], vec![])
    };
    assert_eq!(
        vault
            .ingest(TENANT, &stale, &ingest_actor())
            .expect("ingest")
            .refused,
        Some(Refusal::Suppressed)
    );
    let fresh = Incoming {
        consents: vec![ConsentChange {
            given_at_ms: Some(fixture.now() + 1),
            ..consent("email_marketing")
        }],
        ..record(vec![email("old@example.com")], vec![])
    };
    let outcome = vault
        .ingest(TENANT, &fresh, &ingest_actor())
        .expect("ingest");
    assert!(outcome.unsuppressed && outcome.created);
}

#[test]
fn retention_expiry_erases_without_suppressing_so_a_returning_customer_is_welcome() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    vault
        .ingest(
            TENANT,
            &record(vec![member("M-7")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    fixture.advance(800 * DAY_MS);
    let report = vault.sweep_retention(TENANT).expect("sweep");
    assert_eq!(report.subjects_expired.len(), 1);
    let back = vault
        .ingest(
            TENANT,
            &record(
                vec![member("M-7")],
                vec![event("r", "purchase", fixture.now(), Channel::Offline, 5.0)],
            ),
            &ingest_actor(),
        )
        .expect("returning customer");
    assert_eq!(back.refused, None);
    assert!(back.created);
}

#[test]
fn consent_activity_counts_as_activity_for_retention() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let subject = vault
        .ingest(
            TENANT,
            &record(vec![email("quiet@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest")
        .subject
        .expect("subject");
    fixture.advance(729 * DAY_MS);
    vault
        .set_consent(
            TENANT,
            &subject,
            &consent("analytics"),
            &Actor::new("subject", "self"),
        )
        .expect("consent");
    fixture.advance(2 * DAY_MS);
    let report = vault.sweep_retention(TENANT).expect("sweep");
    assert!(
        report.subjects_expired.is_empty(),
        "the consent two days ago keeps the person"
    );
}

#[test]
fn events_older_than_the_retention_period_are_not_stored_and_future_ones_are_refused() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let item = record(
        vec![email("late@example.com")],
        vec![
            event(
                "ancient",
                "purchase",
                NOW - 1000 * DAY_MS,
                Channel::Offline,
                1.0,
            ),
            event("recent", "purchase", NOW - DAY_MS, Channel::Offline, 1.0),
        ],
    );
    let outcome = vault
        .ingest(TENANT, &item, &ingest_actor())
        .expect("ingest");
    assert_eq!((outcome.events_inserted, outcome.expired), (1, 1));
    let future = record(
        vec![email("late@example.com")],
        vec![event(
            "f",
            "purchase",
            NOW + 3 * DAY_MS,
            Channel::Online,
            1.0,
        )],
    );
    let error = vault
        .ingest(TENANT, &future, &ingest_actor())
        .expect_err("refused");
    assert!(error.to_string().contains("future"), "{error}");
}

#[test]
fn a_trait_dropped_from_the_schema_is_still_shown_and_can_be_removed() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let item = Incoming {
        traits: BTreeMap::from([("gender".to_owned(), json!("f"))]),
        ..record(vec![email("g@example.com")], vec![])
    };
    let subject = vault
        .ingest(TENANT, &item, &ingest_actor())
        .expect("ingest")
        .subject
        .expect("subject");
    let mut narrower: TenantSettings = settings();
    narrower.schema.remove("gender");
    vault
        .update_settings(TENANT, narrower, &operator())
        .expect("settings");
    let view = vault.access(TENANT, &subject, &operator()).expect("view");
    assert_eq!(view.traits["gender"], (json!("f"), TraitClass::Pii));
    vault
        .rectify(
            TENANT,
            &subject,
            &BTreeMap::from([("gender".to_owned(), None)]),
            &operator(),
        )
        .expect("removal of an unknown trait");
    assert!(
        !vault
            .access(TENANT, &subject, &operator())
            .expect("view")
            .traits
            .contains_key("gender")
    );
}

#[test]
fn a_clock_stepping_back_does_not_reorder_a_grant_and_its_revocation() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let subject = vault
        .ingest(
            TENANT,
            &record(vec![email("ntp@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest")
        .subject
        .expect("subject");
    let me = Actor::new("subject", "self");
    vault
        .set_consent(TENANT, &subject, &consent("analytics"), &me)
        .expect("grant");
    fixture.clock.fetch_sub(1000, Ordering::SeqCst);
    let revoke = ConsentChange {
        granted: false,
        ..consent("analytics")
    };
    vault
        .set_consent(TENANT, &subject, &revoke, &me)
        .expect("revoke");
    assert!(
        !vault
            .has_consent(TENANT, &subject, "analytics")
            .expect("consent")
    );
}

#[test]
fn a_wrong_key_directory_is_refused_instead_of_treating_everyone_as_erased() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    vault
        .ingest(
            TENANT,
            &record(vec![email("k@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    drop(vault);
    let wrong = fixture.dir.path().join("other-keys");
    let error = tessera_vault::Vault::open(fixture.data_dir(), &wrong, fixture.master())
        .expect_err("refused");
    assert!(
        matches!(error, VaultError::KeyStoreMismatch { .. }),
        "{error}"
    );
}

#[test]
fn oversized_batches_and_records_are_refused_by_name() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let one = record(vec![email("n@example.com")], vec![]);
    let batch = vec![one; tessera_vault::MAX_BATCH + 1];
    let error = vault
        .ingest_batch(TENANT, &batch, &ingest_actor())
        .expect_err("refused");
    assert!(error.to_string().contains("split it"), "{error}");
    let events = (0..=tessera_vault::MAX_EVENTS)
        .map(|i| event(&format!("e{i}"), "page_view", NOW, Channel::Online, 0.0))
        .collect();
    let error = vault
        .ingest(
            TENANT,
            &record(vec![email("n@example.com")], events),
            &ingest_actor(),
        )
        .expect_err("refused");
    assert!(error.to_string().contains("events"), "{error}");
    assert!(
        vault
            .store()
            .subjects(TENANT, None, 1)
            .expect("subjects")
            .is_empty()
    );
}

#[test]
fn a_schema_change_checks_and_writes_while_ingestion_waits_and_ingestion_then_rechecks() {
    use std::sync::Arc;
    use tessera_vault::{TraitSpec, TraitType};
    let fixture = Fixture::new();
    let vault = Arc::new(fixture.create());
    let operator = operator();
    let mut settings = vault.settings(TENANT).expect("settings");
    settings.schema.insert(
        "shoe_size".into(),
        TraitSpec {
            class: TraitClass::Pii,
            kind: TraitType::String,
            pii_class: None,
            allowed: Vec::new(),
        },
    );
    vault
        .update_settings(TENANT, settings, &operator)
        .expect("add the trait");
    let item = Incoming {
        traits: BTreeMap::from([("shoe_size".to_owned(), json!("42 EU"))]),
        ..record(vec![email("racer@example.com")], vec![])
    };
    // The string is valid now, so the record passes the batch's checks.
    let (sent, started) = std::sync::mpsc::channel();
    let retyped = vault
        .change_settings(TENANT, &operator, |current, holders| {
            // While the change holds the tenant's lock, a writer starts.
            let writer = {
                let vault = vault.clone();
                let item = item.clone();
                std::thread::spawn(move || {
                    sent.send(()).unwrap();
                    vault.ingest(TENANT, &item, &ingest_actor())
                })
            };
            started.recv().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(!writer.is_finished(), "ingestion must wait for the change");
            assert_eq!(holders("shoe_size")?, 0);
            let mut next = current.clone();
            next.schema.insert(
                "shoe_size".into(),
                TraitSpec {
                    class: TraitClass::Standard,
                    kind: TraitType::Number,
                    pii_class: None,
                    allowed: Vec::new(),
                },
            );
            Ok::<_, VaultError>((Some(next), writer))
        })
        .expect("change");
    // The writer checks again against the schema of now: a string is no
    // longer a shoe size, and nothing of the record is stored.
    let outcome = retyped.join().unwrap().expect("ingest");
    assert_eq!(
        outcome.refused,
        Some(Refusal::SchemaChanged {
            name: "shoe_size".into()
        })
    );
    assert_eq!(outcome.subject, None);
    assert!(
        vault
            .find_subject(TENANT, &email("").0, "racer@example.com", &operator)
            .expect("lookup")
            .is_none()
    );
}

// ---- event schema --------------------------------------------------------------

mod event_schema {
    use super::*;
    use tessera_vault::{EventSpec, NewEvent, PiiClass, PropertySpec, TraitSpec, TraitType};

    fn event_of(kind: &str, properties: serde_json::Value) -> NewEvent {
        let serde_json::Value::Object(map) = properties else {
            panic!("properties are an object")
        };
        NewEvent {
            source_id: None,
            event_type: kind.to_owned(),
            at_ms: NOW - DAY_MS,
            channel: Channel::Online,
            properties: map.into_iter().collect(),
        }
    }

    /// The vault with the default schema plus `change` applied to it.
    fn vault_with(
        fixture: &Fixture,
        change: impl FnOnce(&mut TenantSettings),
    ) -> tessera_vault::Vault {
        let vault = fixture.create();
        let mut settings = vault.settings(TENANT).expect("settings");
        change(&mut settings);
        vault
            .update_settings(TENANT, settings, &operator())
            .expect("settings accepted");
        vault
    }

    /// Ingests one record with one event; the refusal's property and rule.
    fn refusal(
        vault: &tessera_vault::Vault,
        kind: &str,
        properties: serde_json::Value,
    ) -> Option<(String, String, String)> {
        let item = record(
            vec![email("ann@example.com")],
            vec![event_of(kind, properties)],
        );
        match vault.ingest(TENANT, &item, &ingest_actor()) {
            Ok(_) => None,
            Err(VaultError::InvalidProperty {
                event,
                property,
                rule,
                ..
            }) => Some((event, property, rule)),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    fn rule(event: &str, property: &str, rule: &str) -> Option<(String, String, String)> {
        Some((event.into(), property.into(), rule.into()))
    }

    #[test]
    fn a_purchase_without_its_required_amount_is_refused_and_nothing_of_its_batch_is_stored() {
        let fixture = Fixture::new();
        let vault = fixture.create();
        let good = record(
            vec![email("bo@example.com")],
            vec![event_of(
                "purchase",
                json!({"amount": 12.5, "currency": "CNY"}),
            )],
        );
        let bad = record(
            vec![email("ann@example.com")],
            vec![event_of("purchase", json!({"currency": "CNY"}))],
        );
        let error = vault
            .ingest_batch(TENANT, &[good, bad], &ingest_actor())
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "invalid event: record 1: purchase.amount: required"
        );
        assert!(
            vault
                .store()
                .subjects(TENANT, None, 10)
                .expect("subjects")
                .is_empty()
        );
        // A null is no value either.
        assert_eq!(
            refusal(&vault, "purchase", json!({"amount": null})),
            rule("purchase", "amount", "required")
        );
        assert_eq!(refusal(&vault, "purchase", json!({"amount": 1})), None);
    }

    #[test]
    fn property_types_are_checked_numbers_bools_and_iso_dates() {
        let fixture = Fixture::new();
        let vault = vault_with(&fixture, |settings| {
            let spec = EventSpec {
                properties: [
                    ("amount", TraitType::Number),
                    ("gift", TraitType::Bool),
                    ("delivery", TraitType::Date),
                    ("note", TraitType::String),
                    ("extra", TraitType::Any),
                ]
                .into_iter()
                .map(|(name, kind)| (name.to_owned(), PropertySpec::new(kind)))
                .collect(),
                strict: false,
            };
            settings.events.insert("order".into(), spec);
        });
        assert_eq!(
            refusal(&vault, "order", json!({"amount": "12.50"})),
            rule("order", "amount", "expected a number value")
        );
        assert_eq!(
            refusal(&vault, "order", json!({"gift": "yes"})),
            rule("order", "gift", "expected a bool value")
        );
        assert_eq!(
            refusal(&vault, "order", json!({"note": 7})),
            rule("order", "note", "expected a string value")
        );
        for bad in [
            json!("tomorrow"),
            json!("01/06/2026"),
            json!("2026-13-01"),
            json!(20260601),
        ] {
            assert_eq!(
                refusal(&vault, "order", json!({"delivery": bad})),
                rule(
                    "order",
                    "delivery",
                    "expected a date (YYYY-MM-DD, or an ISO 8601 date-time)"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            refusal(
                &vault,
                "order",
                json!({"amount": 12.5, "gift": true, "delivery": "2026-06-03",
                       "note": "ring twice", "extra": {"any": [1, "thing"]}})
            ),
            None
        );
        assert_eq!(
            refusal(
                &vault,
                "order",
                json!({"delivery": "2026-06-03T10:00:00+08:00"})
            ),
            None
        );
    }

    #[test]
    fn allowed_values_name_the_value_only_for_standard_properties() {
        let fixture = Fixture::new();
        let vault = vault_with(&fixture, |settings| {
            let purchase = settings.events.get_mut("purchase").expect("purchase");
            purchase
                .properties
                .get_mut("currency")
                .expect("currency")
                .allowed = vec![json!("CNY"), json!("USD")];
            purchase.properties.insert(
                "quantity".into(),
                PropertySpec {
                    allowed: vec![json!(1), json!(2), json!(3)],
                    ..PropertySpec::new(TraitType::Number)
                },
            );
            purchase.properties.insert(
                "buyer_region".into(),
                PropertySpec {
                    allowed: vec![json!("north"), json!("south")],
                    class: TraitClass::Sensitive,
                    pii_class: Some(PiiClass::Location),
                    ..PropertySpec::new(TraitType::String)
                },
            );
        });
        assert_eq!(
            refusal(&vault, "purchase", json!({"amount": 1, "currency": "XYZ"})),
            rule(
                "purchase",
                "currency",
                r#""XYZ" is not one of "CNY", "USD""#
            )
        );
        // Numbers compare by value.
        assert_eq!(
            refusal(&vault, "purchase", json!({"amount": 1, "quantity": 2.0})),
            None
        );
        assert_eq!(
            refusal(&vault, "purchase", json!({"amount": 1, "quantity": 4})),
            rule("purchase", "quantity", "4 is not one of 1, 2, 3")
        );
        let (_, _, sensitive) = refusal(
            &vault,
            "purchase",
            json!({"amount": 1, "buyer_region": "east-9"}),
        )
        .expect("refused");
        assert!(!sensitive.contains("east-9"), "{sensitive}");
        assert_eq!(
            refusal(
                &vault,
                "purchase",
                json!({"amount": 1, "currency": "USD", "buyer_region": "north"})
            ),
            None
        );
    }

    #[test]
    fn a_strict_event_type_refuses_unknown_properties_and_an_open_one_keeps_them() {
        let fixture = Fixture::new();
        let vault = vault_with(&fixture, |settings| {
            settings
                .events
                .get_mut("page_view")
                .expect("page_view")
                .strict = true;
        });
        assert_eq!(
            refusal(&vault, "page_view", json!({"path": "/", "referrer": "x"})),
            rule(
                "page_view",
                "referrer",
                "not in the schema of page_view, which takes no other properties (strict)"
            )
        );
        assert_eq!(refusal(&vault, "page_view", json!({"path": "/"})), None);
        // purchase is open: properties it does not list are stored unchecked.
        assert_eq!(
            refusal(&vault, "purchase", json!({"amount": 3, "channel": "web"})),
            None
        );
    }

    #[test]
    fn event_types_outside_the_schema_are_taken_unless_the_tenant_is_strict() {
        let fixture = Fixture::new();
        let vault = fixture.create();
        assert_eq!(refusal(&vault, "wishlist_add", json!({"sku": 7})), None);
        let mut settings = vault.settings(TENANT).expect("settings");
        settings.events_strict = true;
        vault
            .update_settings(TENANT, settings, &operator())
            .expect("strict");
        let item = record(
            vec![email("ann@example.com")],
            vec![event_of("wishlist_add", json!({"sku": 7}))],
        );
        let error = vault
            .ingest(TENANT, &item, &ingest_actor())
            .expect_err("refused");
        assert!(matches!(error, VaultError::InvalidEvent { .. }), "{error}");
        assert!(error.to_string().contains("\"wishlist_add\""), "{error}");
        assert!(error.to_string().contains("events_strict"), "{error}");
        assert_eq!(refusal(&vault, "purchase", json!({"amount": 3})), None);
    }

    #[test]
    fn a_trait_with_allowed_values_refuses_others_and_names_the_value_only_if_standard() {
        let fixture = Fixture::new();
        let vault = vault_with(&fixture, |settings| {
            settings.schema.get_mut("tier").expect("tier").allowed =
                vec![json!("basic"), json!("silver"), json!("gold")];
            settings.schema.get_mut("gender").expect("gender").allowed =
                vec![json!("f"), json!("m"), json!("x")];
        });
        let with = |name: &str, value: serde_json::Value| Incoming {
            traits: BTreeMap::from([(name.to_owned(), value)]),
            ..record(vec![email("ann@example.com")], vec![])
        };
        let error = vault
            .ingest(TENANT, &with("tier", json!("platinum")), &ingest_actor())
            .expect_err("refused");
        let VaultError::InvalidTrait { name, reason } = &error else {
            panic!("{error}")
        };
        assert_eq!(name, "tier");
        assert!(
            reason.ends_with(r#""platinum" is not one of "basic", "silver", "gold""#),
            "{reason}"
        );
        let error = vault
            .ingest(
                TENANT,
                &with("gender", json!("unstated-9")),
                &ingest_actor(),
            )
            .expect_err("refused");
        assert!(!error.to_string().contains("unstated-9"), "{error}");
        vault
            .ingest(TENANT, &with("tier", json!("gold")), &ingest_actor())
            .expect("an allowed value");
        // Removing a value (null) is always allowed.
        vault
            .ingest(
                TENANT,
                &with("tier", serde_json::Value::Null),
                &ingest_actor(),
            )
            .expect("a removal");
    }

    #[test]
    fn the_settings_check_refuses_bad_names_classes_and_allowed_values() {
        let mut bad_allowed = TenantSettings::default();
        bad_allowed
            .events
            .get_mut("purchase")
            .expect("purchase")
            .properties
            .get_mut("amount")
            .expect("amount")
            .allowed = vec![json!("ten")];
        let mut classed_standard = TenantSettings::default();
        classed_standard.events.insert(
            "visit".into(),
            EventSpec {
                properties: [(
                    "ip".to_owned(),
                    PropertySpec {
                        pii_class: Some(PiiClass::IpAddress),
                        ..PropertySpec::new(TraitType::String)
                    },
                )]
                .into(),
                strict: false,
            },
        );
        let mut bad_type = TenantSettings::default();
        bad_type
            .events
            .insert("Page View".into(), EventSpec::default());
        let mut bad_property = TenantSettings::default();
        bad_property.events.insert(
            "visit".into(),
            EventSpec {
                properties: [("a.b".to_owned(), PropertySpec::new(TraitType::Any))].into(),
                strict: false,
            },
        );
        let mut bad_trait = TenantSettings::default();
        bad_trait.schema.insert(
            "shoe_size".into(),
            TraitSpec {
                class: TraitClass::Standard,
                kind: TraitType::Number,
                pii_class: None,
                allowed: vec![json!(42), json!(null)],
            },
        );
        for (settings, says) in [
            (
                bad_allowed,
                "property purchase.amount: allowed value 0 is not a number value",
            ),
            (
                classed_standard,
                "property visit.ip is standard but has pii_class \"ip-address\"",
            ),
            (bad_type, "event type \"Page View\""),
            (bad_property, "property visit.\"a.b\""),
            (
                bad_trait,
                "trait \"shoe_size\": allowed value 1 is not a number value",
            ),
        ] {
            let reason = settings.check().expect_err(says);
            assert!(reason.starts_with(says), "{reason}");
        }
        TenantSettings::default()
            .check()
            .expect("the defaults are valid");
    }

    #[test]
    fn an_event_schema_change_while_a_record_waits_refuses_the_record_if_it_no_longer_fits() {
        use std::sync::Arc;
        let fixture = Fixture::new();
        let vault = Arc::new(fixture.create());
        let item = record(
            vec![email("ann@example.com")],
            vec![event_of(
                "purchase",
                json!({"amount": 5, "currency": "USD"}),
            )],
        );
        let (sent, started) = std::sync::mpsc::channel();
        let writer = vault
            .change_settings(TENANT, &operator(), |current, _| {
                let writer = {
                    let vault = vault.clone();
                    let item = item.clone();
                    std::thread::spawn(move || {
                        sent.send(()).unwrap();
                        vault.ingest(TENANT, &item, &ingest_actor())
                    })
                };
                started.recv().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
                assert!(!writer.is_finished(), "ingestion must wait for the change");
                let mut next = current.clone();
                next.events
                    .get_mut("purchase")
                    .expect("purchase")
                    .properties
                    .get_mut("currency")
                    .expect("currency")
                    .allowed = vec![json!("CNY")];
                Ok::<_, VaultError>((Some(next), writer))
            })
            .expect("change");
        let outcome = writer.join().unwrap().expect("ingest");
        assert_eq!(
            outcome.refused,
            Some(Refusal::EventSchemaChanged {
                event: "purchase".into(),
                property: Some("currency".into()),
            })
        );
        assert_eq!(outcome.subject, None);
        assert!(
            vault
                .store()
                .subjects(TENANT, None, 10)
                .expect("subjects")
                .is_empty()
        );
    }

    #[test]
    fn settings_stored_before_event_schemas_take_every_event_as_before() {
        let mut stored = serde_json::to_value(TenantSettings::default()).expect("json");
        let object = stored.as_object_mut().expect("object");
        object.remove("events");
        object.remove("events_strict");
        let settings: TenantSettings = serde_json::from_value(stored).expect("decodes");
        assert!(settings.events.is_empty());
        assert!(!settings.events_strict);
        // And the schema reads back as written.
        let json = serde_json::to_value(TenantSettings::default()).expect("json");
        assert_eq!(
            json["events"]["purchase"]["properties"]["amount"],
            json!({"type": "number", "required": true, "class": "standard"})
        );
        let back: TenantSettings = serde_json::from_value(json).expect("decodes");
        assert_eq!(back, TenantSettings::default());
    }
}
