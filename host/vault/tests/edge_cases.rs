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
