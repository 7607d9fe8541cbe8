//! Connector records as the JSON the dead letters keep, and as vault items.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tessera_runtime::api::records::{Identity, Record};
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_vault::{Channel, IdentityKind, Incoming, NewEvent};

/// One connector record, with its values as JSON: what a dead letter of a
/// refused record holds, and what an operator edits to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ImportItem {
    Event {
        source_id: String,
        #[serde(rename = "type")]
        event_type: String,
        at_ms: i64,
        identities: Vec<ItemIdentity>,
        #[serde(default)]
        properties: BTreeMap<String, Json>,
    },
    TraitUpdate {
        source_id: String,
        identities: Vec<ItemIdentity>,
        #[serde(default)]
        traits: BTreeMap<String, Json>,
    },
    IdentityLink {
        source_id: String,
        identities: Vec<ItemIdentity>,
    },
}

/// An identity as the connector named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemIdentity {
    pub kind: String,
    pub value: String,
}

/// Why a record cannot become a vault item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unconvertible {
    pub code: &'static str,
    pub field: Option<String>,
    pub reason: String,
}

impl ImportItem {
    pub(crate) fn from_record(record: &Record) -> Self {
        match record {
            Record::Event(e) => ImportItem::Event {
                source_id: e.source_id.clone(),
                event_type: e.event_type.clone(),
                at_ms: e.at,
                identities: identities(&e.identities),
                properties: fields(&e.properties),
            },
            Record::TraitUpdate(t) => ImportItem::TraitUpdate {
                source_id: t.source_id.clone(),
                identities: identities(&t.identities),
                traits: fields(&t.traits),
            },
            Record::IdentityLink(l) => ImportItem::IdentityLink {
                source_id: l.source_id.clone(),
                identities: identities(&l.identities),
            },
        }
    }

    pub fn source_id(&self) -> &str {
        match self {
            ImportItem::Event { source_id, .. }
            | ImportItem::TraitUpdate { source_id, .. }
            | ImportItem::IdentityLink { source_id, .. } => source_id,
        }
    }

    /// The identities of known kinds, for matching against erasures.
    pub(crate) fn known_identities(&self) -> Vec<(IdentityKind, String)> {
        self.identities()
            .iter()
            .filter_map(|i| Some((IdentityKind::parse(&i.kind).ok()?, i.value.clone())))
            .collect()
    }

    fn identities(&self) -> &[ItemIdentity] {
        match self {
            ImportItem::Event { identities, .. }
            | ImportItem::TraitUpdate { identities, .. }
            | ImportItem::IdentityLink { identities, .. } => identities,
        }
    }

    /// The vault item: identities by kind (an unknown kind refuses the
    /// record), traits, an event with its properties. `channel` None: a
    /// record keyed by a member id and no web identity (email, device id)
    /// happened offline, any other online.
    pub(crate) fn to_incoming(&self, channel: Option<Channel>) -> Result<Incoming, Unconvertible> {
        let mut item = Incoming::default();
        for identity in self.identities() {
            let kind = IdentityKind::parse(&identity.kind).map_err(|_| Unconvertible {
                code: "unknown_identity_kind",
                field: None,
                reason: format!(
                    "unknown identity kind {:?} (expected email, phone, member_id, device_id \
                     or external:<system>)",
                    identity.kind.chars().take(64).collect::<String>()
                ),
            })?;
            item.identities.push((kind, identity.value.clone()));
        }
        match self {
            ImportItem::Event {
                source_id,
                event_type,
                at_ms,
                properties,
                ..
            } => item.events.push(NewEvent {
                source_id: Some(source_id.clone()),
                event_type: event_type.clone(),
                at_ms: *at_ms,
                channel: channel.unwrap_or_else(|| guess_channel(self.identities())),
                properties: properties.clone(),
            }),
            ImportItem::TraitUpdate { traits, .. } => item.traits = traits.clone(),
            ImportItem::IdentityLink { .. } => {}
        }
        Ok(item)
    }
}

fn guess_channel(identities: &[ItemIdentity]) -> Channel {
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

fn identities(list: &[Identity]) -> Vec<ItemIdentity> {
    list.iter()
        .map(|i| ItemIdentity {
            kind: i.kind.clone(),
            value: i.value.clone(),
        })
        .collect()
}

fn fields(list: &[FieldValue]) -> BTreeMap<String, Json> {
    list.iter()
        .filter_map(|f| Some((f.name.clone(), json(&f.value)?)))
        .collect()
}

/// A contract value as JSON; a missing value (and a number JSON cannot
/// hold) is left out. Timestamps become RFC 3339 UTC text, which the
/// tenant schema's `date` traits take.
pub(crate) fn json(value: &Value) -> Option<Json> {
    match value {
        Value::Null => None,
        Value::Boolean(b) => Some(Json::Bool(*b)),
        Value::Integer(i) => Some((*i).into()),
        Value::Number(n) => serde_json::Number::from_f64(*n).map(Json::Number),
        Value::Text(s) => Some(Json::String(s.clone())),
        Value::Timestamp(ms) => Some(Json::String(rfc3339(*ms))),
        Value::TextList(list) => Some(list.clone().into()),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_636_400_123), "2024-03-05T11:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
