//! `tessera audit`: checking and reading a tenant's hash-chained audit trail.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::data::DataArgs;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk a tenant's audit chain and report every edited, removed,
    /// reordered or added entry. Exits 0 if the trail is intact, 1 if not.
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    Verify(VerifyArgs),
    /// Print a tenant's audit entries as JSON lines, oldest first (as stored:
    /// use `verify` to check them).
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    List(ListArgs),
    /// After the newest entry of a tenant's trail was destroyed (every
    /// audited write is refused until then), start a new chain. `verify`
    /// keeps reporting the damage and the restart.
    ///
    /// Works on the data directory directly, which a running server holds
    /// exclusively: stop the server first.
    Restart(RestartArgs),
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The tenant whose trail to restart.
    #[arg(long)]
    tenant: String,
    /// Who is restarting it (recorded in the restart entry).
    #[arg(long)]
    operator: String,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The tenant whose trail to check.
    #[arg(long)]
    tenant: String,
    /// Print the report as JSON (with an `intact` field) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The tenant whose trail to print.
    #[arg(long)]
    tenant: String,
    /// The first sequence number to print (entries are numbered from 1).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Print at most this many entries [default: all].
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::List(args) => list(&args),
        AuditCommand::Restart(args) => {
            let vault = args.data.open()?;
            let actor = tessera_vault::Actor::new("operator", args.operator.as_str());
            let seq = vault.restart_audit_chain(&args.tenant, &actor)?;
            println!(
                "audit trail of tenant {} restarted at entry {seq}; `tessera audit verify` \
                 will keep reporting the damage before it",
                args.tenant
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let vault = args.data.open()?;
    let report = vault.verify_audit(&args.tenant)?;
    let intact = report.intact();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("intact".into(), intact.into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if intact {
        println!(
            "audit trail of tenant {}: {} {}, intact (head {}, head tag {})",
            report.tenant,
            report.entries,
            if report.entries == 1 {
                "entry"
            } else {
                "entries"
            },
            report.head,
            report.head_tag
        );
    } else {
        println!(
            "audit trail of tenant {}: {} entries read, head {}: NOT intact, {} problem{}:",
            report.tenant,
            report.entries,
            report.head,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
        for problem in &report.problems {
            println!("  entry {}: {}", problem.seq, problem.reason);
        }
        println!(
            "the trail was changed outside Tessera; restore the data directory from a backup \
             and compare its head tag with the one anchored elsewhere"
        );
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    const PAGE: usize = 1024;
    let vault = args.data.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut from = args.from.max(1);
    let mut left = args.limit.unwrap_or(usize::MAX);
    while left > 0 {
        let page = vault.audit_entries(&args.tenant, from, left.min(PAGE))?;
        let Some(last) = page.last().map(|entry| entry.seq) else {
            break;
        };
        for entry in &page {
            let line = serde_json::to_string(entry)?;
            if let Err(error) = writeln!(out, "{line}") {
                return closed_or(error);
            }
        }
        left -= page.len();
        from = last + 1;
    }
    if let Err(error) = out.flush() {
        return closed_or(error);
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that stopped reading (`| head`) is not an error.
fn closed_or(error: std::io::Error) -> anyhow::Result<ExitCode> {
    if error.kind() == ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(error.into())
    }
}
