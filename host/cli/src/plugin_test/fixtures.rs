//! `tessera plugin test --fixtures`: runs a project's own sample inputs (a
//! JSON file of cases) and shows the view the plugin would get under the
//! grants its bundle manifest requests. Never reads or writes anything but
//! the files it is given.
//!
//! ```json
//! {"cases": [
//!   {"name": "a big spender", "params": {"threshold": 500},
//!    "rows": [{"lifetime_value": 820}, {"lifetime_value": 95}, {}]},
//!   {"name": "the sample file", "input": "sample.csv"}
//! ]}
//! ```
//!
//! Rows name the fields and aggregates the plugin reads; a name left out
//! (or `null`) is a missing value. Timestamps are epoch milliseconds or
//! `now`, `now-3d`, `now-12h`. A connector case parses `input` (a path
//! relative to the fixtures file) or `text`.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::{
    AggregateFn, Column, ColumnData, FieldClass, FieldValue, ProfileBatch, TextColumn,
    TextListColumn, Value, ValueKind,
};
use tessera_runtime::{Needs, Plugin, PluginKind};

use super::{SampleError, now_ms, parse_and_report};
use crate::report;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixtures {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    params: Map<String, Json>,
    #[serde(default)]
    rows: Vec<Map<String, Json>>,
    /// A connector's input file, relative to the fixtures file.
    #[serde(default)]
    input: Option<String>,
    /// A connector's input, inline.
    #[serde(default)]
    text: Option<String>,
}

/// What the bundle manifest asks for: the columns it could be granted.
struct Requested {
    traits: Vec<String>,
    events: Vec<String>,
    pii: bool,
}

impl Requested {
    fn field(&self, name: &str, class: FieldClass) -> bool {
        let trait_ok = self.traits.iter().any(|t| t == name || t == "*");
        trait_ok && (class == FieldClass::Standard || self.pii)
    }

    fn events(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| e == event_type || e == "*")
    }
}

pub(super) fn run(
    plugin: &Plugin,
    path: &Path,
    manifest: Option<&Path>,
) -> Result<(), SampleError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(SampleError::Other)?;
    let fixtures: Fixtures = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fixtures file", path.display()))
        .map_err(SampleError::Other)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let requested = requested(plugin, manifest).map_err(SampleError::Other)?;
    let kind = plugin.info().kind;
    for case in &fixtures.cases {
        let params = params(plugin, case).map_err(SampleError::Other)?;
        let params = plugin.validate(&params)?;
        println!("fixture     {}", case.name);
        match kind {
            PluginKind::Connector => {
                let data = match (&case.input, &case.text) {
                    (Some(input), None) => std::fs::read(base.join(input))
                        .with_context(|| format!("cannot read {}", base.join(input).display()))
                        .map_err(SampleError::Other)?,
                    (None, Some(text)) => text.clone().into_bytes(),
                    _ => {
                        return Err(SampleError::Other(anyhow::anyhow!(
                            "fixture `{}`: a connector case has `input` (a file) or `text`",
                            case.name
                        )));
                    }
                };
                parse_and_report(plugin, &params, &data)?;
            }
            PluginKind::Segment => {
                let needs = plugin.plan(&params)?.value;
                let batch = batch(&needs, case, requested.as_ref()).map_err(SampleError::Other)?;
                let out = plugin.evaluate(&params, &batch)?;
                let members = out.value.member.iter().filter(|m| **m == 1).count();
                println!("evaluate    {} rows → {members} members", batch.rows);
                for (row, member) in out.value.member.iter().enumerate().take(20) {
                    let mut line = format!(
                        "            row {}: {}",
                        row + 1,
                        if *member == 1 {
                            "member"
                        } else {
                            "not a member"
                        }
                    );
                    if let Some(score) = out.value.scores.get(row) {
                        line.push_str(&format!(", score {score}"));
                    }
                    if let Some(tier) =
                        out.value.tiers.as_ref().and_then(|t| {
                            t.codes.get(row).and_then(|c| t.dictionary.get(*c as usize))
                        })
                    {
                        line.push_str(&format!(", tier {tier}"));
                    }
                    println!("{line}");
                }
                println!("cost        {}", report::cost(&out.cost));
                print!("{}", report::logs(&out.logs, out.logs_dropped));
            }
            PluginKind::Strategy => {
                let needs = plugin.strategy_plan(&params)?.value;
                let actions = plugin.strategy_actions(&params)?.value;
                let batch = batch(&needs, case, requested.as_ref()).map_err(SampleError::Other)?;
                let context = Context {
                    channel: "web".into(),
                    at: batch.now,
                    attributes: Vec::new(),
                };
                let out = plugin.decide(&params, &batch, &context)?;
                println!("decide      {} rows", batch.rows);
                for (row, decision) in out.value.iter().enumerate().take(20) {
                    let Some(first) = decision.ranked.first() else {
                        continue;
                    };
                    let name = actions
                        .get(first.action as usize)
                        .map_or("?", |a| a.name.as_str());
                    println!(
                        "            row {}: {name} (propensity {:.2}): {}",
                        row + 1,
                        first.propensity,
                        decision.explanation
                    );
                }
                println!("cost        {}", report::cost(&out.cost));
                print!("{}", report::logs(&out.logs, out.logs_dropped));
            }
        }
    }
    Ok(())
}

fn read_manifest(path: &Path) -> anyhow::Result<tessera_bundle::SourceManifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a bundle manifest", path.display()))
}

/// Applies the limits the bundle manifest requests for `component` (the
/// entry of that file name, or the only one) to `limits`, and says so.
pub(super) fn apply_requested_limits(
    path: &Path,
    component: &Path,
    limits: &mut tessera_runtime::Limits,
) -> anyhow::Result<()> {
    let source = read_manifest(path)?;
    let file = component.file_name().and_then(|n| n.to_str());
    let entry = source
        .plugins
        .iter()
        .find(|p| Some(p.component.as_str()) == file)
        .or(match source.plugins.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .with_context(|| {
            format!(
                "{} has no plugin whose component is {}",
                path.display(),
                file.unwrap_or("this file")
            )
        })?;
    let asked = &entry.limits;
    let mut said = Vec::new();
    if let Some(bytes) = asked.memory_bytes {
        limits.memory_bytes = bytes;
        said.push(format!("memory {}", report::bytes(bytes)));
    }
    if let Some(fuel) = asked.fuel_base {
        limits.fuel_base = fuel;
        said.push(format!("fuel {fuel}"));
    }
    if let Some(fuel) = asked.fuel_per_unit {
        limits.fuel_per_unit = fuel;
        said.push(format!("fuel {fuel} per row"));
    }
    if let Some(ms) = asked.time_base_ms {
        limits.time_base = std::time::Duration::from_millis(ms);
        said.push(format!("time {ms} ms"));
    }
    if let Some(ms) = asked.time_per_unit_ms {
        limits.time_per_unit = std::time::Duration::from_millis(ms);
        said.push(format!("time {ms} ms per row"));
    }
    if let Some(bytes) = asked.output_bytes {
        limits.output_bytes = bytes;
        said.push(format!("output {}", report::bytes(bytes)));
    }
    if !said.is_empty() {
        println!(
            "limits      as {} requests: {}",
            path.display(),
            said.join(", ")
        );
    }
    Ok(())
}

/// The requested grants of the bundle manifest, if there is one; prints
/// which columns they would fill.
fn requested(plugin: &Plugin, manifest: Option<&Path>) -> anyhow::Result<Option<Requested>> {
    let Some(path) = manifest else {
        println!("view        every declared column (no bundle manifest: pass --manifest)");
        return Ok(None);
    };
    let source = read_manifest(path)?;
    let info = plugin.info();
    let entry = source
        .plugins
        .iter()
        .find(|p| p.name == info.manifest.name)
        .or(match source.plugins.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .with_context(|| {
            format!(
                "{} has no plugin named `{}`",
                path.display(),
                info.manifest.name
            )
        })?;
    let permissions = &entry.permissions;
    let requested = Requested {
        traits: permissions.traits.clone(),
        events: permissions.events.clone(),
        pii: !permissions.pii.is_empty(),
    };
    let mut columns = Vec::new();
    for f in &info.manifest.fields {
        columns.push(if requested.field(&f.name, f.class) {
            format!("{} ✓", f.name)
        } else {
            format!("{} (not requested: missing)", f.name)
        });
    }
    for a in &info.manifest.aggregates {
        columns.push(if requested.events(&a.event_type) {
            format!("{} ({}) ✓", a.name, a.event_type)
        } else {
            format!("{} ({}, not requested: missing)", a.name, a.event_type)
        });
    }
    println!(
        "view        under the grants {} requests: {}",
        path.display(),
        if columns.is_empty() {
            "no profile columns".to_owned()
        } else {
            columns.join(", ")
        }
    );
    Ok(Some(requested))
}

fn params(plugin: &Plugin, case: &Case) -> anyhow::Result<Vec<FieldValue>> {
    let specs = &plugin.info().manifest.parameters;
    case.params
        .iter()
        .map(|(name, json)| {
            let spec = specs.iter().find(|p| &p.name == name).with_context(|| {
                format!(
                    "fixture `{}`: the plugin has no parameter `{name}`",
                    case.name
                )
            })?;
            let value = value(spec.kind, json, now_ms()).with_context(|| {
                format!(
                    "fixture `{}`: parameter `{name}` must be a {}",
                    case.name,
                    report::kind_name(spec.kind)
                )
            })?;
            Ok(FieldValue {
                name: name.clone(),
                value,
            })
        })
        .collect()
}

/// A JSON value as a value of `kind`; None if it is not one.
fn value(kind: ValueKind, json: &Json, now: i64) -> Option<Value> {
    Some(match kind {
        ValueKind::Boolean => Value::Boolean(json.as_bool()?),
        ValueKind::Integer => Value::Integer(json.as_i64()?),
        ValueKind::Number => Value::Number(json.as_f64()?),
        ValueKind::Text => Value::Text(json.as_str()?.to_owned()),
        ValueKind::Timestamp => Value::Timestamp(timestamp(json, now)?),
        ValueKind::TextList => Value::TextList(
            json.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
        ),
    })
}

/// Epoch milliseconds, or `now`, `now-3d`, `now-12h`, `now-30m`.
fn timestamp(json: &Json, now: i64) -> Option<i64> {
    if let Some(ms) = json.as_i64() {
        return Some(ms);
    }
    let text = json.as_str()?.strip_prefix("now")?;
    if text.is_empty() {
        return Some(now);
    }
    let ago = text.strip_prefix('-')?;
    let unit = match ago.chars().last()? {
        'd' => 86_400_000,
        'h' => 3_600_000,
        'm' => 60_000,
        _ => return None,
    };
    let n: i64 = ago[..ago.len() - 1].parse().ok()?;
    Some(now - n.checked_mul(unit)?)
}

/// The batch of a case's rows, shaped by the plan: one column per field and
/// aggregate (missing where the requested grants would not fill it), and
/// missing columns for planned event queries and segments.
fn batch(
    needs: &Needs,
    case: &Case,
    requested: Option<&Requested>,
) -> anyhow::Result<ProfileBatch> {
    let now = now_ms();
    let rows = case.rows.len();
    let known: Vec<&str> = needs
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .chain(needs.aggregates.iter().map(|a| a.name.as_str()))
        .collect();
    for (i, row) in case.rows.iter().enumerate() {
        if let Some(name) = row.keys().find(|k| !known.contains(&k.as_str())) {
            bail!(
                "fixture `{}` row {}: the plugin does not read `{name}` (it reads: {})",
                case.name,
                i + 1,
                if known.is_empty() {
                    "nothing".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let mut fields = Vec::new();
    for f in &needs.fields {
        let granted = requested.is_none_or(|r| r.field(&f.name, f.class));
        fields.push(column(f.kind, &f.name, case, granted, now)?);
    }
    fields.extend(
        needs
            .segments
            .iter()
            .map(|_| missing(ValueKind::Boolean, rows)),
    );
    let mut aggregates = Vec::new();
    for a in &needs.aggregates {
        let kind = match a.function {
            AggregateFn::Count => ValueKind::Integer,
            AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max => ValueKind::Number,
            AggregateFn::FirstAt | AggregateFn::LastAt => ValueKind::Timestamp,
        };
        let granted = requested.is_none_or(|r| r.events(&a.event_type));
        aggregates.push(column(kind, &a.name, case, granted, now)?);
    }
    for q in &needs.queries {
        aggregates.push(missing(ValueKind::Integer, rows));
        aggregates.push(missing(ValueKind::Timestamp, rows));
        aggregates.push(missing(ValueKind::Timestamp, rows));
        aggregates.extend(q.sums.iter().map(|_| missing(ValueKind::Number, rows)));
    }
    Ok(ProfileBatch {
        rows: rows as u32,
        keys: (0..rows as u64).map(crate::splitmix).collect(),
        fields,
        aggregates,
        now,
    })
}

fn missing(kind: ValueKind, rows: usize) -> Column {
    let mut column = typed(kind, vec![None; rows]);
    column.present = vec![0; rows];
    column
}

fn column(
    kind: ValueKind,
    name: &str,
    case: &Case,
    granted: bool,
    now: i64,
) -> anyhow::Result<Column> {
    if !granted {
        return Ok(missing(kind, case.rows.len()));
    }
    let mut values = Vec::with_capacity(case.rows.len());
    for (i, row) in case.rows.iter().enumerate() {
        values.push(match row.get(name) {
            None | Some(Json::Null) => None,
            Some(json) => Some(value(kind, json, now).with_context(|| {
                format!(
                    "fixture `{}` row {}: `{name}` must be a {}",
                    case.name,
                    i + 1,
                    report::kind_name(kind)
                )
            })?),
        });
    }
    Ok(typed(kind, values))
}

/// A column of `kind` from optional values (None: missing).
fn typed(kind: ValueKind, values: Vec<Option<Value>>) -> Column {
    let present: Vec<u8> = values.iter().map(|v| u8::from(v.is_some())).collect();
    let data = match kind {
        ValueKind::Boolean => ColumnData::Boolean(
            values
                .iter()
                .map(|v| u8::from(matches!(v, Some(Value::Boolean(true)))))
                .collect(),
        ),
        ValueKind::Integer | ValueKind::Timestamp => {
            let ints = values
                .iter()
                .map(|v| match v {
                    Some(Value::Integer(i) | Value::Timestamp(i)) => *i,
                    _ => 0,
                })
                .collect();
            if kind == ValueKind::Integer {
                ColumnData::Integer(ints)
            } else {
                ColumnData::Timestamp(ints)
            }
        }
        ValueKind::Number => ColumnData::Number(
            values
                .iter()
                .map(|v| match v {
                    Some(Value::Number(n)) => *n,
                    _ => 0.0,
                })
                .collect(),
        ),
        ValueKind::Text => {
            let mut dictionary: Vec<String> = Vec::new();
            let codes = values
                .iter()
                .map(|v| match v {
                    Some(Value::Text(s)) => match dictionary.iter().position(|d| d == s) {
                        Some(code) => code as u32,
                        None => {
                            dictionary.push(s.clone());
                            (dictionary.len() - 1) as u32
                        }
                    },
                    _ => 0,
                })
                .collect();
            ColumnData::Text(TextColumn { dictionary, codes })
        }
        ValueKind::TextList => {
            let mut dictionary: Vec<String> = Vec::new();
            let mut offsets = vec![0u32];
            let mut codes = Vec::new();
            for v in &values {
                if let Some(Value::TextList(items)) = v {
                    for s in items {
                        let code = match dictionary.iter().position(|d| d == s) {
                            Some(code) => code,
                            None => {
                                dictionary.push(s.clone());
                                dictionary.len() - 1
                            }
                        };
                        codes.push(code as u32);
                    }
                }
                offsets.push(codes.len() as u32);
            }
            ColumnData::TextList(TextListColumn {
                dictionary,
                offsets,
                codes,
            })
        }
    };
    Column { data, present }
}
