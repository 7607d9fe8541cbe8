//! Shared fixtures of the vault tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_privacy::MasterKey;
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, NewEvent, NormalizeRules,
    TenantSettings, Vault,
};

pub const TENANT: &str = "acme";
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// 2026-06-01T00:00:00Z: the tests' "now".
pub const NOW: i64 = 1_780_272_000_000;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub master_hex: String,
    pub clock: Arc<AtomicI64>,
}

impl Fixture {
    pub fn new() -> Self {
        let master = MasterKey::generate().expect("master key");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        master.write_new(&path).expect("write master key");
        let master_hex = std::fs::read_to_string(&path).expect("read master key");
        Self {
            dir,
            master_hex,
            clock: Arc::new(AtomicI64::new(NOW)),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn key_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn master(&self) -> MasterKey {
        MasterKey::from_hex(self.master_hex.trim()).expect("master key")
    }

    /// Opens the vault on `data_dir` (the live one unless given).
    pub fn open_at(&self, data_dir: &Path) -> Vault {
        let clock = self.clock.clone();
        Vault::open(data_dir, self.key_dir(), self.master())
            .expect("open vault")
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    }

    pub fn open(&self) -> Vault {
        self.open_at(&self.data_dir())
    }

    /// Opens the vault and creates the tenant with default settings (phones
    /// without a country code are Chinese).
    pub fn create(&self) -> Vault {
        let vault = self.open();
        vault
            .create_tenant(TENANT, settings(), &operator())
            .expect("create tenant");
        vault
    }

    pub fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }
}

pub fn settings() -> TenantSettings {
    TenantSettings {
        identity_rules: NormalizeRules {
            default_country_code: Some(86),
            ..NormalizeRules::default()
        },
        ..TenantSettings::default()
    }
}

pub fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

pub fn ingest_actor() -> Actor {
    Actor::new("ingest", "pipeline")
}

pub fn email(address: &str) -> (IdentityKind, String) {
    (IdentityKind::Email, address.to_owned())
}

pub fn phone(number: &str) -> (IdentityKind, String) {
    (IdentityKind::Phone, number.to_owned())
}

pub fn member(id: &str) -> (IdentityKind, String) {
    (IdentityKind::MemberId, id.to_owned())
}

pub fn device(id: &str) -> (IdentityKind, String) {
    (IdentityKind::DeviceId, id.to_owned())
}

pub fn event(source: &str, kind: &str, at_ms: i64, channel: Channel, amount: f64) -> NewEvent {
    let mut properties = BTreeMap::new();
    properties.insert("amount".to_owned(), json!(amount));
    NewEvent {
        source_id: Some(source.to_owned()),
        event_type: kind.to_owned(),
        at_ms,
        channel,
        properties,
    }
}

pub fn record(identities: Vec<(IdentityKind, String)>, events: Vec<NewEvent>) -> Incoming {
    Incoming {
        identities,
        events,
        ..Incoming::default()
    }
}

pub fn consent(purpose: &str) -> ConsentChange {
    ConsentChange {
        purpose: purpose.to_owned(),
        granted: true,
        method: "store_signup".to_owned(),
        given_at_ms: None,
    }
}

/// Every byte of every file under `dir`, with its path.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
