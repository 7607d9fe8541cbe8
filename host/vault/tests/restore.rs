//! A restore of the records from a backup taken before an erasure does not
//! bring the erased person back: the key store's erasure ledger names the
//! slots erased since, and [`Vault::reerase_restored`] erases their subjects
//! again (suppressed, unlinked, purged, audited). Here the records are a
//! sled directory (the backup a copy of it) and the keys a shared key store
//! in memory with a ledger, as PostgreSQL's keeps one.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::*;
use tessera_privacy::{
    Erasure, ErasureCause, KeyStore, KeyStoreError, LedgerRead, WrappedSubjectKey,
};
use tessera_store::SledStore;
use tessera_vault::{Refusal, Vault, VaultError};

/// Keys and their erasure ledger in memory, with the database's rules:
/// slots never reused; each entry is settled as soon as it is written.
#[derive(Debug, Default)]
struct LedgerKeys {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    slots: BTreeMap<u64, WrappedSubjectKey>,
    next: u64,
    ledger: Vec<Erasure>,
}

impl LedgerKeys {
    /// A backup of the key store (to restore one).
    fn snapshot(&self) -> Inner {
        self.inner.lock().unwrap().clone()
    }

    fn restore(&self, snapshot: Inner) {
        *self.inner.lock().unwrap() = snapshot;
    }
}

impl KeyStore for LedgerKeys {
    fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError> {
        let mut inner = self.inner.lock().unwrap();
        let slot = inner.next;
        inner.next += 1;
        inner.slots.insert(slot, wrapped.clone());
        Ok(slot)
    }

    fn sync(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError> {
        Ok(self.inner.lock().unwrap().slots.get(&slot).cloned())
    }

    fn erase(&self, slot: u64) -> Result<bool, KeyStoreError> {
        self.erase_for(slot, ErasureCause::Request)
    }

    fn erase_for(&self, slot: u64, cause: ErasureCause) -> Result<bool, KeyStoreError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.slots.remove(&slot).is_none() {
            return Ok(false);
        }
        let position = inner.ledger.len() as u64 + 1;
        inner.ledger.push(Erasure {
            position,
            slot,
            erased_at_ms: NOW,
            cause,
        });
        Ok(true)
    }

    fn erasures_after(&self, after: u64) -> Result<Option<LedgerRead>, KeyStoreError> {
        let inner = self.inner.lock().unwrap();
        let head = inner.ledger.len() as u64;
        Ok(Some(LedgerRead {
            entries: inner
                .ledger
                .iter()
                .filter(|e| e.position > after)
                .copied()
                .collect(),
            settled: head.max(after),
            head,
        }))
    }

    fn holds_no_key(&self) -> Result<bool, KeyStoreError> {
        Ok(self.inner.lock().unwrap().slots.is_empty())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

struct Deployment {
    fixture: Fixture,
    keys: Arc<LedgerKeys>,
}

impl Deployment {
    fn new() -> Self {
        Self {
            fixture: Fixture::new(),
            keys: Arc::default(),
        }
    }

    /// The vault on the records in the data directory (opened anew: a
    /// restart).
    fn open(&self) -> Vault {
        let store = SledStore::open(self.fixture.data_dir()).expect("store");
        let keys: Arc<dyn KeyStore> = self.keys.clone();
        let clock = self.fixture.clock.clone();
        Vault::with_key_store(
            Arc::new(store),
            keys,
            self.fixture.key_dir(),
            self.fixture.master(),
        )
        .expect("the vault opens")
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    }

    /// A copy of the records (the vault must be closed).
    fn backup(&self, name: &str) -> std::path::PathBuf {
        let to = self.fixture.dir.path().join(name);
        copy_dir(&self.fixture.data_dir(), &to);
        to
    }

    /// Puts a copy back in place of the records (the vault must be closed).
    fn restore(&self, from: &std::path::Path) {
        std::fs::remove_dir_all(self.fixture.data_dir()).expect("remove the records");
        copy_dir(from, &self.fixture.data_dir());
    }
}

fn person(vault: &Vault, id: &str) -> String {
    vault
        .ingest(TENANT, &record(vec![member(id)], vec![]), &ingest_actor())
        .expect("ingest")
        .subject
        .expect("a subject")
}

fn erased(vault: &Vault, subject: &str) -> bool {
    matches!(
        vault.access(TENANT, subject, &operator()),
        Err(VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. })
    )
}

#[test]
fn a_person_erased_after_the_backup_is_erased_again_when_it_is_restored_and_others_stay() {
    let deployment = Deployment::new();
    let vault = deployment.open();
    vault
        .create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let a = person(&vault, "M-A");
    let b = person(&vault, "M-B");
    assert!(
        vault.reerase_restored().expect("check").reerased.is_empty(),
        "nothing erased yet"
    );
    drop(vault);
    let backup = deployment.backup("backup");

    let vault = deployment.open();
    vault
        .request_deletion(TENANT, &a, "asked", &operator())
        .expect("erase A");
    // Before its purge and after it, a normal erasure is left to its own
    // request: nothing is erased twice.
    assert!(vault.reerase_restored().expect("check").reerased.is_empty());
    vault.run_jobs("w").expect("purge");
    assert!(vault.reerase_restored().expect("check").reerased.is_empty());
    drop(vault);

    deployment.restore(&backup);
    let vault = deployment.open();
    // The restored records name A, whose key is gone.
    assert!(matches!(
        vault.access(TENANT, &a, &operator()),
        Err(VaultError::SubjectErased { .. })
    ));
    let report = vault.reerase_restored().expect("re-erase");
    assert!(!report.ledger_went_back);
    assert_eq!(report.reerased.len(), 1, "{report:?}");
    assert_eq!(report.reerased[0].subject, a);
    assert_eq!(report.reerased[0].key_erased_at_ms, NOW);
    // Unlinked and suppressed: A's identity finds no one, and coming in
    // again is refused rather than making A anew.
    assert_eq!(
        vault
            .find_subject(TENANT, &member("M-A").0, "M-A", &operator())
            .expect("lookup"),
        None
    );
    let again = vault
        .ingest(
            TENANT,
            &record(vec![member("M-A")], vec![]),
            &ingest_actor(),
        )
        .expect("ingest");
    assert_eq!(again.refused, Some(Refusal::Suppressed));
    // Audited, with a deletion request whose purge removes the records.
    let audit = vault.audit_entries(TENANT, 1, 1000).expect("audit");
    let reerased: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "subject.reerase")
        .collect();
    assert_eq!(reerased.len(), 1);
    assert_eq!(reerased[0].subject.as_deref(), Some(a.as_str()));
    let request = vault
        .deletion_request(TENANT, &report.reerased[0].request)
        .expect("the request");
    assert_eq!(request.subjects, vec![a.clone()]);
    assert_eq!(request.identities_suppressed, 1);
    let jobs = vault.run_jobs("w").expect("purge");
    assert_eq!(jobs.purges_completed, vec![request.id.clone()]);
    assert!(matches!(
        vault.access(TENANT, &a, &operator()),
        Err(VaultError::UnknownSubject { .. })
    ));
    // B is untouched.
    vault.access(TENANT, &b, &operator()).expect("B reads");
    assert_eq!(person(&vault, "M-B"), b);
    // Done once: the next check finds nothing.
    assert!(vault.reerase_restored().expect("check").reerased.is_empty());
}

#[test]
fn a_retention_expiry_is_erased_again_without_suppressing_the_returning_customer() {
    let deployment = Deployment::new();
    let vault = deployment.open();
    vault
        .create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let old = person(&vault, "M-OLD");
    drop(vault);
    let backup = deployment.backup("backup");
    let vault = deployment.open();
    deployment.fixture.advance(800 * DAY_MS);
    let swept = vault.sweep_retention(TENANT).expect("sweep");
    assert_eq!(swept.subjects_expired, vec![old.clone()]);
    assert_eq!(
        deployment.keys.snapshot().ledger[0].cause,
        ErasureCause::Expiry
    );
    drop(vault);
    deployment.restore(&backup);
    let vault = deployment.open();
    let report = vault.reerase_restored().expect("re-erase");
    assert_eq!(report.reerased.len(), 1, "{report:?}");
    assert!(erased(&vault, &old));
    let back = vault
        .ingest(
            TENANT,
            &record(vec![member("M-OLD")], vec![]),
            &ingest_actor(),
        )
        .expect("a returning customer");
    assert_eq!(back.refused, None);
    assert!(back.created, "a new person, not the expired one");
    assert_ne!(back.subject.as_deref(), Some(old.as_str()));
}

#[test]
fn a_key_store_restored_from_before_an_erasure_brings_the_person_back_and_is_noticed() {
    // Why the key store's backups must expire before the deletion deadline:
    // its ledger cannot help when the keys themselves come back.
    let deployment = Deployment::new();
    let vault = deployment.open();
    vault
        .create_tenant(TENANT, settings(), &operator())
        .expect("tenant");
    let a = person(&vault, "M-A");
    drop(vault);
    let records_backup = deployment.backup("backup");
    let keys_backup = deployment.keys.snapshot();
    let vault = deployment.open();
    vault
        .request_deletion(TENANT, &a, "asked", &operator())
        .expect("erase A");
    vault.run_jobs("w").expect("purge");
    // The tenant's mark moves past A's erasure.
    assert!(vault.reerase_restored().expect("check").reerased.is_empty());
    drop(vault);
    deployment.keys.restore(keys_backup);
    let vault = deployment.open();
    let report = vault.reerase_restored().expect("check");
    assert!(
        report.ledger_went_back,
        "the ledger is behind the records' mark: {report:?}"
    );
    assert!(report.reerased.is_empty(), "{report:?}");
    drop(vault);
    deployment.restore(&records_backup);
    let vault = deployment.open();
    vault
        .access(TENANT, &a, &operator())
        .expect("with both restored from before the erasure, A is back");
}
