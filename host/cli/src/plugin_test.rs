//! `tessera plugin test`: the partner's inner loop. Loads a component under the
//! real sandbox limits, type-checks it against its world, prints its manifest,
//! runs a sample call on synthetic data shaped by the manifest (or, for a
//! segment that plans its columns, by its plan for the parameters), and
//! prints the cost. With `--fixtures`, it also runs the project's own sample
//! inputs, over the view the plugin would get under the grants its bundle
//! manifest requests (`--manifest`). A plugin that traps or fails exits
//! non-zero with the typed error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Args;
use tessera_runtime::api::records::Modes;
use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::{
    AggregateFn, Column, ColumnData, FieldValue, Manifest, ParamSpec, ProfileBatch, TextColumn,
    TextListColumn, Value, ValueKind,
};
use tessera_runtime::{
    CallError, Grants, InstallRequest, Limits, MemoryState, Needs, Plugin, PluginKind, detect_kind,
};

use crate::report;
use crate::{CacheArgs, splitmix};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The component to test (a .wasm file).
    component: PathBuf,
    /// The world it implements [default: read from its exports].
    #[arg(long)]
    kind: Option<PluginKind>,
    /// A parameter, as NAME=VALUE (repeatable); lists are comma-separated.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Rows of the synthetic batch for segments and strategies.
    #[arg(long, default_value_t = 1000)]
    rows: u32,
    /// A sample input file for a push connector's `parse`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Bytes of plugin state to grant (0 = no `state` import).
    #[arg(long, default_value_t = 1 << 20)]
    state_quota: u64,
    /// Fuel per call before scaling [default: the runtime default].
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit in MiB [default: 64].
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Time limit per call before scaling, in milliseconds [default: 2000].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// The project's sample inputs (JSON): cases of parameters and rows of
    /// profile values, or a connector's input file (docs/plugin-guide.md).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// The bundle manifest (bundle.toml): its requested limits apply, and its
    /// requested grants shape the fixtures' view [default: bundle.toml
    /// beside the fixtures, if any].
    #[arg(long)]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let Some(kind) = args.kind.or_else(|| detect_kind(&bytes)) else {
        bail!(
            "cannot tell which world {} implements from its exports; pass --kind connector|segment|strategy",
            args.component.display()
        );
    };
    // The bundle manifest: its requested limits apply here as the host
    // would apply them (within its caps), and its requested grants shape
    // the fixtures' view.
    let manifest = args.manifest.clone().or_else(|| {
        let beside = args.fixtures.as_ref()?.parent()?.join("bundle.toml");
        beside.is_file().then_some(beside)
    });
    let mut limits = Limits::default();
    if let Some(path) = &manifest {
        fixtures::apply_requested_limits(path, &args.component, &mut limits)?;
    }
    if let Some(fuel) = args.fuel {
        limits.fuel_base = fuel;
    }
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = mib << 20;
    }
    if let Some(ms) = args.timeout_ms {
        limits.time_base = Duration::from_millis(ms);
    }
    let runtime = args.cache.runtime()?;
    let request = InstallRequest {
        kind,
        grants: Grants {
            state_quota: args.state_quota,
            ..Grants::default()
        },
        limits,
        tenant: "plugin-test".into(),
        installation: "plugin-test".into(),
        state: Arc::new(MemoryState::new()),
    };
    let plugin = match runtime.install(&bytes, request) {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!(
                "error: {} cannot be installed: {error}",
                args.component.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let info = plugin.info();
    print!("{}", report::manifest(info));
    println!(
        "install     type-checked against the {} world; {}",
        kind.as_str(),
        if info.compiled {
            "compiled"
        } else {
            "loaded from the cache"
        }
    );

    let given = parse_params(&info.manifest, &args.params)?;
    let (params, synthesized) = with_sample_values(&info.manifest.parameters, given);
    for p in &synthesized {
        println!(
            "sample      parameter {} = {} (synthesized; pass --param {}=… to choose)",
            p.name,
            report::value(&p.value),
            p.name
        );
    }
    let params = match plugin.validate(&params) {
        Ok(params) => params,
        Err(error) => return Ok(failed(&error)),
    };

    let outcome = match kind {
        PluginKind::Segment => sample_segment(&plugin, &params, args.rows),
        PluginKind::Strategy => sample_strategy(&plugin, &params, args.rows),
        PluginKind::Connector => sample_connector(&plugin, &params, args.input.as_ref()),
    };
    let outcome = outcome.and_then(|()| match &args.fixtures {
        Some(path) => fixtures::run(&plugin, path, manifest.as_deref()),
        None => Ok(()),
    });
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(SampleError::Call(error)) => Ok(failed(&error)),
        Err(SampleError::Other(error)) => Err(error),
    }
}

mod fixtures;

enum SampleError {
    Call(CallError),
    Other(anyhow::Error),
}

impl From<CallError> for SampleError {
    fn from(e: CallError) -> Self {
        SampleError::Call(e)
    }
}

fn failed(error: &CallError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn sample_segment(plugin: &Plugin, params: &[FieldValue], rows: u32) -> Result<(), SampleError> {
    let planned = plugin.plan(params)?;
    // Shown when the plan is not simply the manifest's columns.
    if plugin.info().plans && planned.value != Needs::declared(&plugin.info().manifest) {
        let needs = &planned.value;
        let names: Vec<&str> = needs
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .chain(needs.aggregates.iter().map(|a| a.name.as_str()))
            .collect();
        println!(
            "plan        {} fields, {} aggregates for these parameters: {}",
            needs.fields.len(),
            needs.aggregates.len(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        println!("cost        {}", report::cost(&planned.cost));
    }
    let batch = synthetic_batch(&planned.value, rows);
    let out = plugin.evaluate(params, &batch)?;
    let members = out.value.member.iter().filter(|m| **m == 1).count();
    println!("evaluate    {rows} synthetic rows → {members} members");
    println!("cost        {}", report::cost(&out.cost));
    print!("{}", report::logs(&out.logs, out.logs_dropped));
    Ok(())
}

fn sample_strategy(plugin: &Plugin, params: &[FieldValue], rows: u32) -> Result<(), SampleError> {
    // A planned strategy's actions and columns come from its parameters.
    let needs = plugin.strategy_plan(params)?.value;
    let actions = plugin.strategy_actions(params)?.value;
    let batch = synthetic_batch(&needs, rows);
    let context = Context {
        channel: "web".into(),
        at: batch.now,
        attributes: Vec::new(),
    };
    let out = plugin.decide(params, &batch, &context)?;
    let mut chosen = vec![0usize; actions.len()];
    for decision in &out.value {
        if let Some(n) = decision
            .ranked
            .first()
            .and_then(|r| chosen.get_mut(r.action as usize))
        {
            *n += 1;
        }
    }
    let summary: Vec<String> = actions
        .iter()
        .zip(&chosen)
        .map(|(a, n)| format!("{} {n}", a.name))
        .collect();
    println!("decide      {rows} synthetic rows → {}", summary.join(", "));
    if let Some(first) = out.value.first() {
        println!("            first: {}", first.explanation);
    }
    println!("cost        {}", report::cost(&out.cost));
    print!("{}", report::logs(&out.logs, out.logs_dropped));
    let forecast = plugin.simulate(params, &batch, &context)?;
    println!(
        "simulate    expected reward {:.4} per subject; {}",
        forecast.value.expected_reward, forecast.value.notes
    );
    println!("cost        {}", report::cost(&forecast.cost));
    Ok(())
}

fn sample_connector(
    plugin: &Plugin,
    params: &[FieldValue],
    input: Option<&PathBuf>,
) -> Result<(), SampleError> {
    let modes = plugin.info().modes.unwrap_or(Modes::empty());
    if modes.contains(Modes::PUSH) {
        let data = match input {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read {}", path.display()))
                .map_err(SampleError::Other)?,
            None => {
                println!("sample      no --input given: parsing an empty chunk");
                Vec::new()
            }
        };
        parse_and_report(plugin, params, &data)?;
    }
    if modes.contains(Modes::PULL) || modes.contains(Modes::DELIVER) {
        println!(
            "sample      pull and deliver need a source or destination the host connects; not run here"
        );
    }
    Ok(())
}

/// One `parse` call, reported as `plugin test` reports it.
fn parse_and_report(plugin: &Plugin, params: &[FieldValue], data: &[u8]) -> Result<(), CallError> {
    let out = plugin.parse(params, data)?;
    println!(
        "parse       {} → {}, {} rejected",
        report::bytes(data.len() as u64),
        report::records(&out.value),
        out.value.rejections.len()
    );
    print!("{}", report::rejections(&out.value, "            ", 5));
    println!("cost        {}", report::cost(&out.cost));
    print!("{}", report::logs(&out.logs, out.logs_dropped));
    Ok(())
}

/// Parses NAME=VALUE pairs by the kinds the manifest declares.
fn parse_params(manifest: &Manifest, given: &[String]) -> anyhow::Result<Vec<FieldValue>> {
    given
        .iter()
        .map(|pair| {
            let (name, text) = pair
                .split_once('=')
                .with_context(|| format!("--param `{pair}` is not NAME=VALUE"))?;
            let spec = manifest
                .parameters
                .iter()
                .find(|p| p.name == name)
                .with_context(|| format!("the plugin has no parameter `{name}`"))?;
            let bad = || {
                format!(
                    "--param {name}: `{text}` is not a {}",
                    report::kind_name(spec.kind)
                )
            };
            let value = match spec.kind {
                ValueKind::Boolean => Value::Boolean(text.parse().with_context(bad)?),
                ValueKind::Integer => Value::Integer(text.parse().with_context(bad)?),
                ValueKind::Number => Value::Number(text.parse().with_context(bad)?),
                ValueKind::Timestamp => Value::Timestamp(text.parse().with_context(bad)?),
                ValueKind::Text => Value::Text(text.to_string()),
                ValueKind::TextList => {
                    Value::TextList(text.split(',').map(str::to_string).collect())
                }
            };
            Ok(FieldValue {
                name: name.to_string(),
                value,
            })
        })
        .collect()
}

/// Adds a plausible value for every required parameter that was not given.
fn with_sample_values(
    specs: &[ParamSpec],
    mut given: Vec<FieldValue>,
) -> (Vec<FieldValue>, Vec<FieldValue>) {
    let mut synthesized = Vec::new();
    for spec in specs.iter().filter(|s| s.required && s.default.is_none()) {
        if given.iter().any(|p| p.name == spec.name) {
            continue;
        }
        let middle = match (spec.min, spec.max) {
            (Some(min), Some(max)) => (min + max) / 2.0,
            (Some(min), None) => min,
            (None, Some(max)) => max,
            (None, None) => 500.0,
        };
        let value = match spec.kind {
            ValueKind::Boolean => Value::Boolean(false),
            ValueKind::Integer => Value::Integer(middle as i64),
            ValueKind::Number => Value::Number(middle),
            ValueKind::Timestamp => Value::Timestamp(now_ms()),
            ValueKind::Text => Value::Text(
                spec.choices
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "sample".into()),
            ),
            ValueKind::TextList => {
                Value::TextList(spec.choices.first().cloned().into_iter().collect())
            }
        };
        let param = FieldValue {
            name: spec.name.clone(),
            value,
        };
        synthesized.push(param.clone());
        given.push(param);
    }
    (given, synthesized)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn column(kind: ValueKind, rows: u32, salt: u64, now: i64) -> Column {
    let draw = |row: u32| splitmix(salt.wrapping_mul(1_000_003) ^ u64::from(row));
    let present: Vec<u8> = (0..rows).map(|r| u8::from(draw(r) % 10 != 0)).collect();
    let data = match kind {
        ValueKind::Boolean => {
            ColumnData::Boolean((0..rows).map(|r| u8::from(draw(r) % 2 == 0)).collect())
        }
        ValueKind::Integer => {
            ColumnData::Integer((0..rows).map(|r| (draw(r) % 100) as i64).collect())
        }
        ValueKind::Number => ColumnData::Number(
            (0..rows)
                .map(|r| (draw(r) % 100_000) as f64 / 100.0)
                .collect(),
        ),
        ValueKind::Timestamp => ColumnData::Timestamp(
            (0..rows)
                .map(|r| now - (draw(r) % 365) as i64 * 86_400_000)
                .collect(),
        ),
        ValueKind::Text => ColumnData::Text(TextColumn {
            dictionary: vec!["alpha".into(), "beta".into(), "gamma".into()],
            codes: (0..rows).map(|r| (draw(r) % 3) as u32).collect(),
        }),
        ValueKind::TextList => ColumnData::TextList(TextListColumn {
            dictionary: vec!["alpha".into(), "beta".into()],
            offsets: (0..=rows).collect(),
            codes: (0..rows).map(|r| (draw(r) % 2) as u32).collect(),
        }),
    };
    Column { data, present }
}

/// A batch shaped by the manifest: one column per field and aggregate, about
/// one value in ten missing.
fn synthetic_batch(needs: &Needs, rows: u32) -> ProfileBatch {
    let now = now_ms();
    let fields = needs
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| column(f.kind, rows, i as u64, now))
        .collect();
    let aggregates = needs
        .aggregates
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let kind = match a.function {
                AggregateFn::Count => ValueKind::Integer,
                AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max => ValueKind::Number,
                AggregateFn::FirstAt | AggregateFn::LastAt => ValueKind::Timestamp,
            };
            column(kind, rows, 1000 + i as u64, now)
        })
        .collect();
    ProfileBatch {
        rows,
        keys: (0..u64::from(rows)).map(splitmix).collect(),
        fields,
        aggregates,
        now,
    }
}
