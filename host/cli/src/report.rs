//! Plain-text rendering of manifests, costs and values for the terminal.

use std::fmt::Write as _;

use tessera_runtime::api::records::{ParseOutput, Record};
use tessera_runtime::api::types::{FieldClass, Manifest, Value};
use tessera_runtime::{Cost, LogLine, PluginInfo};
use tessera_vault::{AuditReport, Removed, SubjectView};

pub use tessera_runtime::kind_name;

pub fn value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Text(s) => format!("{s:?}"),
        Value::Timestamp(t) => format!("@{t}"),
        Value::TextList(l) => format!("{l:?}"),
    }
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

pub fn cost(cost: &Cost) -> String {
    format!(
        "fuel {} of {} · {:.2?} · peak memory {} · {} host calls · result {}",
        cost.fuel,
        cost.fuel_budget,
        cost.wall,
        bytes(cost.peak_memory),
        cost.host_calls,
        bytes(cost.output_bytes)
    )
}

pub fn manifest(info: &PluginInfo) -> String {
    let m: &Manifest = &info.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plugin      {}@{}  ({} · tessera:plugin@{})",
        m.name,
        m.version,
        info.kind.as_str(),
        info.wit_version.as_str()
    );
    let _ = writeln!(out, "            {}", m.description);
    let _ = writeln!(out, "component   sha256 {}", info.content_hash);
    if m.parameters.is_empty() {
        let _ = writeln!(out, "parameters  none");
    }
    for (i, p) in m.parameters.iter().enumerate() {
        let mut extra = Vec::new();
        if p.required {
            extra.push("required".to_string());
        }
        if let Some(d) = &p.default {
            extra.push(format!("default {}", value(d)));
        }
        if p.min.is_some() || p.max.is_some() {
            extra.push(format!(
                "range {}..={}",
                p.min.map_or("".into(), |v| v.to_string()),
                p.max.map_or("".into(), |v| v.to_string())
            ));
        }
        if !p.choices.is_empty() {
            extra.push(format!("one of {}", p.choices.join(" ")));
        }
        let _ = writeln!(
            out,
            "{}{} ({}{}) {}",
            if i == 0 {
                "parameters  "
            } else {
                "            "
            },
            p.name,
            kind_name(p.kind),
            if extra.is_empty() {
                String::new()
            } else {
                format!("; {}", extra.join("; "))
            },
            p.description
        );
    }
    let fields: Vec<String> = m
        .fields
        .iter()
        .map(|f| {
            let class = match f.class {
                FieldClass::Standard => "standard",
                FieldClass::Sensitive => "sensitive",
                FieldClass::Pii => "PII",
            };
            format!("{} ({}, {class})", f.name, kind_name(f.kind))
        })
        .collect();
    let _ = writeln!(
        out,
        "reads       {}",
        if fields.is_empty() {
            "no profile fields".into()
        } else {
            fields.join(", ")
        }
    );
    for a in &m.aggregates {
        let _ = writeln!(
            out,
            "            aggregate {} = {:?}({}{}) over {}",
            a.name,
            a.function,
            a.event_type,
            a.property
                .as_ref()
                .map(|p| format!(".{p}"))
                .unwrap_or_default(),
            a.window_days
                .map_or("all time".into(), |d| format!("the last {d} days"))
        );
    }
    let _ = writeln!(
        out,
        "purposes    {}",
        if m.purposes.is_empty() {
            "none declared".into()
        } else {
            m.purposes.join(", ")
        }
    );
    if !info.actions.is_empty() {
        let actions: Vec<_> = info.actions.iter().map(|a| a.name.as_str()).collect();
        let _ = writeln!(out, "actions     {}", actions.join(", "));
    }
    if let Some(modes) = info.modes {
        let _ = writeln!(out, "modes       {modes:?}");
    }
    out
}

pub fn logs(logs: &[LogLine], dropped: u32) -> String {
    let mut out = String::new();
    for line in logs {
        let _ = writeln!(out, "  log {:?}: {}", line.level, line.message);
    }
    if dropped > 0 {
        let _ = writeln!(
            out,
            "  ({dropped} log lines over the per-call budget were dropped)"
        );
    }
    out
}

/// "N events, N trait updates, N identity links" of a parse.
pub fn records(out: &ParseOutput) -> String {
    let (mut events, mut traits, mut links) = (0, 0, 0);
    for record in &out.records {
        match record {
            Record::Event(_) => events += 1,
            Record::TraitUpdate(_) => traits += 1,
            Record::IdentityLink(_) => links += 1,
        }
    }
    format!("{events} events, {traits} trait updates, {links} identity links")
}

/// One line per rejected input row: its number, field and reason.
pub fn rejections(out: &ParseOutput, indent: &str, at_most: usize) -> String {
    let mut text = String::new();
    for r in out.rejections.iter().take(at_most) {
        let field = r
            .field
            .as_ref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        let _ = writeln!(text, "{indent}line {}{field}: {}", r.row, r.reason);
    }
    text
}

/// How much an export holds, in counts only (never the personal data itself).
pub fn export_summary(view: &SubjectView, json_bytes: usize) -> String {
    format!(
        "{} identities, {} traits, {} events of {} types, {} consent changes, {} merged subjects, {} access-log entries; {} of JSON",
        view.identities.len(),
        view.traits.len(),
        view.events.len(),
        view.aggregates.len(),
        view.consent_history.len(),
        view.merged_subjects.len(),
        view.access_log.len(),
        bytes(json_bytes as u64)
    )
}

/// The body of a deletion receipt.
pub fn removed(removed: &Removed) -> String {
    format!(
        "{} subject records, {} identities, {} events, {} consents, {} plugin state entries",
        removed.subjects,
        removed.identities,
        removed.events,
        removed.consents,
        removed.plugin_state
    )
}

/// An audit chain check: its size and whether it is intact.
pub fn audit(report: &AuditReport) -> String {
    let tag: String = report.head_tag.chars().take(16).collect();
    match report.problems.first() {
        None => format!("{} entries, chain intact (head tag {tag}…)", report.entries),
        Some(first) => format!(
            "{} entries, chain BROKEN: {} problems, the first at entry {}: {}",
            report.entries,
            report.problems.len(),
            first.seq,
            first.reason
        ),
    }
}

/// "N name, N name, …", most frequent first.
pub fn tally(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let mut sorted: Vec<(&String, &u64)> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    sorted
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}
