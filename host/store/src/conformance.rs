//! The behaviour every storage backend must show, as functions that panic on
//! a deviation; backends run them from tests and must never special-case them.
//!
//! Each case takes a fresh, empty store. A backend's test file runs them all,
//! one `#[test]` each, with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! fn fixture() -> (tempfile::TempDir, SledStore) {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SledStore::open(dir.path()).unwrap();
//!     (dir, store)
//! }
//! tessera_store::conformance_tests!(fixture);
//! ```
//!
//! or all at once with [`run_all`]. [`flushed_writes_survive_reopen`] needs a
//! way to reopen the same store and is run separately. The plugin-state cases
//! hold backends to exactly what `tessera_state::MemoryState` does; the
//! subject-state cases check the [`Store`] methods that reach into plugin
//! state against the backend's own [`StateStore`].

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tessera_state::{StateError, StateScope, StateStore};

use crate::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, MAX_ID_LEN,
    NewEvents, PurgeReport, Store, StoreError, SubjectAppend, SubjectRecord, TenantRecord,
};

/// One named behaviour.
#[derive(Debug)]
pub struct Case<S> {
    pub name: &'static str,
    pub run: fn(&S),
}

macro_rules! cases {
    ($($case:ident),+ $(,)?) => {
        vec![$(Case { name: stringify!($case), run: $case::<S> }),+]
    };
}

/// The cases of the [`Store`] trait.
pub fn store_cases<S: Store>() -> Vec<Case<S>> {
    cases![
        an_empty_store_holds_nothing_and_finds_nothing,
        tenants_are_stored_replaced_and_listed_in_id_order,
        invalid_ids_are_refused_without_changing_anything,
        subjects_need_a_tenant_and_page_in_id_order,
        several_subjects_are_written_together_or_not_at_all,
        identity_links_never_overwrite_an_existing_link,
        events_come_back_in_time_order_within_half_open_ranges,
        duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects,
        batches_of_several_subjects_are_appended_together_or_not_at_all,
        batches_create_subjects_link_identities_and_append_consents_all_or_nothing,
        batches_of_new_events_store_nothing_if_any_is_a_duplicate_and_name_each,
        writes_for_an_unknown_subject_are_refused_and_change_nothing,
        deleting_events_before_a_time_removes_only_older_events_of_that_subject,
        consent_history_is_kept_in_time_then_append_order,
        tenants_are_isolated_even_with_the_same_subject_ids,
        purging_a_subject_removes_exactly_its_records,
        purging_again_finishes_and_keeps_what_was_relinked_suppressed_or_filed,
        relinking_moves_an_identity_only_from_the_subject_it_points_at,
        concurrent_relinks_of_one_identity_let_exactly_one_win,
        suppressions_are_replaced_counted_and_kept_per_tenant,
        events_can_replace_their_subject_record_in_the_same_transaction,
        documents_need_a_tenant_and_page_in_id_order_per_kind,
        audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds,
        audit_appends_only_onto_the_head_they_were_numbered_for,
        audit_sequence_stays_gapless_under_four_concurrent_writers,
        concurrent_appends_of_the_same_source_ids_insert_each_once,
        jobs_are_claimed_when_due_and_again_after_their_lease_expires,
        a_lease_is_renewed_only_by_its_holder,
    ]
}

/// The cases of the [`StateStore`] trait.
pub fn state_cases<S: StateStore>() -> Vec<Case<S>> {
    cases![
        state_writes_apply_atomically_within_the_quota_and_scopes_are_separate,
        state_writes_based_on_an_old_version_conflict_and_change_nothing,
        state_over_a_lowered_quota_can_shrink_but_not_grow,
        state_version_and_usage_track_every_applied_batch,
        concurrent_state_writers_on_one_version_let_exactly_one_win,
        a_retired_scope_is_emptied_and_refuses_every_write,
        scopes_are_listed_by_plugin_prefix_within_their_tenant,
    ]
}

/// The cases of the [`Store`] methods that reach into plugin state.
pub fn subject_state_cases<S: Store + StateStore>() -> Vec<Case<S>> {
    cases![
        subject_state_is_listed_and_purged_across_scopes_and_nothing_else,
        purging_subject_state_moves_versions_on_and_keeps_usage_exact,
        purging_subject_state_under_concurrent_plugin_writers_keeps_usage_exact,
        state_for_a_subject_the_store_does_not_have_is_refused,
        every_record_family_can_be_walked_page_by_page_for_a_copy,
    ]
}

/// Every case a backend must pass (all but [`flushed_writes_survive_reopen`]).
pub fn cases<S: Store + StateStore>() -> Vec<Case<S>> {
    let mut all = store_cases::<S>();
    all.extend(state_cases::<S>());
    all.extend(subject_state_cases::<S>());
    all
}

/// Runs every case, each on a store from `make`, and panics naming the cases
/// that failed.
pub fn run_all<S: Store + StateStore>(make: impl Fn() -> S) {
    let failed: Vec<&str> = cases::<S>()
        .into_iter()
        .filter(|case| {
            let store = make();
            catch_unwind(AssertUnwindSafe(|| (case.run)(&store))).is_err()
        })
        .map(|case| case.name)
        .collect();
    assert!(failed.is_empty(), "conformance cases failed: {failed:?}");
}

/// The names of [`cases`], for a fixture returning `(guard, store)`; lets
/// [`conformance_tests!`](crate::conformance_tests) check it runs them all.
pub fn case_names<G, S: Store + StateStore>(_fixture: fn() -> (G, S)) -> Vec<&'static str> {
    cases::<S>().into_iter().map(|case| case.name).collect()
}

/// For [`conformance_tests!`](crate::conformance_tests) without `unless`:
/// never skips.
pub fn never_skip() -> bool {
    false
}

/// One `#[test]` per conformance case. `$fixture` is a `fn() -> (G, S)`:
/// a guard (a temporary directory, a scratch database) that must outlive the
/// store, and a fresh, empty store. Also checks that no case was left out.
///
/// With `unless = $skip`, a `fn() -> bool`, each case first asks `$skip` and
/// passes without running if it returns `true`: for a backend whose server
/// the operator chose not to provide, which `$skip` must say loudly.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!($fixture, unless = $crate::conformance::never_skip);
    };
    ($fixture:path, unless = $skip:path) => {
        $crate::conformance_tests!(@each $fixture, $skip;
            an_empty_store_holds_nothing_and_finds_nothing,
            tenants_are_stored_replaced_and_listed_in_id_order,
            invalid_ids_are_refused_without_changing_anything,
            subjects_need_a_tenant_and_page_in_id_order,
            several_subjects_are_written_together_or_not_at_all,
            identity_links_never_overwrite_an_existing_link,
            events_come_back_in_time_order_within_half_open_ranges,
            duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects,
            batches_of_several_subjects_are_appended_together_or_not_at_all,
            batches_create_subjects_link_identities_and_append_consents_all_or_nothing,
            batches_of_new_events_store_nothing_if_any_is_a_duplicate_and_name_each,
            writes_for_an_unknown_subject_are_refused_and_change_nothing,
            deleting_events_before_a_time_removes_only_older_events_of_that_subject,
            consent_history_is_kept_in_time_then_append_order,
            tenants_are_isolated_even_with_the_same_subject_ids,
            purging_a_subject_removes_exactly_its_records,
            purging_again_finishes_and_keeps_what_was_relinked_suppressed_or_filed,
            relinking_moves_an_identity_only_from_the_subject_it_points_at,
            concurrent_relinks_of_one_identity_let_exactly_one_win,
            suppressions_are_replaced_counted_and_kept_per_tenant,
            events_can_replace_their_subject_record_in_the_same_transaction,
            documents_need_a_tenant_and_page_in_id_order_per_kind,
            audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds,
            audit_appends_only_onto_the_head_they_were_numbered_for,
            audit_sequence_stays_gapless_under_four_concurrent_writers,
            concurrent_appends_of_the_same_source_ids_insert_each_once,
            jobs_are_claimed_when_due_and_again_after_their_lease_expires,
            a_lease_is_renewed_only_by_its_holder,
            state_writes_apply_atomically_within_the_quota_and_scopes_are_separate,
            state_writes_based_on_an_old_version_conflict_and_change_nothing,
            state_over_a_lowered_quota_can_shrink_but_not_grow,
            state_version_and_usage_track_every_applied_batch,
            concurrent_state_writers_on_one_version_let_exactly_one_win,
            a_retired_scope_is_emptied_and_refuses_every_write,
            scopes_are_listed_by_plugin_prefix_within_their_tenant,
            subject_state_is_listed_and_purged_across_scopes_and_nothing_else,
            purging_subject_state_moves_versions_on_and_keeps_usage_exact,
            purging_subject_state_under_concurrent_plugin_writers_keeps_usage_exact,
            state_for_a_subject_the_store_does_not_have_is_refused,
            every_record_family_can_be_walked_page_by_page_for_a_copy,
        );
    };
    (@each $fixture:path, $skip:path; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                if $skip() {
                    return;
                }
                let (guard, store) = $fixture();
                $crate::conformance::$case(&store);
                drop(store);
                drop(guard);
            }
        )+

        #[test]
        fn the_conformance_macro_runs_every_case() {
            assert_eq!(
                vec![$(stringify!($case)),+],
                $crate::conformance::case_names($fixture)
            );
        }
    };
}

// ---------------------------------------------------------------- helpers

const T: &str = "acme";
const T2: &str = "acme-eu";

fn tenant(id: &str) -> TenantRecord {
    TenantRecord {
        id: id.to_owned(),
        wrapped_key: format!("key of {id}").into_bytes(),
        settings: vec![0, 1, 2, 255],
    }
}

fn subject(id: &str) -> SubjectRecord {
    SubjectRecord {
        id: id.to_owned(),
        wrapped_key: format!("key of {id}").into_bytes(),
        created_at_ms: 1_700_000_000_000,
        data: format!("traits of {id}").into_bytes(),
    }
}

fn event(source_id: &str, at_ms: i64) -> EventRecord {
    EventRecord {
        source_id: source_id.to_owned(),
        at_ms,
        data: format!("{source_id} at {at_ms}").into_bytes(),
    }
}

fn consent(at_ms: i64, what: &str) -> ConsentRecord {
    ConsentRecord {
        at_ms,
        data: what.as_bytes().to_vec(),
    }
}

fn job(id: &str, kind: &str, not_before_ms: i64) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        kind: kind.to_owned(),
        not_before_ms,
        payload: format!("payload of {id}").into_bytes(),
    }
}

fn hash(byte: u8) -> IdentityHash {
    [byte; 32]
}

/// Creates tenants and subjects (each `tenant/subject`).
fn seed<S: Store + ?Sized>(store: &S, subjects: &[(&str, &str)]) {
    for (tenant_id, subject_id) in subjects {
        if store.tenant(tenant_id).unwrap().is_none() {
            store.put_tenant(&tenant(tenant_id)).unwrap();
        }
        store.put_subject(tenant_id, &subject(subject_id)).unwrap();
    }
}

fn all_events<S: Store + ?Sized>(store: &S, tenant: &str, subject: &str) -> Vec<EventRecord> {
    store.events(tenant, subject, i64::MIN, i64::MAX).unwrap()
}

fn sources(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.source_id.as_str()).collect()
}

fn ids(subjects: &[SubjectRecord]) -> Vec<&str> {
    subjects.iter().map(|s| s.id.as_str()).collect()
}

fn outcome(inserted: u64, duplicates: u64) -> AppendOutcome {
    AppendOutcome {
        inserted,
        duplicates,
    }
}

fn invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::InvalidId { .. }))
}

fn unknown_subject<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::UnknownSubject { .. }))
}

fn scope(tenant: &str, plugin: &str) -> StateScope {
    StateScope {
        tenant: tenant.to_owned(),
        plugin: plugin.to_owned(),
    }
}

fn put(key: &str, value: Vec<u8>) -> (String, Option<Vec<u8>>) {
    (key.to_owned(), Some(value))
}

fn del(key: &str) -> (String, Option<Vec<u8>>) {
    (key.to_owned(), None)
}

// ------------------------------------------------------------------ store

pub fn an_empty_store_holds_nothing_and_finds_nothing<S: Store>(store: &S) {
    assert_eq!(store.tenants().unwrap(), vec![]);
    assert_eq!(store.tenant(T).unwrap(), None);
    assert_eq!(store.subject(T, "s1").unwrap(), None);
    assert_eq!(store.subjects(T, None, 10).unwrap(), vec![]);
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    assert_eq!(store.unlink_identity(T, hash(1)).unwrap(), None);
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        Vec::<IdentityHash>::new()
    );
    assert_eq!(all_events(store, T, "s1"), vec![]);
    assert_eq!(store.delete_events_before(T, "s1", i64::MAX).unwrap(), 0);
    assert_eq!(store.consents(T, "s1").unwrap(), vec![]);
    assert_eq!(store.audit(T, 0, 10).unwrap(), vec![]);
    assert_eq!(store.audit_head(T).unwrap(), 0);
    assert!(unknown_subject(store.relink_identity(
        T,
        hash(1),
        "s1",
        "s2"
    )));
    assert_eq!(store.suppression(T, hash(1)).unwrap(), None);
    assert!(!store.unsuppress(T, hash(1)).unwrap());
    assert_eq!(store.suppressions(T).unwrap(), 0);
    assert_eq!(store.document(T, "receipt", "d1").unwrap(), None);
    assert_eq!(store.documents(T, "receipt", None, 10).unwrap(), vec![]);
    assert!(!store.delete_document(T, "receipt", "d1").unwrap());
    assert_eq!(store.claim_job("purge", "w1", 1_000, 0).unwrap(), None);
    assert!(!store.complete_job("j1").unwrap());
    assert_eq!(
        store.purge_subject(T, "s1").unwrap(),
        PurgeReport::default()
    );
    store.flush().unwrap();
}

pub fn tenants_are_stored_replaced_and_listed_in_id_order<S: Store>(store: &S) {
    for id in ["b", "a", "c"] {
        store.put_tenant(&tenant(id)).unwrap();
    }
    let replaced = TenantRecord {
        id: "a".into(),
        wrapped_key: vec![],
        settings: vec![9; 3],
    };
    store.put_tenant(&replaced).unwrap();
    assert_eq!(store.tenant("a").unwrap(), Some(replaced.clone()));
    assert_eq!(store.tenant("b").unwrap(), Some(tenant("b")));
    assert_eq!(
        store.tenants().unwrap(),
        vec![replaced, tenant("b"), tenant("c")]
    );
}

pub fn invalid_ids_are_refused_without_changing_anything<S: Store>(store: &S) {
    let long = "x".repeat(MAX_ID_LEN + 1);
    assert!(invalid(store.put_tenant(&tenant(""))));
    assert!(invalid(store.put_tenant(&tenant(&long))));
    assert!(invalid(store.tenant("")));
    seed(store, &[(T, "s1")]);
    assert!(invalid(store.put_subject(T, &subject(""))));
    assert!(invalid(store.put_subject(T, &subject(&long))));
    assert!(invalid(store.subject(T, "")));
    assert!(invalid(store.subjects("", None, 10)));
    assert!(invalid(store.link_identity(T, hash(1), &long)));
    assert!(invalid(store.append_events(
        T,
        "s1",
        &[event("ok", 1), event("", 2)],
        None
    )));
    assert_eq!(all_events(store, T, "s1"), vec![], "all or nothing");
    assert!(invalid(store.append_audit("", 1, b"entry")));
    assert!(invalid(store.audit_head("")));
    assert!(invalid(store.relink_identity(T, hash(1), "", "s1")));
    assert!(invalid(store.relink_identity(T, hash(1), "s1", &long)));
    assert!(invalid(store.relink_identity("", hash(1), "s1", "s1")));
    assert!(invalid(store.suppress("", hash(1), b"entry")));
    assert!(invalid(store.suppress(&long, hash(1), b"entry")));
    assert!(invalid(store.suppression("", hash(1))));
    assert!(invalid(store.unsuppress("", hash(1))));
    assert!(invalid(store.suppressions("")));
    assert!(invalid(store.put_document(T, "", "d1", b"doc")));
    assert!(invalid(store.put_document(T, "receipt", "", b"doc")));
    assert!(invalid(store.put_document(T, "receipt", &long, b"doc")));
    assert!(invalid(store.put_document("", "receipt", "d1", b"doc")));
    assert!(invalid(store.document(T, "receipt", "")));
    assert!(invalid(store.documents(T, "", None, 10)));
    assert!(invalid(store.delete_document(T, &long, "d1")));
    assert!(invalid(store.subject_state(T, "")));
    assert!(invalid(store.purge_subject_state("", "s1")));
    assert!(invalid(store.purge_subject_state(T, &long)));
    assert!(invalid(store.enqueue_job(&job("j1", "", 0))));
    assert!(invalid(store.enqueue_job(&job("", "purge", 0))));
    assert!(invalid(store.claim_job("purge", "", 1_000, 0)));
    assert!(invalid(store.purge_subject(T, "")));

    let longest = "y".repeat(MAX_ID_LEN);
    store.put_subject(T, &subject(&longest)).unwrap();
    assert_eq!(store.subject(T, &longest).unwrap(), Some(subject(&longest)));
    store.put_document(T, &longest, &longest, b"doc").unwrap();
    assert_eq!(
        store.documents(T, &longest, None, 10).unwrap(),
        vec![(longest.clone(), b"doc".to_vec())]
    );
    assert_eq!(store.tenants().unwrap(), vec![tenant(T)]);
    assert_eq!(store.audit_head(T).unwrap(), 0);
    assert_eq!(store.suppressions(T).unwrap(), 0);
    assert_eq!(store.documents(T, "receipt", None, 10).unwrap(), vec![]);
}

pub fn subjects_need_a_tenant_and_page_in_id_order<S: Store>(store: &S) {
    assert!(matches!(
        store.put_subject(T, &subject("s1")),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert_eq!(store.subject(T, "s1").unwrap(), None);
    seed(store, &[(T, "s2"), (T, "s10"), (T, "s1"), (T, "a")]);
    assert_eq!(
        ids(&store.subjects(T, None, 10).unwrap()),
        ["a", "s1", "s10", "s2"]
    );
    assert_eq!(ids(&store.subjects(T, None, 2).unwrap()), ["a", "s1"]);
    assert_eq!(
        ids(&store.subjects(T, Some("s1"), 2).unwrap()),
        ["s10", "s2"]
    );
    assert_eq!(
        ids(&store.subjects(T, Some("b"), 10).unwrap()),
        ["s1", "s10", "s2"],
        "`after` need not exist"
    );
    assert_eq!(store.subjects(T, Some("s2"), 10).unwrap(), vec![]);
    assert_eq!(store.subjects(T, None, 0).unwrap(), vec![]);

    let replaced = SubjectRecord {
        data: b"new traits".to_vec(),
        ..subject("s1")
    };
    store.put_subject(T, &replaced).unwrap();
    assert_eq!(store.subject(T, "s1").unwrap(), Some(replaced));
    assert_eq!(store.subject(T, "s2").unwrap(), Some(subject("s2")));
    assert_eq!(store.subjects(T, None, 10).unwrap().len(), 4);
}

pub fn several_subjects_are_written_together_or_not_at_all<S: Store>(store: &S) {
    assert!(matches!(
        store.put_subjects(T, &[subject("s1"), subject("s2")]),
        Err(StoreError::UnknownTenant { .. })
    ));
    seed(store, &[(T, "s1")]);
    let one = SubjectRecord {
        data: b"merged into s2".to_vec(),
        ..subject("s1")
    };
    let two = SubjectRecord {
        data: b"absorbed s1".to_vec(),
        ..subject("s2")
    };
    let bad = SubjectRecord {
        id: String::new(),
        ..subject("s3")
    };
    assert!(invalid(
        store.put_subjects(T, &[one.clone(), two.clone(), bad])
    ));
    assert_eq!(
        store.subject(T, "s1").unwrap(),
        Some(subject("s1")),
        "nothing of a refused batch is written"
    );
    assert_eq!(store.subject(T, "s2").unwrap(), None);
    store.put_subjects(T, &[one.clone(), two.clone()]).unwrap();
    assert_eq!(store.subject(T, "s1").unwrap(), Some(one));
    assert_eq!(store.subject(T, "s2").unwrap(), Some(two));
    store.put_subjects(T, &[]).unwrap();
    assert_eq!(store.subjects(T, None, 10).unwrap().len(), 2);
}

pub fn identity_links_never_overwrite_an_existing_link<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    assert_eq!(store.link_identity(T, hash(9), "s1").unwrap(), None);
    assert_eq!(store.link_identity(T, hash(1), "s1").unwrap(), None);
    assert_eq!(
        store.link_identity(T, hash(1), "s2").unwrap(),
        Some("s1".into()),
        "the existing link is reported"
    );
    assert_eq!(
        store.find_identity(T, hash(1)).unwrap(),
        Some("s1".into()),
        "and kept"
    );
    assert_eq!(
        store.link_identity(T, hash(1), "s1").unwrap(),
        Some("s1".into())
    );
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        vec![hash(1), hash(9)]
    );
    assert_eq!(
        store.identities_of(T, "s2").unwrap(),
        Vec::<IdentityHash>::new()
    );

    assert_eq!(
        store.unlink_identity(T, hash(1)).unwrap(),
        Some("s1".into())
    );
    assert_eq!(store.unlink_identity(T, hash(1)).unwrap(), None);
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    assert_eq!(store.identities_of(T, "s1").unwrap(), vec![hash(9)]);
    assert_eq!(store.link_identity(T, hash(1), "s2").unwrap(), None);
    assert_eq!(store.identities_of(T, "s2").unwrap(), vec![hash(1)]);
    assert_eq!(store.find_identity(T, hash(3)).unwrap(), None);
}

pub fn events_come_back_in_time_order_within_half_open_ranges<S: Store>(store: &S) {
    seed(store, &[(T, "s1")]);
    let first = [
        event("c", 300),
        event("a", 100),
        event("b", 200),
        event("d", 200),
        event("neg", -50),
        event("min", i64::MIN),
    ];
    assert_eq!(
        store.append_events(T, "s1", &first, None).unwrap(),
        outcome(6, 0)
    );
    assert_eq!(
        store
            .append_events(T, "s1", &[event("e", 200)], None)
            .unwrap(),
        outcome(1, 0)
    );
    let all = all_events(store, T, "s1");
    assert_eq!(sources(&all), ["min", "neg", "a", "b", "d", "e", "c"]);
    assert_eq!(all[2], event("a", 100), "records come back whole");
    let range = |from, to| store.events(T, "s1", from, to).unwrap();
    assert_eq!(sources(&range(100, 300)), ["a", "b", "d", "e"]);
    assert_eq!(sources(&range(101, 301)), ["b", "d", "e", "c"]);
    assert_eq!(sources(&range(300, i64::MAX)), ["c"]);
    assert_eq!(range(200, 200), vec![]);
    assert_eq!(range(300, 100), vec![], "a reversed range is empty");
    assert_eq!(
        store.append_events(T, "s1", &[], None).unwrap(),
        outcome(0, 0)
    );
}

pub fn duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects<S: Store>(
    store: &S,
) {
    seed(store, &[(T, "s1"), (T, "s2"), (T2, "s1")]);
    let batch = [event("x1", 1), event("x2", 2), event("x1", 3)];
    assert_eq!(
        store.append_events(T, "s1", &batch, None).unwrap(),
        outcome(2, 1)
    );
    assert_eq!(
        all_events(store, T, "s1"),
        vec![event("x1", 1), event("x2", 2)],
        "the first of a batch wins"
    );
    assert_eq!(
        store
            .append_events(T, "s1", &[event("x2", 5), event("x3", 6)], None)
            .unwrap(),
        outcome(1, 1)
    );
    assert_eq!(
        store
            .append_events(T, "s2", &[event("x3", 7), event("y", 8)], None)
            .unwrap(),
        outcome(1, 1),
        "a source id of another subject in the tenant is a duplicate"
    );
    assert_eq!(sources(&all_events(store, T, "s2")), ["y"]);
    assert_eq!(sources(&all_events(store, T, "s1")), ["x1", "x2", "x3"]);
    assert!(store.has_event_source(T, "x3").unwrap());
    assert!(store.has_event_source(T, "y").unwrap());
    assert!(!store.has_event_source(T, "z").unwrap());
    assert!(
        !store.has_event_source(T2, "y").unwrap(),
        "tenants are separate"
    );
    assert_eq!(
        store
            .append_events(T2, "s1", &[event("x1", 1)], None)
            .unwrap(),
        outcome(1, 0),
        "another tenant's source ids are its own"
    );
}

pub fn batches_of_several_subjects_are_appended_together_or_not_at_all<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    let updated = SubjectRecord {
        data: b"aggregates after the batch".to_vec(),
        ..subject("s2")
    };
    let first = [event("a", 1), event("b", 2)];
    let second = [event("b", 3), event("c", 4)];
    let outcomes = store
        .append_batch(
            T,
            &[
                SubjectAppend {
                    subject: "s1",
                    events: &first,
                    ..SubjectAppend::default()
                },
                SubjectAppend {
                    subject: "s2",
                    events: &second,
                    update: Some(&updated),
                    ..SubjectAppend::default()
                },
            ],
        )
        .unwrap();
    assert_eq!(
        outcomes,
        vec![outcome(2, 0), outcome(1, 1)],
        "a source id earlier in the batch, for another subject, is a duplicate"
    );
    assert_eq!(sources(&all_events(store, T, "s1")), ["a", "b"]);
    assert_eq!(sources(&all_events(store, T, "s2")), ["c"]);
    assert_eq!(store.subject(T, "s2").unwrap(), Some(updated));

    // One unknown subject refuses the whole batch.
    let third = [event("d", 5)];
    let result = store.append_batch(
        T,
        &[
            SubjectAppend {
                subject: "s1",
                events: &third,
                ..SubjectAppend::default()
            },
            SubjectAppend {
                subject: "nobody",
                events: &third,
                ..SubjectAppend::default()
            },
        ],
    );
    assert!(unknown_subject(result));
    assert!(!store.has_event_source(T, "d").unwrap());
    assert_eq!(store.append_batch(T, &[]).unwrap(), vec![]);
}

pub fn batches_create_subjects_link_identities_and_append_consents_all_or_nothing<S: Store>(
    store: &S,
) {
    seed(store, &[(T, "s1")]);
    store.link_identity(T, hash(1), "s1").unwrap();
    let created = subject("new");
    let events = [event("n1", 1)];
    let later = [event("n2", 2)];
    let consents = [consent(5, "granted"), consent(6, "revoked")];
    let updated = SubjectRecord {
        data: b"after the batch".to_vec(),
        ..subject("new")
    };
    let outcomes = store
        .append_batch(
            T,
            &[
                SubjectAppend {
                    subject: "new",
                    events: &events,
                    update: Some(&created),
                    create: true,
                    links: &[hash(2), hash(3)],
                    consents: &consents,
                },
                SubjectAppend {
                    subject: "new",
                    events: &later,
                    update: Some(&updated),
                    links: &[hash(3)],
                    ..SubjectAppend::default()
                },
                SubjectAppend {
                    subject: "s1",
                    links: &[hash(1), hash(4)],
                    ..SubjectAppend::default()
                },
            ],
        )
        .unwrap();
    assert_eq!(
        outcomes,
        vec![outcome(1, 0), outcome(1, 0), outcome(0, 0)],
        "a later append sees the subject an earlier one created, and its links"
    );
    assert_eq!(store.subject(T, "new").unwrap(), Some(updated.clone()));
    assert_eq!(sources(&all_events(store, T, "new")), ["n1", "n2"]);
    assert_eq!(store.consents(T, "new").unwrap(), consents.to_vec());
    assert_eq!(
        store.find_identity(T, hash(2)).unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(
        store.find_identity(T, hash(3)).unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(
        store.identities_of(T, "new").unwrap(),
        vec![hash(2), hash(3)]
    );
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        vec![hash(1), hash(4)],
        "linking a hash already pointing at the subject changes nothing"
    );

    // Each refusal leaves everything as it was.
    let fresh = subject("fresh");
    let refused = |appends: &[SubjectAppend<'_>]| {
        let result = store.append_batch(T, appends);
        assert_eq!(store.subject(T, "fresh").unwrap(), None, "{result:?}");
        assert!(!store.has_event_source(T, "f1").unwrap(), "{result:?}");
        assert_eq!(store.find_identity(T, hash(9)).unwrap(), None, "{result:?}");
        assert_eq!(store.consents(T, "fresh").unwrap(), vec![], "{result:?}");
        assert_eq!(store.subject(T, "new").unwrap(), Some(updated.clone()));
        result
    };
    let fresh_events = [event("f1", 1)];
    let create_fresh = SubjectAppend {
        subject: "fresh",
        events: &fresh_events,
        update: Some(&fresh),
        create: true,
        links: &[hash(9)],
        consents: &consents,
    };
    let again = SubjectRecord {
        data: b"created twice".to_vec(),
        ..subject("new")
    };
    assert!(matches!(
        refused(&[
            create_fresh,
            SubjectAppend {
                subject: "new",
                update: Some(&again),
                create: true,
                ..SubjectAppend::default()
            }
        ]),
        Err(StoreError::SubjectExists { .. })
    ));
    assert!(
        unknown_subject(refused(&[SubjectAppend {
            update: None,
            ..create_fresh
        }])),
        "creating needs the record"
    );
    assert!(matches!(
        refused(&[SubjectAppend {
            links: &[hash(9), hash(2)],
            ..create_fresh
        }]),
        Err(StoreError::IdentityLinked { linked, .. }) if linked == "new"
    ));
    assert!(matches!(
        store.append_batch(T2, &[create_fresh]),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert_eq!(store.subject(T2, "fresh").unwrap(), None);

    store.append_batch(T, &[create_fresh]).unwrap();
    assert_eq!(store.subject(T, "fresh").unwrap(), Some(fresh));
    assert_eq!(
        store.find_identity(T, hash(9)).unwrap().as_deref(),
        Some("fresh")
    );
    store.purge_subject(T, "fresh").unwrap();
    assert_eq!(store.find_identity(T, hash(9)).unwrap(), None);
    assert_eq!(store.consents(T, "fresh").unwrap(), vec![]);
}

pub fn batches_of_new_events_store_nothing_if_any_is_a_duplicate_and_name_each<S: Store>(
    store: &S,
) {
    seed(store, &[(T, "s1"), (T, "s2"), (T2, "s1")]);
    store
        .append_events(T, "s2", &[event("old", 1)], None)
        .unwrap();
    let updated = |data: &str| SubjectRecord {
        data: data.as_bytes().to_vec(),
        ..subject("s1")
    };
    let created = subject("new");
    let first = [event("a", 1), event("old", 2), event("b", 3)];
    let second = [event("c", 4), event("a", 5), event("d", 6)];
    let counted = updated("counts a, old, b");
    let batch = [
        SubjectAppend {
            subject: "s1",
            events: &first,
            update: Some(&counted),
            ..SubjectAppend::default()
        },
        SubjectAppend {
            subject: "new",
            events: &second,
            update: Some(&created),
            create: true,
            links: &[hash(1)],
            consents: &[consent(1, "granted")],
        },
    ];
    assert_eq!(
        store.append_new(T, &batch).unwrap(),
        NewEvents::Duplicates(vec![(0, 1), (1, 1)]),
        "stored elsewhere, and earlier in the batch"
    );
    assert_eq!(store.subject(T, "s1").unwrap(), Some(subject("s1")));
    assert_eq!(store.subject(T, "new").unwrap(), None);
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    for source in ["a", "b", "c", "d"] {
        assert!(!store.has_event_source(T, source).unwrap(), "{source}");
    }

    // Without them, everything goes in.
    let first = [event("a", 1), event("b", 3)];
    let second = [event("c", 4), event("d", 6)];
    let counted = updated("counts a, b");
    let batch = [
        SubjectAppend {
            events: &first,
            update: Some(&counted),
            ..batch[0]
        },
        SubjectAppend {
            events: &second,
            ..batch[1]
        },
    ];
    assert_eq!(store.append_new(T, &batch).unwrap(), NewEvents::Stored);
    assert_eq!(store.subject(T, "s1").unwrap(), Some(counted.clone()));
    assert_eq!(sources(&all_events(store, T, "s1")), ["a", "b"]);
    assert_eq!(sources(&all_events(store, T, "new")), ["c", "d"]);
    assert_eq!(
        store.find_identity(T, hash(1)).unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(
        store.consents(T, "new").unwrap(),
        vec![consent(1, "granted")]
    );
    assert_eq!(
        store
            .append_new(
                T2,
                &[SubjectAppend {
                    events: &first,
                    ..batch[0]
                }]
            )
            .unwrap(),
        NewEvents::Stored,
        "another tenant's source ids are its own"
    );

    // Refusals come first.
    let again = [event("a", 7)];
    assert!(unknown_subject(store.append_new(
        T,
        &[
            SubjectAppend {
                subject: "s1",
                events: &again,
                ..SubjectAppend::default()
            },
            SubjectAppend {
                subject: "nobody",
                ..SubjectAppend::default()
            },
        ]
    )));
    assert_eq!(store.append_new(T, &[]).unwrap(), NewEvents::Stored);
}

pub fn writes_for_an_unknown_subject_are_refused_and_change_nothing<S: Store>(store: &S) {
    assert!(unknown_subject(store.append_events(
        T,
        "ghost",
        &[event("g1", 1)],
        None
    )));
    seed(store, &[(T, "s1")]);
    assert!(unknown_subject(store.append_events(
        T,
        "ghost",
        &[event("g1", 1)],
        None
    )));
    assert!(unknown_subject(store.append_consent(
        T,
        "ghost",
        &consent(1, "granted")
    )));
    assert!(unknown_subject(store.link_identity(T, hash(1), "ghost")));
    assert_eq!(all_events(store, T, "ghost"), vec![]);
    assert_eq!(store.consents(T, "ghost").unwrap(), vec![]);
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    assert_eq!(
        store
            .append_events(T, "s1", &[event("g1", 1)], None)
            .unwrap(),
        outcome(1, 0),
        "a refused batch leaves its source ids unused"
    );
}

pub fn deleting_events_before_a_time_removes_only_older_events_of_that_subject<S: Store>(
    store: &S,
) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    let batch = [
        event("a", 10),
        event("b", 20),
        event("c", 30),
        event("d", 40),
    ];
    store.append_events(T, "s1", &batch, None).unwrap();
    store
        .append_events(T, "s2", &[event("z", 10)], None)
        .unwrap();
    assert_eq!(store.delete_events_before(T, "s1", 30).unwrap(), 2);
    assert_eq!(sources(&all_events(store, T, "s1")), ["c", "d"]);
    assert_eq!(sources(&all_events(store, T, "s2")), ["z"]);
    assert!(
        !store.has_event_source(T, "a").unwrap(),
        "deleted source ids are forgotten"
    );
    assert_eq!(store.delete_events_before(T, "s1", 30).unwrap(), 0);
    assert_eq!(store.delete_events_before(T, "s1", i64::MIN).unwrap(), 0);
    assert_eq!(
        store
            .append_events(T, "s1", &[event("a", 10)], None)
            .unwrap(),
        outcome(1, 0),
        "a deleted event's source id is forgotten"
    );
    assert_eq!(
        store
            .append_events(T, "s1", &[event("c", 99)], None)
            .unwrap(),
        outcome(0, 1),
        "a kept event's source id is not"
    );
}

pub fn consent_history_is_kept_in_time_then_append_order<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    for entry in [consent(200, "b"), consent(100, "a"), consent(200, "c")] {
        store.append_consent(T, "s1", &entry).unwrap();
    }
    assert_eq!(
        store.consents(T, "s1").unwrap(),
        vec![consent(100, "a"), consent(200, "b"), consent(200, "c")]
    );
    assert_eq!(store.consents(T, "s2").unwrap(), vec![]);
}

pub fn tenants_are_isolated_even_with_the_same_subject_ids<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T2, "s1")]);
    let other = SubjectRecord {
        data: b"eu traits".to_vec(),
        ..subject("s1")
    };
    store.put_subject(T2, &other).unwrap();
    assert_eq!(store.subject(T, "s1").unwrap(), Some(subject("s1")));
    assert_eq!(store.subject(T2, "s1").unwrap(), Some(other));

    assert_eq!(store.link_identity(T, hash(1), "s1").unwrap(), None);
    assert_eq!(store.link_identity(T2, hash(1), "s1").unwrap(), None);
    assert_eq!(
        store.unlink_identity(T, hash(1)).unwrap(),
        Some("s1".into())
    );
    assert_eq!(store.find_identity(T2, hash(1)).unwrap(), Some("s1".into()));

    store
        .append_events(T, "s1", &[event("e", 1)], None)
        .unwrap();
    store
        .append_consent(T, "s1", &consent(1, "granted"))
        .unwrap();
    assert_eq!(all_events(store, T2, "s1"), vec![]);
    assert_eq!(store.consents(T2, "s1").unwrap(), vec![]);
    store.append_audit(T, 1, b"a").unwrap();
    store.append_audit(T2, 1, b"b").unwrap();
    assert_eq!(
        (store.audit_head(T).unwrap(), store.audit_head(T2).unwrap()),
        (1, 1)
    );
    assert_eq!(store.subjects("acme-e", None, 10).unwrap(), vec![]);
    assert_eq!(store.subjects("acm", None, 10).unwrap(), vec![]);

    assert_eq!(store.delete_events_before(T2, "s1", i64::MAX).unwrap(), 0);
    assert_eq!(all_events(store, T, "s1").len(), 1);
}

pub fn purging_a_subject_removes_exactly_its_records<S: Store>(store: &S) {
    let everyone = [(T, "s1"), (T, "s10"), (T, "s"), (T2, "s1")];
    seed(store, &everyone);
    for (n, (tenant_id, subject_id)) in (0u8..).zip(everyone) {
        store
            .link_identity(tenant_id, hash(2 * n), subject_id)
            .unwrap();
        store
            .link_identity(tenant_id, hash(2 * n + 1), subject_id)
            .unwrap();
        let events: Vec<_> = (0..3)
            .map(|i| event(&format!("{subject_id}-{i}"), i))
            .collect();
        store
            .append_events(tenant_id, subject_id, &events, None)
            .unwrap();
        for at in [1, 2] {
            store
                .append_consent(tenant_id, subject_id, &consent(at, "granted"))
                .unwrap();
        }
    }
    let report = store.purge_subject(T, "s1").unwrap();
    assert_eq!(
        report,
        PurgeReport {
            subject: true,
            identities: 2,
            events: 3,
            consents: 2,
        }
    );
    assert_eq!(store.subject(T, "s1").unwrap(), None);
    assert_eq!(all_events(store, T, "s1"), vec![]);
    assert_eq!(store.consents(T, "s1").unwrap(), vec![]);
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        Vec::<IdentityHash>::new()
    );
    assert_eq!(store.find_identity(T, hash(0)).unwrap(), None);
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    assert!(
        unknown_subject(store.append_events(T, "s1", &[event("late", 9)], None)),
        "nothing can be written for a purged subject"
    );

    for (n, (tenant_id, subject_id)) in (0u8..).zip(everyone).skip(1) {
        assert_eq!(
            store.subject(tenant_id, subject_id).unwrap(),
            Some(subject(subject_id))
        );
        assert_eq!(all_events(store, tenant_id, subject_id).len(), 3);
        assert_eq!(store.consents(tenant_id, subject_id).unwrap().len(), 2);
        assert_eq!(
            store.identities_of(tenant_id, subject_id).unwrap(),
            vec![hash(2 * n), hash(2 * n + 1)]
        );
    }
    assert_eq!(ids(&store.subjects(T, None, 10).unwrap()), ["s", "s10"]);

    assert_eq!(
        store.purge_subject(T, "s1").unwrap(),
        PurgeReport::default()
    );
    seed(store, &[(T, "s1")]);
    assert_eq!(
        store
            .append_events(T, "s1", &[event("s1-0", 0)], None)
            .unwrap(),
        outcome(1, 0),
        "a purged subject's source ids are forgotten"
    );
}

pub fn purging_again_finishes_and_keeps_what_was_relinked_suppressed_or_filed<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    for n in 1..=3 {
        store.link_identity(T, hash(n), "s1").unwrap();
    }
    store
        .append_events(T, "s1", &[event("a", 1), event("b", 2)], None)
        .unwrap();
    store
        .append_consent(T, "s1", &consent(1, "granted"))
        .unwrap();
    assert!(store.relink_identity(T, hash(3), "s1", "s2").unwrap());
    store.suppress(T, hash(1), b"do not contact").unwrap();
    store.put_document(T, "receipt", "s1", b"erased").unwrap();
    store.append_audit(T, 1, b"erasure of s1").unwrap();

    let first = store.purge_subject(T, "s1").unwrap();
    assert_eq!(
        first,
        PurgeReport {
            subject: true,
            identities: 2,
            events: 2,
            consents: 1,
        }
    );
    assert_eq!(
        store.purge_subject(T, "s1").unwrap(),
        PurgeReport::default(),
        "a re-run finds nothing left"
    );
    assert_eq!(
        store.purge_subject(T, "never-existed").unwrap(),
        PurgeReport::default()
    );
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), None);
    assert_eq!(
        store.find_identity(T, hash(3)).unwrap(),
        Some("s2".into()),
        "a link repointed before the purge stays"
    );
    assert_eq!(store.identities_of(T, "s2").unwrap(), vec![hash(3)]);
    assert_eq!(
        store.suppression(T, hash(1)).unwrap(),
        Some(b"do not contact".to_vec())
    );
    assert_eq!(
        store.document(T, "receipt", "s1").unwrap(),
        Some(b"erased".to_vec())
    );
    assert_eq!(store.audit_head(T).unwrap(), 1);
    assert_eq!(store.audit(T, 0, 10).unwrap().len(), 1);
    assert_eq!(store.subject(T, "s2").unwrap(), Some(subject("s2")));
    assert!(unknown_subject(store.relink_identity(
        T,
        hash(3),
        "s2",
        "s1"
    )));
}

pub fn relinking_moves_an_identity_only_from_the_subject_it_points_at<S: Store>(store: &S) {
    seed(
        store,
        &[(T, "s1"), (T, "s2"), (T, "s3"), (T2, "s1"), (T2, "s2")],
    );
    store.link_identity(T, hash(1), "s1").unwrap();
    store.link_identity(T, hash(2), "s1").unwrap();
    store.link_identity(T2, hash(1), "s1").unwrap();

    assert!(
        !store.relink_identity(T, hash(1), "s2", "s3").unwrap(),
        "the hash does not point at `from`"
    );
    assert!(
        !store.relink_identity(T, hash(9), "s1", "s2").unwrap(),
        "a hash that points nowhere"
    );
    assert_eq!(store.find_identity(T, hash(9)).unwrap(), None);
    assert!(
        unknown_subject(store.relink_identity(T, hash(1), "s1", "ghost")),
        "`to` must exist"
    );
    assert!(
        unknown_subject(store.relink_identity(T, hash(9), "s1", "ghost")),
        "`to` is checked first"
    );
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), Some("s1".into()));
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        vec![hash(1), hash(2)]
    );

    assert!(store.relink_identity(T, hash(1), "s1", "s2").unwrap());
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), Some("s2".into()));
    assert_eq!(store.identities_of(T, "s1").unwrap(), vec![hash(2)]);
    assert_eq!(store.identities_of(T, "s2").unwrap(), vec![hash(1)]);
    assert!(
        !store.relink_identity(T, hash(1), "s1", "s3").unwrap(),
        "a stale `from` loses"
    );
    assert!(
        store.relink_identity(T, hash(1), "s2", "s2").unwrap(),
        "relinking to where it points reports true"
    );
    assert_eq!(store.identities_of(T, "s2").unwrap(), vec![hash(1)]);
    assert_eq!(
        store.find_identity(T2, hash(1)).unwrap(),
        Some("s1".into()),
        "another tenant's link with the same hash is its own"
    );
    assert_eq!(
        store.identities_of(T2, "s2").unwrap(),
        Vec::<IdentityHash>::new()
    );

    assert!(
        store.relink_identity(T, hash(1), "s2", "s1").unwrap(),
        "un-merging moves it back"
    );
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        vec![hash(1), hash(2)]
    );
    assert_eq!(
        store.identities_of(T, "s2").unwrap(),
        Vec::<IdentityHash>::new()
    );
    assert_eq!(
        store.unlink_identity(T, hash(1)).unwrap(),
        Some("s1".into())
    );
    assert_eq!(store.identities_of(T, "s1").unwrap(), vec![hash(2)]);

    store.purge_subject(T, "s1").unwrap();
    assert!(
        !store.relink_identity(T, hash(2), "s1", "s2").unwrap(),
        "a purged subject's links are gone"
    );
    assert!(
        store.relink_identity(T2, hash(1), "s1", "s2").unwrap(),
        "purging a subject of one tenant leaves another's alone"
    );
}

pub fn concurrent_relinks_of_one_identity_let_exactly_one_win<S: Store>(store: &S) {
    let targets = ["t1", "t2", "t3", "t4"];
    seed(store, &[(T, "s1")]);
    seed(store, &targets.map(|t| (T, t)));
    store.link_identity(T, hash(1), "s1").unwrap();
    let won: Vec<bool> = std::thread::scope(|threads| {
        let handles: Vec<_> = targets
            .iter()
            .map(|to| threads.spawn(move || store.relink_identity(T, hash(1), "s1", to).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().filter(|won| **won).count(), 1);
    let winner = targets[won.iter().position(|won| *won).unwrap()];
    assert_eq!(
        store.find_identity(T, hash(1)).unwrap(),
        Some(winner.into())
    );
    assert_eq!(
        store.identities_of(T, "s1").unwrap(),
        Vec::<IdentityHash>::new()
    );
    for target in targets {
        let expected = if target == winner {
            vec![hash(1)]
        } else {
            vec![]
        };
        assert_eq!(store.identities_of(T, target).unwrap(), expected);
    }
}

pub fn suppressions_are_replaced_counted_and_kept_per_tenant<S: Store>(store: &S) {
    assert!(matches!(
        store.suppress(T, hash(1), b"entry"),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert_eq!(store.suppression(T, hash(1)).unwrap(), None);
    store.put_tenant(&tenant(T)).unwrap();
    store.put_tenant(&tenant(T2)).unwrap();
    store.put_tenant(&tenant("acm")).unwrap();

    store.suppress(T, hash(1), b"first").unwrap();
    store.suppress(T, hash(2), b"").unwrap();
    store.suppress(T, hash(1), b"replaced").unwrap();
    assert_eq!(
        store.suppression(T, hash(1)).unwrap(),
        Some(b"replaced".to_vec())
    );
    assert_eq!(
        store.suppression(T, hash(2)).unwrap(),
        Some(vec![]),
        "an empty entry is still a suppression"
    );
    assert_eq!(store.suppressions(T).unwrap(), 2);

    assert_eq!(store.suppression(T2, hash(1)).unwrap(), None);
    assert_eq!(store.suppressions(T2).unwrap(), 0);
    assert_eq!(store.suppressions("acm").unwrap(), 0);
    assert!(!store.unsuppress(T2, hash(1)).unwrap());
    store.suppress(T2, hash(1), b"eu").unwrap();
    assert_eq!(store.suppressions(T2).unwrap(), 1);

    assert!(store.unsuppress(T, hash(1)).unwrap());
    assert!(!store.unsuppress(T, hash(1)).unwrap());
    assert_eq!(store.suppression(T, hash(1)).unwrap(), None);
    assert_eq!(store.suppressions(T).unwrap(), 1);
    assert_eq!(
        store.suppression(T2, hash(1)).unwrap(),
        Some(b"eu".to_vec())
    );
}

pub fn events_can_replace_their_subject_record_in_the_same_transaction<S: Store>(store: &S) {
    seed(store, &[(T, "s1"), (T, "s2"), (T2, "s1")]);
    let updated = |data: &str| SubjectRecord {
        data: data.as_bytes().to_vec(),
        ..subject("s1")
    };

    let first = updated("after a");
    assert_eq!(
        store
            .append_events(T, "s1", &[event("a", 1)], Some(&first))
            .unwrap(),
        outcome(1, 0)
    );
    assert_eq!(store.subject(T, "s1").unwrap(), Some(first));
    assert_eq!(store.subject(T2, "s1").unwrap(), Some(subject("s1")));

    let again = updated("after a duplicate");
    assert_eq!(
        store
            .append_events(T, "s1", &[event("a", 1)], Some(&again))
            .unwrap(),
        outcome(0, 1)
    );
    assert_eq!(
        store.subject(T, "s1").unwrap(),
        Some(again.clone()),
        "replaced even when every event was a duplicate"
    );
    let empty = updated("no events");
    assert_eq!(
        store.append_events(T, "s1", &[], Some(&empty)).unwrap(),
        outcome(0, 0)
    );
    assert_eq!(store.subject(T, "s1").unwrap(), Some(empty.clone()));

    let mismatched = SubjectRecord {
        data: b"wrong".to_vec(),
        ..subject("s2")
    };
    assert!(matches!(
        store.append_events(T, "s1", &[event("b", 2)], Some(&mismatched)),
        Err(StoreError::SubjectMismatch { .. })
    ));
    assert!(
        invalid(store.append_events(T, "s1", &[event("", 2)], Some(&updated("invalid")))),
        "an invalid event refuses the update too"
    );
    assert_eq!(store.subject(T, "s1").unwrap(), Some(empty.clone()));
    assert_eq!(store.subject(T, "s2").unwrap(), Some(subject("s2")));
    assert_eq!(
        sources(&all_events(store, T, "s1")),
        ["a"],
        "a refused update stores no events"
    );

    let ghost = SubjectRecord {
        data: b"ghost".to_vec(),
        ..subject("ghost")
    };
    assert!(unknown_subject(store.append_events(
        T,
        "ghost",
        &[event("g", 1)],
        Some(&ghost)
    )));
    assert_eq!(
        store.subject(T, "ghost").unwrap(),
        None,
        "an update creates no subject"
    );
    store.purge_subject(T, "s1").unwrap();
    assert!(unknown_subject(store.append_events(
        T,
        "s1",
        &[],
        Some(&empty)
    )));
    assert_eq!(
        store.subject(T, "s1").unwrap(),
        None,
        "nor recreates a purged one"
    );
}

pub fn documents_need_a_tenant_and_page_in_id_order_per_kind<S: Store>(store: &S) {
    assert!(matches!(
        store.put_document(T, "receipt", "r1", b"doc"),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert_eq!(store.document(T, "receipt", "r1").unwrap(), None);
    seed(store, &[(T, "r1"), (T2, "r1")]);
    store.put_tenant(&tenant("acm")).unwrap();
    let doc = |id: &str, value: &str| (id.to_owned(), value.as_bytes().to_vec());

    for id in ["r2", "r10", "r1", "a"] {
        store
            .put_document(T, "receipt", id, format!("receipt {id}").as_bytes())
            .unwrap();
    }
    store.put_document(T, "receipt", "r1", b"replaced").unwrap();
    store
        .put_document(T, "receipts", "r1", b"other kind")
        .unwrap();
    store.put_document(T, "schema", "r1", b"").unwrap();
    store.put_document(T2, "receipt", "r1", b"eu").unwrap();

    assert_eq!(
        store.document(T, "receipt", "r1").unwrap(),
        Some(b"replaced".to_vec())
    );
    assert_eq!(store.document(T, "schema", "r1").unwrap(), Some(vec![]));
    assert_eq!(
        store.documents(T, "receipt", None, 10).unwrap(),
        vec![
            doc("a", "receipt a"),
            doc("r1", "replaced"),
            doc("r10", "receipt r10"),
            doc("r2", "receipt r2"),
        ]
    );
    assert_eq!(
        store.documents(T, "receipt", None, 2).unwrap(),
        vec![doc("a", "receipt a"), doc("r1", "replaced")]
    );
    assert_eq!(
        store.documents(T, "receipt", Some("r1"), 2).unwrap(),
        vec![doc("r10", "receipt r10"), doc("r2", "receipt r2")]
    );
    assert_eq!(
        store.documents(T, "receipt", Some("b"), 1).unwrap(),
        vec![doc("r1", "replaced")],
        "`after` need not exist"
    );
    assert_eq!(
        store.documents(T, "receipt", Some("r2"), 10).unwrap(),
        vec![]
    );
    assert_eq!(store.documents(T, "receipt", None, 0).unwrap(), vec![]);
    assert_eq!(
        store.documents(T, "receipts", None, 10).unwrap(),
        vec![doc("r1", "other kind")],
        "kinds are separate"
    );
    assert_eq!(store.documents(T, "rec", None, 10).unwrap(), vec![]);
    // By id prefix: only the ids under it, paged, from `after` when it is
    // under the prefix, else from the prefix's first id.
    assert_eq!(
        store.documents_under(T, "receipt", "r1", None, 10).unwrap(),
        vec![doc("r1", "replaced"), doc("r10", "receipt r10")]
    );
    assert_eq!(
        store.documents_under(T, "receipt", "r1", None, 1).unwrap(),
        vec![doc("r1", "replaced")]
    );
    assert_eq!(
        store
            .documents_under(T, "receipt", "r1", Some("r1"), 10)
            .unwrap(),
        vec![doc("r10", "receipt r10")]
    );
    assert_eq!(
        store
            .documents_under(T, "receipt", "r1", Some("a"), 10)
            .unwrap(),
        vec![doc("r1", "replaced"), doc("r10", "receipt r10")],
        "an `after` outside the prefix starts at the prefix"
    );
    assert_eq!(
        store
            .documents_under(T, "receipt", "r10", Some("r10"), 10)
            .unwrap(),
        vec![]
    );
    assert_eq!(
        store.documents_under(T, "receipt", "", None, 10).unwrap(),
        store.documents(T, "receipt", None, 10).unwrap()
    );
    assert_eq!(
        store.documents_under(T, "receipt", "s", None, 10).unwrap(),
        vec![]
    );
    assert_eq!(
        store.documents_under(T, "receipts", "r", None, 10).unwrap(),
        vec![doc("r1", "other kind")],
        "kinds are separate"
    );
    assert_eq!(
        store.documents_under(T2, "receipt", "r", None, 10).unwrap(),
        vec![doc("r1", "eu")]
    );
    assert_eq!(
        store.documents(T2, "receipt", None, 10).unwrap(),
        vec![doc("r1", "eu")]
    );
    assert_eq!(
        store.documents("acm", "ereceipt", None, 10).unwrap(),
        vec![]
    );

    // Several at once: all of them, or none when one is refused.
    store
        .put_documents(
            T,
            &[
                ("ledger", "l1", b"one"),
                ("ledger", "l2", b"two"),
                ("ledger_index", "l1", b"ledger/l1"),
            ],
        )
        .unwrap();
    assert_eq!(
        store.documents(T, "ledger", None, 10).unwrap(),
        vec![doc("l1", "one"), doc("l2", "two")]
    );
    assert_eq!(
        store.document(T, "ledger_index", "l1").unwrap(),
        Some(b"ledger/l1".to_vec())
    );
    assert!(invalid(store.put_documents(
        T,
        &[("ledger", "l3", b"three"), ("ledger", "", b"no id")]
    )));
    assert!(matches!(
        store.put_documents("nobody", &[("ledger", "l3", b"three")]),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert_eq!(store.document(T, "ledger", "l3").unwrap(), None);

    // Several in order: all of them; an invalid id or an unknown tenant,
    // none of them.
    store
        .put_documents_in_order(
            T,
            &[
                ("ledger", "l4", b"four"),
                ("ledger", "l1", b"one again"),
                ("ledger_index", "l4", b"ledger/l4"),
            ],
        )
        .unwrap();
    assert_eq!(
        store.documents(T, "ledger", None, 10).unwrap(),
        vec![doc("l1", "one again"), doc("l2", "two"), doc("l4", "four")]
    );
    assert_eq!(
        store.document(T, "ledger_index", "l4").unwrap(),
        Some(b"ledger/l4".to_vec())
    );
    assert!(invalid(store.put_documents_in_order(
        T,
        &[
            ("ledger", "l5", b"five"),
            ("ledger", "", b"no id"),
            ("ledger", "l6", b"six")
        ]
    )));
    assert_eq!(store.document(T, "ledger", "l5").unwrap(), None);
    assert_eq!(store.document(T, "ledger", "l6").unwrap(), None);
    assert!(matches!(
        store.put_documents_in_order("nobody", &[("ledger", "l7", b"seven")]),
        Err(StoreError::UnknownTenant { .. })
    ));
    assert!(
        store
            .documents("nobody", "ledger", None, 10)
            .unwrap()
            .is_empty()
    );

    store.purge_subject(T, "r1").unwrap();
    assert_eq!(
        store.document(T, "receipt", "r1").unwrap(),
        Some(b"replaced".to_vec()),
        "purging a subject leaves documents alone"
    );
    assert!(store.delete_document(T, "receipt", "r1").unwrap());
    assert!(!store.delete_document(T, "receipt", "r1").unwrap());
    assert_eq!(store.document(T, "receipt", "r1").unwrap(), None);
    assert_eq!(store.documents(T, "receipt", None, 10).unwrap().len(), 3);
    assert_eq!(
        store.document(T, "receipts", "r1").unwrap(),
        Some(b"other kind".to_vec())
    );
    assert_eq!(
        store.document(T2, "receipt", "r1").unwrap(),
        Some(b"eu".to_vec())
    );
}

pub fn audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds<S: Store>(store: &S) {
    for (seq, entry) in (1..).zip([&b"a"[..], b"b", b"c"]) {
        store.append_audit(T, seq, entry).unwrap();
        assert_eq!(store.audit_head(T).unwrap(), seq);
    }
    store.append_audit(T2, 1, b"x").unwrap();
    store.append_audit(T, 4, b"").unwrap();
    assert_eq!(store.audit_head(T).unwrap(), 4, "empty entries count");
    assert_eq!(store.audit_head(T2).unwrap(), 1);
    let record = |seq, data: &[u8]| AuditRecord {
        seq,
        data: data.to_vec(),
    };
    assert_eq!(
        store.audit(T, 0, 10).unwrap(),
        vec![
            record(1, b"a"),
            record(2, b"b"),
            record(3, b"c"),
            record(4, b"")
        ]
    );
    assert_eq!(
        store.audit(T, 2, 2).unwrap(),
        vec![record(2, b"b"), record(3, b"c")]
    );
    assert_eq!(store.audit(T, 5, 10).unwrap(), vec![]);
    assert_eq!(store.audit(T, u64::MAX, 10).unwrap(), vec![]);
    assert_eq!(store.audit(T, 0, 0).unwrap(), vec![]);
    assert_eq!(store.audit(T2, 0, 10).unwrap(), vec![record(1, b"x")]);
}

pub fn audit_appends_only_onto_the_head_they_were_numbered_for<S: Store>(store: &S) {
    assert_eq!(
        store.append_audit(T, 0, b"zero"),
        Err(StoreError::InvalidAuditSeq)
    );
    assert_eq!(
        store.append_audit(T, 2, b"ahead"),
        Err(StoreError::AuditConflict {
            tenant: T.into(),
            expected: 1,
            last: 0
        }),
        "a number past the head is refused"
    );
    store.append_audit(T, 1, b"first").unwrap();
    assert_eq!(
        store.append_audit(T, 1, b"again"),
        Err(StoreError::AuditConflict {
            tenant: T.into(),
            expected: 0,
            last: 1
        }),
        "a number already taken is refused"
    );
    assert_eq!(
        store.append_audit(T, u64::MAX, b"far"),
        Err(StoreError::AuditConflict {
            tenant: T.into(),
            expected: u64::MAX - 1,
            last: 1
        })
    );
    assert_eq!(store.audit_head(T).unwrap(), 1, "refusals change nothing");
    assert_eq!(
        store.audit(T, 0, 10).unwrap(),
        vec![AuditRecord {
            seq: 1,
            data: b"first".to_vec()
        }]
    );
    assert_eq!(store.audit_head(T2).unwrap(), 0, "heads are per tenant");
    store.append_audit(T2, 1, b"other").unwrap();
    store.append_audit(T, 2, b"second").unwrap();
    assert_eq!(store.audit_head(T).unwrap(), 2);
    assert_eq!(store.audit(T2, 0, 10).unwrap().len(), 1);
}

/// Appends an entry with the caller's read-head-then-retry loop; returns the
/// number it got.
fn append_audit_retrying<S: Store + ?Sized>(store: &S, tenant: &str, entry: &[u8]) -> u64 {
    loop {
        let seq = store.audit_head(tenant).unwrap() + 1;
        match store.append_audit(tenant, seq, entry) {
            Ok(()) => return seq,
            Err(StoreError::AuditConflict { last, .. }) => assert!(last >= seq, "{last} {seq}"),
            Err(error) => panic!("{error}"),
        }
    }
}

pub fn audit_sequence_stays_gapless_under_four_concurrent_writers<S: Store>(store: &S) {
    const PER_THREAD: u64 = 50;
    let returned: Vec<Vec<(u64, Vec<u8>)>> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..4)
            .map(|thread| {
                threads.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let entry = format!("{thread}-{i}").into_bytes();
                            (append_audit_retrying(store, T, &entry), entry)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for mine in &returned {
        assert!(
            mine.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "each writer sees its numbers grow"
        );
    }
    let mut expected: Vec<AuditRecord> = returned
        .into_iter()
        .flatten()
        .map(|(seq, data)| AuditRecord { seq, data })
        .collect();
    expected.sort_by_key(|record| record.seq);
    let seqs: Vec<u64> = expected.iter().map(|record| record.seq).collect();
    assert_eq!(seqs, (1..=4 * PER_THREAD).collect::<Vec<_>>());
    assert_eq!(store.audit(T, 0, 1_000).unwrap(), expected);
    let entries: BTreeSet<Vec<u8>> = expected.into_iter().map(|record| record.data).collect();
    assert_eq!(entries.len() as u64, 4 * PER_THREAD, "each entry once");
    assert_eq!(store.audit_head(T).unwrap(), 4 * PER_THREAD);
}

pub fn concurrent_appends_of_the_same_source_ids_insert_each_once<S: Store>(store: &S) {
    let subjects = ["s1", "s2", "s3", "s4"];
    seed(store, &subjects.map(|s| (T, s)));
    let outcomes: Vec<AppendOutcome> = std::thread::scope(|threads| {
        let handles: Vec<_> = subjects
            .iter()
            .map(|subject_id| {
                threads.spawn(move || {
                    let mut total = AppendOutcome::default();
                    for batch in 0..10 {
                        let events: Vec<_> = (0..10)
                            .map(|i| event(&format!("src-{}", batch * 10 + i), i))
                            .collect();
                        let done = store.append_events(T, subject_id, &events, None).unwrap();
                        total.inserted += done.inserted;
                        total.duplicates += done.duplicates;
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let inserted: u64 = outcomes.iter().map(|o| o.inserted).sum();
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    assert_eq!((inserted, duplicates), (100, 300));
    let stored: BTreeSet<String> = subjects
        .iter()
        .flat_map(|s| all_events(store, T, s))
        .map(|e| e.source_id)
        .collect();
    let stored_count: usize = subjects.iter().map(|s| all_events(store, T, s).len()).sum();
    assert_eq!((stored.len(), stored_count), (100, 100));
}

pub fn jobs_are_claimed_when_due_and_again_after_their_lease_expires<S: Store>(store: &S) {
    assert!(store.enqueue_job(&job("j1", "purge", 100)).unwrap());
    assert!(store.enqueue_job(&job("j2", "purge", 50)).unwrap());
    assert!(store.enqueue_job(&job("j3", "sweep", 0)).unwrap());
    let changed = JobRecord {
        payload: b"changed".to_vec(),
        ..job("j1", "purge", 0)
    };
    assert!(
        !store.enqueue_job(&changed).unwrap(),
        "enqueueing is idempotent"
    );

    assert_eq!(store.claim_job("purge", "w1", 1_000, 10).unwrap(), None);
    assert_eq!(
        store.claim_job("purge", "w1", 1_000, 100).unwrap(),
        Some(job("j2", "purge", 50)),
        "the earliest due job first"
    );
    assert_eq!(
        store.claim_job("purge", "w2", 1_000, 100).unwrap(),
        Some(job("j1", "purge", 100))
    );
    assert_eq!(store.claim_job("purge", "w3", 1_000, 1_099).unwrap(), None);
    assert_eq!(
        store.claim_job("sweep", "w3", u64::MAX, 100).unwrap(),
        Some(job("j3", "sweep", 0))
    );
    assert_eq!(
        store.claim_job("sweep", "w4", 0, i64::MAX - 1).unwrap(),
        None,
        "a lease as long as time saturates"
    );

    assert_eq!(
        store.claim_job("purge", "w3", 1_000, 1_100).unwrap(),
        Some(job("j2", "purge", 50)),
        "an expired lease can be claimed again"
    );
    assert!(store.complete_job("j2").unwrap());
    assert!(!store.complete_job("j2").unwrap());
    assert_eq!(
        store.claim_job("purge", "w4", 1_000, 5_000).unwrap(),
        Some(job("j1", "purge", 100))
    );
    assert!(store.complete_job("j1").unwrap());
    assert_eq!(store.claim_job("purge", "w4", 1_000, 10_000).unwrap(), None);
    assert!(
        store.enqueue_job(&job("j1", "purge", 0)).unwrap(),
        "a completed job's id is free again"
    );
}

pub fn a_lease_is_renewed_only_by_its_holder<S: Store>(store: &S) {
    assert!(store.enqueue_job(&job("j1", "shard", 0)).unwrap());
    assert!(
        !store.renew_job("j1", "w1", 1_000, 0).unwrap(),
        "nobody holds it yet"
    );
    assert!(!store.renew_job("nope", "w1", 1_000, 0).unwrap());
    assert_eq!(
        store.claim_job("shard", "w1", 1_000, 0).unwrap(),
        Some(job("j1", "shard", 0))
    );
    assert!(!store.renew_job("j1", "w2", 1_000, 500).unwrap());
    assert!(store.renew_job("j1", "w1", 1_000, 900).unwrap());
    assert_eq!(
        store.claim_job("shard", "w2", 1_000, 1_500).unwrap(),
        None,
        "renewed until 1,900"
    );
    assert!(
        store.renew_job("j1", "w1", 1_000, 2_500).unwrap(),
        "expired but not claimed since: still w1's"
    );
    assert_eq!(
        store.claim_job("shard", "w2", 1_000, 3_500).unwrap(),
        Some(job("j1", "shard", 0)),
        "taken over once the renewed lease ended"
    );
    assert!(
        !store.renew_job("j1", "w1", 1_000, 3_600).unwrap(),
        "w1 lost it: it must stop"
    );
    assert!(store.renew_job("j1", "w2", 1_000, 3_600).unwrap());
    assert!(store.complete_job("j1").unwrap());
    assert!(!store.renew_job("j1", "w2", 1_000, 3_700).unwrap());
}

// ------------------------------------------------------------------ state

pub fn state_writes_apply_atomically_within_the_quota_and_scopes_are_separate<S: StateStore>(
    state: &S,
) {
    let one = scope(T, "one");
    state
        .apply(&one, 0, &[put("a", vec![1; 10]), put("b", vec![2; 10])], 22)
        .unwrap();
    assert_eq!(state.usage(&one).unwrap(), 22);
    assert_eq!(state.version(&one).unwrap(), 1);
    assert_eq!(state.get(&scope(T, "two"), "a").unwrap(), None);
    assert_eq!(state.get(&scope(T2, "one"), "a").unwrap(), None);
    assert_eq!(state.get(&scope("acm", "eone"), "a").unwrap(), None);
    assert_eq!(state.version(&scope(T, "two")).unwrap(), 0);

    let over = [del("a"), put("c", vec![3; 30])];
    assert_eq!(
        state.apply(&one, 1, &over, 22),
        Err(StateError::Quota {
            quota: 22,
            needed: 42
        })
    );
    assert_eq!(state.get(&one, "a").unwrap(), Some(vec![1; 10]));
    assert_eq!(state.get(&one, "c").unwrap(), None);
    assert_eq!(
        state.version(&one).unwrap(),
        1,
        "a refused batch is no change"
    );
    assert_eq!(state.usage(&one).unwrap(), 22);
    assert_eq!(state.keys(&one, "", 10).unwrap(), vec!["a", "b"]);
}

pub fn state_writes_based_on_an_old_version_conflict_and_change_nothing<S: StateStore>(state: &S) {
    let one = scope(T, "one");
    state.apply(&one, 0, &[put("a", vec![1])], 100).unwrap();
    assert_eq!(
        state.apply(&one, 0, &[put("a", vec![9])], 100),
        Err(StateError::Conflict)
    );
    assert_eq!(
        state.apply(&one, 2, &[put("a", vec![9])], 100),
        Err(StateError::Conflict),
        "a base from the future conflicts too"
    );
    assert_eq!(state.get(&one, "a").unwrap(), Some(vec![1]));
    assert_eq!(state.version(&one).unwrap(), 1);
}

pub fn state_over_a_lowered_quota_can_shrink_but_not_grow<S: StateStore>(state: &S) {
    let one = scope(T, "one");
    state
        .apply(
            &one,
            0,
            &[put("a", vec![1; 10]), put("b", vec![2; 10])],
            100,
        )
        .unwrap();
    assert_eq!(state.apply(&one, 1, &[del("a")], 5), Ok(()));
    assert_eq!(
        state.apply(&one, 2, &[put("b", vec![2; 11])], 5),
        Err(StateError::Quota {
            quota: 5,
            needed: 12
        })
    );
    assert_eq!(
        state.apply(&one, 2, &[put("b", vec![2; 10])], 5),
        Ok(()),
        "staying at the same size over quota is allowed"
    );
    assert_eq!(state.usage(&one).unwrap(), 11);
}

pub fn state_version_and_usage_track_every_applied_batch<S: StateStore>(state: &S) {
    let one = scope(T, "one");
    state.apply(&one, 0, &[], 0).unwrap();
    assert_eq!(
        (state.version(&one).unwrap(), state.usage(&one).unwrap()),
        (1, 0),
        "an empty batch is still a new version"
    );
    state
        .apply(&one, 1, &[put("k", vec![1; 4]), put("k", vec![2; 2])], 3)
        .unwrap();
    assert_eq!(state.get(&one, "k").unwrap(), Some(vec![2; 2]), "last wins");
    assert_eq!(state.usage(&one).unwrap(), 3, "quota met exactly is fine");
    state.apply(&one, 2, &[del("k"), del("gone")], 3).unwrap();
    assert_eq!(
        (state.version(&one).unwrap(), state.usage(&one).unwrap()),
        (3, 0)
    );
    assert_eq!(state.get(&one, "k").unwrap(), None);

    let value = vec![0; 1];
    let writes = [
        put("a/2", value.clone()),
        put("b/1", value.clone()),
        put("a/1", value.clone()),
        put("a", value.clone()),
        put("", value),
    ];
    state.apply(&one, 3, &writes, 100).unwrap();
    assert_eq!(
        state.usage(&one).unwrap(),
        4 + 4 + 4 + 2 + 1,
        "keys count too"
    );
    assert_eq!(state.keys(&one, "a/", 10).unwrap(), vec!["a/1", "a/2"]);
    assert_eq!(state.keys(&one, "a", 10).unwrap(), vec!["a", "a/1", "a/2"]);
    assert_eq!(state.keys(&one, "", 2).unwrap(), vec!["", "a"]);
    assert_eq!(state.keys(&one, "c", 10).unwrap(), Vec::<String>::new());
    assert_eq!(state.keys(&one, "", 0).unwrap(), Vec::<String>::new());
    assert_eq!(state.get(&one, "").unwrap(), Some(vec![0]));
}

pub fn concurrent_state_writers_on_one_version_let_exactly_one_win<S: StateStore>(state: &S) {
    let one = scope(T, "one");
    let results: Vec<Result<(), StateError>> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0u8..4)
            .map(|n| {
                let one = one.clone();
                threads.spawn(move || state.apply(&one, 0, &[put("winner", vec![n])], 100))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| *r == Err(StateError::Conflict))
    );
    assert_eq!(state.version(&one).unwrap(), 1);
    assert_eq!(state.usage(&one).unwrap(), 7);
}

// ---------------------------------------------------- subject plugin state

/// Every `(key, value)` of a scope.
fn scope_entries<S: StateStore>(state: &S, scope: &StateScope) -> Vec<(String, Vec<u8>)> {
    state
        .keys(scope, "", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|key| {
            let value = state.get(scope, &key).unwrap().unwrap();
            (key, value)
        })
        .collect()
}

/// What a scope's usage must be: the bytes of its keys and values.
fn counted_usage<S: StateStore>(state: &S, scope: &StateScope) -> u64 {
    scope_entries(state, scope)
        .iter()
        .map(|(key, value)| (key.len() + value.len()) as u64)
        .sum()
}

pub fn subject_state_is_listed_and_purged_across_scopes_and_nothing_else<S: Store + StateStore>(
    store: &S,
) {
    for tenant in [T, T2, "acm"] {
        seed(store, &[(tenant, "s1"), (tenant, "s10")]);
    }
    assert_eq!(store.subject_state(T, "s1").unwrap(), vec![]);
    assert_eq!(store.purge_subject_state(T, "s1").unwrap(), 0);
    assert!(matches!(
        store.subject_state(T, "s1/x"),
        Err(StoreError::AmbiguousSubject { .. })
    ));
    assert!(matches!(
        store.purge_subject_state(T, "s1/x"),
        Err(StoreError::AmbiguousSubject { .. })
    ));

    let mine = [
        "subject/s1/",
        "subject/s1/a",
        "subject/s1/b/c",
        "subject/s1/x/y",
    ];
    let not_mine = [
        "subject/s10/a",
        "subject/s1",
        "subject/s",
        "other/subject/s1/a",
        "Subject/s1/a",
        "subject//s1/a",
    ];
    let writes: Vec<_> = mine
        .iter()
        .chain(&not_mine)
        .map(|key| put(key, key.as_bytes().to_vec()))
        .collect();
    // Plugin names of different lengths: listing is by name, not by length.
    for plugin in ["z", "a-long-plugin"] {
        store.apply(&scope(T, plugin), 0, &writes, 10_000).unwrap();
        store.apply(&scope(T2, plugin), 0, &writes, 10_000).unwrap();
    }
    store
        .apply(&scope("acm", "eone"), 0, &writes, 10_000)
        .unwrap();

    let expected: Vec<(String, String, Vec<u8>)> = ["a-long-plugin", "z"]
        .iter()
        .flat_map(|plugin| {
            mine.iter()
                .map(move |key| (plugin.to_string(), key.to_string(), key.as_bytes().to_vec()))
        })
        .collect();
    assert_eq!(store.subject_state(T, "s1").unwrap(), expected);
    assert_eq!(
        store.subject_state(T, "s10").unwrap(),
        vec![
            (
                "a-long-plugin".into(),
                "subject/s10/a".into(),
                b"subject/s10/a".to_vec()
            ),
            (
                "z".into(),
                "subject/s10/a".into(),
                b"subject/s10/a".to_vec()
            ),
        ]
    );
    assert_eq!(store.subject_state(T, "s2").unwrap(), vec![]);
    assert_eq!(
        store.subject_state(T, "s").unwrap().len(),
        0,
        "`subject/s1/…` does not belong to `s`"
    );

    assert_eq!(store.purge_subject_state(T, "s1").unwrap(), 8);
    assert_eq!(store.subject_state(T, "s1").unwrap(), vec![]);
    assert_eq!(
        store.purge_subject_state(T, "s1").unwrap(),
        0,
        "re-runnable"
    );
    for plugin in ["z", "a-long-plugin"] {
        let keys: Vec<String> = scope_entries(store, &scope(T, plugin))
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let mut left: Vec<&str> = not_mine.to_vec();
        left.sort_unstable();
        assert_eq!(keys, left, "only the subject's keys go");
        assert_eq!(
            store.get(&scope(T2, plugin), "subject/s1/a").unwrap(),
            Some(b"subject/s1/a".to_vec()),
            "another tenant's state is its own"
        );
        assert_eq!(store.subject_state(T2, "s1").unwrap().len(), 8);
    }
    assert_eq!(
        store.get(&scope("acm", "eone"), "subject/s1/a").unwrap(),
        Some(b"subject/s1/a".to_vec())
    );
}

pub fn purging_subject_state_moves_versions_on_and_keeps_usage_exact<S: Store + StateStore>(
    store: &S,
) {
    seed(store, &[(T, "s1"), (T, "s2")]);
    let touched = scope(T, "touched");
    let untouched = scope(T, "untouched");
    store
        .apply(
            &touched,
            0,
            &[
                put("subject/s1/a", vec![1; 10]),
                put("subject/s1/b", vec![2; 5]),
                put("subject/s2/a", vec![3; 7]),
                put("global", vec![4; 3]),
            ],
            1_000,
        )
        .unwrap();
    store
        .apply(&untouched, 0, &[put("subject/s2/a", vec![5; 2])], 1_000)
        .unwrap();
    let before = store.version(&touched).unwrap();

    assert_eq!(store.purge_subject_state(T, "s1").unwrap(), 2);
    assert!(
        store.version(&touched).unwrap() > before,
        "a changed scope gets a new version"
    );
    assert_eq!(
        store.version(&untouched).unwrap(),
        1,
        "an unchanged scope keeps its version"
    );
    assert_eq!(
        store.usage(&touched).unwrap(),
        counted_usage(store, &touched)
    );
    assert_eq!(store.usage(&touched).unwrap(), 12 + 7 + 6 + 3);
    assert_eq!(
        store.apply(&touched, before, &[put("subject/s1/a", vec![9])], 1_000),
        Err(StateError::Conflict),
        "a plugin write based on the version before the purge conflicts"
    );
    assert_eq!(store.get(&touched, "subject/s1/a").unwrap(), None);

    let version = store.version(&touched).unwrap();
    assert_eq!(store.purge_subject_state(T, "s1").unwrap(), 0);
    assert_eq!(
        store.version(&touched).unwrap(),
        version,
        "purging nothing changes nothing"
    );
    store
        .apply(&touched, version, &[put("subject/s1/a", vec![9])], 1_000)
        .unwrap();
    assert_eq!(
        store.usage(&touched).unwrap(),
        counted_usage(store, &touched)
    );
    assert_eq!(store.purge_subject_state(T, "s2").unwrap(), 2);
    assert_eq!(store.usage(&untouched).unwrap(), 0);
    assert_eq!(
        store.usage(&touched).unwrap(),
        counted_usage(store, &touched)
    );
    assert_eq!(
        store.subject_state(T, "s1").unwrap(),
        vec![("touched".into(), "subject/s1/a".into(), vec![9])]
    );
}

pub fn purging_subject_state_under_concurrent_plugin_writers_keeps_usage_exact<
    S: Store + StateStore,
>(
    store: &S,
) {
    const PER_THREAD: usize = 25;
    seed(store, &[(T, "s1")]);
    let one = scope(T, "one");
    std::thread::scope(|threads| {
        for thread in 0..3 {
            let one = one.clone();
            threads.spawn(move || {
                for i in 0..PER_THREAD {
                    let writes = [
                        put(&format!("subject/s1/{thread}-{i}"), vec![1; 3]),
                        put(&format!("keep/{thread}-{i}"), vec![2; 2]),
                    ];
                    loop {
                        let base = store.version(&one).unwrap();
                        match store.apply(&one, base, &writes, u64::MAX) {
                            Ok(()) => break,
                            Err(StateError::Conflict) => continue,
                            Err(error) => panic!("{error}"),
                        }
                    }
                }
            });
        }
        threads.spawn(|| {
            for _ in 0..20 {
                store.purge_subject_state(T, "s1").unwrap();
            }
        });
    });
    store.purge_subject_state(T, "s1").unwrap();
    assert_eq!(store.subject_state(T, "s1").unwrap(), vec![]);
    let left = scope_entries(store, &one);
    assert_eq!(left.len(), 3 * PER_THREAD, "every other key stays");
    assert!(left.iter().all(|(key, _)| key.starts_with("keep/")));
    assert_eq!(store.usage(&one).unwrap(), counted_usage(store, &one));
}

// ------------------------------------------------------------ persistence

/// Writes through one store, flushes, drops it, and reads everything back
/// through a second one. `open` must open the same store each time.
/// The read-only walks `tessera migrate` copies and verifies with:
/// suppressions, document kinds, jobs and plugin state entries, each in
/// byte order, paged from a cursor that need not exist, one tenant's never
/// in another's.
pub fn every_record_family_can_be_walked_page_by_page_for_a_copy<S: Store + StateStore>(store: &S) {
    seed(store, &[(T, "s1"), (T2, "s1")]);
    assert_eq!(store.suppression_entries(T, None, 10).unwrap(), vec![]);
    assert_eq!(store.document_kinds(T).unwrap(), Vec::<String>::new());
    assert_eq!(store.jobs(None, 10).unwrap(), vec![]);
    assert_eq!(
        store.state_entries(&scope(T, "p"), None, 10).unwrap(),
        vec![]
    );

    for byte in [7_u8, 3, 200, 42] {
        store.suppress(T, hash(byte), &[byte, 1]).unwrap();
    }
    store.suppress(T2, hash(5), b"other tenant").unwrap();
    let first = store.suppression_entries(T, None, 2).unwrap();
    assert_eq!(first, vec![(hash(3), vec![3, 1]), (hash(7), vec![7, 1])]);
    let rest = store.suppression_entries(T, Some(&first[1].0), 10).unwrap();
    assert_eq!(
        rest,
        vec![(hash(42), vec![42, 1]), (hash(200), vec![200, 1])]
    );
    assert_eq!(
        store.suppression_entries(T, Some(&hash(100)), 10).unwrap(),
        vec![(hash(200), vec![200, 1])],
        "a cursor that is not on the list"
    );
    assert_eq!(
        store.suppression_entries(T2, None, 10).unwrap(),
        vec![(hash(5), b"other tenant".to_vec())]
    );

    // Kinds of several lengths come back in byte order, not by length; a
    // kind whose last document went is no longer listed.
    for (kind, id) in [
        ("b", "1"),
        ("aa", "2"),
        ("aa", "1"),
        ("c", "x"),
        ("ab", "1"),
    ] {
        store.put_document(T, kind, id, kind.as_bytes()).unwrap();
    }
    store.put_document(T2, "zz", "1", b"other").unwrap();
    assert!(store.delete_document(T, "c", "x").unwrap());
    assert_eq!(store.document_kinds(T).unwrap(), ["aa", "ab", "b"]);
    assert_eq!(store.document_kinds(T2).unwrap(), ["zz"]);

    for (id, kind, at) in [
        ("j3", "purge", 30),
        ("j1", "sweep", 10),
        ("j2", "purge", 20),
    ] {
        assert!(store.enqueue_job(&job(id, kind, at)).unwrap());
    }
    // A job a worker holds is still queued, and listed as it was queued.
    let claimed = store.claim_job("purge", "w", 60_000, 1_000).unwrap();
    assert_eq!(claimed.map(|j| j.id), Some("j2".to_owned()));
    let page = store.jobs(None, 2).unwrap();
    assert_eq!(page, vec![job("j1", "sweep", 10), job("j2", "purge", 20)]);
    assert_eq!(
        store.jobs(Some("j2"), 2).unwrap(),
        vec![job("j3", "purge", 30)]
    );
    assert_eq!(
        store.jobs(Some("j10"), 1).unwrap(),
        vec![job("j2", "purge", 20)]
    );
    assert!(store.complete_job("j1").unwrap());
    assert_eq!(store.jobs(None, 10).unwrap().len(), 2);

    let scope_a = scope(T, "p");
    let writes: Vec<_> = ["k/3", "k/1", "a", "k/2"]
        .iter()
        .map(|key| put(key, key.as_bytes().to_vec()))
        .collect();
    store.apply(&scope_a, 0, &writes, 1 << 20).unwrap();
    store
        .apply(
            &scope(T, "pp"),
            0,
            &[put("k/1", b"longer plugin".to_vec())],
            1 << 20,
        )
        .unwrap();
    store
        .apply(
            &scope(T2, "p"),
            0,
            &[put("k/9", b"other tenant".to_vec())],
            1 << 20,
        )
        .unwrap();
    let entry = |key: &str| (key.to_owned(), key.as_bytes().to_vec());
    let first = store.state_entries(&scope_a, None, 2).unwrap();
    assert_eq!(first, vec![entry("a"), entry("k/1")]);
    assert_eq!(
        store.state_entries(&scope_a, Some("k/1"), 10).unwrap(),
        vec![entry("k/2"), entry("k/3")]
    );
    assert_eq!(
        store.state_entries(&scope_a, Some("b"), 1).unwrap(),
        vec![entry("k/1")],
        "a cursor that is not a key"
    );
    assert_eq!(
        store.state_entries(&scope(T, "pp"), None, 10).unwrap(),
        vec![("k/1".to_owned(), b"longer plugin".to_vec())]
    );
}

pub fn flushed_writes_survive_reopen<S: Store + StateStore>(open: impl Fn() -> S) {
    let plugin = scope(T, "one");
    {
        let store = open();
        seed(&store, &[(T, "s1")]);
        store.link_identity(T, hash(1), "s1").unwrap();
        store
            .append_events(T, "s1", &[event("a", 10), event("b", 10)], None)
            .unwrap();
        store
            .append_consent(T, "s1", &consent(5, "granted"))
            .unwrap();
        store.append_audit(T, 1, b"first").unwrap();
        store.append_audit(T, 2, b"second").unwrap();
        store.suppress(T, hash(7), b"suppressed").unwrap();
        store.put_document(T, "receipt", "r1", b"receipt").unwrap();
        store.enqueue_job(&job("j1", "purge", 0)).unwrap();
        store.claim_job("purge", "w1", 1_000, 0).unwrap();
        store
            .apply(&plugin, 0, &[put("k", vec![7; 3])], 100)
            .unwrap();
        store.flush().unwrap();
    }
    let store = open();
    assert_eq!(store.tenants().unwrap(), vec![tenant(T)]);
    assert_eq!(store.subject(T, "s1").unwrap(), Some(subject("s1")));
    assert_eq!(store.find_identity(T, hash(1)).unwrap(), Some("s1".into()));
    assert_eq!(
        store.consents(T, "s1").unwrap(),
        vec![consent(5, "granted")]
    );
    assert_eq!(store.audit_head(T).unwrap(), 2);
    store.append_audit(T, 3, b"third").unwrap();
    assert_eq!(store.audit(T, 0, 10).unwrap().len(), 3);
    assert_eq!(
        store.suppression(T, hash(7)).unwrap(),
        Some(b"suppressed".to_vec())
    );
    assert_eq!(
        store.document(T, "receipt", "r1").unwrap(),
        Some(b"receipt".to_vec())
    );
    assert_eq!(
        store
            .append_events(T, "s1", &[event("a", 1), event("c", 10)], None)
            .unwrap(),
        outcome(1, 1),
        "source ids survive"
    );
    assert_eq!(
        sources(&all_events(&store, T, "s1")),
        ["a", "b", "c"],
        "append order within a time survives"
    );
    assert_eq!(
        store.claim_job("purge", "w2", 1_000, 999).unwrap(),
        None,
        "leases survive"
    );
    assert_eq!(
        store.claim_job("purge", "w2", 1_000, 1_000).unwrap(),
        Some(job("j1", "purge", 0))
    );
    assert_eq!(store.get(&plugin, "k").unwrap(), Some(vec![7; 3]));
    assert_eq!(
        (
            store.version(&plugin).unwrap(),
            store.usage(&plugin).unwrap()
        ),
        (1, 4)
    );
}

/// A write under `subject/<id>/` needs the subject: one never stored, or
/// one whose purge has begun, is refused and nothing of the batch applies,
/// so a plugin call still running when its subject is erased cannot bring
/// state back. Deletes, and keys outside the convention, need nothing.
pub fn state_for_a_subject_the_store_does_not_have_is_refused<S: Store + StateStore>(store: &S) {
    seed(store, &[(T, "s1")]);
    let plugin = scope(T, "p");
    let refused = store.apply(
        &plugin,
        0,
        &[put("global", vec![1]), put("subject/nobody/a", vec![1])],
        1_000,
    );
    assert!(
        matches!(&refused, Err(StateError::UnknownSubject { subject }) if subject == "nobody"),
        "{refused:?}"
    );
    assert_eq!(store.version(&plugin).unwrap(), 0, "nothing applied");
    assert_eq!(store.get(&plugin, "global").unwrap(), None);

    let writes = [
        put("subject/s1/a", vec![1]),
        put("subject//a", vec![1]),
        put("subject/s1", vec![1]),
        del("subject/nobody/a"),
    ];
    store.apply(&plugin, 0, &writes, 1_000).unwrap();
    // The subject is purged; a call that read before writes after.
    store.purge_subject(T, "s1").unwrap();
    let late = store.apply(&plugin, 1, &[put("subject/s1/b", vec![1])], 1_000);
    assert!(
        matches!(late, Err(StateError::UnknownSubject { .. })),
        "{late:?}"
    );
    assert_eq!(store.purge_subject_state(T, "s1").unwrap(), 1);
    assert_eq!(store.subject_state(T, "s1").unwrap(), vec![]);
    // Another tenant's subject of the same id does not count.
    seed(store, &[(T2, "s2")]);
    assert!(matches!(
        store.apply(&plugin, 2, &[put("subject/s2/a", vec![1])], 1_000),
        Err(StateError::UnknownSubject { .. })
    ));
}

/// Retiring a scope (a removed plugin) deletes every entry and refuses
/// every later write, whatever version it is based on; other scopes go on.
pub fn a_retired_scope_is_emptied_and_refuses_every_write<S: StateStore>(store: &S) {
    let gone = scope(T, "gone");
    let kept = scope(T, "kept");
    let writes: Vec<_> = (0..700)
        .map(|i| put(&format!("k{i:04}"), vec![1; 4]))
        .collect();
    store.apply(&gone, 0, &writes, 1 << 20).unwrap();
    store.apply(&kept, 0, &writes, 1 << 20).unwrap();
    assert_eq!(store.retire(&gone).unwrap(), 700);
    assert!(store.keys(&gone, "", 10).unwrap().is_empty());
    assert_eq!(store.usage(&gone).unwrap(), 0);
    for base in [0, 1, store.version(&gone).unwrap()] {
        assert!(
            matches!(
                store.apply(&gone, base, &[put("k", vec![1])], 1 << 20),
                Err(StateError::Retired)
            ),
            "base {base}"
        );
    }
    assert!(store.get(&gone, "k").unwrap().is_none());
    assert_eq!(
        store.retire(&gone).unwrap(),
        0,
        "retiring again is harmless"
    );
    assert_eq!(store.keys(&kept, "", 1_000).unwrap().len(), 700);
    store
        .apply(&kept, 1, &[put("k", vec![1])], 1 << 20)
        .unwrap();
}

/// The scopes of a tenant are listed by the prefix of their plugin id, in
/// order, including those emptied and those retired; another tenant's and
/// other plugins' (even one whose id extends the prefix's) are not.
pub fn scopes_are_listed_by_plugin_prefix_within_their_tenant<S: StateStore>(store: &S) {
    for (tenant, plugin) in [
        (T, "p-1"),
        (T, "p-1#campaign/b"),
        (T, "p-1#campaign/a"),
        (T, "p-1#campaign/a/shadow"),
        (T, "p-10#campaign/a"),
        (T, "p-2#campaign/a"),
        (T2, "p-1#campaign/a"),
    ] {
        store
            .apply(&scope(tenant, plugin), 0, &[put("k", vec![1])], 1 << 20)
            .unwrap();
    }
    // Emptied, and retired without ever holding state: listed all the same.
    store
        .apply(&scope(T, "p-1#campaign/b"), 1, &[del("k")], 1 << 20)
        .unwrap();
    store.retire(&scope(T, "p-1#gone")).unwrap();
    let plugins = |tenant: &str, prefix: &str| -> Vec<String> {
        store
            .scopes(tenant, prefix)
            .unwrap()
            .into_iter()
            .inspect(|s| assert_eq!(s.tenant, tenant))
            .map(|s| s.plugin)
            .collect()
    };
    assert_eq!(
        plugins(T, "p-1#"),
        [
            "p-1#campaign/a",
            "p-1#campaign/a/shadow",
            "p-1#campaign/b",
            "p-1#gone"
        ]
    );
    assert_eq!(plugins(T, "").len(), 7);
    assert_eq!(plugins(T2, ""), ["p-1#campaign/a"]);
    assert!(plugins(T, "p-3").is_empty());
    assert!(plugins("nobody", "").is_empty());
}

#[cfg(test)]
mod tests {
    use tessera_state::MemoryState;

    #[test]
    fn the_state_cases_describe_memory_state_exactly() {
        for case in super::state_cases::<MemoryState>() {
            (case.run)(&MemoryState::new());
        }
    }
}
