//! `tessera keys`: the operator's key commands. `init` creates the master key
//! that wraps every tenant key, `rotate` replaces it; they never print or log
//! a key itself, only its id. `publisher new` makes a plugin publisher's
//! signing key pair (see `bundle.rs`); `tls-dev` a self-signed TLS
//! certificate for trying HTTPS locally.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_privacy::{MasterKey, MasterKeyError, WrappedKey};
use tessera_store::{SledStore, Store};

use crate::data::MASTER_KEY_ENV;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new master key file (mode 0600; an existing file is never overwritten).
    Init(InitArgs),
    /// Print the id of the master key in a file (to tell keys apart without revealing them).
    Id(InitArgs),
    /// Replace the master key: generate a new one, rewrap every tenant key
    /// under it, and retire the old key file as `<key-file>.retired-<old id>`.
    ///
    /// The new key is first written to `<key-file>.new`; running the command
    /// again after an interruption at any point reuses that key and finishes
    /// the rotation. No record is re-encrypted. Works on the data directory
    /// directly, which a running server holds exclusively: stop the server
    /// first, and start it again with the new key file.
    Rotate(RotateArgs),
    /// Move a PostgreSQL deployment's subject keys from the key file
    /// (`storage.keys = "file"`) into the database, so that several servers
    /// can share them.
    ///
    /// Reads the server's settings (`--config`, then the environment), which
    /// must already say `storage.keys = "database"` (and `storage.keys_url`
    /// for a key database of its own): the keys go where those name, each
    /// in its own slot, in one transaction. Then the key file is overwritten
    /// with zeros and removed. With every server stopped (a running one
    /// holds the file and is refused); running it again after an
    /// interruption finishes the move.
    Move(MoveArgs),
    /// Plugin publishers' signing keys.
    #[command(subcommand)]
    Publisher(crate::bundle::PublisherCommand),
    /// Create a self-signed TLS certificate and key for local use (HTTPS on
    /// localhost, 127.0.0.1 and ::1): `tls-cert.pem` and `tls-key.pem`
    /// (mode 0600). Never for production: no client trusts it unless told to.
    TlsDev(TlsDevArgs),
}

#[derive(Debug, Args)]
pub struct TlsDevArgs {
    /// Where to write the files (created if missing; existing files are
    /// never overwritten).
    #[arg(long, default_value = "tessera-tls")]
    dir: PathBuf,
    /// Names and addresses the certificate is valid for, besides
    /// localhost, 127.0.0.1 and ::1 (repeat for several).
    #[arg(long = "host", value_name = "NAME|IP")]
    hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The master key file: read as the old key, replaced by the new one.
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY_FILE",
        default_value = "tessera-master.key"
    )]
    key_file: PathBuf,
    /// The data directory whose tenant keys are rewrapped.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Where the keys go: `database` (the only place).
    #[arg(long, value_parser = ["database"])]
    to: String,
    /// The server's settings file (as for `tessera serve`).
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE.toml")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The master key file.
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY_FILE",
        default_value = "tessera-master.key"
    )]
    key_file: PathBuf,
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init(args) => {
            let key = MasterKey::generate()?;
            key.write_new(&args.key_file)?;
            println!(
                "created master key {} in {}",
                key.id(),
                args.key_file.display()
            );
            println!("keep a copy somewhere safe: without it, no tenant's data can be read");
        }
        KeysCommand::Id(args) => {
            let key = MasterKey::from_file(&args.key_file)?;
            println!("{}", key.id());
        }
        KeysCommand::Rotate(args) => rotate(&args)?,
        KeysCommand::Move(args) => move_keys(&args)?,
        KeysCommand::Publisher(command) => return crate::bundle::publisher(command),
        KeysCommand::TlsDev(args) => tls_dev(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys move --to database`: the key file's keys into the table, slot
/// for slot, then the file shredded.
fn move_keys(args: &MoveArgs) -> anyhow::Result<()> {
    use tessera_privacy::{KeyStore, SubjectKeyStore};

    debug_assert_eq!(args.to, "database");
    let config = crate::serve::load_settings(args.config.as_deref())?;
    let Some(records) = config.storage.postgres() else {
        bail!(
            "storage.backend is \"sled\": with sled the subject keys stay in the key file; \
             `tessera keys move` is for a PostgreSQL deployment (storage.backend = \"postgres\")"
        );
    };
    if config.storage.keys() != crate::serve::KeysBackend::Database {
        bail!(
            "storage.keys is \"file\": set storage.keys = \"database\" (and storage.keys_url \
             for a key database of its own) in the settings first; the keys go where those name"
        );
    }
    let file = config.server.key_dir.join(tessera_vault::SUBJECT_KEYS_FILE);
    if !file.exists() {
        bail!(
            "there is no key file {}: nothing to move (is server.key_dir, or \
             TESSERA_KEY_DIR, the deployment's key directory?)",
            file.display()
        );
    }
    let source = SubjectKeyStore::open(&file).with_context(|| {
        format!(
            "cannot open the key file {} (stop every server first)",
            file.display()
        )
    })?;
    let store = tessera_store_postgres::PgStore::open_with(&records)
        .context("cannot open the records' database")?;
    let target = match config.storage.key_database() {
        Some(options) => tessera_store_postgres::PgKeyStore::open(&options)
            .context("cannot open the key database (storage.keys_url / keys_schema)")?,
        None => store.key_store(),
    };
    let mut keys = Vec::new();
    for slot in 0..source.len() {
        if let Some(key) = source.get(slot)? {
            keys.push((slot, key));
        }
    }
    let stored = target.import(&keys)?;
    // `import` compared every key with what the table holds once stored,
    // in its transaction: the file goes only after that.
    let shredded = source.erase_all()?;
    drop(source);
    std::fs::remove_file(&file)
        .with_context(|| format!("cannot remove {} (its keys are zeros)", file.display()))?;
    println!(
        "moved {} subject keys from {} to {} ({stored} stored now, {} there already); the key \
         file was overwritten with zeros ({shredded} keys) and removed",
        keys.len(),
        file.display(),
        target.location(),
        keys.len() as u64 - stored
    );
    println!(
        "start the servers with storage.keys = \"database\": they may now run as several nodes"
    );
    Ok(())
}

/// `keys tls-dev`: a self-signed certificate for the local names and
/// `--host`s, its key readable by the owner only.
fn tls_dev(args: &TlsDevArgs) -> anyhow::Result<()> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    for host in &args.hosts {
        let host = host.trim().trim_matches(['[', ']']).to_owned();
        if host.is_empty() {
            bail!("--host needs a name or an address");
        }
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let key = rcgen::KeyPair::generate().context("cannot make a key pair")?;
    // rcgen makes an address of every name that parses as one.
    let mut params = rcgen::CertificateParams::new(names.clone())
        .with_context(|| format!("cannot make a certificate for {}", names.join(", ")))?;
    // A name of its own: a client that trusts one development certificate
    // must not mistake another for its issuer.
    let id: String = key.public_key_raw()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Tessera development certificate {id}"),
    );
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let cert_path = args.dir.join("tls-cert.pem");
    let key_path = args.dir.join("tls-key.pem");
    if cert_path.exists() {
        bail!(
            "{} exists; a certificate is never overwritten (choose another --dir)",
            cert_path.display()
        );
    }
    crate::bundle::write_secret(&key_path, key.serialize_pem().trim_end())?;
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    println!(
        "wrote {} and {} (the key, mode 0600): a self-signed certificate for {}, for local \
         use only",
        cert_path.display(),
        key_path.display(),
        names.join(", ")
    );
    println!("serve HTTPS with it:");
    println!(
        "  TESSERA_TLS_CERT_FILE={} TESSERA_TLS_KEY_FILE={} tessera serve",
        cert_path.display(),
        key_path.display()
    );
    println!("and trust it in a client, e.g.:");
    println!(
        "  curl --cacert {} https://localhost:8080/healthz",
        cert_path.display()
    );
    Ok(())
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory a path is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes renames and links in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Master-key rotation. Every step can be repeated:
///
/// 1. the new key is written to `K.new` (or, if that exists from an
///    interrupted run, loaded from it);
/// 2. every tenant key is rewrapped under it (tenants already under it are
///    skipped) and the store flushed;
/// 3. `K` is hard-linked to `K.retired-<old id>` (already there after an
///    interruption: checked to hold the old key);
/// 4. `K.new` is renamed over `K`, atomically.
///
/// Until step 4, `K` holds the old key and the store may hold tenant keys
/// under either key; a re-run finishes from there. After step 4 the
/// rotation is done (`K.new` no longer exists).
fn rotate(args: &RotateArgs) -> anyhow::Result<()> {
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        bail!(
            "{MASTER_KEY_ENV} is set, but `keys rotate` rotates the key file {}; unset \
             {MASTER_KEY_ENV} for the rotation, and afterwards give the server the new key \
             (the file, or its contents in {MASTER_KEY_ENV})",
            args.key_file.display()
        );
    }
    let key_file = &args.key_file;
    let new_file = with_suffix(key_file, ".new");
    let old = MasterKey::from_file(key_file)?;
    if !args.data_dir.is_dir() {
        bail!(
            "the data directory {} does not exist; point --data-dir (or TESSERA_DATA_DIR) at \
             the deployment's data directory",
            args.data_dir.display()
        );
    }
    // Opened before the new key is made: a server holding the directory
    // stops the rotation before anything is written.
    let store = SledStore::open(&args.data_dir)?;

    let (new, resumed) = match MasterKey::from_file(&new_file) {
        Ok(new) => (new, true),
        Err(MasterKeyError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
            let new = MasterKey::generate()?;
            new.write_new(&new_file)?;
            (new, false)
        }
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "{} is left from an interrupted rotation but cannot be used",
                    new_file.display()
                )
            });
        }
    };
    if new.id() == old.id() {
        bail!(
            "{} holds the same key as {} ({}): the rotation already finished; delete {} and \
             run `tessera keys rotate` again for a new rotation",
            new_file.display(),
            key_file.display(),
            old.id(),
            new_file.display()
        );
    }
    if resumed {
        println!(
            "resuming an interrupted rotation with the new key {} from {}",
            new.id(),
            new_file.display()
        );
    }

    let rewrapped = tessera_vault::rotate_master_key(&store, &old, &new).with_context(|| {
        format!(
            "the rotation stopped; {} still holds the old key {} and {} the new key {}: run \
             `tessera keys rotate` again to finish",
            key_file.display(),
            old.id(),
            new_file.display(),
            new.id()
        )
    })?;
    store.flush()?;
    // Retire the old key only once every tenant key is under the new one.
    let mut tenants = 0;
    for record in store.tenants()? {
        let wrapped: WrappedKey = serde_json::from_slice(&record.wrapped_key)
            .with_context(|| format!("tenant {}'s key record cannot be decoded", record.id))?;
        if wrapped.master_key_id != new.id() {
            bail!(
                "tenant {} is still wrapped under master key {} after the rotation; {} keeps \
                 the old key",
                record.id,
                wrapped.master_key_id,
                key_file.display()
            );
        }
        tenants += 1;
    }
    drop(store);

    let retired = with_suffix(key_file, &format!(".retired-{}", old.id()));
    match std::fs::hard_link(key_file, &retired) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let there = MasterKey::from_file(&retired)?;
            if there.id() != old.id() {
                bail!(
                    "{} exists but holds key {}, not the old key {}; move it away and run \
                     `tessera keys rotate` again",
                    retired.display(),
                    there.id(),
                    old.id()
                );
            }
        }
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "cannot keep the old key as {}; run `tessera keys rotate` again to finish",
                    retired.display()
                )
            });
        }
    }
    let dir = parent_dir(key_file);
    sync_dir(dir)?;
    std::fs::rename(&new_file, key_file).with_context(|| {
        format!(
            "cannot move {} to {}; run `tessera keys rotate` again to finish",
            new_file.display(),
            key_file.display()
        )
    })?;
    sync_dir(dir)?;

    println!("rotated the master key: {} → {}", old.id(), new.id());
    println!(
        "rewrapped {rewrapped} tenant key{} ({tenants} tenant{} now under the new key)",
        if rewrapped == 1 { "" } else { "s" },
        if tenants == 1 { "" } else { "s" },
    );
    println!("{} now holds the new key {}", key_file.display(), new.id());
    println!(
        "the old key {} was kept as {}: it is still needed to read backups of the data \
         directory made before this rotation; destroy it once those backups have expired",
        old.id(),
        retired.display()
    );
    Ok(())
}
