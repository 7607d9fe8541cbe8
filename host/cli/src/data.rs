//! The operator's data commands' common ground: where the data, the subject
//! keys and the master key are, and opening the vault over them. Also
//! `tessera tenant create` and `tessera jobs run`.
//!
//! Until the server exists, these commands open the data directory directly.
//! A running server holds it exclusively, so they refuse to run beside one
//! (the store names the directory and says so).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_privacy::MasterKey;
use tessera_store::SledStore;
use tessera_vault::{Actor, TenantSettings, Vault};

/// The environment variable that may hold the master key in hex; when set it
/// is used instead of the key file.
pub const MASTER_KEY_ENV: &str = "TESSERA_MASTER_KEY";

/// Where the deployment's data and keys are.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The data directory. A running server holds it exclusively: stop the
    /// server before running this command on its directory.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    pub data_dir: PathBuf,
    /// The key directory, holding the subject key store. Keep it outside the
    /// data directory (and out of its backups): erasing a subject destroys its
    /// key there, which is what makes old copies of the data unreadable.
    #[arg(long, env = "TESSERA_KEY_DIR", default_value = "tessera-keys")]
    pub key_dir: PathBuf,
    /// The master key file (not read when the environment variable
    /// TESSERA_MASTER_KEY holds the key in hex).
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY_FILE",
        default_value = "tessera-master.key"
    )]
    pub key_file: PathBuf,
    /// The most memory the store's page cache may take, in MiB (the store
    /// also keeps a little memory for every page it holds, cached or not).
    #[arg(
        long,
        env = "TESSERA_STORE_CACHE_MIB",
        default_value_t = DEFAULT_STORE_CACHE_MIB,
        value_parser = clap::value_parser!(u64).range(MIN_STORE_CACHE_MIB..)
    )]
    pub store_cache_mib: u64,
}

/// The store's page cache unless set otherwise, in MiB.
pub const DEFAULT_STORE_CACHE_MIB: u64 = tessera_store::DEFAULT_CACHE_BYTES >> 20;

/// The smallest page cache the store is run with, in MiB: below it every
/// read goes to the disk.
pub const MIN_STORE_CACHE_MIB: u64 = 8;

impl DataArgs {
    /// The master key: from TESSERA_MASTER_KEY if it is set, else the key file.
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if std::env::var_os(MASTER_KEY_ENV).is_some() {
            Ok(MasterKey::from_env(MASTER_KEY_ENV)?)
        } else {
            Ok(MasterKey::from_file(&self.key_file)?)
        }
    }

    /// Opens an existing deployment: the data and key directories must exist.
    pub fn open(&self) -> anyhow::Result<Vault> {
        self.check_separate()?;
        if !self.data_dir.is_dir() {
            bail!(
                "the data directory {} does not exist; point --data-dir (or TESSERA_DATA_DIR) \
                 at the deployment's data directory, or create a tenant there with \
                 `tessera tenant create` first",
                self.data_dir.display()
            );
        }
        if !self.key_dir.is_dir() {
            bail!(
                "the key directory {} does not exist; point --key-dir (or TESSERA_KEY_DIR) at \
                 the directory holding the subject key store (without it no subject's records \
                 can be read)",
                self.key_dir.display()
            );
        }
        let master = self.master_key()?;
        self.open_with(master)
    }

    /// Opens the deployment on a store of its own (PostgreSQL: `[storage]`
    /// of `tessera serve`) instead of the data directory; with `create` the
    /// key directory is created if needed, else it must exist.
    pub fn open_on(
        &self,
        store: Arc<dyn tessera_store::Store>,
        create: bool,
    ) -> anyhow::Result<Vault> {
        if !create && !self.key_dir.is_dir() {
            bail!(
                "the key directory {} does not exist; point --key-dir (or TESSERA_KEY_DIR) at \
                 the directory holding the subject key store (without it no subject's records \
                 can be read)",
                self.key_dir.display()
            );
        }
        let master = self.master_key()?;
        Ok(Vault::new(store, &self.key_dir, master)?)
    }

    /// Opens the deployment on a store and a key store that other nodes
    /// share; the key directory (created if needed) only names the node.
    pub fn open_shared(
        &self,
        store: Arc<dyn tessera_store::Store>,
        keys: Arc<dyn tessera_privacy::KeyStore>,
    ) -> anyhow::Result<Vault> {
        let master = self.master_key()?;
        Ok(Vault::with_key_store(store, keys, &self.key_dir, master)?)
    }

    /// Opens the deployment, creating the data and key directories if needed.
    pub fn open_or_create(&self, master: MasterKey) -> anyhow::Result<Vault> {
        self.check_separate()?;
        self.open_with(master)
    }

    fn open_with(&self, master: MasterKey) -> anyhow::Result<Vault> {
        let cache_bytes = self.store_cache_mib.saturating_mul(1 << 20);
        let store = SledStore::open_with_cache(&self.data_dir, cache_bytes)?;
        Ok(Vault::new(Arc::new(store), &self.key_dir, master)?)
    }

    /// Refuses a key directory inside the data directory: a copy or backup of
    /// the data directory would then carry the subject keys along, and
    /// erasure would no longer reach it.
    fn check_separate(&self) -> anyhow::Result<()> {
        let data = std::path::absolute(&self.data_dir)
            .with_context(|| format!("cannot resolve {}", self.data_dir.display()))?;
        let keys = std::path::absolute(&self.key_dir)
            .with_context(|| format!("cannot resolve {}", self.key_dir.display()))?;
        let data = data.canonicalize().unwrap_or(data);
        let keys = keys.canonicalize().unwrap_or(keys);
        if keys.starts_with(&data) {
            bail!(
                "the key directory {} is inside the data directory {}; keep the subject keys \
                 outside it (and out of its backups), or erased subjects stay readable in \
                 every copy of the data",
                self.key_dir.display(),
                self.data_dir.display()
            );
        }
        Ok(())
    }
}

/// Whom the audit trail names for what an operator does from the command line.
pub fn operator() -> Actor {
    Actor::new("operator", "cli")
}

/// A time in milliseconds since the Unix epoch as RFC 3339 UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---- tessera tenant ----------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with a fresh tenant key wrapped under the master key
    /// (creates the data and key directories if they do not exist).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The tenant id.
    tenant: String,
    /// A JSON file of tessera_vault::TenantSettings (trait schema, purposes,
    /// retention, deletion deadline, identity rules); fields left out take
    /// their defaults. Without it, the default settings are used.
    #[arg(long, value_name = "FILE.json")]
    settings: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

pub fn tenant(command: TenantCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Create(args) => create_tenant(&args),
    }
}

fn create_tenant(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let settings = match &args.settings {
        Some(path) => read_settings(path)?,
        None => TenantSettings::default(),
    };
    let master = args.data.master_key()?;
    let master_id = master.id().to_owned();
    let vault = args.data.open_or_create(master)?;
    vault.create_tenant(&args.tenant, settings, &operator())?;
    vault.flush()?;
    println!(
        "created tenant {} in {} (tenant key wrapped under master key {master_id})",
        args.tenant,
        args.data.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_settings(path: &Path) -> anyhow::Result<TenantSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the settings file {} is not valid tenant settings JSON",
            path.display()
        )
    })
}

// ---- tessera jobs ------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Sweep every tenant's retention (removing expired events and sending
    /// people with no activity within their retention period down the
    /// deletion path), then run every due purge. `tessera serve` runs
    /// these itself ([jobs] in its settings); this is for a data directory
    /// no server runs on.
    Run(JobsArgs),
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    data: DataArgs,
}

pub fn jobs(command: JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::Run(args) => run_jobs(&args),
    }
}

fn run_jobs(args: &JobsArgs) -> anyhow::Result<ExitCode> {
    let vault = args.data.open()?;
    let tenants = vault.tenant_ids()?;
    for tenant in &tenants {
        let sweep = vault
            .sweep_retention(tenant)
            .with_context(|| format!("the retention sweep of tenant {tenant} failed"))?;
        println!(
            "tenant {tenant}: retention sweep scanned {} subjects, removed {} expired events, \
             erased {} inactive subjects",
            sweep.subjects_scanned,
            sweep.events_removed,
            sweep.subjects_expired.len()
        );
    }
    if tenants.is_empty() {
        println!("no tenants to sweep");
    }
    let jobs = vault.run_jobs("cli")?;
    vault.flush()?;
    println!("purges completed: {}", jobs.purges_completed.len());
    for request in &jobs.purges_completed {
        println!("  deletion request {request}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_converts_civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_780_272_000_000), "2026-06-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799_999), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199_000), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339(-62_135_596_800_000), "0001-01-01T00:00:00Z");
    }
}
