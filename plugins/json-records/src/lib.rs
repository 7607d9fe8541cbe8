//! The JSON event shape that Tessera's first-party connectors share: the
//! `ndjson` connector reads one object per line, `rest-pull` one per item of
//! an API page. Each object becomes one record:
//!
//! ```json
//! {"id":"e-1","type":"track","event":"page_view","at":"2026-11-01T10:00:00Z",
//!  "identities":{"email":"a@example.com","device_id":"d-9"},
//!  "properties":{"path":"/shoes","price":59.9}}
//! {"id":"t-1","type":"identify","identities":{"member_id":"M-1"},"traits":{"tier":"gold"}}
//! {"id":"l-1","type":"alias","identities":{"email":"a@example.com","member_id":"M-1"}}
//! ```
//!
//! - `id` (string or number, required): the record's source id, after the
//!   connector's prefix.
//! - `type`: `track` (the default) → an event, `identify` → a trait update,
//!   `alias` → an identity link.
//! - `identities` (object, required): kind → value, at least one (two for
//!   `alias`); null values are skipped.
//! - `event` and `at` (RFC 3339 text or epoch milliseconds) for `track`;
//!   `properties` (flat object) for `track`, `traits` (flat object, at least
//!   one) for `identify`. Values are booleans, numbers, strings or lists of
//!   strings.
//!
//! An object that does not fit is [`Invalid`], naming the field at fault and
//! what was wrong; this crate never sees rows, so the connector adds where
//! the object was.

use serde_json::{Map, Value as Json};
use tessera_sdk::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why an object is not a record: the field at fault (none when the object
/// as a whole is wrong) and the reason, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: Option<&'static str>,
    pub reason: String,
}

impl Invalid {
    fn new(field: Option<&'static str>, reason: impl Into<String>) -> Self {
        Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The rejection of this object at `row`.
    pub fn rejection(&self, row: u32) -> Rejection {
        Rejection::new(row, self.field, self.reason.clone())
    }
}

/// The record one JSON value stands for; `id_prefix` is prepended to its
/// source id. Anything but an object is [`Invalid`] as a whole.
pub fn record(json: &Json, id_prefix: &str) -> Result<Record, Invalid> {
    let Json::Object(object) = json else {
        return Err(Invalid::new(None, "expected a JSON object"));
    };
    let id = match object.get("id") {
        Some(Json::String(s)) if !s.is_empty() => format!("{id_prefix}{s}"),
        Some(Json::Number(n)) => format!("{id_prefix}{n}"),
        _ => {
            return Err(Invalid::new(
                Some("id"),
                "missing or empty `id` (a string or number, unique per source)",
            ));
        }
    };
    let identities = identities(object)?;
    let kind = match object.get("type") {
        None => "track",
        Some(Json::String(s)) => s.as_str(),
        Some(_) => return Err(Invalid::new(Some("type"), "`type` must be a string")),
    };
    match kind {
        "track" => {
            let event_type = match object.get("event") {
                Some(Json::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(Invalid::new(
                        Some("event"),
                        "a track record needs a non-empty `event` name",
                    ));
                }
            };
            let at = timestamp(object.get("at"))?;
            let properties = fields(object.get("properties"), "properties")?;
            Ok(Record::Event(Event {
                source_id: id,
                event_type,
                at,
                identities,
                properties,
            }))
        }
        "identify" => {
            let traits = fields(object.get("traits"), "traits")?;
            if traits.is_empty() {
                return Err(Invalid::new(
                    Some("traits"),
                    "an identify record needs at least one trait",
                ));
            }
            Ok(Record::TraitUpdate(TraitUpdate {
                source_id: id,
                identities,
                traits,
            }))
        }
        "alias" => {
            if identities.len() < 2 {
                return Err(Invalid::new(
                    Some("identities"),
                    "an alias record links at least two identities",
                ));
            }
            Ok(Record::IdentityLink(IdentityLink {
                source_id: id,
                identities,
            }))
        }
        other => Err(Invalid::new(
            Some("type"),
            format!("unknown type `{other}`; expected track, identify or alias"),
        )),
    }
}

fn identities(object: &Map<String, Json>) -> Result<Vec<Identity>, Invalid> {
    let Some(Json::Object(ids)) = object.get("identities") else {
        return Err(Invalid::new(
            Some("identities"),
            "missing `identities` object (e.g. {\"email\": \"…\"})",
        ));
    };
    let mut out = Vec::with_capacity(ids.len());
    for (kind, value) in ids {
        match value {
            Json::String(s) if !s.trim().is_empty() => out.push(Identity::new(kind, s)),
            Json::Number(n) => out.push(Identity::new(kind, &n.to_string())),
            Json::Null => {}
            _ => {
                return Err(Invalid::new(
                    Some("identities"),
                    format!("identity `{kind}` must be a non-empty string"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Invalid::new(
            Some("identities"),
            "no identity given; at least one is needed to find the person",
        ));
    }
    Ok(out)
}

fn timestamp(value: Option<&Json>) -> Result<i64, Invalid> {
    match value {
        Some(Json::Number(n)) => n.as_i64().ok_or_else(|| {
            Invalid::new(
                Some("at"),
                "`at` as a number must be whole milliseconds since the epoch",
            )
        }),
        Some(Json::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|e| {
                Invalid::new(
                    Some("at"),
                    format!("`at` is not an RFC 3339 time ({e}): `{s}`"),
                )
            }),
        _ => Err(Invalid::new(
            Some("at"),
            "missing `at` (RFC 3339 text or epoch milliseconds)",
        )),
    }
}

fn fields(value: Option<&Json>, name: &'static str) -> Result<Vec<FieldValue>, Invalid> {
    let object = match value {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Object(object)) => object,
        Some(_) => {
            return Err(Invalid::new(
                Some(name),
                format!("`{name}` must be an object"),
            ));
        }
    };
    object
        .iter()
        .map(|(key, json)| {
            let value = match json {
                Json::Null => Value::Null,
                Json::Bool(b) => Value::Boolean(*b),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => Value::Integer(i),
                    None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
                },
                Json::String(s) => Value::Text(s.clone()),
                Json::Array(items) => Value::TextList(
                    items
                        .iter()
                        .map(|item| match item {
                            Json::String(s) => Ok(s.clone()),
                            _ => Err(Invalid::new(
                                Some(name),
                                format!("`{name}.{key}`: lists may hold only strings"),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Json::Object(_) => {
                    return Err(Invalid::new(
                        Some(name),
                        format!("`{name}.{key}`: nested objects are not supported; flatten them"),
                    ));
                }
            };
            Ok(FieldValue {
                name: key.clone(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_track_object_is_an_event_with_the_prefixed_id_and_utc_milliseconds() {
        let object = json!({"id": "e-1", "event": "purchase", "at": "2026-11-01T10:00:00+08:00",
            "identities": {"email": "a@example.com", "phone": null},
            "properties": {"amount": 59.9, "qty": 2, "tags": ["sale"]}});
        let Record::Event(event) = record(&object, "shop:").unwrap() else {
            panic!("expected an event");
        };
        assert_eq!(event.source_id, "shop:e-1");
        assert_eq!(event.at, 1_793_498_400_000);
        assert_eq!(event.identities.len(), 1, "null identities are skipped");
        let property = |name: &str| {
            let found = event.properties.iter().find(|p| p.name == name);
            found.map(|p| p.value.clone()).expect(name)
        };
        assert!(matches!(property("qty"), Value::Integer(2)));
        assert!(matches!(property("amount"), Value::Number(n) if n == 59.9));
        assert!(matches!(property("tags"), Value::TextList(t) if t == ["sale"]));
    }

    #[test]
    fn each_fault_names_its_field() {
        let cases = [
            (json!([1, 2]), None, "expected a JSON object"),
            (json!({"event": "v"}), Some("id"), "missing or empty `id`"),
            (json!({"id": 1}), Some("identities"), "missing `identities`"),
            (
                json!({"id": 1, "identities": {"member_id": 35}, "event": "v"}),
                Some("at"),
                "missing `at`",
            ),
            (
                json!({"id": 1, "identities": {"email": true}}),
                Some("identities"),
                "identity `email`",
            ),
            (
                json!({"id": 1, "identities": {"email": "a@b.c"}, "event": "v", "at": "soon"}),
                Some("at"),
                "not an RFC 3339 time",
            ),
            (
                json!({"id": 1, "identities": {"email": "a@b.c"}, "event": "v", "at": 1,
                       "properties": {"p": {"q": 1}}}),
                Some("properties"),
                "nested objects",
            ),
            (
                json!({"id": 1, "type": "identify", "identities": {"email": "a@b.c"}}),
                Some("traits"),
                "at least one trait",
            ),
            (
                json!({"id": 1, "type": "alias", "identities": {"email": "a@b.c"}}),
                Some("identities"),
                "at least two identities",
            ),
            (
                json!({"id": 1, "type": "teleport", "identities": {"email": "a@b.c"}}),
                Some("type"),
                "unknown type `teleport`",
            ),
        ];
        for (object, field, reason) in cases {
            match record(&object, "") {
                Err(invalid) => {
                    assert_eq!(invalid.field, field, "{object}");
                    assert!(
                        invalid.reason.contains(reason),
                        "{object}: {}",
                        invalid.reason
                    );
                }
                Ok(_) => panic!("{object} was accepted"),
            }
        }
    }
}
