//! The conformance suite against the sled backend, each case in a fresh
//! temporary directory; sled-specific behaviour (reopening, format) lives here too.

use tempfile::TempDir;
use tessera_store::{SledStore, Store, StoreError, conformance};

fn fixture() -> (TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SledStore::open(dir.path()).expect("a fresh store opens");
    (dir, store)
}

tessera_store::conformance_tests!(fixture);

#[test]
fn run_all_passes_on_sled() {
    let root = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SledStore::open(root.path().join(n.to_string())).unwrap()
    });
}

#[test]
fn flushed_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    conformance::flushed_writes_survive_reopen(|| SledStore::open(dir.path()).unwrap());
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"plain file").unwrap();
    let error = SledStore::open(&file).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("not-a-directory"), "{error}");
}

#[test]
fn a_store_debug_prints_its_path_and_no_contents() {
    let (dir, store) = fixture();
    store.append_audit("acme", 1, b"secret-entry").unwrap();
    let printed = format!("{store:?}");
    assert!(
        printed.contains(&*dir.path().to_string_lossy()),
        "{printed}"
    );
    assert!(!printed.contains("secret"), "{printed}");
}

#[test]
fn a_directory_already_open_is_refused_after_a_short_wait() {
    let (dir, _store) = fixture();
    let error = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(
        error.to_string().contains("no other Tessera process"),
        "{error}"
    );
}
