//! `tessera demo`: the main job end to end, on the embedded encrypted store.
//! Ingests the sample retail data (online events and offline store
//! purchases) through the NDJSON connector plugin into the vault, which
//! resolves identities into people (hashed identities, records sealed under
//! per-person keys); builds the segment plugin's view from each person's
//! event aggregates and finds the big spenders with the threshold segment
//! plugin; lets the epsilon-greedy strategy plugin choose offers for them
//! over a few rounds of simulated feedback, learning which offer converts;
//! and ends with the subject rights (export, erasure with its receipt and
//! suppression) and a check of the audit trail, in which every plugin read
//! is recorded.
//!
//! By default everything lives in a fresh temporary directory, with the
//! master key in memory only, and is removed at exit. `--data-dir` keeps the
//! store in a directory of one's choosing (running again re-imports into it:
//! duplicates are stored once, erased people stay erased), with the subject
//! keys in the sibling directory `<data-dir>.keys`, outside the data
//! directory as the design requires.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tessera_privacy::MasterKey;
use tessera_runtime::api::records::{Identity, Record};
use tessera_runtime::api::strategies::{Context, Feedback, FeedbackBatch, FeedbackKind};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Called, Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind, Runtime,
};
use tessera_vault::{
    Actor, AuditEntry, BatchOutcome, Channel, IdentityKind, Incoming, IngestOutcome, NewEvent,
    NormalizeRules, SubjectView, TenantSettings, Vault, VaultError,
};

use crate::report;
use crate::{CacheArgs, splitmix};

/// The sample dataset (`examples/retail/events.ndjson`), built into the binary.
const SAMPLE: &[u8] = include_bytes!("../../../examples/retail/events.ndjson");

/// The demo's tenant.
const TENANT: &str = "demo";
/// Records per `ingest_batch` call.
const BATCH: usize = 500;
/// "Now" of the plugins' batches: the day after the sample's last event.
const NOW_MS: i64 = 1_793_491_200_000;
/// The event types whose `amount` is spend.
const PURCHASES: [&str; 2] = ["purchase", "store_purchase"];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// An NDJSON file to ingest instead of the built-in retail sample.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Minimum total spend (online + offline) of the "big spenders" segment.
    #[arg(long, default_value_t = 1000.0)]
    threshold: f64,
    /// Rounds of offers and simulated feedback.
    #[arg(long, default_value_t = 8)]
    rounds: u32,
    /// Keep the encrypted store in DIR (created if missing) instead of a
    /// temporary directory removed at exit. The subject keys go to the
    /// sibling directory DIR.keys, outside the data directory. Running the
    /// demo again on DIR re-imports into it: duplicates are stored once and
    /// erased people stay erased.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the master key file [default: DIR.keys/master.key,
    /// created on first use]. `tessera keys init` creates one.
    #[arg(long, value_name = "FILE", requires = "data_dir")]
    key_file: Option<PathBuf>,
    /// Keep the temporary directory (data, subject keys and the master key,
    /// written to a file) and print where it is, instead of removing it.
    #[arg(long, conflicts_with = "data_dir")]
    keep: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The conversion rate each offer has in the simulated world; the strategy
/// does not know these and has to learn them from feedback.
const TRUE_RATES: [(&str, f64); 4] = [
    ("discount_10", 0.09),
    ("free_shipping", 0.05),
    ("double_points", 0.16),
    ("no_offer", 0.02),
];

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let data = match &args.data {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => SAMPLE.to_vec(),
    };
    // Declared before the vault, so that the vault is closed before the
    // temporary directory is removed.
    let mut place = Place::new(&args)?;
    let runtime = args.cache.runtime()?;
    let state = Arc::new(MemoryState::new());

    println!("1. Install the first-party plugins (sandboxed components)");
    let ndjson = install(
        &runtime,
        &state,
        tessera_guests::plugins::NDJSON,
        PluginKind::Connector,
        0,
    )?;
    let threshold = install(
        &runtime,
        &state,
        tessera_guests::plugins::THRESHOLD,
        PluginKind::Segment,
        0,
    )?;
    let bandit = install(
        &runtime,
        &state,
        tessera_guests::plugins::EPSILON_GREEDY,
        PluginKind::Strategy,
        64 << 10,
    )?;

    println!(
        "\n2. Ingest {} of online and offline activity through the ndjson connector",
        report::bytes(data.len() as u64)
    );
    let params = ndjson.validate(&[])?;
    let parsed = ndjson.parse(&params, &data)?;
    show_cost(&parsed);
    let out = &parsed.value;
    println!(
        "   {}; {} rows rejected{}",
        report::records(out),
        out.rejections.len(),
        if out.rejections.is_empty() { "" } else { ":" }
    );
    print!("{}", report::rejections(out, "     ", usize::MAX));

    println!("\n3. Link identities into customer profiles in the encrypted store");
    let vault = place.open()?;
    println!("   {}", place.describe());
    if vault.tenant_ids()?.iter().any(|t| t == TENANT) {
        println!("   tenant \"{TENANT}\" exists from an earlier run: importing into it again");
    } else {
        vault.create_tenant(TENANT, tenant_settings(), &operator())?;
        println!(
            "   tenant \"{TENANT}\" created: default trait schema, phones without a country code are +86"
        );
    }
    let settings = vault.settings(TENANT)?;
    let converted = Converted::new(&out.records, &settings);
    let ingested = ingest(&vault, &converted.items)?;
    println!(
        "   {}",
        report::ingested(&ingested.total, converted.items.len())
    );
    println!(
        "   {} traits kept, {} not in the tenant schema skipped",
        converted.traits_kept, converted.traits_skipped
    );
    for (index, reason) in &ingested.invalid {
        println!(
            "     record {} refused: {reason}",
            converted.sources[*index]
        );
    }
    let people = People::load(&vault, &ingested.subjects)?;
    println!(
        "   {} customers: {} seen only online, {} only in stores, {} in both (linked by alias records)",
        people.len(),
        people.count(|p| p.online && !p.offline),
        people.count(|p| p.offline && !p.online),
        people.count(|p| p.online && p.offline)
    );
    let batch = people.batch();

    println!(
        "\n4. Segment \"big spenders\": total spend (web + store) >= {}",
        args.threshold
    );
    let params = threshold.validate(&[FieldValue {
        name: "threshold".into(),
        value: Value::Number(args.threshold),
    }])?;
    println!(
        "   view: {} profiles × total_spend, summed from the vault's {} aggregates",
        batch.rows,
        PURCHASES.join(" and ")
    );
    audit_plugin_read(&vault, &threshold, batch.rows, "analytics")?;
    let members = threshold.evaluate(&params, &batch)?;
    show_cost(&members);
    let member_rows: Vec<usize> = members
        .value
        .member
        .iter()
        .enumerate()
        .filter(|(_, m)| **m == 1)
        .map(|(i, _)| i)
        .collect();
    println!(
        "   {} of {} customers are in the segment",
        member_rows.len(),
        people.len()
    );
    if member_rows.is_empty() {
        println!("   nobody to target; try a lower --threshold");
    } else {
        let segment = people.batch_of(&member_rows, batch.now);
        println!(
            "\n5. Strategy \"epsilon-greedy\" chooses an offer per customer and learns from conversions"
        );
        run_strategy(&vault, &bandit, &segment, args.rounds)?;
    }

    println!("\n6. Privacy: the subject rights and the audit trail");
    privacy(&vault, &people, &converted, &ingested)?;

    println!(
        "\nEvery plugin ran in its own sandbox: only the imports it was granted, fuel and time scaled to its batch, memory capped."
    );
    drop(vault);
    place.finish();
    Ok(ExitCode::SUCCESS)
}

fn operator() -> Actor {
    Actor::new("operator", "demo")
}

/// The demo tenant's settings: the defaults, with phones written without a
/// country code taken as Chinese (+86).
fn tenant_settings() -> TenantSettings {
    TenantSettings {
        identity_rules: NormalizeRules {
            default_country_code: Some(86),
            ..NormalizeRules::default()
        },
        ..TenantSettings::default()
    }
}

// ---- where the store lives --------------------------------------------------

/// The data directory, the key directory beside it and the master key.
struct Place {
    data_dir: PathBuf,
    key_dir: PathBuf,
    master: Option<MasterKey>,
    key_file: Option<PathBuf>,
    /// A temporary root to remove at exit (unless kept).
    temporary: Option<TempRoot>,
}

/// A directory removed when dropped, unless kept.
struct TempRoot {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Place {
    fn new(args: &DemoArgs) -> anyhow::Result<Self> {
        match &args.data_dir {
            Some(data_dir) => {
                let key_dir = sibling_key_dir(data_dir)?;
                let key_file = args
                    .key_file
                    .clone()
                    .unwrap_or_else(|| key_dir.join("master.key"));
                Self {
                    data_dir: data_dir.clone(),
                    key_dir,
                    master: None,
                    key_file: Some(key_file),
                    temporary: None,
                }
                .check()
            }
            None => {
                let root = make_temp_root()?;
                let data_dir = root.join("data");
                let key_dir = sibling_key_dir(&data_dir)?;
                Ok(Self {
                    key_file: args.keep.then(|| key_dir.join("master.key")),
                    data_dir,
                    key_dir,
                    master: Some(MasterKey::generate()?),
                    temporary: Some(TempRoot {
                        path: root,
                        keep: args.keep,
                    }),
                })
            }
        }
    }

    /// Keys must lie outside the data directory.
    fn check(self) -> anyhow::Result<Self> {
        if self.data_dir.starts_with(&self.key_dir) || self.key_dir.starts_with(&self.data_dir) {
            anyhow::bail!("the key directory must lie outside the data directory");
        }
        if let Some(file) = &self.key_file
            && file.starts_with(&self.data_dir)
        {
            anyhow::bail!(
                "the master key file {} must lie outside the data directory",
                file.display()
            );
        }
        Ok(self)
    }

    /// Opens the vault, loading or creating the master key file if there is one.
    fn open(&mut self) -> anyhow::Result<Vault> {
        create_private_dir(&self.key_dir)
            .with_context(|| format!("cannot create {}", self.key_dir.display()))?;
        let master = match (self.master.take(), &self.key_file) {
            (Some(master), Some(file)) => {
                // --keep: the kept directory is useless without its key.
                master.write_new(file)?;
                master
            }
            (Some(master), None) => master,
            (None, Some(file)) if file.exists() => MasterKey::from_file(file)?,
            (None, Some(file)) => {
                let master = MasterKey::generate()?;
                master.write_new(file)?;
                master
            }
            (None, None) => anyhow::bail!("no master key"),
        };
        Vault::open(&self.data_dir, &self.key_dir, master).with_context(|| {
            format!(
                "cannot open the store in {} (keys in {})",
                self.data_dir.display(),
                self.key_dir.display()
            )
        })
    }

    fn describe(&self) -> String {
        match &self.temporary {
            Some(TempRoot { keep: false, .. }) => {
                "store: a temporary directory, removed at exit; master key in memory only".into()
            }
            _ => format!(
                "store: {} · subject keys: {} · master key: {}",
                self.data_dir.display(),
                self.key_dir.display(),
                self.key_file
                    .as_deref()
                    .map_or("in memory".into(), |f| f.display().to_string())
            ),
        }
    }

    /// Says where a kept store is (the temporary root is removed on drop otherwise).
    fn finish(self) {
        let kept = match &self.temporary {
            Some(root) if root.keep => Some(&root.path),
            Some(_) => None,
            None => Some(&self.data_dir),
        };
        if let Some(path) = kept {
            println!(
                "The store is kept in {}; run the demo again with --data-dir {} to re-import into it.",
                path.display(),
                self.data_dir.display()
            );
        }
    }
}

/// `<dir>.keys` next to `dir`.
fn sibling_key_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = data_dir.file_name().with_context(|| {
        format!(
            "--data-dir {} does not name a directory; give its name, e.g. ./tessera-demo",
            data_dir.display()
        )
    })?;
    let mut keys = name.to_owned();
    keys.push(".keys");
    Ok(data_dir.with_file_name(keys))
}

/// A new, private directory under the system's temporary directory.
fn make_temp_root() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = u64::from(std::process::id()) ^ (nanos as u64);
    for _ in 0..16 {
        seed = splitmix(seed);
        let path = base.join(format!("tessera-demo-{:016x}", seed));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create a directory in {}", base.display()));
            }
        }
    }
    anyhow::bail!("cannot create a unique directory in {}", base.display())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

// ---- connector records to vault records -------------------------------------

/// The connector's records as vault ingest items.
struct Converted {
    items: Vec<Incoming>,
    /// The source id of each item (for messages; not personal data).
    sources: Vec<String>,
    traits_kept: usize,
    traits_skipped: usize,
}

impl Converted {
    fn new(records: &[Record], settings: &TenantSettings) -> Self {
        let mut converted = Converted {
            items: Vec::with_capacity(records.len()),
            sources: Vec::with_capacity(records.len()),
            traits_kept: 0,
            traits_skipped: 0,
        };
        for record in records {
            let (source, identities) = match record {
                Record::Event(e) => (&e.source_id, &e.identities),
                Record::TraitUpdate(t) => (&t.source_id, &t.identities),
                Record::IdentityLink(l) => (&l.source_id, &l.identities),
            };
            let mut item = Incoming {
                identities: identities
                    .iter()
                    .map(|i| (identity_kind(&i.kind), i.value.clone()))
                    .collect(),
                ..Incoming::default()
            };
            match record {
                Record::Event(event) => item.events.push(NewEvent {
                    source_id: Some(event.source_id.clone()),
                    event_type: event.event_type.clone(),
                    at_ms: event.at,
                    channel: channel(&event.identities),
                    properties: event
                        .properties
                        .iter()
                        .filter_map(|p| Some((p.name.clone(), property(&p.value)?)))
                        .collect(),
                }),
                Record::TraitUpdate(update) => {
                    for field in &update.traits {
                        if !settings.schema.contains_key(&field.name) {
                            converted.traits_skipped += 1;
                            continue;
                        }
                        if let Some(value) = trait_value(&field.value) {
                            converted.traits_kept += 1;
                            item.traits.insert(field.name.clone(), value);
                        }
                    }
                }
                Record::IdentityLink(_) => {}
            }
            converted.items.push(item);
            converted.sources.push(source.clone());
        }
        converted
    }
}

/// A connector's identity kind as the vault's: the known kinds by name,
/// `external:<system>` as written, anything else as an external system.
fn identity_kind(kind: &str) -> IdentityKind {
    IdentityKind::parse(kind).unwrap_or_else(|_| IdentityKind::External(kind.to_owned()))
}

/// Store purchases are keyed by the loyalty member id alone; anything that
/// carries a web identity (email, device id) happened online.
fn channel(identities: &[Identity]) -> Channel {
    let member = identities.iter().any(|i| i.kind == "member_id");
    let web = identities
        .iter()
        .any(|i| i.kind == "email" || i.kind == "device_id");
    if member && !web {
        Channel::Offline
    } else {
        Channel::Online
    }
}

/// Event properties keep numbers (summed into aggregates) and strings.
fn property(value: &Value) -> Option<serde_json::Value> {
    match value {
        Value::Integer(i) => Some((*i).into()),
        Value::Timestamp(t) => Some((*t).into()),
        Value::Number(n) => serde_json::Number::from_f64(*n).map(serde_json::Value::Number),
        Value::Text(s) => Some(s.clone().into()),
        Value::Null | Value::Boolean(_) | Value::TextList(_) => None,
    }
}

fn trait_value(value: &Value) -> Option<serde_json::Value> {
    match value {
        Value::Boolean(b) => Some((*b).into()),
        Value::TextList(list) => Some(list.clone().into()),
        Value::Null => None,
        other => property(other),
    }
}

// ---- ingestion ----------------------------------------------------------------

struct Ingested {
    total: BatchOutcome,
    /// The subject each item resolved to (None: refused or invalid).
    subjects: Vec<Option<String>>,
    /// Items the vault refused as invalid: (index, reason).
    invalid: Vec<(usize, String)>,
}

/// Ingests in batches. A batch with an invalid record is refused whole by the
/// vault, so such a batch is ingested record by record instead, setting the
/// invalid ones aside.
fn ingest(vault: &Vault, items: &[Incoming]) -> anyhow::Result<Ingested> {
    let actor = Actor::new("ingest", "demo-connector");
    let mut ingested = Ingested {
        total: BatchOutcome::default(),
        subjects: Vec::with_capacity(items.len()),
        invalid: Vec::new(),
    };
    for (n, chunk) in items.chunks(BATCH).enumerate() {
        match vault.ingest_batch(TENANT, chunk, &actor) {
            Ok((total, outcomes)) => {
                add(&mut ingested.total, &total);
                ingested
                    .subjects
                    .extend(outcomes.into_iter().map(|o| o.subject));
            }
            Err(error) if invalid(&error) => {
                for (i, item) in chunk.iter().enumerate() {
                    match vault.ingest(TENANT, item, &actor) {
                        Ok(outcome) => {
                            add(&mut ingested.total, &one(&outcome));
                            ingested.subjects.push(outcome.subject);
                        }
                        Err(error) if invalid(&error) => {
                            ingested.invalid.push((n * BATCH + i, error.to_string()));
                            ingested.subjects.push(None);
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(ingested)
}

/// Whether the vault refused a record for what it holds (nothing was written).
fn invalid(error: &VaultError) -> bool {
    matches!(
        error,
        VaultError::InvalidIdentity { .. }
            | VaultError::NoIdentity
            | VaultError::UnknownTrait { .. }
            | VaultError::InvalidTrait { .. }
            | VaultError::InvalidEvent { .. }
            | VaultError::InvalidProperty { .. }
            | VaultError::UnknownPurpose { .. }
    )
}

fn one(outcome: &IngestOutcome) -> BatchOutcome {
    BatchOutcome {
        items: 1,
        subjects_created: u64::from(outcome.created),
        merges: outcome.merged.len() as u64,
        events_inserted: outcome.events_inserted,
        duplicates: outcome.duplicates,
        expired: outcome.expired,
        suppressed: u64::from(outcome.refused.is_some()),
    }
}

fn add(total: &mut BatchOutcome, more: &BatchOutcome) {
    total.items += more.items;
    total.subjects_created += more.subjects_created;
    total.merges += more.merges;
    total.events_inserted += more.events_inserted;
    total.duplicates += more.duplicates;
    total.expired += more.expired;
    total.suppressed += more.suppressed;
}

// ---- people -------------------------------------------------------------------

/// One person as the plugins' views see them, read from the vault.
#[derive(Debug)]
struct Person {
    /// The subject standing for the person (merged subjects point at it).
    subject: String,
    /// It and every subject merged into it.
    subjects: Vec<String>,
    /// Seen with a web identity (email, device id) and/or a loyalty member id.
    online: bool,
    offline: bool,
    /// Sum of `amount` over the purchase aggregates.
    total_spend: f64,
}

/// Everyone in the tenant, in the order the input first mentioned them (so
/// that runs are reproducible: subject ids are random).
struct People {
    people: Vec<Person>,
}

impl People {
    /// Reads every person from the vault (the merged group folded in,
    /// erased subjects skipped). The read that matters is the plugin's, which
    /// is audited when the view is handed over.
    fn load(vault: &Vault, first_seen: &[Option<String>]) -> anyhow::Result<Self> {
        let mut order: HashMap<&str, usize> = HashMap::new();
        for (index, subject) in first_seen.iter().enumerate() {
            if let Some(subject) = subject {
                order.entry(subject.as_str()).or_insert(index);
            }
        }
        let mut people = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, cursor) = vault.people(TENANT, after.as_deref(), 256)?;
            people.extend(page.into_iter().map(Person::from_vault));
            match cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        let rank = |p: &Person| {
            p.subjects
                .iter()
                .filter_map(|s| order.get(s.as_str()).copied())
                .min()
                .unwrap_or(usize::MAX)
        };
        people.sort_by_cached_key(|p| (rank(p), p.subject.clone()));
        Ok(People { people })
    }

    fn len(&self) -> usize {
        self.people.len()
    }

    fn count(&self, f: impl Fn(&Person) -> bool) -> usize {
        self.people.iter().filter(|p| f(p)).count()
    }

    /// Every customer as one columnar batch (the `total_spend` column).
    fn batch(&self) -> ProfileBatch {
        let rows: Vec<usize> = (0..self.people.len()).collect();
        self.batch_of(&rows, NOW_MS)
    }

    /// The rows' batch: keys are pseudonymous (derived from the row, never
    /// the subject id).
    fn batch_of(&self, rows: &[usize], now: i64) -> ProfileBatch {
        ProfileBatch {
            rows: rows.len() as u32,
            keys: rows.iter().map(|r| splitmix(*r as u64)).collect(),
            fields: vec![Column {
                data: ColumnData::Number(
                    rows.iter().map(|r| self.people[*r].total_spend).collect(),
                ),
                present: Vec::new(),
            }],
            aggregates: Vec::new(),
            now,
        }
    }
}

impl Person {
    fn from_vault(person: tessera_vault::Person) -> Self {
        let online = person.identity_kinds.iter().any(|kind| kind != "member_id");
        let offline = person.identity_kinds.iter().any(|kind| kind == "member_id");
        let total_spend = PURCHASES
            .iter()
            .filter_map(|t| person.aggregates.get(*t))
            .filter_map(|a| a.sums.get("amount"))
            .sum();
        let mut subjects = vec![person.subject.clone()];
        subjects.extend(person.merged_subjects);
        Person {
            subject: person.subject,
            subjects,
            online,
            offline,
            total_spend,
        }
    }
}

/// Records a plugin's batch read in the audit trail, before the call.
fn audit_plugin_read(
    vault: &Vault,
    plugin: &Plugin,
    rows: u32,
    purpose: &str,
) -> anyhow::Result<()> {
    let info = plugin.info();
    vault.record_plugin_access(
        TENANT,
        AuditEntry {
            plugin: Some(info.manifest.name.clone()),
            plugin_version: Some(info.manifest.version.clone()),
            batch: Some(u64::from(rows)),
            fields: info
                .manifest
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            purpose: Some(purpose.to_owned()),
            ..AuditEntry::new(
                &Actor::new("plugin", format!("demo-{}", info.kind.as_str())),
                "plugin.read",
            )
        },
    )?;
    Ok(())
}

// ---- strategy -----------------------------------------------------------------

fn run_strategy(
    vault: &Vault,
    bandit: &Plugin,
    segment: &ProfileBatch,
    rounds: u32,
) -> anyhow::Result<()> {
    let params = bandit.validate(&[FieldValue {
        name: "epsilon".into(),
        value: Value::Number(0.2),
    }])?;
    let actions = &bandit.info().actions;
    let mut rng = 0x5EED_u64;
    for round in 1..=rounds {
        let context = Context {
            channel: "email".into(),
            at: segment.now + i64::from(round) * 86_400_000,
            attributes: Vec::new(),
        };
        audit_plugin_read(vault, bandit, segment.rows, "personalization")?;
        let decided = bandit.decide(&params, segment, &context)?;
        let mut chosen = vec![0u32; actions.len()];
        let mut feedback = Vec::new();
        let mut conversions = 0;
        for (row, decision) in decided.value.iter().enumerate() {
            let top = decision.ranked[0];
            chosen[top.action as usize] += 1;
            let item = |kind, reward| Feedback {
                key: segment.keys[row],
                action: top.action,
                kind,
                reward,
                propensity: top.propensity,
                at: context.at,
            };
            feedback.push(item(FeedbackKind::Impression, 0.0));
            rng = splitmix(rng);
            if ((rng >> 11) as f64 / (1u64 << 53) as f64)
                < true_rate(&actions[top.action as usize].name)
            {
                conversions += 1;
                feedback.push(item(FeedbackKind::Conversion, 1.0));
            }
        }
        let mix: Vec<String> = actions
            .iter()
            .zip(&chosen)
            .map(|(a, n)| format!("{} {n}", a.name))
            .collect();
        println!(
            "   round {round}: {} · {conversions} conversions ({:.1}%)",
            mix.join(", "),
            100.0 * conversions as f64 / segment.rows as f64
        );
        let profiles = ProfileBatch {
            rows: feedback.len() as u32,
            keys: feedback.iter().map(|f| f.key).collect(),
            fields: Vec::new(),
            aggregates: Vec::new(),
            now: context.at,
        };
        audit_plugin_read(vault, bandit, profiles.rows, "personalization")?;
        bandit.observe(
            &params,
            &FeedbackBatch {
                items: feedback,
                profiles,
            },
        )?;
    }
    let context = Context {
        channel: "email".into(),
        at: segment.now,
        attributes: Vec::new(),
    };
    audit_plugin_read(vault, bandit, segment.rows, "personalization")?;
    let forecast = bandit.simulate(&params, segment, &context)?;
    let best = forecast
        .value
        .actions
        .iter()
        .max_by(|a, b| a.share.total_cmp(&b.share))
        .map(|a| actions[a.action as usize].name.as_str())
        .unwrap_or("none");
    println!(
        "   next round forecast: mostly {best}; expected conversion rate {:.1}% ({})",
        100.0 * forecast.value.expected_reward,
        forecast.value.notes
    );
    show_cost(&forecast);
    Ok(())
}

fn true_rate(action: &str) -> f64 {
    TRUE_RATES
        .iter()
        .find(|(name, _)| *name == action)
        .map_or(0.0, |(_, rate)| *rate)
}

// ---- privacy ------------------------------------------------------------------

/// Exports one person's data (printing counts only), erases them, shows that
/// re-importing their records is refused, and verifies the audit trail.
fn privacy(
    vault: &Vault,
    people: &People,
    converted: &Converted,
    ingested: &Ingested,
) -> anyhow::Result<()> {
    let operator = operator();
    let person = people
        .people
        .iter()
        .find(|p| p.online && p.offline)
        .or(people.people.first());
    if let Some(person) = person {
        let json = vault.export_json(TENANT, &person.subject, &operator)?;
        let view: SubjectView =
            serde_json::from_str(&json).context("the export is not a subject view")?;
        println!(
            "   export (the access right) of one customer{}: {}",
            if person.online && person.offline {
                ", seen online and in stores"
            } else {
                ""
            },
            report::export_summary(&view, json.len())
        );

        let request = vault.request_deletion(
            TENANT,
            &person.subject,
            "the customer asked to be forgotten",
            &operator,
        )?;
        println!(
            "   erase them: {} subject key(s) destroyed at once, {} identities suppressed",
            request.subjects.len(),
            request.identities_suppressed
        );
        let jobs = vault.run_jobs("demo-worker")?;
        let done = vault.deletion_request(TENANT, &request.id)?;
        let receipt = done
            .receipt
            .context("the purge job did not complete the deletion")?;
        println!(
            "   purge job ({} run): receipt removed {}; {}",
            jobs.purges_completed.len(),
            report::removed(&receipt.removed),
            if vault.verify_receipt(&receipt)? {
                "its MAC verifies"
            } else {
                "its MAC DOES NOT verify"
            }
        );

        // The nightly import runs again with the same file.
        let theirs: Vec<Incoming> = ingested
            .subjects
            .iter()
            .zip(&converted.items)
            .filter(|(s, _)| s.as_ref().is_some_and(|s| person.subjects.contains(s)))
            .map(|(_, item)| item.clone())
            .collect();
        let mut again = BatchOutcome::default();
        for chunk in theirs.chunks(BATCH) {
            let (total, _) =
                vault.ingest_batch(TENANT, chunk, &Actor::new("ingest", "demo-connector"))?;
            add(&mut again, &total);
        }
        println!(
            "   re-importing their {} source records: {} refused (suppressed), {} events stored, {} people created",
            theirs.len(),
            again.suppressed,
            again.events_inserted,
            again.subjects_created
        );
    } else {
        println!("   nobody to export or erase");
    }

    let audit = vault.verify_audit(TENANT)?;
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    let mut from = 1;
    loop {
        let page = vault.audit_entries(TENANT, from, 1024)?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for entry in page {
            *actions.entry(entry.action).or_default() += 1;
        }
        from = last + 1;
    }
    println!("   audit trail: {}", report::audit(&audit));
    println!("     {}", report::tally(&actions));
    Ok(())
}

fn install(
    runtime: &Runtime,
    state: &Arc<MemoryState>,
    bytes: &[u8],
    kind: PluginKind,
    state_quota: u64,
) -> anyhow::Result<Plugin> {
    let plugin = runtime.install(
        bytes,
        InstallRequest {
            kind,
            grants: Grants {
                state_quota,
                ..Grants::default()
            },
            limits: Limits::default(),
            tenant: TENANT.into(),
            installation: format!("demo-{}", kind.as_str()),
            state: state.clone(),
        },
    )?;
    let info = plugin.info();
    println!(
        "   {:<22} {:<9} state {}  {}",
        info.label(),
        kind.as_str(),
        if state_quota > 0 {
            report::bytes(state_quota)
        } else {
            "none".into()
        },
        if info.compiled {
            "compiled"
        } else {
            "from cache"
        }
    );
    Ok(plugin)
}

fn show_cost<T>(called: &Called<T>) {
    println!("   cost: {}", report::cost(&called.cost));
}
