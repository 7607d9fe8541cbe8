//! `tessera demo`: the main job end to end, in memory. Ingests the sample
//! retail data (online events and offline store purchases) through the NDJSON
//! connector plugin, links identities into subjects, builds profiles, finds
//! the big spenders with the threshold segment plugin, then lets the
//! epsilon-greedy strategy plugin choose offers for them over a few rounds of
//! simulated feedback, learning which offer converts.
//!
//! The in-memory profile building here stands in for the encrypted data core
//! (identity resolution with hashing, consent, retention), which replaces it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tessera_runtime::api::records::Record;
use tessera_runtime::api::strategies::{Context, Feedback, FeedbackBatch, FeedbackKind};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    Called, Grants, InstallRequest, Limits, MemoryState, Plugin, PluginKind, Runtime,
};

use crate::report;
use crate::{CacheArgs, splitmix};

/// The sample dataset (`examples/retail/events.ndjson`), built into the binary.
const SAMPLE: &[u8] = include_bytes!("../../../examples/retail/events.ndjson");

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
        "   {}; {} rows rejected:",
        report::records(out),
        out.rejections.len()
    );
    print!("{}", report::rejections(out, "     ", usize::MAX));

    println!("\n3. Link identities into customer profiles");
    let profiles = Profiles::build(&out.records);
    println!(
        "   {} customers: {} seen only online, {} only in stores, {} in both (merged by alias records)",
        profiles.len(),
        profiles.count(|p| p.online && !p.offline),
        profiles.count(|p| p.offline && !p.online),
        profiles.count(|p| p.online && p.offline)
    );
    let batch = profiles.batch();

    println!(
        "\n4. Segment \"big spenders\": total spend (web + store) >= {}",
        args.threshold
    );
    let params = threshold.validate(&[FieldValue {
        name: "threshold".into(),
        value: Value::Number(args.threshold),
    }])?;
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
        profiles.len()
    );
    if member_rows.is_empty() {
        println!("   nobody to target; try a lower --threshold");
        return Ok(ExitCode::SUCCESS);
    }
    let segment = profiles.batch_of(&member_rows, batch.now);

    println!(
        "\n5. Strategy \"epsilon-greedy\" chooses an offer per customer and learns from conversions"
    );
    let params = bandit.validate(&[FieldValue {
        name: "epsilon".into(),
        value: Value::Number(0.2),
    }])?;
    let actions = &bandit.info().actions;
    let mut rng = 0x5EED_u64;
    for round in 1..=args.rounds {
        let context = Context {
            channel: "email".into(),
            at: batch.now + i64::from(round) * 86_400_000,
            attributes: Vec::new(),
        };
        let decided = bandit.decide(&params, &segment, &context)?;
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
        at: batch.now,
        attributes: Vec::new(),
    };
    let forecast = bandit.simulate(&params, &segment, &context)?;
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

    println!(
        "\nEvery plugin ran in its own sandbox: only the imports it was granted, fuel and time scaled to its batch, memory capped."
    );
    Ok(ExitCode::SUCCESS)
}

fn true_rate(action: &str) -> f64 {
    TRUE_RATES
        .iter()
        .find(|(name, _)| *name == action)
        .map_or(0.0, |(_, rate)| *rate)
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
            grants: Grants { state_quota },
            limits: Limits::default(),
            tenant: "demo-retail".into(),
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

/// One customer as the demo sees them: seen online (email, device) and/or
/// in stores (loyalty member id), and what they spent across both.
#[derive(Debug, Default)]
struct Profile {
    total_spend: f64,
    online: bool,
    offline: bool,
}

/// Customers built from records: identities that appear together (in an
/// alias record or on one event) belong to one customer.
struct Profiles {
    profiles: Vec<Profile>,
}

impl Profiles {
    fn build(records: &[Record]) -> Self {
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut parent: Vec<usize> = Vec::new();
        fn find(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let node = |ids: &mut HashMap<String, usize>, parent: &mut Vec<usize>, key: String| {
            *ids.entry(key).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            })
        };
        let identities = |record: &Record| match record {
            Record::Event(e) => e.identities.clone(),
            Record::TraitUpdate(t) => t.identities.clone(),
            Record::IdentityLink(l) => l.identities.clone(),
        };
        let mut first_node = Vec::with_capacity(records.len());
        for record in records {
            let nodes: Vec<usize> = identities(record)
                .into_iter()
                .map(|i| {
                    node(
                        &mut ids,
                        &mut parent,
                        format!("{}:{}", i.kind, i.value.trim().to_lowercase()),
                    )
                })
                .collect();
            for pair in nodes.windows(2) {
                let (a, b) = (find(&mut parent, pair[0]), find(&mut parent, pair[1]));
                parent[a] = b;
            }
            first_node.push(nodes.first().copied());
        }
        let mut subject_of_root: HashMap<usize, usize> = HashMap::new();
        let mut profiles: Vec<Profile> = Vec::new();
        for (record, node) in records.iter().zip(first_node) {
            let Some(node) = node else { continue };
            let root = find(&mut parent, node);
            let index = *subject_of_root.entry(root).or_insert_with(|| {
                profiles.push(Profile::default());
                profiles.len() - 1
            });
            let profile = &mut profiles[index];
            for identity in identities(record) {
                match identity.kind.as_str() {
                    "member_id" => profile.offline = true,
                    _ => profile.online = true,
                }
            }
            if let Record::Event(event) = record {
                let amount = event
                    .properties
                    .iter()
                    .find(|p| p.name == "amount")
                    .and_then(|p| match p.value {
                        Value::Number(n) => Some(n),
                        Value::Integer(i) => Some(i as f64),
                        _ => None,
                    });
                if matches!(event.event_type.as_str(), "purchase" | "store_purchase") {
                    profile.total_spend += amount.unwrap_or(0.0);
                }
            }
        }
        Profiles { profiles }
    }

    fn len(&self) -> usize {
        self.profiles.len()
    }

    fn count(&self, f: impl Fn(&Profile) -> bool) -> usize {
        self.profiles.iter().filter(|p| f(p)).count()
    }

    /// Every customer as one columnar batch (the `total_spend` column).
    fn batch(&self) -> ProfileBatch {
        let rows: Vec<usize> = (0..self.profiles.len()).collect();
        self.batch_of(&rows, 1_793_491_200_000)
    }

    fn batch_of(&self, rows: &[usize], now: i64) -> ProfileBatch {
        ProfileBatch {
            rows: rows.len() as u32,
            keys: rows.iter().map(|r| splitmix(*r as u64)).collect(),
            fields: vec![Column {
                data: ColumnData::Number(
                    rows.iter().map(|r| self.profiles[*r].total_spend).collect(),
                ),
                present: Vec::new(),
            }],
            aggregates: Vec::new(),
            now,
        }
    }
}
