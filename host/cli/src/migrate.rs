//! `tessera migrate`: copies a sled data directory into PostgreSQL record for
//! record, byte for byte, then verifies the copy by counts and digests.
//!
//! It only reads the source (through the [`Store`] trait's reads) and never
//! decrypts anything: records, wrapped keys and audit entries are copied as
//! the stores hold them, so the copy is readable with the same master key and
//! subject key directory, which this command neither reads nor copies (the
//! subject keys are not in the data store). It is restartable without a
//! checkpoint: a subject is written with its identities, events and consents
//! in one transaction, every other record is looked up before it is written,
//! so a second run copies only what the first did not, and a record that is
//! already in the destination with other contents stops the copy and is
//! named. Memory is bounded by a page of records (and the largest subject's
//! events), not by the size of a tenant.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};
use tessera_runtime::StateStore;
use tessera_store::{
    AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, NewEvents, SledStore, Store,
    StoreError, SubjectAppend, SubjectRecord,
};
use tessera_store_postgres::{PgOptions, PgStore};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The sled data directory to copy (the server's `server.data_dir`).
    /// Stop the server first: a running server holds the directory, and
    /// the copy must see no more writes. It is only read.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The PostgreSQL database to copy into, as a URL
    /// (postgres://user:password@host:port/database), as `storage.url`.
    #[arg(long, value_name = "URL")]
    to: String,
    /// A schema of its own for Tessera's tables in that database (a
    /// lowercase SQL identifier, created if missing), as `storage.schema`.
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,
    /// A PEM file of the CAs that may sign the database server's
    /// certificate, as `storage.ca_file` (or `sslrootcert` in the URL);
    /// with it `sslmode` defaults to `verify-full`.
    #[arg(long, env = "TESSERA_STORAGE_CA_FILE", value_name = "FILE.pem")]
    ca_file: Option<PathBuf>,
    /// Copy nothing: only compare the two stores by counts and digests per
    /// tenant and record kind, and exit 1 if they differ.
    #[arg(long)]
    verify_only: bool,
    /// No progress bar (it is also left out when standard error is not a
    /// terminal).
    #[arg(long)]
    quiet: bool,
}

/// Records read from a store at a time.
const PAGE: usize = 256;
/// The most events one destination transaction writes (a subject with more
/// is written on its own, all at once).
const BATCH_EVENTS: usize = 10_000;
/// The page cache of the source's sled database: the copy reads every
/// record once, so a large cache buys nothing.
const SOURCE_CACHE_BYTES: u64 = 64 << 20;
/// Connections to the destination.
const POOL_SIZE: u32 = 2;

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let source = open_source(&args.from)?;
    let mut options = PgOptions::new(&args.to);
    options.schema.clone_from(&args.schema);
    options.pool_size = POOL_SIZE;
    options.ca_file.clone_from(&args.ca_file);
    let destination = PgStore::open_with(&options).context("cannot open the destination")?;
    println!(
        "tessera migrate: from the sled data directory {} to PostgreSQL {} ({})",
        args.from.display(),
        destination.target(),
        destination.tls()
    );
    if let Some(warning) = destination.tls_warning() {
        eprintln!("tessera migrate: warning: --to: {warning}");
    }
    if !args.verify_only {
        let progress = Progress::new(args.quiet);
        let copied = copy(&source, &destination, &progress)?;
        progress.clear();
        for (tenant, tally) in &copied {
            let whose = if tenant == ALL_TENANTS {
                "jobs"
            } else {
                tenant
            };
            println!(
                "{whose}: {} records copied, {} already in the destination",
                tally.copied, tally.present
            );
        }
    }
    let progress = Progress::new(args.quiet);
    let report = verify(&source, &destination, &progress)?;
    progress.clear();
    print!("{}", report.table());
    println!(
        "The subject keys are not in the data store and were not copied: run the server on \
         PostgreSQL with the same key directory (server.key_dir) and master key as on sled."
    );
    let differences = report.differences();
    if differences.is_empty() {
        println!(
            "verified: the destination holds exactly what {} holds",
            args.from.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: verification failed, the destination differs from the source in {} \
             place{}:",
            differences.len(),
            if differences.len() == 1 { "" } else { "s" }
        );
        for difference in &differences {
            eprintln!("  {difference}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Opens the source without creating anything: the directory must hold a
/// sled database already, and no other process may have it open.
fn open_source(dir: &Path) -> anyhow::Result<SledStore> {
    if !dir.is_dir() {
        bail!(
            "--from {}: no such directory; give the data directory of the sled deployment \
             (server.data_dir)",
            dir.display()
        );
    }
    if !dir.join("conf").is_file() || !dir.join("db").is_file() {
        bail!(
            "--from {}: not a Tessera data directory (it holds no sled database); give the \
             data directory of the sled deployment (server.data_dir)",
            dir.display()
        );
    }
    match SledStore::open_with_cache(dir, SOURCE_CACHE_BYTES) {
        Ok(store) => Ok(store),
        Err(StoreError::Open { detail, .. }) if detail.contains("could not acquire lock") => {
            bail!(
                "the data directory {} is in use by another process, most likely a running \
                 `tessera serve`: stop it first (the copy must see no more writes), then run \
                 `tessera migrate` again",
                dir.display()
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// A spinner on standard error with the count of records done.
struct Progress(ProgressBar);

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {human_pos} records ({per_sec}) {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self(bar)
    }

    fn start(&self, what: String) {
        self.0.set_position(0);
        self.0.reset_elapsed();
        self.0.set_message(what);
    }

    fn note(&self, what: String) {
        self.0.set_message(what);
    }

    fn add(&self, records: usize) {
        self.0.inc(records as u64);
    }

    fn clear(&self) {
        self.0.finish_and_clear();
    }
}

// ---- copy ---------------------------------------------------------------

/// What one tenant's copy did.
#[derive(Debug, Default)]
struct Tally {
    copied: u64,
    present: u64,
}

/// The jobs' row in reports: jobs belong to no tenant.
const ALL_TENANTS: &str = "(all tenants)";

/// Refuses the copy: the destination holds other data under the same name.
fn conflict(tenant: &str, what: impl std::fmt::Display) -> anyhow::Error {
    let whose = if tenant == ALL_TENANTS {
        "the job queue".to_owned()
    } else {
        format!("tenant {tenant:?}")
    };
    anyhow::anyhow!(
        "{whose}: the destination already holds different data: {what}; migrate into an \
         empty database or schema (--schema), or into the one an earlier run of this command \
         filled from this same data directory"
    )
}

/// A short, stable name for an identity hash in messages.
fn short(hash: &IdentityHash) -> String {
    hex::encode(&hash[..8])
}

fn copy(
    source: &SledStore,
    destination: &PgStore,
    progress: &Progress,
) -> anyhow::Result<BTreeMap<String, Tally>> {
    let mut tallies = BTreeMap::new();
    for tenant in source.tenants()? {
        let t = tenant.id.as_str();
        progress.start(format!("copying tenant {t}"));
        let mut tally = Tally::default();
        match destination.tenant(t)? {
            Some(theirs) if theirs != tenant => {
                return Err(conflict(
                    t,
                    "its tenant record (wrapped tenant key or settings) differs",
                ));
            }
            Some(_) => tally.present += 1,
            None => {
                destination.put_tenant(&tenant)?;
                tally.copied += 1;
            }
        }
        let (head, theirs) = (source.audit_head(t)?, destination.audit_head(t)?);
        if theirs > head {
            return Err(conflict(
                t,
                format!("its audit trail reaches entry {theirs}, the source's only {head}"),
            ));
        }
        copy_subjects(source, destination, t, progress, &mut tally)?;
        copy_suppressions(source, destination, t, progress, &mut tally)?;
        copy_documents(source, destination, t, progress, &mut tally)?;
        copy_state(source, destination, t, progress, &mut tally)?;
        copy_audit(source, destination, t, head, progress, &mut tally)?;
        tallies.insert(tenant.id.clone(), tally);
    }
    progress.start("copying jobs".into());
    let mut tally = Tally::default();
    copy_jobs(source, destination, progress, &mut tally)?;
    tallies.insert(ALL_TENANTS.to_owned(), tally);
    Ok(tallies)
}

/// A subject and everything keyed to it.
#[derive(Debug, PartialEq, Eq)]
struct FullSubject {
    record: SubjectRecord,
    identities: Vec<IdentityHash>,
    events: Vec<EventRecord>,
    consents: Vec<ConsentRecord>,
}

impl FullSubject {
    fn read(store: &dyn Store, tenant: &str, record: SubjectRecord) -> Result<Self, StoreError> {
        let id = record.id.as_str();
        Ok(Self {
            identities: store.identities_of(tenant, id)?,
            events: store.events(tenant, id, i64::MIN, i64::MAX)?,
            consents: store.consents(tenant, id)?,
            record,
        })
    }

    fn records(&self) -> usize {
        1 + self.identities.len() + self.events.len() + self.consents.len()
    }

    /// What differs between this subject and `theirs`, in words.
    fn difference(&self, theirs: &Self) -> Option<String> {
        let id = &self.record.id;
        if self.record != theirs.record {
            Some(format!("the record of subject {id:?} differs"))
        } else if self.identities != theirs.identities {
            Some(format!("the identities of subject {id:?} differ"))
        } else if self.events != theirs.events {
            Some(format!(
                "the events of subject {id:?} differ ({} in the source, {} in the destination)",
                self.events.len(),
                theirs.events.len()
            ))
        } else if self.consents != theirs.consents {
            Some(format!("the consent history of subject {id:?} differs"))
        } else {
            None
        }
    }
}

fn copy_subjects(
    source: &SledStore,
    destination: &PgStore,
    t: &str,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    progress.note(format!(
        "tenant {t}: subjects, identities, events, consents"
    ));
    let mut after: Option<String> = None;
    let mut pending: Vec<FullSubject> = Vec::new();
    let mut pending_events = 0;
    loop {
        let page = source.subjects(t, after.as_deref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for record in page {
            let ours = FullSubject::read(source, t, record)?;
            let records = ours.records();
            match destination.subject(t, &ours.record.id)? {
                Some(record) => {
                    let theirs = FullSubject::read(destination, t, record)?;
                    if let Some(what) = ours.difference(&theirs) {
                        return Err(conflict(t, what));
                    }
                    tally.present += records as u64;
                    progress.add(records);
                }
                None => {
                    pending_events += ours.events.len();
                    pending.push(ours);
                    if pending_events >= BATCH_EVENTS || pending.len() >= PAGE {
                        write_subjects(destination, t, &pending, progress, tally)?;
                        pending.clear();
                        pending_events = 0;
                    }
                }
            }
        }
    }
    write_subjects(destination, t, &pending, progress, tally)
}

/// Creates subjects with their identities, events and consents in one
/// transaction: all of them, or (on any error) none.
fn write_subjects(
    destination: &PgStore,
    t: &str,
    subjects: &[FullSubject],
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if subjects.is_empty() {
        return Ok(());
    }
    let appends: Vec<SubjectAppend<'_>> = subjects
        .iter()
        .map(|s| SubjectAppend {
            subject: &s.record.id,
            events: &s.events,
            update: Some(&s.record),
            create: true,
            links: &s.identities,
            consents: &s.consents,
        })
        .collect();
    match destination.append_new(t, &appends) {
        Ok(NewEvents::Stored) => {}
        Ok(NewEvents::Duplicates(at)) => {
            let (a, e) = at[0];
            return Err(conflict(
                t,
                format!(
                    "event source id {:?} of subject {:?} is stored under another subject",
                    subjects[a].events[e].source_id, subjects[a].record.id
                ),
            ));
        }
        Err(error @ StoreError::IdentityLinked { .. }) => return Err(conflict(t, error)),
        Err(error) => return Err(error.into()),
    }
    let records: usize = subjects.iter().map(FullSubject::records).sum();
    tally.copied += records as u64;
    progress.add(records);
    Ok(())
}

fn copy_suppressions(
    source: &SledStore,
    destination: &PgStore,
    t: &str,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    progress.note(format!("tenant {t}: suppressions"));
    let mut after: Option<IdentityHash> = None;
    loop {
        let page = source.suppression_entries(t, after.as_ref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        for (hash, entry) in &page {
            match destination.suppression(t, *hash)? {
                Some(theirs) if theirs != *entry => {
                    return Err(conflict(
                        t,
                        format!("the suppression entry of hash {}… differs", short(hash)),
                    ));
                }
                Some(_) => tally.present += 1,
                None => {
                    destination.suppress(t, *hash, entry)?;
                    tally.copied += 1;
                }
            }
        }
        progress.add(page.len());
    }
    Ok(())
}

fn copy_documents(
    source: &SledStore,
    destination: &PgStore,
    t: &str,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for kind in source.document_kinds(t)? {
        progress.note(format!("tenant {t}: documents of kind {kind}"));
        let mut after: Option<String> = None;
        loop {
            let page = source.documents(t, &kind, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.clone());
            let mut missing: Vec<(&str, &str, &[u8])> = Vec::new();
            for (id, value) in &page {
                match destination.document(t, &kind, id)? {
                    Some(theirs) if theirs != *value => {
                        return Err(conflict(t, format!("document {kind}/{id} differs")));
                    }
                    Some(_) => tally.present += 1,
                    None => missing.push((kind.as_str(), id.as_str(), value.as_slice())),
                }
            }
            if !missing.is_empty() {
                destination.put_documents(t, &missing)?;
                tally.copied += missing.len() as u64;
            }
            progress.add(page.len());
        }
    }
    Ok(())
}

fn copy_state(
    source: &SledStore,
    destination: &PgStore,
    t: &str,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for scope in source.scopes(t, "")? {
        let plugin = &scope.plugin;
        progress.note(format!("tenant {t}: plugin state of {plugin}"));
        let (version, usage) = (source.version(&scope)?, source.usage(&scope)?);
        let theirs = destination.version(&scope)?;
        if theirs != 0 && theirs != version {
            return Err(conflict(
                t,
                format!(
                    "the plugin state of {plugin} is at version {theirs} in the destination, \
                     {version} in the source"
                ),
            ));
        }
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let page = source.state_entries(&scope, after.as_deref(), PAGE)?;
            if page.is_empty() && !first {
                break;
            }
            first = false;
            let mut missing = Vec::new();
            for (key, value) in &page {
                match destination.get(&scope, key)? {
                    Some(theirs) if theirs != *value => {
                        return Err(conflict(
                            t,
                            format!("the plugin state of {plugin} differs at key {key:?}"),
                        ));
                    }
                    Some(_) => tally.present += 1,
                    None => missing.push((key.clone(), value.clone())),
                }
            }
            // Every page sets the version and usage too, so that a scope
            // with no entries (emptied, or retired) is copied as well.
            destination.copy_state(&scope, version, usage, &missing)?;
            tally.copied += missing.len() as u64;
            progress.add(page.len());
            match page.last() {
                Some((key, _)) => after = Some(key.clone()),
                None => break,
            }
        }
    }
    Ok(())
}

fn copy_audit(
    source: &SledStore,
    destination: &PgStore,
    t: &str,
    head: u64,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    progress.note(format!("tenant {t}: audit trail"));
    let mut from = 1;
    loop {
        let page = source.audit(t, from, PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.seq.saturating_add(1);
        let theirs: HashMap<u64, Vec<u8>> = destination
            .audit(t, page[0].seq, PAGE)?
            .into_iter()
            .map(|entry| (entry.seq, entry.data))
            .collect();
        let mut missing: Vec<AuditRecord> = Vec::new();
        for entry in &page {
            match theirs.get(&entry.seq) {
                Some(data) if *data != entry.data => {
                    return Err(conflict(t, format!("audit entry {} differs", entry.seq)));
                }
                Some(_) => tally.present += 1,
                None => missing.push(entry.clone()),
            }
        }
        destination.copy_audit(t, &missing, last.seq)?;
        tally.copied += missing.len() as u64;
        progress.add(page.len());
    }
    // The head too, which may be past the last entry (a removed entry, a
    // restarted chain): verifying the copy then finds what it finds here.
    destination.copy_audit(t, &[], head)?;
    Ok(())
}

fn copy_jobs(
    source: &SledStore,
    destination: &PgStore,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = source.jobs(after.as_deref(), PAGE)?;
        let Some(last) = page.last() else { break };
        let theirs: HashMap<String, JobRecord> = destination
            .jobs(after.as_deref(), PAGE)?
            .into_iter()
            .map(|job| (job.id.clone(), job))
            .collect();
        after = Some(last.id.clone());
        for job in &page {
            match theirs.get(&job.id) {
                Some(existing) if existing != job => {
                    return Err(conflict(ALL_TENANTS, format!("job {:?} differs", job.id)));
                }
                Some(_) => tally.present += 1,
                // A job already there that this page did not show is
                // found by the verification.
                None if destination.enqueue_job(job)? => tally.copied += 1,
                None => tally.present += 1,
            }
        }
        progress.add(page.len());
    }
    Ok(())
}

// ---- verify -------------------------------------------------------------

/// The record kinds compared per tenant, in the table's order.
const KINDS: [&str; 10] = [
    "tenant",
    "subjects",
    "identities",
    "events",
    "consents",
    "suppressions",
    "documents",
    "plugin scopes",
    "plugin state",
    "audit",
];

/// A count and a SHA-256 over one kind's records, each field
/// length-prefixed, in the order both backends list them.
#[derive(Clone)]
struct Tracker {
    count: u64,
    hash: Sha256,
}

impl Tracker {
    fn new() -> Self {
        Self {
            count: 0,
            hash: Sha256::new(),
        }
    }

    fn record(&mut self, fields: &[&[u8]]) {
        self.count += 1;
        for field in fields {
            self.hash.update((field.len() as u64).to_be_bytes());
            self.hash.update(field);
        }
    }

    fn finish(self) -> Summary {
        Summary {
            count: self.count,
            digest: self.hash.finalize().into(),
        }
    }
}

/// One kind's count and digest on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    count: u64,
    digest: [u8; 32],
}

/// Every kind of one tenant (or the jobs) on one side, in the table's order.
type Summaries = Vec<(&'static str, Summary)>;

fn summarise_tenant(store: &dyn Store, t: &str, progress: &Progress) -> anyhow::Result<Summaries> {
    let mut kinds: BTreeMap<&'static str, Tracker> =
        KINDS.iter().map(|kind| (*kind, Tracker::new())).collect();
    let mut track = |kind: &'static str, fields: &[&[u8]]| {
        kinds.get_mut(kind).expect("a known kind").record(fields);
    };
    if let Some(tenant) = store.tenant(t)? {
        track("tenant", &[tenant.wrapped_key.as_slice(), &tenant.settings]);
    }
    let mut after: Option<String> = None;
    loop {
        let page = store.subjects(t, after.as_deref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for record in page {
            let subject = FullSubject::read(store, t, record)?;
            let id = subject.record.id.as_bytes();
            let r = &subject.record;
            track(
                "subjects",
                &[id, &r.wrapped_key, &r.created_at_ms.to_be_bytes(), &r.data],
            );
            for hash in &subject.identities {
                track("identities", &[id, hash]);
            }
            for event in &subject.events {
                track(
                    "events",
                    &[
                        id,
                        event.source_id.as_bytes(),
                        &event.at_ms.to_be_bytes(),
                        &event.data,
                    ],
                );
            }
            for consent in &subject.consents {
                track(
                    "consents",
                    &[id, &consent.at_ms.to_be_bytes(), &consent.data],
                );
            }
            progress.add(subject.records());
        }
    }
    let mut after: Option<IdentityHash> = None;
    loop {
        let page = store.suppression_entries(t, after.as_ref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        for (hash, entry) in &page {
            track("suppressions", &[hash.as_slice(), entry]);
        }
        progress.add(page.len());
    }
    for kind in store.document_kinds(t)? {
        let mut after: Option<String> = None;
        loop {
            let page = store.documents(t, &kind, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.clone());
            for (id, value) in &page {
                track("documents", &[kind.as_bytes(), id.as_bytes(), value]);
            }
            progress.add(page.len());
        }
    }
    for scope in store.scopes(t, "")? {
        let plugin = scope.plugin.as_bytes();
        track(
            "plugin scopes",
            &[
                plugin,
                &store.version(&scope)?.to_be_bytes(),
                &store.usage(&scope)?.to_be_bytes(),
            ],
        );
        let mut after: Option<String> = None;
        loop {
            let page = store.state_entries(&scope, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.clone());
            for (key, value) in &page {
                track("plugin state", &[plugin, key.as_bytes(), value]);
            }
            progress.add(page.len());
        }
    }
    let mut audit = Tracker::new();
    // The head first: it counts for the chain even past the last entry.
    audit.hash.update(store.audit_head(t)?.to_be_bytes());
    let mut from = 1;
    loop {
        let page = store.audit(t, from, PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.seq.saturating_add(1);
        for entry in &page {
            audit.record(&[entry.seq.to_be_bytes().as_slice(), &entry.data]);
        }
        progress.add(page.len());
    }
    kinds.insert("audit", audit);
    Ok(KINDS
        .iter()
        .map(|kind| (*kind, kinds[kind].clone().finish()))
        .collect())
}

fn summarise_jobs(store: &dyn Store, progress: &Progress) -> anyhow::Result<Summaries> {
    let mut jobs = Tracker::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.jobs(after.as_deref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for job in &page {
            jobs.record(&[
                job.id.as_bytes(),
                job.kind.as_bytes(),
                &job.not_before_ms.to_be_bytes(),
                &job.payload,
            ]);
        }
        progress.add(page.len());
    }
    Ok(vec![("jobs", jobs.finish())])
}

fn tenant_ids(store: &dyn Store) -> Result<BTreeSet<String>, StoreError> {
    Ok(store.tenants()?.into_iter().map(|t| t.id).collect())
}

/// Both sides' summaries, per tenant (and the jobs).
struct Report {
    rows: Vec<(String, &'static str, Summary, Summary)>,
}

fn verify(
    source: &SledStore,
    destination: &PgStore,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let mut tenants = tenant_ids(source)?;
    tenants.extend(tenant_ids(destination)?);
    let mut rows = Vec::new();
    let mut compare = |tenant: &str, ours: Summaries, theirs: Summaries| {
        for ((kind, ours), (_, theirs)) in ours.into_iter().zip(theirs) {
            rows.push((tenant.to_owned(), kind, ours, theirs));
        }
    };
    for t in &tenants {
        progress.start(format!("verifying tenant {t} in the source"));
        let ours = summarise_tenant(source, t, progress)?;
        progress.start(format!("verifying tenant {t} in the destination"));
        let theirs = summarise_tenant(destination, t, progress)?;
        compare(t, ours, theirs);
    }
    progress.start("verifying jobs".into());
    compare(
        ALL_TENANTS,
        summarise_jobs(source, progress)?,
        summarise_jobs(destination, progress)?,
    );
    Ok(Report { rows })
}

impl Report {
    fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(tenant, ..)| tenant.len())
            .max()
            .unwrap_or(0)
            .max("tenant".len());
        let mut out = format!(
            "{:width$}  {:13}  {:>10}  {:>11}  {:16}  {:16}  result\n",
            "tenant", "kind", "source", "destination", "source sha-256", "dest. sha-256"
        );
        for (tenant, kind, ours, theirs) in &self.rows {
            out.push_str(&format!(
                "{tenant:width$}  {kind:13}  {:>10}  {:>11}  {:16}  {:16}  {}\n",
                ours.count,
                theirs.count,
                hex::encode(&ours.digest[..8]),
                hex::encode(&theirs.digest[..8]),
                if ours == theirs { "ok" } else { "DIFFERS" }
            ));
        }
        out
    }

    /// Each row that differs, in words.
    fn differences(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(_, _, ours, theirs)| ours != theirs)
            .map(|(tenant, kind, ours, theirs)| {
                let whose = if tenant == ALL_TENANTS {
                    kind.to_string()
                } else {
                    format!("tenant {tenant:?}, {kind}")
                };
                if ours.count == theirs.count {
                    format!(
                        "{whose}: {} records on both sides, but their contents differ",
                        ours.count
                    )
                } else {
                    format!(
                        "{whose}: {} in the source, {} in the destination",
                        ours.count, theirs.count
                    )
                }
            })
            .collect()
    }
}
