//! The CSV form of a subject export: one table per file, RFC 4180 quoting.

use std::collections::BTreeMap;

use crate::model::{ConsentEntry, SubjectView};

/// `traits.csv`, `events.csv`, `consents.csv`, `linked_apps.csv`,
/// `segments.csv`, `identities.csv`, `plugin_state.csv`, `decisions.csv`,
/// `access_log.csv`.
pub(crate) fn csv_tables(view: &SubjectView) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut table = Table::new(&["name", "value", "class"]);
    for (name, (value, class)) in &view.traits {
        table.row([
            name.clone(),
            plain(value),
            format!("{class:?}").to_lowercase(),
        ]);
    }
    files.insert("traits.csv".into(), table.finish());

    let mut table = Table::new(&["at_ms", "type", "channel", "properties", "subject_record"]);
    for event in &view.events {
        table.row([
            event.at_ms.to_string(),
            event.event_type.clone(),
            format!("{:?}", event.channel).to_lowercase(),
            serde_json::to_string(&event.properties).unwrap_or_default(),
            event.subject.clone(),
        ]);
    }
    files.insert("events.csv".into(), table.finish());

    let mut table = Table::new(&["at_ms", "purpose", "granted", "method", "by_role", "by"]);
    let mut apps = Table::new(&["at_ms", "app", "name", "scopes", "granted", "by_role", "by"]);
    for entry in &view.consent_history {
        match entry {
            ConsentEntry::Purpose {
                purpose,
                granted,
                method,
                actor,
                at_ms,
            } => table.row([
                at_ms.to_string(),
                purpose.clone(),
                granted.to_string(),
                method.clone(),
                actor.role.clone(),
                actor.id.clone(),
            ]),
            ConsentEntry::App {
                app,
                name,
                scopes,
                granted,
                actor,
                at_ms,
            } => apps.row([
                at_ms.to_string(),
                app.clone(),
                name.clone(),
                scopes.join(" "),
                granted.to_string(),
                actor.role.clone(),
                actor.id.clone(),
            ]),
        }
    }
    files.insert("consents.csv".into(), table.finish());
    files.insert("linked_apps.csv".into(), apps.finish());

    let mut table = Table::new(&["segment", "entered_at_ms", "left_at_ms"]);
    for membership in &view.past_segments {
        table.row([
            membership.segment.clone(),
            membership.entered_at_ms.to_string(),
            membership.left_at_ms.to_string(),
        ]);
    }
    for membership in &view.segments {
        table.row([
            membership.segment.clone(),
            membership.entered_at_ms.to_string(),
            String::new(),
        ]);
    }
    files.insert("segments.csv".into(), table.finish());

    let mut table = Table::new(&["kind", "value"]);
    for (kind, value) in &view.identities {
        table.row([kind.clone(), value.clone()]);
    }
    files.insert("identities.csv".into(), table.finish());

    let mut table = Table::new(&["plugin", "key", "value"]);
    for (plugin, key, value) in &view.plugin_state {
        table.row([plugin.clone(), key.clone(), value.clone()]);
    }
    files.insert("plugin_state.csv".into(), table.finish());

    let mut table = Table::new(&[
        "at_ms",
        "campaign",
        "channel",
        "control_group",
        "shown",
        "explanation",
        "decision",
    ]);
    for decision in &view.decisions {
        table.row([
            decision.at_ms.to_string(),
            decision.campaign.clone(),
            decision.channel.clone(),
            decision.control_group.to_string(),
            decision.shown.clone().unwrap_or_default(),
            decision.explanation.clone(),
            decision.id.clone(),
        ]);
    }
    files.insert("decisions.csv".into(), table.finish());

    let mut table = Table::new(&[
        "seq", "at_ms", "action", "by_role", "by", "plugin", "fields", "purpose",
    ]);
    for entry in &view.access_log {
        table.row([
            entry.seq.to_string(),
            entry.at_ms.to_string(),
            entry.action.clone(),
            entry.actor.role.clone(),
            entry.actor.id.clone(),
            entry.plugin.clone().unwrap_or_default(),
            entry.fields.join(" "),
            entry.purpose.clone().unwrap_or_default(),
        ]);
    }
    files.insert("access_log.csv".into(), table.finish());
    files
}

/// A string as itself, anything else as JSON.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

struct Table {
    text: String,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        let mut table = Self {
            text: String::new(),
        };
        table.row(header.iter().map(|h| (*h).to_owned()));
        table
    }

    fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        for (index, field) in fields.into_iter().enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            self.text.push_str(&quote(&field));
        }
        self.text.push_str("\r\n");
    }

    fn finish(self) -> String {
        self.text
    }
}

/// RFC 4180: quote fields with commas, quotes or line breaks, doubling quotes.
/// Fields that a spreadsheet would run as a formula get a leading `'`.
fn quote(field: &str) -> String {
    let guarded =
        if field.starts_with(['=', '+', '-', '@', '\t', '\r']) && field.parse::<f64>().is_err() {
            format!("'{field}")
        } else {
            field.to_owned()
        };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says_and_formulas_are_defused() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(quote("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(quote("-12.5"), "-12.5");
    }
}
