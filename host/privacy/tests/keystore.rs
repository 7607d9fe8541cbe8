//! Tests of the subject key store through its public API and the bytes of its file.
//! They must never depend on luck or timing: every file is fresh and checked directly.
#![cfg(unix)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_privacy::keystore::{HEADER_LEN, MAGIC, SLOT_LEN};
use tessera_privacy::{KeyStoreError, SubjectKey, SubjectKeyStore, TenantKey, WrappedSubjectKey};

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("subject-keys")
}

/// A wrapped key with recognisable bytes, unique to `n`, for tests that only store them.
fn fake_wrapped(n: u64) -> WrappedSubjectKey {
    let mut nonce = [0x5a; 12];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    let mut ciphertext = vec![0xa5; 48];
    ciphertext[..8].copy_from_slice(&n.to_le_bytes());
    ciphertext[40..].copy_from_slice(&(!n).to_le_bytes());
    WrappedSubjectKey { nonce, ciphertext }
}

fn slot_bytes(path: &Path, slot: u64) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let at = (HEADER_LEN + slot * SLOT_LEN) as usize;
    bytes[at..at + SLOT_LEN as usize].to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn open_error(path: &Path) -> KeyStoreError {
    SubjectKeyStore::open(path).expect_err("the key store must be refused")
}

#[test]
fn a_new_store_is_an_empty_0600_file_with_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    assert_eq!((store.len(), store.used()), (0, 0));
    assert!(store.is_empty());
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, HEADER_LEN);
    assert_eq!(&bytes[..20], MAGIC);
    assert_eq!(bytes[20..24], 1u32.to_be_bytes());
    assert_eq!(bytes[24..28], 96u32.to_be_bytes());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_missing_directory_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_error(&dir.path().join("missing").join("subject-keys"));
    assert!(matches!(err, KeyStoreError::Create { .. }), "{err:?}");
    assert!(
        err.to_string().contains("check that its directory exists"),
        "{err}"
    );
}

#[test]
fn inserted_keys_unwrap_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let tenant = TenantKey::generate().unwrap();
    let subjects = ["subj-1", "subj-2", "subj-3"];
    let keys: Vec<SubjectKey> = subjects
        .iter()
        .map(|_| SubjectKey::generate().unwrap())
        .collect();
    let mut slots = Vec::new();
    {
        let store = SubjectKeyStore::open(&path).unwrap();
        for (key, subject) in keys.iter().zip(subjects) {
            let wrapped = key.wrap(&tenant, "acme", subject).unwrap();
            let slot = store.insert(&wrapped).unwrap();
            assert_eq!(store.get(slot).unwrap(), Some(wrapped));
            slots.push(slot);
        }
        assert_eq!(slots, [0, 1, 2]);
        store.sync().unwrap();
    }
    let store = SubjectKeyStore::open(&path).unwrap();
    assert_eq!((store.len(), store.used()), (3, 3));
    let record = tessera_privacy::RecordAad {
        tenant: "acme",
        subject: "subj-2",
        kind: "trait",
        id: "email",
    };
    let sealed = tessera_privacy::envelope::seal(&keys[1], &record, b"alice@example.com").unwrap();
    for (slot, subject) in slots.iter().zip(subjects) {
        let wrapped = store.get(*slot).unwrap().expect("the key is stored");
        let key = SubjectKey::unwrap(&wrapped, &tenant, "acme", subject).unwrap();
        if subject == "subj-2" {
            assert_eq!(
                tessera_privacy::envelope::open(&key, &record, &sealed).unwrap(),
                b"alice@example.com"
            );
        }
    }
}

#[test]
fn an_erased_key_is_gone_from_the_file_and_stays_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let tenant = TenantKey::generate().unwrap();
    let wrapped = SubjectKey::generate()
        .unwrap()
        .wrap(&tenant, "acme", "subj-1")
        .unwrap();
    let neighbour = fake_wrapped(7);
    {
        let store = SubjectKeyStore::open(&path).unwrap();
        let slot = store.insert(&wrapped).unwrap();
        store.insert(&neighbour).unwrap();
        store.sync().unwrap();
        assert!(contains(&fs::read(&path).unwrap(), &wrapped.ciphertext));

        assert!(store.erase(slot).unwrap());
        assert_eq!(store.get(slot).unwrap(), None);
        assert!(
            !store.erase(slot).unwrap(),
            "erasing twice reports a free slot"
        );
        assert_eq!((store.len(), store.used()), (2, 1));
        // Durable before erase returns: the file already holds only zeros there.
        assert!(slot_bytes(&path, slot).iter().all(|&b| b == 0));
        let file = fs::read(&path).unwrap();
        assert!(!contains(&file, &wrapped.ciphertext));
        assert!(!contains(&file, &wrapped.nonce));
        assert!(contains(&file, &neighbour.ciphertext));
    }
    let store = SubjectKeyStore::open(&path).unwrap();
    assert_eq!(store.get(0).unwrap(), None);
    assert_eq!(store.get(1).unwrap(), Some(neighbour));
    assert_eq!((store.len(), store.used()), (2, 1));
    assert!(!contains(&fs::read(&path).unwrap(), &wrapped.ciphertext));
}

#[test]
fn erased_slots_are_reused_lowest_first_before_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    for n in 0..5 {
        assert_eq!(store.insert(&fake_wrapped(n)).unwrap(), n);
    }
    assert!(store.erase(3).unwrap());
    assert!(store.erase(1).unwrap());
    assert_eq!(store.insert(&fake_wrapped(10)).unwrap(), 1);
    assert_eq!(store.insert(&fake_wrapped(11)).unwrap(), 3);
    assert_eq!(store.insert(&fake_wrapped(12)).unwrap(), 5);
    assert_eq!(store.get(3).unwrap(), Some(fake_wrapped(11)));
    assert_eq!((store.len(), store.used()), (6, 6));
    let len = fs::metadata(&path).unwrap().len();
    assert_eq!(len, HEADER_LEN + 6 * SLOT_LEN);
}

#[test]
fn slots_that_do_not_exist_are_absent_and_not_erased() {
    let dir = tempfile::tempdir().unwrap();
    let store = SubjectKeyStore::open(store_path(&dir)).unwrap();
    store.insert(&fake_wrapped(1)).unwrap();
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.get(u64::MAX).unwrap(), None);
    assert!(!store.erase(1).unwrap());
    assert!(!store.erase(u64::MAX).unwrap());
    assert_eq!((store.len(), store.used()), (1, 1));
}

#[test]
fn a_wrapped_key_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    for len in [0, 47, 49] {
        let wrapped = WrappedSubjectKey {
            nonce: [1; 12],
            ciphertext: vec![2; len],
        };
        let err = store.insert(&wrapped).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::WrongWrappedKeyLength { len: l } if l == len),
            "{err:?}"
        );
    }
    assert_eq!(store.len(), 0);
    assert_eq!(fs::metadata(&path).unwrap().len(), HEADER_LEN);
}

#[test]
fn a_second_open_is_refused_while_the_first_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let first = SubjectKeyStore::open(&path).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, KeyStoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    SubjectKeyStore::open(&path).expect("the lock is released when the store is dropped");
}

#[test]
fn ten_thousand_keys_half_erased_are_counted_right_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let store = SubjectKeyStore::open(&path).unwrap();
        for n in 0..10_000 {
            assert_eq!(store.insert(&fake_wrapped(n)).unwrap(), n);
        }
        store.sync().unwrap();
        for n in (1..10_000).step_by(2) {
            assert!(store.erase(n).unwrap());
        }
        assert_eq!((store.len(), store.used()), (10_000, 5_000));
    }
    let store = SubjectKeyStore::open(&path).unwrap();
    assert_eq!((store.len(), store.used()), (10_000, 5_000));
    for n in [0, 1, 2, 4_999, 5_000, 9_998, 9_999] {
        let expected = (n % 2 == 0).then(|| fake_wrapped(n));
        assert_eq!(store.get(n).unwrap(), expected, "slot {n}");
    }
    // The free list was rebuilt: new keys fill the erased slots first.
    assert_eq!(store.insert(&fake_wrapped(20_000)).unwrap(), 1);
    assert_eq!(store.insert(&fake_wrapped(20_001)).unwrap(), 3);
    assert_eq!((store.len(), store.used()), (10_000, 5_002));
}

#[test]
fn concurrent_inserts_get_distinct_slots() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = Arc::new(SubjectKeyStore::open(&path).unwrap());
    // Some erased slots to race for as well as new ones.
    for n in 0..100 {
        store.insert(&fake_wrapped(n)).unwrap();
    }
    for n in (0..100).step_by(3) {
        store.erase(n).unwrap();
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..250u64)
                    .map(|i| {
                        let n = 1_000 + t * 1_000 + i;
                        (store.insert(&fake_wrapped(n)).unwrap(), n)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut inserted: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    inserted.sort();
    let mut slots: Vec<u64> = inserted.iter().map(|(slot, _)| *slot).collect();
    slots.dedup();
    assert_eq!(slots.len(), 1_000, "every insert got its own slot");
    assert_eq!(
        (store.len(), store.used()),
        (100 + 1_000 - 34, 100 - 34 + 1_000)
    );
    for (slot, n) in inserted {
        assert_eq!(store.get(slot).unwrap(), Some(fake_wrapped(n)));
    }
}

/// Writes `bytes` at `offset` of the file, as damage would.
fn damage(path: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

fn store_with_keys(dir: &tempfile::TempDir, n: u64) -> PathBuf {
    let path = store_path(dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    for i in 0..n {
        store.insert(&fake_wrapped(i)).unwrap();
    }
    store.sync().unwrap();
    path
}

#[test]
fn a_damaged_header_is_refused_with_a_clear_message() {
    let cases: [(u64, &[u8], &str); 4] = [
        (0, b"X", "is not a tessera subject key store"),
        (20, &2u32.to_be_bytes(), "format version 2"),
        (24, &64u32.to_be_bytes(), "slot size of 64 bytes"),
        (40, &[1], "reserved bytes"),
    ];
    for (offset, bytes, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_keys(&dir, 2);
        damage(&path, offset, bytes);
        let err = open_error(&path).to_string();
        assert!(err.contains(message), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        if offset != 20 {
            assert!(
                err.contains("restore the key store from its own backup"),
                "{err}"
            );
        }
    }
}

#[test]
fn a_file_of_the_wrong_length_is_refused_with_a_clear_message() {
    for len in [
        0,
        10,
        HEADER_LEN + 2 * SLOT_LEN + 1,
        HEADER_LEN + SLOT_LEN - 1,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_keys(&dir, 2);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let err = open_error(&path);
        assert!(matches!(err, KeyStoreError::Damaged { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("is damaged"), "{err}");
        assert!(
            err.contains("restore the key store from its own backup"),
            "{err}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_key_store_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let text = b"somebody else's file, long enough to hold a header. ".repeat(4);
    fs::File::create(&path).unwrap().write_all(&text).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, KeyStoreError::NotAKeyStore { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), text);
}

#[test]
fn an_erasure_cut_short_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(&dir, 3);
    let key = fake_wrapped(1);
    // Only the state byte reached the disk before a crash.
    damage(&path, HEADER_LEN + SLOT_LEN, &[0]);
    assert!(contains(&fs::read(&path).unwrap(), &key.ciphertext));
    let store = SubjectKeyStore::open(&path).unwrap();
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!((store.len(), store.used()), (3, 2));
    assert!(slot_bytes(&path, 1).iter().all(|&b| b == 0));
    assert!(!contains(&fs::read(&path).unwrap(), &key.ciphertext));
}

#[test]
fn a_slot_with_a_damaged_state_byte_is_reported_never_reused_and_erasable() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(&dir, 2);
    damage(&path, HEADER_LEN, &[0x41]);
    let store = SubjectKeyStore::open(&path).unwrap();
    let err = store.get(0).unwrap_err();
    assert!(
        matches!(
            err,
            KeyStoreError::DamagedSlot {
                slot: 0,
                state: 0x41,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("restore the key store"), "{err}");
    assert_eq!(store.used(), 2);
    assert_eq!(store.insert(&fake_wrapped(5)).unwrap(), 2);
    assert!(store.erase(0).unwrap());
    assert!(slot_bytes(&path, 0).iter().all(|&b| b == 0));
    assert_eq!(store.insert(&fake_wrapped(6)).unwrap(), 0);
}

#[test]
fn debug_shows_the_path_and_counts_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    let wrapped = fake_wrapped(3);
    store.insert(&wrapped).unwrap();
    let debug = format!("{store:?}");
    assert!(debug.starts_with("SubjectKeyStore { path: "), "{debug}");
    assert!(debug.ends_with("slots: 1, free: 0 }"), "{debug}");
}

#[test]
fn the_file_key_store_passes_the_key_store_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let open = || -> Arc<dyn tessera_privacy::KeyStore> {
        Arc::new(SubjectKeyStore::open(&path).expect("open the key store"))
    };
    tessera_privacy::key_store::conformance::run_all(&open);
}

#[test]
fn erase_all_overwrites_every_slot_with_zeros_and_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SubjectKeyStore::open(&path).unwrap();
    // More slots than one write of zeros covers (1024), one erased first.
    let slots: Vec<u64> = (0..1500)
        .map(|n| store.insert(&fake_wrapped(n)).unwrap())
        .collect();
    assert!(store.erase(slots[7]).unwrap());
    store.sync().unwrap();
    assert_eq!(
        store.erase_all().unwrap(),
        1499,
        "the slots that held a key"
    );
    assert_eq!(store.used(), 0);
    for slot in [0, 7, 1023, 1024, 1499] {
        assert_eq!(store.get(slot).unwrap(), None, "slot {slot}");
    }
    drop(store);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, HEADER_LEN + 1500 * SLOT_LEN);
    assert!(
        bytes[HEADER_LEN as usize..].iter().all(|b| *b == 0),
        "nothing but zeros after the header"
    );
    assert!(!contains(&bytes, &fake_wrapped(1499).ciphertext));
    let reopened = SubjectKeyStore::open(&path).unwrap();
    assert_eq!(reopened.used(), 0);
}
