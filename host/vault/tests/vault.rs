//! The data core's promises, end to end on the embedded store: plaintext
//! never on disk, erasure that reaches copies, suppression, retention,
//! resolution with merge and un-merge, consents, export and the audit chain.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::json;
use tessera_store::EventRecord;
use tessera_vault::{
    Channel, ConsentChange, DeletionStatus, Incoming, LinkedApp, Refusal, TraitClass, VaultError,
};

/// Finds `needle` in `haystack`, ASCII case-insensitively.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[test]
fn the_plaintext_search_finds_what_it_looks_for() {
    // The grep below must be able to fail: it finds a planted marker.
    assert!(contains_ignore_case(
        b"xx Subject00042@Tessera-Grep.example yy",
        b"@tessera-grep"
    ));
    assert!(contains_ignore_case(b"+8613912340042", b"1391234"));
    assert!(!contains_ignore_case(b"+8613912340042", b"1391235"));
}

#[test]
fn ten_thousand_emails_and_phones_never_reach_the_disk_in_plaintext() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let total = 10_000;
    let mut items = Vec::new();
    for i in 0..total {
        // Every email shares the domain and every phone the prefix 1391234,
        // so two substring searches cover all 20,000 values.
        let address = format!("Subject{i:05}@Tessera-Grep.example");
        let number = format!("139 1234 {i:04}");
        items.push(Incoming {
            identities: vec![email(&address), phone(&number)],
            traits: BTreeMap::from([
                ("email".to_owned(), json!(address)),
                ("phone".to_owned(), json!(number)),
                ("name".to_owned(), json!(format!("Grep Person {i}"))),
            ]),
            events: vec![event(
                &format!("order-{i}"),
                "purchase",
                NOW - DAY_MS,
                Channel::Offline,
                10.0,
            )],
            ..Incoming::default()
        });
        if items.len() == 500 {
            vault
                .ingest_batch(TENANT, &items, &ingest_actor())
                .expect("ingest");
            items.clear();
        }
    }
    assert_eq!(
        vault
            .store()
            .subjects(TENANT, None, total + 1)
            .expect("subjects")
            .len(),
        total
    );
    drop(vault);

    let mut files = files_under(&fixture.data_dir());
    files.extend(files_under(&fixture.key_dir()));
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(
        bytes > total * 200,
        "the data directory holds the data ({bytes} bytes)"
    );
    for (path, content) in &files {
        for needle in [&b"@tessera-grep"[..], b"1391234", b"grep person", b"order-"] {
            assert!(
                !contains_ignore_case(content, needle),
                "{} holds plaintext {:?}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

fn seed_three(fixture: &Fixture) -> (tessera_vault::Vault, [String; 3]) {
    let vault = fixture.create();
    let mut ids = Vec::new();
    for (i, name) in ["ana", "bo", "cy"].iter().enumerate() {
        let outcome = vault
            .ingest(
                TENANT,
                &Incoming {
                    identities: vec![
                        email(&format!("{name}@example.com")),
                        phone(&format!("1380013800{i}")),
                    ],
                    traits: BTreeMap::from([
                        ("name".to_owned(), json!(name)),
                        ("city".to_owned(), json!("Shanghai")),
                    ]),
                    events: (0..5)
                        .map(|e| {
                            event(
                                &format!("{name}-{e}"),
                                "purchase",
                                NOW - e * DAY_MS,
                                Channel::Online,
                                20.0,
                            )
                        })
                        .collect(),
                    consents: vec![consent("email_marketing")],
                },
                &ingest_actor(),
            )
            .expect("ingest");
        ids.push(outcome.subject.expect("subject"));
    }
    (vault, ids.try_into().expect("three"))
}

#[test]
fn a_deleted_subject_is_unreadable_in_the_live_store_and_in_a_copy_made_before() {
    let fixture = Fixture::new();
    let (vault, [ana, bo, cy]) = seed_three(&fixture);
    let before = vault.access(TENANT, &ana, &operator()).expect("access");
    assert_eq!(before.events.len(), 5);
    drop(vault);
    let copy = fixture.dir.path().join("copy-of-data");
    copy_dir(&fixture.data_dir(), &copy);

    let vault = fixture.open();
    let request = vault
        .request_deletion(TENANT, &ana, "subject request", &operator())
        .expect("delete");
    assert_eq!(request.status, DeletionStatus::KeysDestroyed);
    assert_eq!(request.deadline_ms, NOW + 30 * DAY_MS);
    // Unreadable at once, before the purge.
    assert!(matches!(
        vault.access(TENANT, &ana, &operator()),
        Err(VaultError::SubjectErased { .. })
    ));
    let jobs = vault.run_jobs("worker-1").expect("purge");
    assert_eq!(jobs.purges_completed, vec![request.id.clone()]);
    let done = vault
        .deletion_request(TENANT, &request.id)
        .expect("request");
    assert_eq!(done.status, DeletionStatus::Completed);
    let receipt = done.receipt.expect("receipt");
    assert_eq!(receipt.subjects, vec![ana.clone()]);
    assert_eq!(receipt.removed.subjects, 1);
    assert_eq!(receipt.removed.events, 5);
    assert_eq!(receipt.removed.identities, 2);
    assert_eq!(receipt.removed.consents, 1);
    assert_eq!(receipt.identities_suppressed, 2);
    assert!(receipt.met_deadline);
    assert!(vault.verify_receipt(&receipt).expect("verify"));
    let mut forged = receipt.clone();
    forged.removed.events = 4;
    assert!(!vault.verify_receipt(&forged).expect("verify"));
    assert!(matches!(
        vault.access(TENANT, &ana, &operator()),
        Err(VaultError::UnknownSubject { .. })
    ));
    assert!(
        vault
            .store()
            .events(TENANT, &ana, i64::MIN, i64::MAX)
            .expect("events")
            .is_empty()
    );
    for other in [&bo, &cy] {
        let view = vault
            .access(TENANT, other, &operator())
            .expect("others intact");
        assert_eq!(view.events.len(), 5);
        assert_eq!(view.traits["city"].0, json!("Shanghai"));
    }
    drop(vault);

    // The copy still holds ana's sealed records, but her key is gone.
    let old = fixture.open_at(&copy);
    assert_eq!(
        old.store()
            .events(TENANT, &ana, i64::MIN, i64::MAX)
            .expect("events")
            .len(),
        5
    );
    assert!(matches!(
        old.access(TENANT, &ana, &operator()),
        Err(VaultError::SubjectErased { .. })
    ));
    for other in [&bo, &cy] {
        assert_eq!(
            old.access(TENANT, other, &operator())
                .expect("copy intact")
                .events
                .len(),
            5
        );
    }
}

#[test]
fn a_ciphertext_moved_to_another_subject_does_not_open() {
    let fixture = Fixture::new();
    let (vault, [ana, bo, _]) = seed_three(&fixture);
    let store = vault.store().clone();
    let stolen = store
        .events(TENANT, &ana, i64::MIN, i64::MAX)
        .expect("events")
        .remove(0);
    // Same source id, same bytes, under bo.
    store
        .append_events(
            TENANT,
            &bo,
            &[EventRecord {
                source_id: format!("{}x", stolen.source_id),
                ..stolen.clone()
            }],
            None,
        )
        .expect("raw append");
    let error = vault
        .access(TENANT, &bo, &operator())
        .expect_err("moved event must not open");
    assert!(matches!(error, VaultError::Open { .. }), "{error}");

    // A profile moved onto another subject's record does not open either.
    let ana_record = store.subject(TENANT, &ana).expect("read").expect("ana");
    let mut cy_record = store.subject(TENANT, &ana).expect("read").expect("ana");
    cy_record.id = bo.clone();
    cy_record.data = ana_record.data;
    store.put_subject(TENANT, &cy_record).expect("raw put");
    assert!(vault.access(TENANT, &bo, &operator()).is_err());
}

#[test]
fn a_deleted_persons_email_is_refused_while_suppressed_until_a_new_explicit_consent() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    vault
        .request_deletion(TENANT, &ana, "subject request", &operator())
        .expect("delete");
    vault.run_jobs("worker").expect("purge");
    let subjects = vault
        .store()
        .subjects(TENANT, None, 100)
        .expect("subjects")
        .len();

    let again = record(
        vec![email("ANA@example.com ")],
        vec![event("ana-new", "page_view", NOW, Channel::Online, 0.0)],
    );
    let (batch, outcomes) = vault
        .ingest_batch(TENANT, std::slice::from_ref(&again), &ingest_actor())
        .expect("ingest");
    assert_eq!(batch.suppressed, 1);
    assert_eq!(outcomes[0].refused, Some(Refusal::Suppressed));
    assert_eq!(outcomes[0].subject, None);
    assert_eq!(
        vault
            .store()
            .subjects(TENANT, None, 100)
            .expect("subjects")
            .len(),
        subjects
    );
    // The phone is suppressed too.
    let by_phone = vault
        .ingest(
            TENANT,
            &record(vec![phone("13800138000")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    assert_eq!(by_phone.refused, Some(Refusal::Suppressed));

    let with_consent = Incoming {
        consents: vec![consent("email_marketing")],
        ..again
    };
    let outcome = vault
        .ingest(TENANT, &with_consent, &ingest_actor())
        .expect("ingest");
    assert!(outcome.unsuppressed && outcome.created);
    let new = outcome.subject.expect("a new subject");
    assert_ne!(new, ana);
    assert_eq!(
        vault
            .access(TENANT, &new, &operator())
            .expect("access")
            .events
            .len(),
        1
    );
}

#[test]
fn the_retention_sweeper_removes_exactly_the_events_older_than_each_persons_period() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let ages = [1, 20, 45, 100, 400];
    let mut ids = Vec::new();
    for name in ["short", "default"] {
        let events = ages
            .iter()
            .map(|days| {
                event(
                    &format!("{name}-{days}"),
                    "purchase",
                    NOW - days * DAY_MS,
                    Channel::Offline,
                    1.0,
                )
            })
            .collect();
        let outcome = vault
            .ingest(TENANT, &record(vec![member(name)], events), &ingest_actor())
            .expect("ingest");
        ids.push(outcome.subject.expect("subject"));
    }
    vault
        .set_retention(TENANT, &ids[0], 30, &Actor::new("subject", "self"))
        .expect("retention");
    assert!(matches!(
        vault.set_retention(TENANT, &ids[0], 5, &Actor::new("subject", "self")),
        Err(VaultError::RetentionOutOfBounds { min: 30, .. })
    ));
    let report = vault.sweep_retention(TENANT).expect("sweep");
    assert_eq!(
        report.events_removed, 3,
        "45, 100 and 400 days, of the 30-day subject only"
    );
    assert!(report.subjects_expired.is_empty());
    let short = vault.access(TENANT, &ids[0], &operator()).expect("access");
    let times: Vec<i64> = short
        .events
        .iter()
        .map(|e| (NOW - e.at_ms) / DAY_MS)
        .collect();
    assert_eq!(times, vec![20, 1]);
    assert_eq!(short.aggregates["purchase"].count, 2);
    assert_eq!(short.aggregates["purchase"].first_ms, NOW - 20 * DAY_MS);
    let default = vault.access(TENANT, &ids[1], &operator()).expect("access");
    assert_eq!(
        default.events.len(),
        5,
        "the default subject keeps all events within 730 days"
    );
}

use tessera_vault::Actor;

#[test]
fn online_and_offline_records_of_one_person_merge_and_can_be_unmerged() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let web = vault
        .ingest(
            TENANT,
            &record(
                vec![
                    email("li.na@example.com"),
                    device("6F9619FF-8B86-D011-B42D-00C04FC964FF"),
                ],
                vec![event(
                    "web-1",
                    "page_view",
                    NOW - 3 * DAY_MS,
                    Channel::Online,
                    0.0,
                )],
            ),
            &ingest_actor(),
        )
        .expect("web");
    fixture.advance(1);
    let store = vault
        .ingest(
            TENANT,
            &record(
                vec![phone("+86 139-0000-1111"), member("M-1001")],
                vec![event(
                    "pos-1",
                    "purchase",
                    NOW - DAY_MS,
                    Channel::Offline,
                    299.0,
                )],
            ),
            &ingest_actor(),
        )
        .expect("store");
    let (web, store) = (web.subject.expect("web"), store.subject.expect("store"));
    assert_ne!(web, store);

    // A loyalty sign-up shows that the email and the member id are one person.
    fixture.advance(1);
    let joined = vault
        .ingest(
            TENANT,
            &record(vec![member("M-1001"), email("Li.Na@Example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("join");
    assert_eq!(
        joined.subject.as_deref(),
        Some(web.as_str()),
        "the older subject survives"
    );
    assert_eq!(joined.merged, vec![store.clone()]);
    let view = vault
        .access(TENANT, &store, &operator())
        .expect("access via absorbed id");
    assert_eq!(view.subject, web);
    assert_eq!(view.merged_subjects, vec![store.clone()]);
    assert_eq!(view.events.len(), 2);
    assert_eq!(view.aggregates["purchase"].sums["amount"], 299.0);
    let channels: Vec<Channel> = view.events.iter().map(|e| e.channel).collect();
    assert_eq!(channels, vec![Channel::Online, Channel::Offline]);
    assert_eq!(view.merge_history.len(), 1);
    assert!(
        view.merge_history[0]
            .because
            .contains(&"member_id".to_owned())
    );
    // The phone now finds the merged person.
    let by_phone = vault
        .ingest(
            TENANT,
            &record(vec![phone("13900001111")], vec![]),
            &ingest_actor(),
        )
        .expect("phone");
    assert_eq!(by_phone.subject.as_deref(), Some(web.as_str()));

    let entry = vault
        .unmerge(TENANT, &web, &store, &operator())
        .expect("unmerge");
    assert_eq!(entry.identities_moved, 2, "phone and member id go back");
    let web_view = vault.access(TENANT, &web, &operator()).expect("web");
    let store_view = vault.access(TENANT, &store, &operator()).expect("store");
    assert_eq!((web_view.events.len(), store_view.events.len()), (1, 1));
    assert!(store_view.merged_subjects.is_empty());
    // The same evidence does not merge them again.
    let again = vault
        .ingest(
            TENANT,
            &record(vec![member("M-1001"), email("li.na@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("again");
    assert!(again.merged.is_empty());
    assert!(matches!(
        vault.unmerge(TENANT, &web, &store, &operator()),
        Err(VaultError::NotMerged { .. })
    ));
}

#[test]
fn a_shared_device_id_attaches_records_but_never_merges_two_people() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let tablet = device("family-tablet");
    let mum = vault
        .ingest(
            TENANT,
            &record(vec![email("mum@example.com"), tablet.clone()], vec![]),
            &ingest_actor(),
        )
        .expect("mum");
    let kid = vault
        .ingest(
            TENANT,
            &record(vec![email("kid@example.com"), tablet.clone()], vec![]),
            &ingest_actor(),
        )
        .expect("kid");
    assert!(kid.merged.is_empty());
    assert_ne!(mum.subject, kid.subject);
    let anonymous = vault
        .ingest(TENANT, &record(vec![tablet], vec![]), &ingest_actor())
        .expect("tablet");
    assert_eq!(
        anonymous.subject, mum.subject,
        "a device alone goes to the subject it is linked to"
    );
}

#[test]
fn duplicate_source_ids_are_stored_once_and_aggregates_count_them_once() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let item = record(
        vec![email("dup@example.com")],
        vec![
            event("o-1", "purchase", NOW, Channel::Offline, 5.0),
            event("o-1", "purchase", NOW, Channel::Offline, 5.0),
            event("o-2", "purchase", NOW - 1, Channel::Offline, 7.0),
        ],
    );
    let first = vault.ingest(TENANT, &item, &ingest_actor()).expect("first");
    assert_eq!((first.events_inserted, first.duplicates), (2, 1));
    let again = vault.ingest(TENANT, &item, &ingest_actor()).expect("again");
    assert_eq!((again.events_inserted, again.duplicates), (0, 3));
    let view = vault
        .access(TENANT, &first.subject.expect("subject"), &operator())
        .expect("view");
    assert_eq!(view.aggregates["purchase"].count, 2);
    assert_eq!(view.aggregates["purchase"].sums["amount"], 12.0);
}

#[test]
fn bad_records_are_refused_with_the_problem_named_and_nothing_of_the_batch_is_written() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let good = record(
        vec![email("ok@example.com")],
        vec![event("g", "purchase", NOW, Channel::Online, 1.0)],
    );
    let cases: Vec<(Incoming, &str)> = vec![
        (record(vec![email("not-an-email")], vec![]), "email"),
        (record(vec![], vec![]), "at least one identity"),
        (
            Incoming {
                traits: BTreeMap::from([("favourite_colour".to_owned(), json!("red"))]),
                ..record(vec![email("a@example.com")], vec![])
            },
            "favourite_colour",
        ),
        (
            Incoming {
                traits: BTreeMap::from([("lifetime_value".to_owned(), json!("lots"))]),
                ..record(vec![email("a@example.com")], vec![])
            },
            "lifetime_value",
        ),
        (
            record(
                vec![email("a@example.com")],
                vec![event("x", "Bad Type", NOW, Channel::Online, 1.0)],
            ),
            "Bad Type",
        ),
        (
            Incoming {
                consents: vec![ConsentChange {
                    purpose: "telepathy".into(),
                    granted: true,
                    method: "form".into(),
                    given_at_ms: None,
                }],
                ..record(vec![email("a@example.com")], vec![])
            },
            "telepathy",
        ),
    ];
    for (bad, named) in cases {
        let error = vault
            .ingest_batch(TENANT, &[good.clone(), bad], &ingest_actor())
            .expect_err("refused");
        assert!(
            error.to_string().contains(named),
            "{error} should name {named}"
        );
        assert!(
            !error.to_string().contains("not-an-email"),
            "errors never echo identity values: {error}"
        );
        assert!(
            vault
                .store()
                .subjects(TENANT, None, 10)
                .expect("subjects")
                .is_empty()
        );
    }
}

#[test]
fn consents_keep_their_history_and_linked_apps_can_be_revoked() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    let me = Actor::new("subject", &ana);
    assert!(
        vault
            .has_consent(TENANT, &ana, "email_marketing")
            .expect("consent")
    );
    assert!(
        !vault
            .has_consent(TENANT, &ana, "analytics")
            .expect("consent")
    );
    fixture.advance(1000);
    let revoke = ConsentChange {
        purpose: "email_marketing".into(),
        granted: false,
        method: "portal".into(),
        given_at_ms: None,
    };
    vault
        .set_consent(TENANT, &ana, &revoke, &me)
        .expect("revoke");
    assert!(
        !vault
            .has_consent(TENANT, &ana, "email_marketing")
            .expect("consent")
    );
    let app = LinkedApp {
        app: "fitness-sync".into(),
        name: "Fitness Sync".into(),
        scopes: vec!["purchases:read".into()],
        granted_at_ms: 0,
    };
    vault.link_app(TENANT, &ana, &app, &me).expect("link");
    let view = vault.access(TENANT, &ana, &me).expect("view");
    assert_eq!(view.linked_apps.len(), 1);
    assert_eq!(view.consent_history.len(), 3);
    vault
        .revoke_app(TENANT, &ana, "fitness-sync", &me)
        .expect("revoke app");
    let view = vault.access(TENANT, &ana, &me).expect("view");
    assert!(view.linked_apps.is_empty());
    assert_eq!(view.consent_history.len(), 4);
    let state = view
        .consents
        .iter()
        .find(|c| c.purpose == "email_marketing")
        .expect("state");
    assert!(!state.granted);
}

#[test]
fn rectify_changes_traits_and_the_audit_names_fields_never_values() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    let changes = BTreeMap::from([
        ("city".to_owned(), Some(json!("Hangzhou"))),
        ("name".to_owned(), None),
        ("birthday".to_owned(), Some(json!("1990-04-01"))),
    ]);
    vault
        .rectify(TENANT, &ana, &changes, &Actor::new("subject", &ana))
        .expect("rectify");
    let view = vault.access(TENANT, &ana, &operator()).expect("view");
    assert_eq!(
        view.traits["city"],
        (json!("Hangzhou"), TraitClass::Standard)
    );
    assert_eq!(view.traits["birthday"].1, TraitClass::Sensitive);
    assert!(!view.traits.contains_key("name"));
    let bad = BTreeMap::from([("birthday".to_owned(), Some(json!("soon")))]);
    assert!(matches!(
        vault.rectify(TENANT, &ana, &bad, &operator()),
        Err(VaultError::InvalidTrait { .. })
    ));
    let entry = view
        .access_log
        .iter()
        .find(|e| e.action == "subject.rectify")
        .expect("audited");
    assert_eq!(entry.fields, vec!["birthday", "city", "name"]);
    assert!(
        !serde_json::to_string(&entry)
            .expect("json")
            .contains("Hangzhou")
    );
}

#[test]
fn exports_hold_every_section_in_json_and_csv() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    let json_text = vault.export_json(TENANT, &ana, &operator()).expect("json");
    let parsed: serde_json::Value = serde_json::from_str(&json_text).expect("valid json");
    for section in [
        "traits",
        "events",
        "aggregates",
        "consents",
        "consent_history",
        "linked_apps",
        "segments",
        "identities",
        "plugin_state",
        "access_log",
    ] {
        assert!(parsed.get(section).is_some(), "JSON export lacks {section}");
    }
    assert_eq!(parsed["events"].as_array().expect("events").len(), 5);
    let csv = vault.export_csv(TENANT, &ana, &operator()).expect("csv");
    for file in [
        "traits.csv",
        "events.csv",
        "consents.csv",
        "linked_apps.csv",
        "segments.csv",
        "identities.csv",
        "plugin_state.csv",
        "access_log.csv",
    ] {
        assert!(csv.contains_key(file), "CSV export lacks {file}");
    }
    assert_eq!(
        csv["events.csv"].lines().count(),
        6,
        "header and five events"
    );
    assert!(csv["identities.csv"].contains("ana@example.com"));
    assert!(csv["identities.csv"].contains("+8613800138000"));
    assert!(csv["access_log.csv"].contains("subject.export"));
}

#[test]
fn the_audit_chain_verifies_and_reports_an_edited_or_removed_entry() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    vault.access(TENANT, &ana, &operator()).expect("access");
    let report = vault.verify_audit(TENANT).expect("verify");
    assert!(report.intact(), "{:?}", report.problems);
    assert!(report.entries >= 2);
    assert_eq!(report.entries, report.head);
}

#[test]
fn four_threads_ingesting_into_one_tenant_lose_nothing() {
    let fixture = Fixture::new();
    let vault = std::sync::Arc::new(fixture.create());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let vault = vault.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let item = record(
                        vec![email(&format!("shared{}@example.com", i % 10))],
                        vec![event(
                            &format!("t{t}-{i}"),
                            "purchase",
                            NOW + i,
                            Channel::Online,
                            1.0,
                        )],
                    );
                    vault
                        .ingest(TENANT, &item, &ingest_actor())
                        .expect("ingest");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let subjects = vault.store().subjects(TENANT, None, 100).expect("subjects");
    assert_eq!(subjects.len(), 10);
    let mut events = 0;
    for subject in &subjects {
        let view = vault
            .access(TENANT, &subject.id, &operator())
            .expect("view");
        assert_eq!(
            view.aggregates["purchase"].count as usize,
            view.events.len()
        );
        events += view.events.len();
    }
    assert_eq!(events, 200);
    assert!(vault.verify_audit(TENANT).expect("verify").intact());
}

#[test]
fn master_key_rotation_rewraps_tenant_keys_and_keeps_every_record_readable() {
    let fixture = Fixture::new();
    let (vault, [ana, _, _]) = seed_three(&fixture);
    let store = vault.store().clone();
    let new = tessera_privacy::MasterKey::generate().expect("new key");
    assert_eq!(
        tessera_vault::rotate_master_key(store.as_ref(), &fixture.master(), &new).expect("rotate"),
        1
    );
    assert_eq!(
        tessera_vault::rotate_master_key(store.as_ref(), &fixture.master(), &new).expect("again"),
        0,
        "idempotent"
    );
    drop(vault);
    drop(store);
    let vault = tessera_vault::Vault::open(fixture.data_dir(), fixture.key_dir(), new)
        .expect("open with new key");
    assert_eq!(
        vault
            .access(TENANT, &ana, &operator())
            .expect("readable")
            .events
            .len(),
        5
    );
    drop(vault);
    let old = tessera_vault::Vault::open(fixture.data_dir(), fixture.key_dir(), fixture.master())
        .expect("open");
    assert!(matches!(
        old.access(TENANT, &ana, &operator()),
        Err(VaultError::KeyWrap(_))
    ));
}

#[test]
fn pooled_subject_keys_are_reused_after_a_restart_instead_of_leaking() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let first = vault
        .ingest(
            TENANT,
            &record(vec![email("one@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("first");
    drop(vault);
    let key_file = fixture.key_dir().join(tessera_vault::SUBJECT_KEYS_FILE);
    let size = std::fs::metadata(&key_file).expect("key store").len();
    let vault = fixture.open();
    let second = vault
        .ingest(
            TENANT,
            &record(vec![email("two@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("second");
    assert!(second.created);
    assert_ne!(first.subject, second.subject);
    assert_eq!(
        std::fs::metadata(&key_file).expect("key store").len(),
        size,
        "the second subject took a key pooled by the first run"
    );
    for subject in [first.subject, second.subject] {
        vault
            .access(TENANT, &subject.expect("subject"), &operator())
            .expect("readable");
    }
}

#[test]
fn find_subject_normalises_resolves_merges_and_forgets_erased_people() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let operator = operator();
    let web = vault
        .ingest(
            TENANT,
            &record(vec![email("wang.fang@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("web")
        .subject
        .expect("web subject");
    fixture.advance(1);
    let shop = vault
        .ingest(
            TENANT,
            &record(vec![member("M-77")], vec![]),
            &ingest_actor(),
        )
        .expect("shop")
        .subject
        .expect("shop subject");
    let (email_kind, _) = email("");
    let (member_kind, _) = member("x");
    // The value is normalised the way ingest normalises it.
    assert_eq!(
        vault
            .find_subject(TENANT, &email_kind, "  Wang.Fang@EXAMPLE.com ", &operator)
            .expect("lookup"),
        Some(web.clone())
    );
    assert_eq!(
        vault
            .find_subject(TENANT, &email_kind, "nobody@example.com", &operator)
            .expect("lookup"),
        None
    );
    // A malformed value is an error that names the kind, not the value.
    let error = vault
        .find_subject(TENANT, &email_kind, "not an address", &operator)
        .expect_err("malformed");
    assert!(
        matches!(error, VaultError::InvalidIdentity { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("not an address"), "{error}");

    // After a merge, either identity finds the surviving root.
    fixture.advance(1);
    vault
        .ingest(
            TENANT,
            &record(vec![member("M-77"), email("wang.fang@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("join");
    let root = vault
        .find_subject(TENANT, &member_kind, "M-77", &operator)
        .expect("lookup")
        .expect("found");
    // The oldest subject survives a merge.
    assert_eq!(root, web);
    assert_ne!(root, shop);
    assert_eq!(
        vault
            .find_subject(TENANT, &email_kind, "wang.fang@example.com", &operator)
            .expect("lookup"),
        Some(root.clone())
    );

    // Every lookup is audited, with the subject but never the value.
    let entries = vault.audit_entries(TENANT, 1, 1_000).expect("audit");
    let lookups: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "subject.lookup")
        .collect();
    // Four lookups: a malformed value is refused before anything is read.
    assert_eq!(lookups.len(), 4);
    assert_eq!(lookups[0].subject.as_deref(), Some(web.as_str()));
    assert_eq!(lookups[1].subject, None);
    let text = serde_json::to_string(&entries).expect("json");
    assert!(!text.to_lowercase().contains("wang.fang"), "{text}");

    // An erased person is no longer found.
    vault
        .request_deletion(TENANT, &root, "subject_request", &operator)
        .expect("erase");
    assert_eq!(
        vault
            .find_subject(TENANT, &member_kind, "M-77", &operator)
            .expect("lookup"),
        None
    );
}

#[test]
fn consents_apps_and_retention_read_on_their_own_and_unlink_only_what_is_linked() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let operator = operator();
    let web = vault
        .ingest(
            TENANT,
            &record(vec![email("li.na@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("web")
        .subject
        .expect("web subject");
    // Created later, so the web record is the older and survives the merge
    // (at the same instant the smaller, random, id would).
    fixture.advance(1);
    let shop = vault
        .ingest(
            TENANT,
            &record(vec![member("M-88")], vec![]),
            &ingest_actor(),
        )
        .expect("shop")
        .subject
        .expect("shop subject");
    let me = Actor::new("subject", "token-1");
    let app = LinkedApp {
        app: "fitness-sync".into(),
        name: "Fitness Sync".into(),
        scopes: vec!["purchases:read".into()],
        granted_at_ms: 0,
    };
    vault.link_app(TENANT, &shop, &app, &me).expect("link");
    fixture.advance(1);
    vault
        .set_consent(TENANT, &shop, &consent("analytics"), &me)
        .expect("grant");
    // The two records are one person: either id reads the merged group.
    fixture.advance(1);
    vault
        .ingest(
            TENANT,
            &record(vec![member("M-88"), email("li.na@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("join");
    assert_eq!(vault.resolve_subject(TENANT, &shop).expect("root"), web);
    assert_eq!(vault.resolve_subject(TENANT, &web).expect("root"), web);
    let consents = vault.consents(TENANT, &shop, &me).expect("consents");
    assert_eq!(consents.linked_apps.len(), 1);
    assert_eq!(consents.history.len(), 2);
    let analytics = consents
        .consents
        .iter()
        .find(|c| c.purpose == "analytics")
        .expect("analytics");
    assert!(analytics.granted);
    assert_eq!(consents.consents.len(), 4, "one state per purpose");

    // Unlinking an app the person does not have writes nothing.
    let before = vault.audit_entries(TENANT, 1, 1_000).expect("audit").len();
    assert!(
        !vault
            .unlink_app(TENANT, &web, "other-app", &me)
            .expect("unlink")
    );
    assert_eq!(
        vault.audit_entries(TENANT, 1, 1_000).expect("audit").len(),
        before
    );
    assert!(
        vault
            .unlink_app(TENANT, &web, "fitness-sync", &me)
            .expect("unlink")
    );
    let consents = vault.consents(TENANT, &web, &me).expect("consents");
    assert!(consents.linked_apps.is_empty());
    assert_eq!(consents.history.len(), 3);

    let retention = vault.retention(TENANT, &web, &me).expect("retention");
    assert_eq!(retention.chosen, None);
    assert_eq!(retention.days, retention.default_days);
    assert_eq!((retention.min_days, retention.max_days), (30, 3 * 365));
    vault.set_retention(TENANT, &web, 90, &me).expect("set");
    let retention = vault.retention(TENANT, &web, &me).expect("retention");
    assert_eq!((retention.days, retention.chosen), (90, Some(90)));

    // The reads are audited as accesses, naming what was read.
    let entries = vault.audit_entries(TENANT, 1, 1_000).expect("audit");
    let details: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "subject.access")
        .filter_map(|e| e.detail.as_deref())
        .collect();
    assert_eq!(details, ["consents", "consents", "retention", "retention"]);

    // An erased person resolves to nothing.
    vault
        .request_deletion(TENANT, &web, "subject_request", &operator)
        .expect("erase");
    assert!(matches!(
        vault.resolve_subject(TENANT, &web),
        Err(VaultError::SubjectErased { .. })
    ));
    assert!(matches!(
        vault.consents(TENANT, &shop, &me),
        Err(VaultError::SubjectErased { .. })
    ));
}

#[test]
fn identities_from_an_untrusted_source_resolve_but_never_sign_anyone_in() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let operator = operator();
    let (email_kind, _) = email("");
    let (phone_kind, _) = phone("+86 139 0000 0000");
    let victim = vault
        .ingest(
            TENANT,
            &record(vec![email("victim@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("trusted")
        .subject
        .expect("victim");
    // Through a public write key, someone claims the victim's address
    // together with their own phone: the phone is attached (it resolves
    // later records), but only as an untrusted identity.
    fixture.advance(1);
    let outcome = vault
        .ingest_batch_untrusted(
            TENANT,
            &[record(
                vec![email("victim@example.com"), phone("+86 139 1111 2222")],
                vec![event("web-9", "page_view", NOW, Channel::Online, 0.0)],
            )],
            &ingest_actor(),
        )
        .expect("untrusted")
        .1
        .remove(0);
    assert_eq!(outcome.subject.as_deref(), Some(victim.as_str()));
    assert_eq!(outcome.refused, None);
    let find = |kind, value: &str, trusted: bool| {
        if trusted {
            vault.find_trusted_subject(TENANT, kind, value, &operator)
        } else {
            vault.find_subject(TENANT, kind, value, &operator)
        }
        .expect("lookup")
    };
    assert_eq!(
        find(&phone_kind, "+86 139 1111 2222", false),
        Some(victim.clone())
    );
    assert_eq!(find(&phone_kind, "+86 139 1111 2222", true), None);
    // A person an untrusted source linked a sign-in identity to signs in by
    // none of theirs: what it linked may be someone else's.
    assert_eq!(find(&email_kind, "victim@example.com", true), None);

    // A trusted record that reaches the person through the untrusted link
    // (the attacker registering with the tenant under their own email and
    // that phone) signs nobody in as the victim either.
    fixture.advance(1);
    let reached = vault
        .ingest(
            TENANT,
            &record(
                vec![email("attacker@evil.example"), phone("+86 139 1111 2222")],
                vec![],
            ),
            &ingest_actor(),
        )
        .expect("trusted")
        .subject
        .expect("subject");
    assert_eq!(reached, victim);
    assert_eq!(find(&email_kind, "attacker@evil.example", true), None);
    assert_eq!(find(&phone_kind, "+86 139 1111 2222", true), None);

    // A person no untrusted source touched signs in as before.
    let other = vault
        .ingest(
            TENANT,
            &record(vec![email("other@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("trusted")
        .subject;
    assert_eq!(find(&email_kind, "other@example.com", true), other);
}

#[test]
fn a_pre_claimed_id_locks_the_attacker_out_instead_of_exposing_the_victim() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let operator = operator();
    let (email_kind, _) = email("");
    let attacker = vault
        .ingest(
            TENANT,
            &record(vec![email("attacker@example.com")], vec![]),
            &ingest_actor(),
        )
        .expect("trusted")
        .subject;
    assert_eq!(
        vault
            .find_trusted_subject(TENANT, &email_kind, "attacker@example.com", &operator)
            .expect("lookup"),
        attacker
    );
    // Through the write key, the attacker attaches a member id the tenant
    // will give the next customer to their own record.
    fixture.advance(1);
    vault
        .ingest_batch_untrusted(
            TENANT,
            &[record(
                vec![email("attacker@example.com"), member("user-1001")],
                vec![],
            )],
            &ingest_actor(),
        )
        .expect("untrusted");
    // The victim registers; the tenant's server sends their record.
    fixture.advance(1);
    vault
        .ingest(
            TENANT,
            &record(
                vec![member("user-1001"), email("victim@example.com")],
                vec![],
            ),
            &ingest_actor(),
        )
        .expect("trusted");
    // The record went where the member id pointed, but nobody can sign in
    // there any more: not the attacker, not the victim.
    for address in ["attacker@example.com", "victim@example.com"] {
        assert_eq!(
            vault
                .find_trusted_subject(TENANT, &email_kind, address, &operator)
                .expect("lookup"),
            None,
            "{address}"
        );
    }
}

#[test]
fn an_untrusted_source_cannot_join_two_known_people_but_can_join_a_visitor_to_one() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    let operator = operator();
    let (email_kind, _) = email("");
    let mut people = Vec::new();
    for address in ["ann@example.com", "bo@example.com"] {
        fixture.advance(1);
        people.push(
            vault
                .ingest(
                    TENANT,
                    &record(vec![email(address)], vec![]),
                    &ingest_actor(),
                )
                .expect("trusted")
                .subject
                .expect("subject"),
        );
    }
    let before: Vec<_> = people
        .iter()
        .map(|p| {
            vault
                .access(TENANT, p, &operator)
                .expect("view")
                .events
                .len()
        })
        .collect();

    // One message naming both: refused, and nothing of it is stored.
    fixture.advance(1);
    let (total, outcomes) = vault
        .ingest_batch_untrusted(
            TENANT,
            &[record(
                vec![email("ann@example.com"), email("bo@example.com")],
                vec![event("join-1", "purchase", NOW, Channel::Online, 9.0)],
            )],
            &ingest_actor(),
        )
        .expect("untrusted");
    assert_eq!(outcomes[0].refused, Some(Refusal::UntrustedMerge));
    assert_eq!((total.merges, total.events_inserted), (0, 0));
    for (person, events) in people.iter().zip(before) {
        let view = vault.access(TENANT, person, &operator).expect("view");
        assert!(view.merged_subjects.is_empty(), "{view:?}");
        assert_eq!(view.events.len(), events);
    }
    assert_eq!(
        vault
            .find_subject(TENANT, &email_kind, "bo@example.com", &operator)
            .expect("lookup"),
        Some(people[1].clone())
    );

    // A visitor known only through what the write key said (a newsletter
    // sign-up) joins a known person when the page later names both.
    fixture.advance(1);
    let visitor = vault
        .ingest_batch_untrusted(
            TENANT,
            &[record(vec![email("ann.news@example.com")], vec![])],
            &ingest_actor(),
        )
        .expect("visitor")
        .1
        .remove(0)
        .subject
        .expect("visitor subject");
    assert_ne!(visitor, people[0]);
    fixture.advance(1);
    let joined = vault
        .ingest_batch_untrusted(
            TENANT,
            &[record(
                vec![email("ann@example.com"), email("ann.news@example.com")],
                vec![],
            )],
            &ingest_actor(),
        )
        .expect("join")
        .1
        .remove(0);
    assert_eq!(joined.refused, None);
    assert_eq!(joined.merged, vec![visitor.clone()]);
    // Neither the visitor's address nor, now, Ann's own signs anyone in
    // (what the write key joined may not be Ann's).
    for address in ["ann.news@example.com", "ann@example.com"] {
        assert_eq!(
            vault
                .find_trusted_subject(TENANT, &email_kind, address, &operator)
                .expect("lookup"),
            None,
            "{address}"
        );
    }
    assert_eq!(
        vault
            .find_subject(TENANT, &email_kind, "ann.news@example.com", &operator)
            .expect("lookup"),
        Some(people[0].clone())
    );
}
