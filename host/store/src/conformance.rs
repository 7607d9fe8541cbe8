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
//! hold backends to exactly what `tessera_state::MemoryState` does.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tessera_state::{StateError, StateScope, StateStore};

use crate::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, MAX_ID_LEN,
    PurgeReport, Store, StoreError, SubjectRecord, TenantRecord,
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
        identity_links_never_overwrite_an_existing_link,
        events_come_back_in_time_order_within_half_open_ranges,
        duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects,
        writes_for_an_unknown_subject_are_refused_and_change_nothing,
        deleting_events_before_a_time_removes_only_older_events_of_that_subject,
        consent_history_is_kept_in_time_then_append_order,
        tenants_are_isolated_even_with_the_same_subject_ids,
        purging_a_subject_removes_exactly_its_records,
        audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds,
        audit_sequence_stays_gapless_under_four_concurrent_writers,
        concurrent_appends_of_the_same_source_ids_insert_each_once,
        jobs_are_claimed_when_due_and_again_after_their_lease_expires,
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
    ]
}

/// Every case a backend must pass (all but [`flushed_writes_survive_reopen`]).
pub fn cases<S: Store + StateStore>() -> Vec<Case<S>> {
    let mut all = store_cases::<S>();
    all.extend(state_cases::<S>());
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

/// One `#[test]` per conformance case. `$fixture` is a `fn() -> (G, S)`:
/// a guard (a temporary directory, a scratch database) that must outlive the
/// store, and a fresh, empty store. Also checks that no case was left out.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            an_empty_store_holds_nothing_and_finds_nothing,
            tenants_are_stored_replaced_and_listed_in_id_order,
            invalid_ids_are_refused_without_changing_anything,
            subjects_need_a_tenant_and_page_in_id_order,
            identity_links_never_overwrite_an_existing_link,
            events_come_back_in_time_order_within_half_open_ranges,
            duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects,
            writes_for_an_unknown_subject_are_refused_and_change_nothing,
            deleting_events_before_a_time_removes_only_older_events_of_that_subject,
            consent_history_is_kept_in_time_then_append_order,
            tenants_are_isolated_even_with_the_same_subject_ids,
            purging_a_subject_removes_exactly_its_records,
            audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds,
            audit_sequence_stays_gapless_under_four_concurrent_writers,
            concurrent_appends_of_the_same_source_ids_insert_each_once,
            jobs_are_claimed_when_due_and_again_after_their_lease_expires,
            state_writes_apply_atomically_within_the_quota_and_scopes_are_separate,
            state_writes_based_on_an_old_version_conflict_and_change_nothing,
            state_over_a_lowered_quota_can_shrink_but_not_grow,
            state_version_and_usage_track_every_applied_batch,
            concurrent_state_writers_on_one_version_let_exactly_one_win,
        );
    };
    (@each $fixture:path; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
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
        &[event("ok", 1), event("", 2)]
    )));
    assert_eq!(all_events(store, T, "s1"), vec![], "all or nothing");
    assert!(invalid(store.append_audit("", b"entry")));
    assert!(invalid(store.enqueue_job(&job("j1", "", 0))));
    assert!(invalid(store.enqueue_job(&job("", "purge", 0))));
    assert!(invalid(store.claim_job("purge", "", 1_000, 0)));
    assert!(invalid(store.purge_subject(T, "")));

    let longest = "y".repeat(MAX_ID_LEN);
    store.put_subject(T, &subject(&longest)).unwrap();
    assert_eq!(store.subject(T, &longest).unwrap(), Some(subject(&longest)));
    assert_eq!(store.tenants().unwrap(), vec![tenant(T)]);
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
    assert_eq!(store.append_events(T, "s1", &first).unwrap(), outcome(6, 0));
    assert_eq!(
        store.append_events(T, "s1", &[event("e", 200)]).unwrap(),
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
    assert_eq!(store.append_events(T, "s1", &[]).unwrap(), outcome(0, 0));
}

pub fn duplicate_source_ids_are_skipped_within_a_batch_across_batches_and_subjects<S: Store>(
    store: &S,
) {
    seed(store, &[(T, "s1"), (T, "s2"), (T2, "s1")]);
    let batch = [event("x1", 1), event("x2", 2), event("x1", 3)];
    assert_eq!(store.append_events(T, "s1", &batch).unwrap(), outcome(2, 1));
    assert_eq!(
        all_events(store, T, "s1"),
        vec![event("x1", 1), event("x2", 2)],
        "the first of a batch wins"
    );
    assert_eq!(
        store
            .append_events(T, "s1", &[event("x2", 5), event("x3", 6)])
            .unwrap(),
        outcome(1, 1)
    );
    assert_eq!(
        store
            .append_events(T, "s2", &[event("x3", 7), event("y", 8)])
            .unwrap(),
        outcome(1, 1),
        "a source id of another subject in the tenant is a duplicate"
    );
    assert_eq!(sources(&all_events(store, T, "s2")), ["y"]);
    assert_eq!(sources(&all_events(store, T, "s1")), ["x1", "x2", "x3"]);
    assert_eq!(
        store.append_events(T2, "s1", &[event("x1", 1)]).unwrap(),
        outcome(1, 0),
        "another tenant's source ids are its own"
    );
}

pub fn writes_for_an_unknown_subject_are_refused_and_change_nothing<S: Store>(store: &S) {
    assert!(unknown_subject(store.append_events(
        T,
        "ghost",
        &[event("g1", 1)]
    )));
    seed(store, &[(T, "s1")]);
    assert!(unknown_subject(store.append_events(
        T,
        "ghost",
        &[event("g1", 1)]
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
        store.append_events(T, "s1", &[event("g1", 1)]).unwrap(),
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
    store.append_events(T, "s1", &batch).unwrap();
    store.append_events(T, "s2", &[event("z", 10)]).unwrap();
    assert_eq!(store.delete_events_before(T, "s1", 30).unwrap(), 2);
    assert_eq!(sources(&all_events(store, T, "s1")), ["c", "d"]);
    assert_eq!(sources(&all_events(store, T, "s2")), ["z"]);
    assert_eq!(store.delete_events_before(T, "s1", 30).unwrap(), 0);
    assert_eq!(store.delete_events_before(T, "s1", i64::MIN).unwrap(), 0);
    assert_eq!(
        store.append_events(T, "s1", &[event("a", 10)]).unwrap(),
        outcome(1, 0),
        "a deleted event's source id is forgotten"
    );
    assert_eq!(
        store.append_events(T, "s1", &[event("c", 99)]).unwrap(),
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

    store.append_events(T, "s1", &[event("e", 1)]).unwrap();
    store
        .append_consent(T, "s1", &consent(1, "granted"))
        .unwrap();
    assert_eq!(all_events(store, T2, "s1"), vec![]);
    assert_eq!(store.consents(T2, "s1").unwrap(), vec![]);
    assert_eq!(store.append_audit(T, b"a").unwrap(), 1);
    assert_eq!(store.append_audit(T2, b"b").unwrap(), 1);
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
        store.append_events(tenant_id, subject_id, &events).unwrap();
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
        unknown_subject(store.append_events(T, "s1", &[event("late", 9)])),
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
        store.append_events(T, "s1", &[event("s1-0", 0)]).unwrap(),
        outcome(1, 0),
        "a purged subject's source ids are forgotten"
    );
}

pub fn audit_sequence_numbers_are_per_tenant_and_pages_respect_bounds<S: Store>(store: &S) {
    for (expected, entry) in (1..).zip([&b"a"[..], b"b", b"c"]) {
        assert_eq!(store.append_audit(T, entry).unwrap(), expected);
    }
    assert_eq!(store.append_audit(T2, b"x").unwrap(), 1);
    assert_eq!(
        store.append_audit(T, b"").unwrap(),
        4,
        "empty entries count"
    );
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

pub fn audit_sequence_stays_gapless_under_four_concurrent_writers<S: Store>(store: &S) {
    const PER_THREAD: u64 = 50;
    let returned: Vec<Vec<(u64, Vec<u8>)>> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..4)
            .map(|thread| {
                threads.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let entry = format!("{thread}-{i}").into_bytes();
                            (store.append_audit(T, &entry).unwrap(), entry)
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
                        let done = store.append_events(T, subject_id, &events).unwrap();
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

// ------------------------------------------------------------ persistence

/// Writes through one store, flushes, drops it, and reads everything back
/// through a second one. `open` must open the same store each time.
pub fn flushed_writes_survive_reopen<S: Store + StateStore>(open: impl Fn() -> S) {
    let plugin = scope(T, "one");
    {
        let store = open();
        seed(&store, &[(T, "s1")]);
        store.link_identity(T, hash(1), "s1").unwrap();
        store
            .append_events(T, "s1", &[event("a", 10), event("b", 10)])
            .unwrap();
        store
            .append_consent(T, "s1", &consent(5, "granted"))
            .unwrap();
        store.append_audit(T, b"first").unwrap();
        store.append_audit(T, b"second").unwrap();
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
    assert_eq!(store.append_audit(T, b"third").unwrap(), 3);
    assert_eq!(store.audit(T, 0, 10).unwrap().len(), 3);
    assert_eq!(
        store
            .append_events(T, "s1", &[event("a", 1), event("c", 10)])
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
