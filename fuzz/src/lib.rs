//! What several fuzz targets share: a vault in a temporary directory with one
//! tenant and one person, made once per fuzzing process.

use std::sync::{Arc, OnceLock};

use tessera_api::segment::{Defaults, Kind, convert};
use tessera_privacy::MasterKey;
use tessera_vault::{Actor, TenantSettings, Vault};

/// The tenant of [`fixture`].
pub const TENANT: &str = "acme";

/// A vault with [`TENANT`] (default settings) and one person, `user-1`.
#[derive(Debug)]
pub struct Fixture {
    pub vault: Arc<Vault>,
    /// The subject id of `user-1`.
    pub subject: String,
    /// Kept so the directory lives as long as the process.
    _dir: tempfile::TempDir,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let master = MasterKey::generate().expect("a master key");
        let vault = Vault::open(dir.path().join("data"), dir.path().join("keys"), master)
            .expect("a vault");
        let operator = Actor::new("operator", "fuzz");
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator)
            .expect("a tenant");
        let settings = vault.settings(TENANT).expect("the tenant's settings");
        let message = serde_json::from_str(
            r#"{"type":"identify","userId":"user-1","messageId":"m-1","timestamp":"2026-01-01T00:00:00Z"}"#,
        )
        .expect("a message");
        let incoming = convert(
            message,
            Some(Kind::Identify),
            &Defaults::default(),
            &settings,
            1_767_225_600_000,
        )
        .expect("a valid message");
        let (_, outcomes) = vault
            .ingest_batch(TENANT, &[incoming], &operator)
            .expect("ingest");
        let subject = outcomes
            .first()
            .and_then(|o| o.subject.clone())
            .expect("a subject");
        Fixture {
            vault: Arc::new(vault),
            subject,
            _dir: dir,
        }
    })
}
