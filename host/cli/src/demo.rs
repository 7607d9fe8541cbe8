//! `tessera demo`: the main job end to end, on the embedded encrypted store.
//! Imports the large retail example (`examples/retail/large`: about 10,000
//! customers of a fashion retailer, as its online shop's NDJSON event stream,
//! three regions' store exports — one of them GB18030 — and its loyalty
//! programme's member list, with dirt planted on purpose) through the real
//! import pipeline: each file in the order its `truth.json` gives, through
//! the connector plugin, mapping and parameters it names, into a tenant with
//! the settings it asks for. Each import prints its quality report (rows,
//! rejections by reason, duplicates, people new, matched and merged, dead
//! letters, rows/s); the vault resolves identities into people (hashed
//! identities, records sealed under per-person keys), and the demo counts who
//! was seen online, offline or both and checks it all against `truth.json`.
//! It fixes one dead letter whose fix is not a guess (a date written in ISO
//! notation in a column of another format) and replays it, and imports one
//! file again to show that nothing is stored twice.
//!
//! Then it records the loyalty members' sign-up consent to email marketing
//! and keeps five segments of the consenting people with the `rules` and
//! `rfm` segment plugins (counts, filtered events, an RFM tier, and rules
//! built on other segments), recomputing each and printing its size.
//!
//! It builds the threshold segment plugin's view from each person's purchase
//! aggregates and finds the big spenders with the threshold segment plugin;
//! runs a campaign of the thompson strategy on the frequent buyers
//! with a 20% holdout in a simulated world whose uplift per offer is known:
//! its forecast, a cohort at a time (decisions, feedback, learning, as the
//! strategy converges on the best offer), its evaluation against the
//! holdout beside the uplift the world planted, and a recommendation for
//! the champions; and ends
//! with the subject rights (export, erasure with its receipt and
//! suppression, shown by importing one of the customer's files again) and a
//! check of the audit trail, in which every plugin read is recorded.
//!
//! The example is found through `--examples DIR` (any directory laid out
//! the same way, e.g. a smaller one its `generate.py` writes), by default
//! the repository's own, located when the binary is built; `--data FILE`
//! imports one NDJSON file through the ndjson connector instead.
//!
//! By default everything lives in a fresh temporary directory, with the
//! master key in memory only, and is removed at exit. `--data-dir` keeps the
//! store in a directory of one's choosing (running again re-imports into it:
//! duplicates are stored once, erased people stay erased), with the subject
//! keys in the sibling directory `<data-dir>.keys`, outside the data
//! directory as the design requires.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value as Json;
use tessera_bundle::Kind;
use tessera_imports::{
    Chunking, DeadLetter, Fix, ImportRecord, ImportReport, ImportSpec, Importer, LetterContent,
};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{Called, Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind};
use tessera_segments::{SegmentSpec, Segments};
use tessera_strategies::{
    Arm as StrategyArm, CampaignSpec, CampaignStatus, DecideRequest, DecisionOutcome, FeedbackKind,
    FeedbackSpec, FrequencyCap, Goal, GoalSource, Strategies,
};
use tessera_vault::{
    Actor, AuditEntry, Channel, ConsentChange, EventSpec, IdentityKind, Incoming, NormalizeRules,
    PropertySpec, SubjectView, TenantSettings, TraitType, Vault,
};

use crate::report;
use crate::{CacheArgs, splitmix};

/// The demo's tenant.
const TENANT: &str = "demo";
/// The event types whose `amount` is spend (`store_purchase`: NDJSON files
/// that keep store purchases apart, as `--data` may give).
const PURCHASES: [&str; 2] = ["purchase", "store_purchase"];
/// The example `tessera demo` imports unless told otherwise, in the
/// repository the binary was built from.
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/retail/large");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The dataset to import: a directory laid out like examples/retail/large
    /// (its truth.json names the files in import order, each file's
    /// connector and parameters, and the tenant's settings; its generate.py
    /// writes smaller ones, e.g. `--customers 500`) [default: the
    /// repository's examples/retail/large].
    #[arg(long, value_name = "DIR", conflicts_with = "data")]
    examples: Option<PathBuf>,
    /// Import one NDJSON file through the ndjson connector instead of the
    /// example. Its events are offline when keyed by a member id alone and
    /// online otherwise; its customers are not split by channel.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Minimum total spend of the "big spenders" segment: the sum of
    /// `amount` over a customer's purchases, online and in stores, as
    /// recorded (in the purchases' own currencies, not converted).
    #[arg(long, default_value_t = 1000.0)]
    threshold: f64,
    /// Cohorts of the campaign: the segment's members are decided for a
    /// cohort at a time, and the strategy learns from each cohort's
    /// feedback before the next.
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

/// The simulated world of the demo's campaign: the chance that a member
/// buys within the week without an offer, and what each offer adds to it
/// (percentage points). The strategy does not know these and has to learn
/// them from feedback; the evaluation has to find the uplift they plant.
const BASE_RATE: f64 = 0.03;
const LIFTS: [(&str, f64); 4] = [
    ("discount_10", 0.06),
    ("free_shipping", 0.02),
    ("double_points", 0.13),
    ("no_offer", 0.0),
];

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dataset = Dataset::load(&args)?;
    // Declared before the vault, so that the vault is closed before the
    // temporary directory is removed.
    let mut place = Place::new(&args)?;

    println!("1. Open the encrypted store and the tenant");
    let vault = Arc::new(place.open()?);
    println!("   {}", place.describe());
    let fresh = !vault.tenant_ids()?.iter().any(|t| t == TENANT);
    if fresh {
        vault.create_tenant(TENANT, dataset.settings.clone(), &operator())?;
        println!(
            "   tenant \"{TENANT}\" created: default trait schema, {}",
            describe_rules(&dataset.settings)
        );
    } else {
        println!("   tenant \"{TENANT}\" exists from an earlier run: importing into it again");
    }

    println!("\n2. Install the first-party plugins (sandboxed components)");
    let registry = Registry::new(args.cache.runtime()?, vault.clone(), false);
    for bytes in [
        tessera_guests::plugins::NDJSON,
        tessera_guests::plugins::CSV,
    ] {
        let live = registry.install_builtin(TENANT, bytes, Kind::Connector, 0)?;
        show_installed(&live.plugin, 0);
    }
    // The threshold segment is called by the demo itself, on a view it
    // builds (below).
    let state = Arc::new(MemoryState::new());
    let threshold = install(
        &registry,
        &state,
        tessera_guests::plugins::THRESHOLD,
        PluginKind::Segment,
        0,
    )?;
    let importer = Importer::new(registry.clone(), vault.clone());

    println!("\n3. Import {}", dataset.origin);
    let (seen, again) = import_all(&vault, &importer, &dataset, fresh)?;

    println!("\n4. Segments, decided by the rules segment plugin (docs/rules.md)");
    build_segments(&vault, &registry, &dataset)?;

    // The people as the plugins see them, after the replay.
    let people = People::load(&vault, &seen, &dataset.files)?;
    let batch = people.batch(vault.now_ms());
    println!(
        "\n5. Segment \"big spenders\": total spend (web + store) >= {}",
        args.threshold
    );
    let params = threshold.validate(&[FieldValue {
        name: "threshold".into(),
        value: Value::Number(args.threshold),
    }])?;
    println!(
        "   view: {} profiles × total_spend, the sum of `amount` over the vault's {} aggregates",
        batch.rows,
        PURCHASES.join(" and ")
    );
    println!(
        "   (amounts as recorded, in each purchase's own currency: the aggregates do not convert)"
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
        println!("   nobody in the segment; try a lower --threshold");
    }
    println!(
        "\n6. Campaign: a strategy on a segment with a holdout, learned from feedback, evaluated"
    );
    run_campaign(&vault, &registry, args.rounds)?;

    println!("\n7. Privacy: the subject rights and the audit trail");
    privacy(&vault, &importer, &people, &dataset.files, again)?;

    println!(
        "\nEvery plugin ran in its own sandbox: only the imports it was granted, fuel and time scaled to its batch, memory capped."
    );
    drop(importer);
    drop(vault);
    place.finish();
    Ok(ExitCode::SUCCESS)
}

/// Step 3: imports every file, shows each quality report, who was seen
/// where and how it compares with `truth.json`; fixes and replays one dead
/// letter; imports one file again. Returns who was seen in which file, and
/// the file imported again (the smallest with events).
fn import_all(
    vault: &Vault,
    importer: &Importer,
    dataset: &Dataset,
    fresh: bool,
) -> anyhow::Result<(Seen, usize)> {
    let mut seen = Seen::new(vault)?;
    let mut imports = Vec::new();
    let mut everyone_now = Vec::new();
    for (index, file) in dataset.files.iter().enumerate() {
        let (record, seconds) = import(importer, file)?;
        show_import(file, &record, seconds);
        everyone_now = seen.after_import(vault, index)?;
        imports.push(record);
    }
    let people = if imports.is_empty() {
        People::load(vault, &seen, &dataset.files)?
    } else {
        People::new(everyone_now, &seen, &dataset.files)
    };
    let total = |f: fn(&ImportReport) -> u64| imports.iter().map(|r| f(&r.report)).sum::<u64>();
    println!(
        "   in all: {} rows read, {} rows rejected, {} records refused, {} events stored, {} dead letters",
        total(|r| r.rows_read),
        total(|r| r.rows_rejected),
        total(|r| r.records_refused),
        total(|r| r.events_inserted),
        total(|r| r.dead_letters)
    );
    println!("   {}", people.channels(&dataset.files));
    if let Some(truth) = &dataset.truth {
        if fresh {
            let problems = compare_with_truth(truth, &dataset.files, &imports, &people);
            if problems.is_empty() {
                println!(
                    "   as truth.json says: each file's rows read, rejected and events stored; the people and their channels"
                );
            } else {
                println!("   NOT as truth.json says:");
                for problem in problems {
                    println!("     {problem}");
                }
            }
        } else {
            println!("   (truth.json describes an import into an empty tenant; not compared)");
        }
    }
    fix_one_dead_letter(importer, &dataset.files, &imports)?;
    let again = dataset
        .files
        .iter()
        .zip(&imports)
        .enumerate()
        .filter(|(_, (_, r))| r.report.events > 0)
        .min_by_key(|(_, (f, _))| f.size)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let (record, _) = import(importer, &dataset.files[again])?;
    let r = &record.report;
    println!(
        "   {} imported again: {} rows read, {} events stored, {} already stored (source ids), {} people new",
        dataset.files[again].name, r.rows_read, r.events_inserted, r.duplicates, r.subjects_new
    );
    Ok((seen, again))
}

fn operator() -> Actor {
    Actor::new("operator", "demo")
}

/// The segments the demo keeps: (name, plugin, its one parameter and
/// value, description). Rules on event counts and on filtered events, an
/// RFM tier, and rules built on other segments.
const SEGMENTS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "frequent-buyers",
        "rules",
        "rule",
        "count(purchase) >= 3",
        "bought 3 times or more, online or in a store",
    ),
    (
        "shoe-browsers",
        "rules",
        "rule",
        r#"did(page_view where path contains "shoes") and not did(purchase where category = "shoes")"#,
        "looked at shoes online and never bought shoes",
    ),
    (
        "champions",
        "rfm",
        "tier",
        "champions",
        "the RFM tier of recent, frequent buyers (quintiles over the last 365 days)",
    ),
    (
        "loyal-regulars",
        "rules",
        "rule",
        r#"in segment "frequent-buyers" and trait.tier in ["gold", "black"]"#,
        "frequent buyers of the gold and black loyalty tiers",
    ),
    (
        "champions-on-shoes",
        "rules",
        "rule",
        r#"in segment "champions" and in segment "shoe-browsers""#,
        "champions who looked at shoes and never bought any",
    ),
];

/// Installs the rules plugin, records the loyalty members' marketing
/// consent, saves [`SEGMENTS`] and recomputes each, printing its size.
fn build_segments(
    vault: &Arc<Vault>,
    registry: &Registry,
    dataset: &Dataset,
) -> anyhow::Result<()> {
    for (_, bytes, state_quota) in crate::serve::PLANNED_SEGMENTS {
        let live = registry.install_builtin_granted(
            TENANT,
            bytes,
            Kind::Segment,
            crate::serve::planned_grant(state_quota),
        )?;
        show_installed(&live.plugin, state_quota);
    }
    println!("   granted: every standard trait and every event type (no PII class)");
    let consented = record_signup_consents(vault, dataset)?;
    println!(
        "   {consented} loyalty members consented to email marketing when they joined (recorded \
         now, method store_signup): only they are evaluated"
    );
    let segments = Segments::new(vault.clone(), registry.clone());
    for (name, plugin, param, value, description) in SEGMENTS {
        let spec = SegmentSpec {
            plugin: plugin.into(),
            params: vec![FieldValue {
                name: param.into(),
                value: Value::Text(value.into()),
            }],
            purpose: Some("email_marketing".into()),
            description: description.into(),
        };
        segments
            .put(TENANT, name, spec, &operator())
            .with_context(|| format!("cannot save segment {name}"))?;
    }
    for segment in segments.in_order(TENANT)? {
        let started = Instant::now();
        let report = segments.recompute(TENANT, &segment.name)?;
        let shown = SEGMENTS
            .iter()
            .find(|s| s.0 == segment.name)
            .map_or(String::new(), |(_, plugin, param, value, _)| {
                format!("{plugin}: {param} = {value}")
            });
        println!(
            "   {:<18} {:>5} of {} people ({} ms)  {}",
            segment.name,
            report.members,
            report.evaluated,
            started.elapsed().as_millis(),
            shown
        );
    }
    Ok(())
}

/// The loyalty programme's sign-up form asks for email marketing consent:
/// each member of the dataset's loyalty file gave it. Returns how many.
fn record_signup_consents(vault: &Vault, dataset: &Dataset) -> anyhow::Result<usize> {
    let Some(file) = dataset.files.iter().find(|f| f.name.contains("loyalty")) else {
        return Ok(0);
    };
    let text = std::fs::read_to_string(&file.path)
        .with_context(|| format!("cannot read {}", file.path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Some(column) = header.iter().position(|h| *h == "member_id") else {
        return Ok(0);
    };
    // Only members the import stored (a row it rejected named no one).
    let mut known = Vec::new();
    for id in lines.filter_map(|line| line.split(',').nth(column)) {
        if !id.is_empty()
            && vault
                .find_trusted_subject_unaudited(TENANT, &IdentityKind::MemberId, id)?
                .is_some()
        {
            known.push(id);
        }
    }
    let items: Vec<Incoming> = known
        .into_iter()
        .map(|id| Incoming {
            identities: vec![(IdentityKind::MemberId, id.to_owned())],
            consents: vec![ConsentChange {
                purpose: "email_marketing".into(),
                granted: true,
                method: "store_signup".into(),
                given_at_ms: None,
            }],
            ..Incoming::default()
        })
        .collect();
    for chunk in items.chunks(500) {
        vault.ingest_batch(TENANT, chunk, &operator())?;
    }
    Ok(items.len())
}

fn describe_rules(settings: &TenantSettings) -> String {
    let phones = match settings.identity_rules.default_country_code {
        Some(code) => format!("phones without a country code are +{code}"),
        None => "phones without a country code are refused".into(),
    };
    format!(
        "{phones}, people merged on {}",
        settings.merge_on.join(", ")
    )
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

// ---- the dataset ----------------------------------------------------------------

/// What the demo imports: the example's files, or one NDJSON file.
struct Dataset {
    /// Where it comes from, for the output.
    origin: String,
    files: Vec<SourceFile>,
    settings: TenantSettings,
    truth: Option<Json>,
}

/// One file to import, with its connector and parameters.
struct SourceFile {
    /// As `truth.json` names it.
    name: String,
    path: PathBuf,
    size: u64,
    connector: String,
    chunking: Chunking,
    params: Vec<FieldValue>,
    /// The channel of its records (None: each event's own, from its
    /// identities; its people are not counted as online or offline).
    channel: Option<Channel>,
    /// The mapping's event time column and format (CSV), for fixing dates.
    time: Option<(String, String)>,
    delimiter: u8,
}

impl Dataset {
    fn load(args: &DemoArgs) -> anyhow::Result<Self> {
        match &args.data {
            Some(path) => Self::ndjson(path),
            None => match &args.examples {
                Some(dir) => Self::example(dir, "--examples names"),
                None => Self::example(Path::new(EXAMPLES), "the default example,"),
            },
        }
    }

    /// One NDJSON file, its channel told by each record's identities.
    fn ndjson(path: &Path) -> anyhow::Result<Self> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("--data: cannot read {}", path.display()))?
            .len();
        let name = path
            .file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
        Ok(Dataset {
            origin: format!(
                "{} ({}) through the ndjson connector plugin",
                name,
                report::bytes(size)
            ),
            files: vec![SourceFile {
                name,
                path: path.to_owned(),
                size,
                connector: "ndjson".into(),
                chunking: Chunking::Lines,
                params: Vec::new(),
                channel: None,
                time: None,
                delimiter: b',',
            }],
            settings: with_event_schema(TenantSettings {
                identity_rules: NormalizeRules {
                    default_country_code: Some(86),
                    ..NormalizeRules::default()
                },
                ..TenantSettings::default()
            }),
            truth: None,
        })
    }

    /// A directory laid out like `examples/retail/large`: `truth.json`
    /// gives the tenant's settings, the import order, and each file's
    /// connector and parameters (a `mapping` by its path in the directory).
    fn example(dir: &Path, what: &str) -> anyhow::Result<Self> {
        let truth_file = dir.join("truth.json");
        if !truth_file.is_file() {
            anyhow::bail!(
                "{what} {}, which has no truth.json; pass --examples DIR, a directory laid out \
                 like the repository's examples/retail/large (or --data FILE.ndjson)",
                dir.display()
            );
        }
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        let truth: Json = serde_json::from_str(
            &std::fs::read_to_string(&truth_file)
                .with_context(|| format!("cannot read {}", truth_file.display()))?,
        )
        .with_context(|| format!("{} is not JSON", truth_file.display()))?;
        let order = truth["import_order"]
            .as_array()
            .filter(|order| !order.is_empty())
            .with_context(|| format!("{}: no import_order", truth_file.display()))?;
        let mut files = Vec::new();
        for name in order {
            let name = name.as_str().with_context(|| {
                format!("{}: import_order lists a non-name", truth_file.display())
            })?;
            files.push(source_file(&dir, name, &truth)?);
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        Ok(Dataset {
            origin: format!(
                "{} ({} files, {}) through the connector plugins, file by file in truth.json's order",
                shown_dir(&dir),
                files.len(),
                report::bytes(total)
            ),
            files,
            settings: tenant_settings(&truth["tenant"]),
            truth: Some(truth),
        })
    }
}

/// The example's directory, relative to the working directory if inside it.
fn shown_dir(dir: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            dir.strip_prefix(cwd.canonicalize().ok()?)
                .ok()
                .map(Path::to_owned)
        })
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or_else(|| dir.to_owned())
        .display()
        .to_string()
}

/// The tenant settings `truth.json` asks for: the defaults, with its
/// identity rules and merge kinds, and the demo's event schema.
fn tenant_settings(tenant: &Json) -> TenantSettings {
    let mut settings = with_event_schema(TenantSettings::default());
    if let Some(code) = tenant["default_country_code"].as_u64() {
        settings.identity_rules.default_country_code = u16::try_from(code).ok();
    }
    if let Some(gmail) = tenant["canonical_gmail"].as_bool() {
        settings.identity_rules.canonical_gmail = gmail;
    }
    if let Some(kinds) = tenant["merge_on"].as_array() {
        settings.merge_on = kinds
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
    }
    settings
}

/// `settings` with the event schema the segments' rules refer to (a rule
/// may only name declared event types and properties).
fn with_event_schema(mut settings: TenantSettings) -> TenantSettings {
    for (event, properties) in [
        (
            "purchase",
            &[
                ("amount", TraitType::Number),
                ("category", TraitType::String),
                ("currency", TraitType::String),
                ("channel", TraitType::String),
            ][..],
        ),
        ("page_view", &[("path", TraitType::String)][..]),
    ] {
        let mut spec = EventSpec::default();
        for (name, kind) in properties {
            spec.properties
                .insert((*name).into(), PropertySpec::new(*kind));
        }
        settings.events.insert(event.into(), spec);
    }
    settings
}

fn source_file(dir: &Path, name: &str, truth: &Json) -> anyhow::Result<SourceFile> {
    let path = dir.join(name);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let connector = truth["files"][name]["connector"]
        .as_str()
        .with_context(|| format!("truth.json names no connector for {name}"))?
        .to_owned();
    let chunking = match crate::import::chunking_for(&path)? {
        "csv" => Chunking::Csv,
        "lines" => Chunking::Lines,
        _ => Chunking::Whole,
    };
    let mut params = Vec::new();
    let mut time = None;
    let mut delimiter = b',';
    if let Some(given) = truth["parameters"][name].as_object() {
        for (param, value) in given {
            let value = match (param.as_str(), value) {
                ("mapping", Json::String(file)) => {
                    let text = std::fs::read_to_string(dir.join(file))
                        .with_context(|| format!("cannot read the mapping {file} of {name}"))?;
                    time = time_column(&text);
                    Value::Text(text)
                }
                ("mapping", Json::Object(_)) => {
                    let text = value.to_string();
                    time = time_column(&text);
                    Value::Text(text)
                }
                (_, Json::Bool(b)) => Value::Boolean(*b),
                (_, Json::String(s)) => {
                    if param == "delimiter" && s.len() == 1 {
                        delimiter = s.as_bytes()[0];
                    }
                    Value::Text(s.clone())
                }
                (_, Json::Number(n)) => match n.as_i64() {
                    Some(i) => Value::Integer(i),
                    None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
                },
                (_, other) => anyhow::bail!("{name}: parameter {param} is {other}"),
            };
            params.push(FieldValue {
                name: param.clone(),
                value,
            });
        }
    }
    Ok(SourceFile {
        name: name.to_owned(),
        channel: Some(channel_of(&connector)),
        path,
        size,
        connector,
        chunking,
        params,
        time,
        delimiter,
    })
}

/// The channel of a file of the retail example: the NDJSON file is the
/// online shop's event stream (web and app); the CSV files are the stores'
/// till exports and the loyalty programme's member list. Setting it on the
/// import keeps a store purchase keyed by a phone alone offline.
fn channel_of(connector: &str) -> Channel {
    if connector == "ndjson" {
        Channel::Online
    } else {
        Channel::Offline
    }
}

/// A CSV mapping's event time column and its format, if it has both.
fn time_column(mapping: &str) -> Option<(String, String)> {
    let mapping: Json = serde_json::from_str(mapping).ok()?;
    let time = &mapping["event"]["time"];
    Some((
        time["column"].as_str()?.to_owned(),
        time["format"].as_str()?.to_owned(),
    ))
}

// ---- imports ----------------------------------------------------------------------

/// Imports one file; returns its record and the seconds it took.
fn import(importer: &Importer, file: &SourceFile) -> anyhow::Result<(ImportRecord, f64)> {
    let input = std::fs::File::open(&file.path)
        .with_context(|| format!("cannot read {}", file.path.display()))?;
    let started = Instant::now();
    let record = importer
        .run(
            TENANT,
            ImportSpec {
                connector: file.connector.clone(),
                params: file.params.clone(),
                chunking: file.chunking,
                source: file.name.clone(),
                channel: file.channel,
            },
            std::io::BufReader::new(input),
            &operator(),
            |_| {},
        )
        .with_context(|| format!("importing {}", file.name))?;
    Ok((record, started.elapsed().as_secs_f64().max(0.001)))
}

/// The quality report of one import, in three or four lines.
fn show_import(file: &SourceFile, record: &ImportRecord, seconds: f64) {
    let r = &record.report;
    println!(
        "   {} · {} · {}: {} rows read in {:.1} s ({:.0} rows/s)",
        file.name,
        file.connector,
        report::bytes(r.bytes),
        r.rows_read,
        seconds,
        r.rows_read as f64 / seconds
    );
    let rejected = if r.rejected.is_empty() {
        "0 rejected".to_string()
    } else {
        let reasons: Vec<String> = r
            .rejected
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        format!("{} rejected ({})", r.rejected_total(), reasons.join(", "))
    };
    println!(
        "     {} records stored, {rejected}; {} dead letters",
        r.accepted, r.dead_letters
    );
    println!(
        "     {} events stored, {} already stored; people: {} new, {} matched, {} merged",
        r.events_inserted, r.duplicates, r.subjects_new, r.subjects_matched, r.identities_merged
    );
    // One or two examples, of different reasons.
    let mut shown: Vec<&str> = Vec::new();
    for example in &r.examples {
        if shown.len() == 2 || shown.contains(&example.code.as_str()) {
            continue;
        }
        shown.push(&example.code);
        println!(
            "     e.g. {}{}: {}",
            example
                .row
                .map_or_else(|| "a record".into(), |row| format!("row {row}")),
            example
                .field
                .as_ref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default(),
            clip(&example.reason, 100)
        );
    }
}

fn clip(text: &str, at_most: usize) -> String {
    match text.char_indices().nth(at_most) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The imports against `truth.json` (an import into an empty tenant): what
/// differs, if anything.
fn compare_with_truth(
    truth: &Json,
    files: &[SourceFile],
    imports: &[ImportRecord],
    people: &People,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: String, got: u64, want: &Json| match want.as_u64() {
        Some(want) if want == got => {}
        Some(want) => problems.push(format!("{what}: {got}, truth.json {want}")),
        None => problems.push(format!("{what}: {got}, truth.json has no number")),
    };
    for (file, record) in files.iter().zip(imports) {
        let t = &truth["files"][&file.name];
        let r = &record.report;
        check(format!("{} rows read", file.name), r.rows_read, &t["rows"]);
        check(
            format!("{} rows rejected", file.name),
            r.rows_rejected,
            &t["rejected"],
        );
        check(
            format!("{} events stored", file.name),
            r.events_inserted,
            &t["events_stored"],
        );
    }
    let p = &truth["people"];
    check("people".into(), people.len() as u64, &p["distinct"]);
    check(
        "people seen only online".into(),
        people.count(|p| p.online && !p.offline),
        &p["online_only"],
    );
    check(
        "people seen only offline".into(),
        people.count(|p| p.offline && !p.online),
        &p["offline_only"],
    );
    check(
        "people seen in both".into(),
        people.count(|p| p.online && p.offline),
        &p["both"],
    );
    problems
}

// ---- a dead letter fixed and replayed ---------------------------------------------

/// Finds a dead letter whose fix is not a guess — a CSV row whose date is
/// written in ISO notation (`2026-07-28 17:38`) in a column of another
/// format — rewrites that one cell in the column's format and replays it.
/// Dates that do not exist (30 February, month 13) and every other
/// rejection stay open for an operator.
fn fix_one_dead_letter(
    importer: &Importer,
    files: &[SourceFile],
    imports: &[ImportRecord],
) -> anyhow::Result<()> {
    let actor = operator();
    let mut open_dates = 0;
    for (file, record) in files.iter().zip(imports) {
        let Some((column, format)) = &file.time else {
            continue;
        };
        let mut after: Option<String> = None;
        loop {
            let page = importer.dead_letters(TENANT, &record.id, after.as_deref(), 256)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for summary in page {
                if summary.field.as_deref() != Some(column.as_str()) {
                    continue;
                }
                open_dates += 1;
                // Reading a letter's content is an audited operator read.
                let letter = importer.dead_letter(TENANT, &record.id, &summary.id, &actor)?;
                let Some(fix) = iso_date_fix(&letter, column, format, file.delimiter) else {
                    continue;
                };
                importer.fix_dead_letter(
                    TENANT,
                    &record.id,
                    &letter.id,
                    Fix::Raw(fix.bytes),
                    &actor,
                )?;
                let replay = importer.replay(
                    TENANT,
                    &record.id,
                    std::slice::from_ref(&letter.id),
                    &actor,
                )?;
                println!(
                    "   dead letter {} ({} row {}, {column}): {:?} is an ISO date, not {format};",
                    letter.id,
                    file.name,
                    letter.row.map_or_else(|| "-".into(), |r| r.to_string()),
                    fix.was
                );
                println!(
                    "     the cell rewritten as {:?} (the same time, only the notation changed) and replayed: {} stored, {} event stored, {} failed",
                    fix.now, replay.replayed, replay.events_inserted, replay.failed
                );
                println!(
                    "     the other date rejections stay open for an operator: most are days that do not exist (30 February, month 13), which no rewrite fixes without guessing"
                );
                return Ok(());
            }
        }
    }
    println!(
        "   no dead letter with a date in ISO notation ({open_dates} date rejections looked at): nothing fixed"
    );
    Ok(())
}

struct DateFix {
    bytes: Vec<u8>,
    was: String,
    now: String,
}

/// The row with its time cell rewritten, if that cell holds a valid ISO
/// date and time (`YYYY-MM-DD HH:MM[:SS]`, no offset: the column's time
/// zone applies as before) and the format has only `%Y %m %d %H %M %S`.
fn iso_date_fix(letter: &DeadLetter, column: &str, format: &str, delimiter: u8) -> Option<DateFix> {
    let LetterContent::Raw {
        bytes,
        header: Some(header),
    } = &letter.content
    else {
        return None;
    };
    let header = header.trim_start_matches('\u{feff}').as_bytes();
    let index = cells(header, delimiter).iter().position(|span| {
        let name = String::from_utf8_lossy(&header[span.clone()]);
        name.trim().trim_matches('"') == column
    })?;
    let span = cells(bytes, delimiter).get(index)?.clone();
    let was = std::str::from_utf8(&bytes[span.clone()]).ok()?;
    let parts = iso_date(was.trim())?;
    let now = render(format, &parts)?;
    let mut fixed = bytes[..span.start].to_vec();
    fixed.extend_from_slice(now.as_bytes());
    fixed.extend_from_slice(&bytes[span.end..]);
    Some(DateFix {
        bytes: fixed,
        was: was.to_owned(),
        now,
    })
}

/// The byte ranges of a CSV record's cells (quotes kept; the record ends at
/// a line end outside quotes).
fn cells(record: &[u8], delimiter: u8) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, &b) in record.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\r' | b'\n' if !quoted => {
                spans.push(start..i);
                return spans;
            }
            b if b == delimiter && !quoted => {
                spans.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    spans.push(start..record.len());
    spans
}

/// `YYYY-MM-DD HH:MM[:SS]` (or with a `T`), a day that exists.
fn iso_date(text: &str) -> Option<[u32; 6]> {
    let b = text.as_bytes();
    if !(b.len() == 16 || b.len() == 19) || b[4] != b'-' || b[7] != b'-' || b[13] != b':' {
        return None;
    }
    if b[10] != b' ' && b[10] != b'T' || (b.len() == 19 && b[16] != b':') {
        return None;
    }
    let number = |range: Range<usize>| -> Option<u32> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    let second = if b.len() == 19 { number(17..19)? } else { 0 };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (day >= 1 && day <= days && hour < 24 && minute < 60 && second < 60)
        .then_some([year, month, day, hour, minute, second])
}

/// The date in a strftime-style format of `%Y %m %d %H %M %S` (anything else
/// copied as written); None if it has another directive, or drops seconds
/// that are not zero.
fn render(format: &str, [year, month, day, hour, minute, second]: &[u32; 6]) -> Option<String> {
    let mut out = String::new();
    let mut chars = format.chars();
    let mut has_seconds = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'Y' => out.push_str(&format!("{year:04}")),
            'm' => out.push_str(&format!("{month:02}")),
            'd' => out.push_str(&format!("{day:02}")),
            'H' => out.push_str(&format!("{hour:02}")),
            'M' => out.push_str(&format!("{minute:02}")),
            'S' => {
                has_seconds = true;
                out.push_str(&format!("{second:02}"));
            }
            '%' => out.push('%'),
            _ => return None,
        }
    }
    (has_seconds || *second == 0).then_some(out)
}

// ---- who was seen where -----------------------------------------------------------

/// Which files each person was seen in, read from the vault: after each
/// import, everyone it created or changed (identities, traits, events,
/// merges) was seen in that file. A re-import that only finds duplicates
/// changes nobody.
struct Seen {
    /// Each person's fingerprint after the last import, by subject.
    fingerprints: HashMap<String, u64>,
    /// The files (bit i: the i-th) each subject was seen in.
    files: HashMap<String, u64>,
}

impl Seen {
    fn new(vault: &Vault) -> anyhow::Result<Self> {
        let mut fingerprints = HashMap::new();
        for person in everyone(vault)? {
            fingerprints.insert(person.subject.clone(), fingerprint(&person));
        }
        Ok(Seen {
            fingerprints,
            files: HashMap::new(),
        })
    }

    /// Marks who the `file`-th import created or changed; returns everyone.
    fn after_import(
        &mut self,
        vault: &Vault,
        file: usize,
    ) -> anyhow::Result<Vec<tessera_vault::Person>> {
        anyhow::ensure!(file < 64, "the demo follows at most 64 files");
        let people = everyone(vault)?;
        let mut fingerprints = HashMap::with_capacity(people.len());
        for person in &people {
            let print = fingerprint(person);
            if self.fingerprints.get(&person.subject) != Some(&print) {
                for subject in std::iter::once(&person.subject).chain(&person.merged_subjects) {
                    *self.files.entry(subject.clone()).or_default() |= 1 << file;
                }
            }
            fingerprints.insert(person.subject.clone(), print);
        }
        self.fingerprints = fingerprints;
        Ok(people)
    }

    /// The files any of `subjects` was seen in.
    fn of(&self, subjects: &[String]) -> u64 {
        subjects
            .iter()
            .filter_map(|s| self.files.get(s))
            .fold(0, |a, b| a | b)
    }
}

/// Everyone in the tenant (merged groups folded in, erased people left out).
fn everyone(vault: &Vault) -> anyhow::Result<Vec<tessera_vault::Person>> {
    let mut people = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, cursor) = vault.people(TENANT, after.as_deref(), 512)?;
        people.extend(page);
        match cursor {
            Some(cursor) => after = Some(cursor),
            None => return Ok(people),
        }
    }
}

/// What a person holds, hashed: it changes when a record adds to them or
/// merges another subject into them.
fn fingerprint(person: &tessera_vault::Person) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    person.merged_subjects.hash(&mut hasher);
    content(person).hash(&mut hasher);
    hasher.finish()
}

/// What a person holds, hashed, leaving out their subject ids (random):
/// the same data gives the same hash in every run.
fn content(person: &tessera_vault::Person) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    person.merged_subjects.len().hash(&mut hasher);
    person.identity_kinds.hash(&mut hasher);
    for (name, value) in &person.traits {
        name.hash(&mut hasher);
        value.to_string().hash(&mut hasher);
    }
    for (kind, aggregate) in &person.aggregates {
        kind.hash(&mut hasher);
        aggregate.count.hash(&mut hasher);
        aggregate.first_ms.hash(&mut hasher);
        aggregate.last_ms.hash(&mut hasher);
        for (name, sum) in &aggregate.sums {
            name.hash(&mut hasher);
            sum.to_bits().hash(&mut hasher);
        }
    }
    hasher.finish()
}

// ---- people -----------------------------------------------------------------------

/// One person as the plugins' views see them, read from the vault.
#[derive(Debug)]
struct Person {
    /// The subject standing for the person (merged subjects point at it).
    subject: String,
    /// The files this run's imports saw them in (bit i: the i-th file).
    files: u64,
    /// Seen in a file of online records and/or of offline ones.
    online: bool,
    offline: bool,
    /// Sum of `amount` over the purchase aggregates.
    total_spend: f64,
    /// What orders people reproducibly (subject ids are random): their
    /// first event, their last, then what they hold.
    order: (i64, i64, u64),
}

/// Everyone in the tenant, in a reproducible order.
struct People {
    people: Vec<Person>,
}

impl People {
    /// Reads every person from the vault (the merged group folded in,
    /// erased subjects skipped). The read that matters is the plugin's, which
    /// is audited when the view is handed over.
    fn load(vault: &Vault, seen: &Seen, files: &[SourceFile]) -> anyhow::Result<Self> {
        Ok(Self::new(everyone(vault)?, seen, files))
    }

    fn new(everyone: Vec<tessera_vault::Person>, seen: &Seen, files: &[SourceFile]) -> Self {
        let mut people: Vec<Person> = everyone
            .into_iter()
            .map(|person| Person::from_vault(person, seen, files))
            .collect();
        people.sort_by(|a, b| a.order.cmp(&b.order).then(a.subject.cmp(&b.subject)));
        People { people }
    }

    fn len(&self) -> usize {
        self.people.len()
    }

    fn count(&self, f: impl Fn(&Person) -> bool) -> u64 {
        self.people.iter().filter(|p| f(p)).count() as u64
    }

    /// "N customers: N seen only online, …".
    fn channels(&self, files: &[SourceFile]) -> String {
        let split = format!(
            "{} seen only online, {} only offline (stores, loyalty programme), {} in both",
            self.count(|p| p.online && !p.offline),
            self.count(|p| p.offline && !p.online),
            self.count(|p| p.online && p.offline)
        );
        let seen = self.count(|p| p.files != 0);
        if files.iter().all(|f| f.channel.is_none()) {
            format!(
                "{} customers ({seen} created or changed by this run; one file of both channels: not split by channel)",
                self.len()
            )
        } else if seen == self.len() as u64 {
            format!("{} customers: {split}", self.len())
        } else {
            format!(
                "{} customers; this run's imports created or changed {seen} of them: {split}",
                self.len()
            )
        }
    }

    /// Every customer as one columnar batch (the `total_spend` column).
    fn batch(&self, now: i64) -> ProfileBatch {
        let rows: Vec<usize> = (0..self.people.len()).collect();
        self.batch_of(&rows, now)
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
    fn from_vault(person: tessera_vault::Person, seen: &Seen, files: &[SourceFile]) -> Self {
        let total_spend = PURCHASES
            .iter()
            .filter_map(|t| person.aggregates.get(*t))
            .filter_map(|a| a.sums.get("amount"))
            .sum();
        let first = person
            .aggregates
            .values()
            .map(|a| a.first_ms)
            .min()
            .unwrap_or(i64::MAX);
        let last = person
            .aggregates
            .values()
            .map(|a| a.last_ms)
            .max()
            .unwrap_or(i64::MAX);
        let order = (first, last, content(&person));
        let mut subjects = vec![person.subject.clone()];
        subjects.extend(person.merged_subjects);
        let mask = seen.of(&subjects);
        let seen_in = |channel: Channel| {
            files
                .iter()
                .enumerate()
                .any(|(i, f)| mask & (1 << i) != 0 && f.channel == Some(channel))
        };
        Person {
            subject: person.subject,
            files: mask,
            online: seen_in(Channel::Online),
            offline: seen_in(Channel::Offline),
            total_spend,
            order,
        }
    }
}

// ---- plugin calls ---------------------------------------------------------------

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

// ---- campaign -----------------------------------------------------------------

/// The segment the demo's campaign targets.
const CAMPAIGN_SEGMENT: &str = "frequent-buyers";

/// Step 6: a campaign of the thompson strategy on [`CAMPAIGN_SEGMENT`] with a
/// holdout, run on cohorts of the segment in a simulated world
/// ([`BASE_RATE`], [`LIFTS`]): simulate, run, decide for each cohort,
/// feedback, learn; then the evaluation against the holdout next to the
/// uplift the world planted, and a recommendation for another segment.
fn run_campaign(vault: &Arc<Vault>, registry: &Registry, cohorts: u32) -> anyhow::Result<()> {
    let members: Vec<String> = {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = vault.segment_members(TENANT, CAMPAIGN_SEGMENT, after.as_deref(), 1_000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.subject.clone());
            out.extend(page.into_iter().map(|m| m.subject));
        }
        out
    };
    if members.len() < 100 || cohorts == 0 {
        println!(
            "   segment {CAMPAIGN_SEGMENT} has {} consenting members: too few for a campaign with a \
             holdout; skipped",
            members.len()
        );
        return Ok(());
    }
    let live = registry.install_builtin_granted(
        TENANT,
        tessera_guests::plugins::THOMPSON,
        Kind::Strategy,
        crate::serve::planned_grant(256 << 10),
    )?;
    show_installed(&live.plugin, 256 << 10);
    let strategies = Strategies::new(vault.clone(), registry.clone());
    let name = campaign_name(&strategies)?;
    let marketer = Actor::new("marketer", "demo");
    let spec = CampaignSpec {
        strategy: "thompson".into(),
        params: vec![FieldValue {
            name: "success".into(),
            value: Value::Text("conversion".into()),
        }],
        segment: CAMPAIGN_SEGMENT.into(),
        purpose: Some("email_marketing".into()),
        holdout: 0.2,
        frequency_cap: Some(FrequencyCap { max: 1, days: 30 }),
        budget: None,
        starts_at_ms: None,
        ends_at_ms: None,
        goal: Goal {
            event: String::new(),
            value: None,
            window_days: 7,
            source: GoalSource::Feedback,
        },
        fallback: Some("no_offer".into()),
        shadow: None,
        description: "one offer per frequent buyer, learned cohort by cohort".into(),
    };
    strategies.put(TENANT, &name, spec, &marketer)?;
    let forecast = strategies.simulate(TENANT, &name, None, &marketer)?;
    println!(
        "   campaign {name}: thompson (Thompson sampling on conversions) on {CAMPAIGN_SEGMENT}, \
         20% held out, one offer per person"
    );
    println!(
        "   forecast: {} of {} members consent; {} to treat, {} held out; {}",
        forecast.consenting,
        forecast.segment_size,
        forecast.expected_treated,
        forecast.expected_control,
        forecast.notes
    );
    strategies.transition(TENANT, &name, CampaignStatus::Running, &marketer)?;
    println!(
        "   simulated customers: {:.0}% buy without an offer; an offer adds {}",
        BASE_RATE * 100.0,
        LIFTS
            .iter()
            .map(|(offer, lift)| format!("{offer} +{:.0}", lift * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let size = members.len().div_ceil(cohorts as usize);
    let mut rng = 0x5EED_u64;
    let mut planted = Vec::new();
    let mut last_mix = BTreeMap::new();
    for (round, cohort) in members.chunks(size).enumerate() {
        let mut mix: BTreeMap<String, u32> = BTreeMap::new();
        let (mut treated, mut held, mut converted_t, mut converted_c) = (0u32, 0u32, 0u32, 0u32);
        for subject in cohort {
            let outcome = strategies.decide(
                TENANT,
                &DecideRequest {
                    campaign: name.clone(),
                    subject: subject.clone(),
                    channel: "email".into(),
                    attributes: Vec::new(),
                },
            )?;
            let DecisionOutcome::Logged(record) = outcome else {
                continue;
            };
            let offer = record.action.clone().unwrap_or_default();
            let rate = match record.arm {
                StrategyArm::Control => {
                    held += 1;
                    BASE_RATE
                }
                StrategyArm::Treatment => {
                    treated += 1;
                    *mix.entry(offer.clone()).or_default() += 1;
                    planted.push(lift(&offer));
                    feedback(&strategies, &record.id, FeedbackKind::Impression, None)?;
                    BASE_RATE + lift(&offer)
                }
            };
            rng = splitmix(rng);
            if ((rng >> 11) as f64 / (1u64 << 53) as f64) < rate {
                match record.arm {
                    StrategyArm::Control => converted_c += 1,
                    StrategyArm::Treatment => converted_t += 1,
                }
                feedback(&strategies, &record.id, FeedbackKind::Conversion, None)?;
                feedback(&strategies, &record.id, FeedbackKind::Revenue, Some(60.0))?;
            }
        }
        let learned = strategies.learn(TENANT)?;
        let shown: Vec<String> = mix.iter().map(|(a, n)| format!("{a} {n}")).collect();
        println!(
            "   cohort {}: {treated} treated ({}), {held} held out · bought: {:.1}% treated, \
             {:.1}% held out · learned from {} feedback",
            round + 1,
            shown.join(", "),
            percent(converted_t, treated),
            percent(converted_c, held),
            learned.observed
        );
        last_mix = mix;
    }
    if let Some((best, n)) = last_mix.iter().max_by_key(|(_, n)| **n) {
        let total: u32 = last_mix.values().sum();
        println!("   the strategy converged on {best}: {n} of the last cohort's {total} offers");
    }
    let evaluation = strategies.evaluate(TENANT, &name, &[])?;
    strategies.transition(TENANT, &name, CampaignStatus::Completed, &marketer)?;
    let truth = planted.iter().sum::<f64>() / planted.len().max(1) as f64;
    match &evaluation.report {
        Some(report) => {
            let uplift = report.absolute_uplift;
            println!(
                "   evaluation: {} treated bought {:.1}%, {} held out {:.1}%: uplift {:+.1} points \
                 (95% interval {:+.1} to {:+.1}); planted by the simulation for the offers served: \
                 {:+.1} points{}",
                report.treatment.subjects,
                report.treatment.conversion_rate * 100.0,
                report.control.subjects,
                report.control.conversion_rate * 100.0,
                uplift.value * 100.0,
                uplift.lower * 100.0,
                uplift.upper * 100.0,
                truth * 100.0,
                if uplift.covers(truth) {
                    ", inside the interval"
                } else {
                    ", outside the interval (it happens 1 time in 20)"
                }
            );
            println!(
                "   revenue per person {:+.2} (95% interval {:+.2} to {:+.2}); sample ratio {}",
                report.revenue_per_subject.value,
                report.revenue_per_subject.lower,
                report.revenue_per_subject.upper,
                if report.sample_ratio.mismatch {
                    format!(
                        "MISMATCH (p = {:.5}): the holdout is not what was asked",
                        report.sample_ratio.p_value
                    )
                } else {
                    format!(
                        "as configured ({:.1}% held out, p = {:.2})",
                        report.sample_ratio.observed_control_share * 100.0,
                        report.sample_ratio.p_value
                    )
                }
            );
        }
        None => println!("   evaluation: too few people in an arm to compare"),
    }
    for recommendation in strategies.recommend(TENANT, "champions")? {
        println!(
            "   recommended for champions next: {} ({}): {}",
            recommendation.strategy,
            recommendation.basis,
            recommendation.reasons.join("; ")
        );
    }
    Ok(())
}

/// `spring-offers`, or with the first free number after it (a demo run
/// again on the same data directory keeps the earlier campaigns).
fn campaign_name(strategies: &Strategies) -> anyhow::Result<String> {
    let taken: Vec<String> = strategies
        .list(TENANT)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    let mut name = "spring-offers".to_owned();
    let mut n = 1;
    while taken.contains(&name) {
        n += 1;
        name = format!("spring-offers-{n}");
    }
    Ok(name)
}

fn feedback(
    strategies: &Strategies,
    decision: &str,
    kind: FeedbackKind,
    value: Option<f64>,
) -> anyhow::Result<()> {
    strategies.feedback(
        TENANT,
        &FeedbackSpec {
            decision: decision.to_owned(),
            kind,
            value,
            key: None,
        },
    )?;
    Ok(())
}

fn lift(offer: &str) -> f64 {
    LIFTS
        .iter()
        .find(|(name, _)| *name == offer)
        .map_or(0.0, |(_, lift)| *lift)
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * f64::from(part) / f64::from(whole)
    }
}

// ---- privacy ------------------------------------------------------------------------

/// Exports one person's data (printing counts only), erases them, imports
/// one of their files again to show that their records are refused, and
/// verifies the audit trail.
fn privacy(
    vault: &Vault,
    importer: &Importer,
    people: &People,
    files: &[SourceFile],
    again: usize,
) -> anyhow::Result<()> {
    let operator = operator();
    // Someone seen online and offline with rows in the file imported again
    // below; else anyone with rows in it; else anyone.
    let bit = 1u64 << again;
    let person = people
        .people
        .iter()
        .find(|p| p.online && p.offline && p.files & bit != 0)
        .or_else(|| people.people.iter().find(|p| p.files & bit != 0))
        .or(people.people.first());
    if let Some(person) = person {
        let json = vault.export_json(TENANT, &person.subject, &operator)?;
        let view: SubjectView =
            serde_json::from_str(&json).context("the export is not a subject view")?;
        println!(
            "   export (the access right) of one customer{}: {}",
            if person.online && person.offline {
                ", seen online and offline"
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

        // The nightly import runs again with one of their files.
        let (record, _) = import(importer, &files[again])?;
        let r = &record.report;
        println!(
            "   {} imported again: {} of its records name an erased customer and are refused (suppressed, not kept as dead letters); {} events stored, {} people created",
            files[again].name,
            r.rejected
                .get(tessera_imports::codes::SUPPRESSED)
                .copied()
                .unwrap_or(0),
            r.events_inserted,
            r.subjects_new
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

/// Installs a plugin the demo calls itself, with a grant of plugin state in
/// memory.
fn install(
    registry: &Registry,
    state: &Arc<MemoryState>,
    bytes: &[u8],
    kind: PluginKind,
    state_quota: u64,
) -> anyhow::Result<Plugin> {
    let plugin = registry.runtime().install(
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
    show_installed(&plugin, state_quota);
    Ok(plugin)
}

fn show_installed(plugin: &Plugin, state_quota: u64) {
    let info = plugin.info();
    println!(
        "   {:<22} {:<9} state {}  {}",
        info.label(),
        info.kind.as_str(),
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
}

fn show_cost<T>(called: &Called<T>) {
    println!("   cost: {}", report::cost(&called.cost));
}
