//! `tessera subject`: the subject rights from the operator's side: access
//! (`show`), export and deletion. Every read is recorded in the audit trail
//! as the operator `cli`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use tessera_plugins::Registry;
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_strategies::Strategies;
use tessera_vault::{DeletionStatus, Vault, VaultError};

use crate::data::{DataArgs, operator, rfc3339};

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Print everything held about a person, decrypted, as JSON (the access
    /// right). The read is recorded in the audit trail.
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    Show(ShowArgs),
    /// Write a person's data to files for them (the export right): one JSON
    /// file, or a directory of CSV tables. Files are created readable by their
    /// owner only and never overwrite an existing file.
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    Export(ExportArgs),
    /// Erase a person (and every subject merged into them): their keys are
    /// destroyed at once, which makes every copy of their records unreadable,
    /// including backups; their identities are suppressed; the purge then
    /// removes the records and prints the signed receipt.
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The tenant the subject belongs to.
    #[arg(long)]
    tenant: String,
    /// The subject id.
    subject: String,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One JSON file: the whole access view.
    Json,
    /// A directory of CSV tables (traits.csv, events.csv, consents.csv, …).
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant the subject belongs to.
    #[arg(long)]
    tenant: String,
    /// The subject id.
    subject: String,
    /// The export format.
    #[arg(long, value_enum)]
    format: Format,
    /// Where to write: a file for json, a directory (created if needed) for csv.
    #[arg(long, value_name = "PATH")]
    out: std::path::PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The tenant the subject belongs to.
    #[arg(long)]
    tenant: String,
    /// The subject id.
    subject: String,
    /// Why the person is erased, kept with the request and in the audit trail
    /// (do not put personal data here).
    #[arg(long, default_value = "subject request")]
    reason: String,
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(command: SubjectCommand) -> anyhow::Result<ExitCode> {
    match command {
        SubjectCommand::Show(args) => show(&args),
        SubjectCommand::Export(args) => export(&args),
        SubjectCommand::Delete(args) => delete(&args),
    }
}

/// The deployment's vault with the campaigns' decision log attached, as
/// the server has it: a person's decisions are part of what they see and
/// export, and go with their erasure. No plugin is loaded or called.
fn open(data: &DataArgs) -> anyhow::Result<(Arc<Vault>, Strategies)> {
    let vault = Arc::new(data.open()?);
    let runtime = Runtime::new(RuntimeConfig {
        epochs: false,
        ..RuntimeConfig::default()
    })?;
    let strategies = Strategies::new(vault.clone(), Registry::new(runtime, vault.clone(), false));
    Ok((vault, strategies))
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let (vault, _campaigns) = open(&args.data)?;
    let view = vault
        .access(&args.tenant, &args.subject, &operator())
        .map_err(|error| explain(&vault, &args.tenant, &args.subject, error))?;
    vault.flush()?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(ExitCode::SUCCESS)
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    // Checked before the export is made (and audited).
    check_out(&args.out, args.format)?;
    let (vault, _campaigns) = open(&args.data)?;
    let why = |error| explain(&vault, &args.tenant, &args.subject, error);
    match args.format {
        Format::Json => {
            let json = vault
                .export_json(&args.tenant, &args.subject, &operator())
                .map_err(why)?;
            write_private(&args.out, json.as_bytes())?;
            vault.flush()?;
            println!(
                "exported subject {} of tenant {} as JSON to {}",
                args.subject,
                args.tenant,
                args.out.display()
            );
        }
        Format::Csv => {
            let tables = vault
                .export_csv(&args.tenant, &args.subject, &operator())
                .map_err(why)?;
            create_private_dir(&args.out)?;
            for (name, content) in &tables {
                write_private(&args.out.join(name), content.as_bytes())?;
            }
            vault.flush()?;
            let names: Vec<&str> = tables.keys().map(String::as_str).collect();
            println!(
                "exported subject {} of tenant {} as {} CSV files to {}: {}",
                args.subject,
                args.tenant,
                tables.len(),
                args.out.display(),
                names.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn delete(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let (vault, _campaigns) = open(&args.data)?;
    let request = vault
        .request_deletion(&args.tenant, &args.subject, &args.reason, &operator())
        .map_err(|error| explain(&vault, &args.tenant, &args.subject, error))?;
    println!(
        "deletion request {} for subject {} of tenant {}",
        request.id, request.subject, args.tenant
    );
    if request.subjects.len() > 1 {
        println!(
            "  covers {} subjects merged into one person: {}",
            request.subjects.len(),
            request.subjects.join(", ")
        );
    }
    match request.keys_destroyed_at_ms {
        Some(at) => println!(
            "  keys destroyed:        {} (every copy of the records, backups included, is unreadable from now on)",
            rfc3339(at)
        ),
        None => println!("  keys destroyed:        not yet (the purge destroys them first)"),
    }
    println!("  identities suppressed: {}", request.identities_suppressed);
    println!("  deadline:              {}", rfc3339(request.deadline_ms));
    // Purges every due request, this one included.
    vault
        .run_jobs("cli")
        .context("the keys are destroyed, but the purge of the records failed; run `tessera jobs run` to finish it")?;
    let done = vault.deletion_request(&args.tenant, &request.id)?;
    vault.flush()?;
    match (&done.status, &done.receipt) {
        (DeletionStatus::Completed, Some(receipt)) => {
            let removed = &receipt.removed;
            println!(
                "  purge completed:       {}{}",
                rfc3339(receipt.completed_at_ms),
                if receipt.met_deadline {
                    ", within the deadline"
                } else {
                    ", AFTER the deadline"
                }
            );
            println!(
                "  removed:               {} subject records, {} identities, {} events, {} consent records, {} plugin state entries",
                removed.subjects,
                removed.identities,
                removed.events,
                removed.consents,
                removed.plugin_state
            );
            println!("receipt (digest and MAC under the tenant's receipt key):");
            println!("{}", serde_json::to_string_pretty(receipt)?);
        }
        _ => {
            println!("  the purge of the records is pending: run `tessera jobs run` to finish it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A subject that cannot be found is often one that was erased: say so, with
/// the request, rather than only "does not exist".
fn explain(vault: &Vault, tenant: &str, subject: &str, error: VaultError) -> anyhow::Error {
    if !matches!(
        error,
        VaultError::UnknownSubject { .. } | VaultError::SubjectErased { .. }
    ) {
        return error.into();
    }
    let erased_by = vault.deletion_requests(tenant).ok().and_then(|requests| {
        requests
            .into_iter()
            .filter(|request| request.subjects.iter().any(|s| s == subject))
            .max_by_key(|request| request.requested_at_ms)
    });
    match erased_by {
        Some(request) => anyhow!(
            "subject {subject:?} of tenant {tenant:?} was erased by deletion request {} \
             (requested {}, {}); nothing about it can be read any more",
            request.id,
            rfc3339(request.requested_at_ms),
            match request.status {
                DeletionStatus::Completed => "records purged",
                DeletionStatus::KeysDestroyed => "keys destroyed, records waiting for the purge",
                DeletionStatus::Pending => "waiting for the purge",
            }
        ),
        None => error.into(),
    }
}

/// Refuses an output that exists: a json file, or a csv directory that is
/// not empty.
fn check_out(out: &Path, format: Format) -> anyhow::Result<()> {
    let Ok(metadata) = out.symlink_metadata() else {
        return Ok(());
    };
    let empty_dir = metadata.is_dir()
        && std::fs::read_dir(out)
            .with_context(|| format!("cannot read the directory {}", out.display()))?
            .next()
            .is_none();
    if format == Format::Csv && empty_dir {
        return Ok(());
    }
    bail!(
        "{} already exists{}; refusing to overwrite it (choose another --out)",
        out.display(),
        if format == Format::Csv && metadata.is_dir() {
            " and is not empty"
        } else {
            ""
        }
    )
}

/// Creates a file that must not exist, readable by its owner only (it holds
/// personal data).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file: File = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} already exists; refusing to overwrite it (choose another --out)",
                path.display()
            )
        } else {
            anyhow!("cannot create {}: {error}", path.display())
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("cannot create the directory {}", path.display()))
}
