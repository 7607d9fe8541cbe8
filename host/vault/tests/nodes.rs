//! Two vaults ("nodes") in one process over one store and one shared key
//! store, as `tessera serve` nodes on one PostgreSQL database are: pooled
//! subject ids, erasures and settings must hold across them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tessera_privacy::{KeyStore, KeyStoreError, WrappedSubjectKey};
use tessera_store::{SledStore, Store};
use tessera_vault::{CHANGES_DOC, CHANGES_ID, NODE_ID_FILE, Vault, VaultError};

/// A key store that every "node" of a test shares, in memory, with the
/// database's rules: slots from a counter, never reused.
#[derive(Debug, Default)]
struct SharedKeys {
    slots: Mutex<BTreeMap<u64, WrappedSubjectKey>>,
    next: AtomicU64,
}

impl KeyStore for SharedKeys {
    fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError> {
        let slot = self.next.fetch_add(1, Ordering::SeqCst);
        self.slots.lock().unwrap().insert(slot, wrapped.clone());
        Ok(slot)
    }

    fn sync(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError> {
        Ok(self.slots.lock().unwrap().get(&slot).cloned())
    }

    fn erase(&self, slot: u64) -> Result<bool, KeyStoreError> {
        Ok(self.slots.lock().unwrap().remove(&slot).is_some())
    }

    fn holds_no_key(&self) -> Result<bool, KeyStoreError> {
        Ok(self.slots.lock().unwrap().is_empty())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

struct Cluster {
    fixture: Fixture,
    store: Arc<dyn Store>,
    keys: Arc<SharedKeys>,
}

impl Cluster {
    fn new() -> Self {
        let fixture = Fixture::new();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(fixture.data_dir()).expect("store"));
        Self {
            fixture,
            store,
            keys: Arc::default(),
        }
    }

    /// A node whose key directory is `name` under the test's directory.
    fn node(&self, name: &str) -> Vault {
        let keys: Arc<dyn KeyStore> = self.keys.clone();
        let clock = self.fixture.clock.clone();
        Vault::with_key_store(
            self.store.clone(),
            keys,
            self.fixture.dir.path().join(name),
            self.fixture.master(),
        )
        .expect("a node opens")
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    }
}

fn ingest_person(vault: &Vault, n: usize) -> String {
    vault
        .ingest(
            TENANT,
            &record(vec![member(&format!("M-{n}"))], vec![]),
            &ingest_actor(),
        )
        .expect("ingest")
        .subject
        .expect("a subject")
}

#[test]
fn nodes_sharing_a_key_store_never_hand_out_the_same_subject_id_and_restore_only_their_own_pool() {
    let cluster = Cluster::new();
    let a = cluster.node("a");
    a.create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let b = cluster.node("b");
    assert!(a.is_shared() && b.is_shared());
    assert_ne!(a.node_id(), b.node_id());
    let mut subjects = Vec::new();
    // Both pools in use at once (each node writes 256 keys at a time).
    for n in 0..300 {
        let node = if n % 2 == 0 { &a } else { &b };
        subjects.push(ingest_person(node, n));
    }
    // Node b restarts (its pool is restored from its own key-batch
    // document); node c is new. Neither may take a's pooled ids.
    let b_id = b.node_id().expect("named").to_owned();
    drop(b);
    let b = cluster.node("b");
    assert_eq!(b.node_id(), Some(b_id.as_str()), "the name is kept");
    let c = cluster.node("c");
    for n in 300..700 {
        let node = [&a, &b, &c][n % 3];
        subjects.push(ingest_person(node, n));
    }
    let distinct: BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(
        distinct.len(),
        subjects.len(),
        "every person got an id of their own"
    );
    // Every person opens on every node: no slot holds another's key.
    for subject in subjects.iter().step_by(7) {
        for node in [&a, &b, &c] {
            node.access(TENANT, subject, &operator())
                .expect("each person opens on every node");
        }
    }
}

#[test]
fn a_second_process_on_the_same_key_directory_is_refused() {
    let cluster = Cluster::new();
    let _a = cluster.node("a");
    let error = Vault::with_key_store(
        cluster.store.clone(),
        cluster.keys.clone(),
        cluster.fixture.dir.path().join("a"),
        cluster.fixture.master(),
    )
    .expect_err("the node is running");
    assert!(matches!(error, VaultError::NodeInUse { .. }), "{error}");
    assert!(error.to_string().contains(NODE_ID_FILE), "{error}");
    assert!(Path::new(&cluster.fixture.dir.path().join("a").join(NODE_ID_FILE)).is_file());
}

#[test]
fn a_subject_erased_on_one_node_is_unreadable_on_the_other_once_it_has_polled() {
    let cluster = Cluster::new();
    let a = cluster.node("a");
    a.create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let b = cluster.node("b");
    let subject = ingest_person(&a, 1);
    let kept = ingest_person(&a, 2);
    b.poll_changes().expect("first poll");
    // Read on b: its key is cached there.
    b.access(TENANT, &subject, &operator()).expect("readable");
    let generation = b.cache_generation(TENANT);
    a.request_deletion(TENANT, &subject, "subject request", &operator())
        .expect("erased through a");
    assert_eq!(
        b.poll_changes().expect("poll"),
        vec![TENANT.to_owned()],
        "b sees the tenant changed"
    );
    assert!(b.cache_generation(TENANT) > generation);
    let error = b
        .access(TENANT, &subject, &operator())
        .expect_err("erased on b too");
    assert!(
        matches!(
            error,
            VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. }
        ),
        "{error}"
    );
    b.access(TENANT, &kept, &operator())
        .expect("the others still open");
    assert!(
        b.poll_changes().expect("poll again").is_empty(),
        "nothing changed since"
    );
}

#[test]
fn settings_changed_on_one_node_are_read_again_by_the_other_once_it_has_polled() {
    let cluster = Cluster::new();
    let a = cluster.node("a");
    a.create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let b = cluster.node("b");
    b.poll_changes().expect("first poll");
    let before = b.settings(TENANT).expect("settings").retention.max_days;
    let mut wider = settings();
    wider.retention.max_days = before + 100;
    a.update_settings(TENANT, wider, &operator())
        .expect("changed through a");
    b.poll_changes().expect("poll");
    assert_eq!(
        b.settings(TENANT).expect("settings").retention.max_days,
        before + 100
    );
}

#[test]
fn a_single_node_announces_nothing_and_polls_nothing() {
    let fixture = Fixture::new();
    let vault = fixture.create();
    assert!(!vault.is_shared());
    let mut wider = settings();
    wider.retention.max_days += 1;
    vault
        .update_settings(TENANT, wider, &operator())
        .expect("changed");
    assert_eq!(
        vault
            .store()
            .document(TENANT, CHANGES_DOC, CHANGES_ID)
            .expect("read"),
        None
    );
}
