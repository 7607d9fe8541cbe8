//! The [`KeyStore`] trait: where wrapped subject keys live and how one is destroyed.
//! Implementations must never report an erasure before every copy they control is gone.
//!
//! Two implementations exist: [`SubjectKeyStore`](crate::SubjectKeyStore), a
//! file of fixed slots for one process (the embedded deployment), and a
//! table in PostgreSQL (`tessera-store-postgres`, `PgKeyStore`) that every
//! node of a cluster shares. The vault uses either through this trait, so
//! both give the same guarantees, checked by one conformance suite
//! ([`conformance`](crate::key_store::conformance), feature `conformance`).

use std::fmt;

use crate::error::KeyStoreError;
use crate::keys::WrappedSubjectKey;

/// Wrapped subject keys, each in a numbered slot that records refer to.
///
/// - [`insert`](KeyStore::insert) returns a slot that no other key holds
///   now, whichever process or node inserts; it is durable once
///   [`sync`](KeyStore::sync) has returned (callers insert, sync, and only
///   then commit records that name the slot).
/// - [`get`](KeyStore::get) returns `None` for a slot that holds no key
///   (erased, or never used).
/// - [`erase`](KeyStore::erase) destroys the key in the slot and makes that
///   durable before it returns `true`; it returns `false` if the slot held
///   no key. After it returns, `get` of that slot is `None` for every user
///   of the store.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Stores `wrapped` in a free slot and returns the slot's number.
    fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError>;

    /// Stores several keys; the slots are returned in the order of `keys`.
    /// Not atomic: on an error, some keys may be stored (in slots nothing
    /// refers to, which is harmless).
    fn insert_many(&self, keys: &[WrappedSubjectKey]) -> Result<Vec<u64>, KeyStoreError> {
        keys.iter().map(|key| self.insert(key)).collect()
    }

    /// Makes every inserted key durable.
    fn sync(&self) -> Result<(), KeyStoreError>;

    /// The wrapped key in `slot`; `None` if the slot holds none.
    fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError>;

    /// Destroys the key in `slot`, durably, before returning `true`;
    /// `false` if the slot held no key.
    fn erase(&self, slot: u64) -> Result<bool, KeyStoreError>;

    /// Whether the store holds no key at all (a fresh store, or the wrong one).
    fn holds_no_key(&self) -> Result<bool, KeyStoreError>;

    /// Whether other processes (other nodes) use this store at the same
    /// time, so that what one process keeps in memory about its keys and
    /// its pooled subject ids must not be taken for the whole truth.
    fn is_shared(&self) -> bool;

    /// Where the keys are, for messages (a path, or a database and table;
    /// never a password).
    fn location(&self) -> String;

    /// [`erase`](KeyStore::erase), noting in the store's erasure ledger (if
    /// it keeps one) that `slot` was erased, when, and for what `cause`, in
    /// the same transaction as the erasure: an erasure is never durable
    /// without its ledger entry, nor the entry without the erasure.
    fn erase_for(&self, slot: u64, cause: ErasureCause) -> Result<bool, KeyStoreError> {
        let _ = cause;
        self.erase(slot)
    }

    /// The erasure ledger's entries after position `after`, oldest first;
    /// `None` if the store keeps no ledger. Used to erase again, after a
    /// restore of the records' database from a backup, the people whose
    /// keys were erased after that backup was taken (docs/operations.md).
    fn erasures_after(&self, after: u64) -> Result<Option<LedgerRead>, KeyStoreError> {
        let _ = after;
        Ok(None)
    }
}

/// Why a subject key was erased, as the erasure ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErasureCause {
    /// The person asked to be erased: their identities are suppressed.
    Request,
    /// Their records expired (retention): a returning customer is let in.
    Expiry,
}

impl ErasureCause {
    /// The name the ledger stores.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureCause::Request => "request",
            ErasureCause::Expiry => "expiry",
        }
    }

    /// The cause a stored name stands for; an unknown name is taken for a
    /// request, the cause that suppresses (the safe side).
    pub fn parse(name: &str) -> Self {
        match name {
            "expiry" => ErasureCause::Expiry,
            _ => ErasureCause::Request,
        }
    }
}

/// One entry of an erasure ledger: nothing personal, only the slot whose
/// key was destroyed, when and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// The entry's place in the ledger: 1, 2, …, increasing with time.
    pub position: u64,
    pub slot: u64,
    /// When the key was erased, by the key store's clock (milliseconds
    /// since the Unix epoch).
    pub erased_at_ms: i64,
    pub cause: ErasureCause,
}

/// What [`KeyStore::erasures_after`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerRead {
    /// The entries after the position asked for, in position order.
    pub entries: Vec<Erasure>,
    /// A position up to which the ledger is complete: no entry at or below
    /// it can still appear (an erasure still committing may take a position
    /// below a later one's), so a reader may keep this as the mark to read
    /// after next time. Never below the position asked for.
    pub settled: u64,
    /// The highest position in the ledger (0 if it is empty). Below the
    /// position asked for, the ledger went back: the key store was restored
    /// from a backup, or is another one.
    pub head: u64,
}

#[cfg(unix)]
impl KeyStore for crate::SubjectKeyStore {
    fn insert(&self, wrapped: &WrappedSubjectKey) -> Result<u64, KeyStoreError> {
        crate::SubjectKeyStore::insert(self, wrapped)
    }

    fn sync(&self) -> Result<(), KeyStoreError> {
        crate::SubjectKeyStore::sync(self)
    }

    fn get(&self, slot: u64) -> Result<Option<WrappedSubjectKey>, KeyStoreError> {
        crate::SubjectKeyStore::get(self, slot)
    }

    fn erase(&self, slot: u64) -> Result<bool, KeyStoreError> {
        crate::SubjectKeyStore::erase(self, slot)
    }

    fn holds_no_key(&self) -> Result<bool, KeyStoreError> {
        Ok(self.is_empty())
    }

    fn is_shared(&self) -> bool {
        // `open` takes an exclusive lock: no other process uses the file.
        false
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }
}

/// The behaviour every [`KeyStore`] must have, as functions that panic on
/// a violation; each backend's tests call every one of them on a fresh,
/// empty store (`open` makes one; called again it must open *another
/// handle on the same store*, as a second node or a restart would).
#[cfg(feature = "conformance")]
pub mod conformance {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::KeyStore;
    use crate::keys::{SubjectKey, TenantKey, WrappedSubjectKey};

    fn wrapped(subject: &str) -> (TenantKey, WrappedSubjectKey) {
        let tenant = TenantKey::generate().expect("tenant key");
        let key = SubjectKey::generate().expect("subject key");
        let wrapped = key.wrap(&tenant, "acme", subject).expect("wrap");
        (tenant, wrapped)
    }

    /// Runs every case against stores made by `open`.
    pub fn run_all(open: &dyn Fn() -> Arc<dyn KeyStore>) {
        a_stored_key_reads_back_until_it_is_erased(open);
        an_erased_key_is_gone_for_every_handle_and_erasing_again_is_false(open);
        slots_are_distinct_however_many_handles_insert_at_once(open);
        insert_many_returns_one_slot_per_key_in_order(open);
        an_empty_store_holds_no_key_and_one_key_makes_it_hold_some(open);
        a_slot_never_used_reads_as_none_and_cannot_be_erased(open);
        an_erasure_is_in_the_ledger_once_with_its_slot_and_cause(open);
    }

    pub fn a_stored_key_reads_back_until_it_is_erased(open: &dyn Fn() -> Arc<dyn KeyStore>) {
        let store = open();
        let (tenant, w) = wrapped("s1");
        let slot = store.insert(&w).expect("insert");
        store.sync().expect("sync");
        let read = store.get(slot).expect("get").expect("the key is there");
        assert_eq!(read, w);
        SubjectKey::unwrap(&read, &tenant, "acme", "s1").expect("it unwraps");
        assert!(store.erase(slot).expect("erase"));
        assert_eq!(store.get(slot).expect("get"), None);
    }

    pub fn an_erased_key_is_gone_for_every_handle_and_erasing_again_is_false(
        open: &dyn Fn() -> Arc<dyn KeyStore>,
    ) {
        let store = open();
        let (_, w) = wrapped("s2");
        let slot = store.insert(&w).expect("insert");
        store.sync().expect("sync");
        assert!(store.erase(slot).expect("erase"));
        assert!(
            !store.erase(slot).expect("erase again"),
            "nothing left to erase"
        );
        drop(store);
        // Another handle (a restart, or another node of a shared store).
        let other = open();
        assert_eq!(
            other.get(slot).expect("get"),
            None,
            "erased for every handle"
        );
    }

    pub fn slots_are_distinct_however_many_handles_insert_at_once(
        open: &dyn Fn() -> Arc<dyn KeyStore>,
    ) {
        let first = open();
        let handles: Vec<Arc<dyn KeyStore>> = if first.is_shared() {
            vec![first.clone(), open(), open()]
        } else {
            vec![first.clone(), first.clone(), first.clone()]
        };
        let threads: Vec<_> = handles
            .into_iter()
            .enumerate()
            .map(|(n, store)| {
                std::thread::spawn(move || {
                    (0..40)
                        .map(|i| {
                            let subject = format!("t{n}-{i}");
                            let (_, w) = wrapped(&subject);
                            let slot = store.insert(&w).expect("insert");
                            (slot, w)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut slots = BTreeSet::new();
        let mut all = Vec::new();
        for thread in threads {
            for (slot, w) in thread.join().expect("thread") {
                assert!(slots.insert(slot), "slot {slot} handed out twice");
                all.push((slot, w));
            }
        }
        first.sync().expect("sync");
        for (slot, w) in all {
            assert_eq!(first.get(slot).expect("get"), Some(w), "slot {slot}");
        }
    }

    pub fn insert_many_returns_one_slot_per_key_in_order(open: &dyn Fn() -> Arc<dyn KeyStore>) {
        let store = open();
        let keys: Vec<WrappedSubjectKey> = (0..20).map(|i| wrapped(&format!("m{i}")).1).collect();
        let slots = store.insert_many(&keys).expect("insert many");
        store.sync().expect("sync");
        assert_eq!(slots.len(), keys.len());
        assert_eq!(slots.iter().collect::<BTreeSet<_>>().len(), keys.len());
        for (slot, key) in slots.iter().zip(&keys) {
            assert_eq!(store.get(*slot).expect("get").as_ref(), Some(key));
        }
        assert_eq!(store.insert_many(&[]).expect("nothing"), Vec::<u64>::new());
    }

    pub fn an_empty_store_holds_no_key_and_one_key_makes_it_hold_some(
        open: &dyn Fn() -> Arc<dyn KeyStore>,
    ) {
        let store = open();
        // Other cases may have run on the same store first; only a store
        // with a key in it must say so.
        let (_, w) = wrapped("e1");
        let slot = store.insert(&w).expect("insert");
        store.sync().expect("sync");
        assert!(!store.holds_no_key().expect("holds"));
        store.erase(slot).expect("erase");
        assert!(!store.location().is_empty());
    }

    pub fn a_slot_never_used_reads_as_none_and_cannot_be_erased(
        open: &dyn Fn() -> Arc<dyn KeyStore>,
    ) {
        let store = open();
        let far = (1u64 << 40) + 7;
        assert_eq!(store.get(far).expect("get"), None);
        assert!(!store.erase(far).expect("erase"));
    }

    /// For a store that keeps a ledger: each erasure that destroyed a key
    /// is in it once, after every earlier one, seen by every handle; an
    /// erasure that found no key adds nothing. A store without a ledger
    /// says so the same way every time.
    pub fn an_erasure_is_in_the_ledger_once_with_its_slot_and_cause(
        open: &dyn Fn() -> Arc<dyn KeyStore>,
    ) {
        use super::ErasureCause;
        let store = open();
        let Some(before) = store.erasures_after(0).expect("read the ledger") else {
            assert_eq!(
                store.erasures_after(5).expect("read the ledger"),
                None,
                "a store without a ledger has none at any position"
            );
            return;
        };
        assert!(before.settled <= before.head);
        let mark = before.head;
        let (_, first) = wrapped("l1");
        let (_, second) = wrapped("l2");
        let slots = store.insert_many(&[first, second]).expect("insert");
        store.sync().expect("sync");
        assert!(
            store
                .erase_for(slots[0], ErasureCause::Request)
                .expect("erase")
        );
        assert!(
            !store
                .erase_for(slots[0], ErasureCause::Request)
                .expect("erase again"),
            "nothing left to erase"
        );
        assert!(
            store
                .erase_for(slots[1], ErasureCause::Expiry)
                .expect("erase")
        );
        assert_eq!(store.get(slots[0]).expect("get"), None);
        let other = open();
        let read = other
            .erasures_after(mark)
            .expect("read the ledger")
            .expect("the same store keeps the same ledger");
        let ours: Vec<(u64, ErasureCause)> = read
            .entries
            .iter()
            .filter(|e| slots.contains(&e.slot))
            .map(|e| (e.slot, e.cause))
            .collect();
        assert_eq!(
            ours,
            vec![
                (slots[0], ErasureCause::Request),
                (slots[1], ErasureCause::Expiry)
            ],
            "each erasure once, in order: {read:?}"
        );
        assert!(read.entries.iter().all(|e| e.position > mark));
        assert!(
            read.entries
                .windows(2)
                .all(|w| w[0].position < w[1].position)
        );
        assert!(read.entries.iter().all(|e| e.erased_at_ms > 0));
        assert!(read.head >= read.entries.last().expect("entries").position);
        assert!(read.settled >= mark && read.settled <= read.head);
        let past = other
            .erasures_after(read.head)
            .expect("read")
            .expect("ledger");
        assert!(past.entries.is_empty(), "nothing after the head: {past:?}");
    }
}
