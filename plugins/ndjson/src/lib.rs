//! `ndjson`: a push connector for newline-delimited JSON event exports from
//! web and app analytics. One object per line:
//!
//! ```json
//! {"id":"e-1","type":"track","event":"page_view","at":"2026-11-01T10:00:00Z",
//!  "identities":{"email":"a@example.com","device_id":"d-9"},
//!  "properties":{"path":"/shoes","price":59.9}}
//! {"id":"t-1","type":"identify","identities":{"member_id":"M-1"},"traits":{"tier":"gold"}}
//! {"id":"l-1","type":"alias","identities":{"email":"a@example.com","member_id":"M-1"}}
//! ```
//!
//! Bad lines are rejected with the line number, the field and the reason; the
//! good lines of the same chunk are still returned.

use serde_json::{Map, Value as Json};
use tessera_sdk::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Ndjson;

impl Connector for Ndjson {
    fn describe() -> Manifest {
        Manifest::new(
            "ndjson",
            "0.1.0",
            "Parses newline-delimited JSON exports (track, identify, alias) into events, \
             trait updates and identity links.",
        )
        .param(
            ParamSpec::text("id_prefix", "Prepended to every record's source id")
                .default(Value::Text(String::new())),
        )
        .param(
            ParamSpec::integer("max_line_bytes", "Lines longer than this are rejected")
                .range(64.0, 16_777_216.0)
                .default(Value::Integer(1_048_576)),
        )
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Options::from(params).map(|_| ())
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let options = Options::from(params)?;
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let mut out = ParseOutput {
            records: Vec::new(),
            rejections: Vec::new(),
        };
        for (index, line) in data.split(|b| *b == b'\n').enumerate() {
            let row = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(&options, line) {
                Ok(record) => out.records.push(record),
                Err((field, reason)) => out.rejections.push(Rejection::new(row, field, reason)),
            }
        }
        Ok(out)
    }
}

struct Options {
    id_prefix: String,
    max_line_bytes: usize,
}

impl Options {
    fn from(params: &Params) -> Result<Self, Error> {
        let id_prefix = match params.get("id_prefix") {
            None => String::new(),
            Some(_) => params.text("id_prefix")?.to_owned(),
        };
        let max_line_bytes = match params.get("max_line_bytes") {
            None => 1_048_576,
            Some(_) => params.integer("max_line_bytes")?,
        };
        let max_line_bytes = usize::try_from(max_line_bytes)
            .ok()
            .filter(|n| *n >= 64)
            .ok_or_else(|| Error::config("parameter `max_line_bytes` must be at least 64"))?;
        Ok(Options {
            id_prefix,
            max_line_bytes,
        })
    }
}

type LineError = (Option<&'static str>, String);

fn parse_line(options: &Options, line: &[u8]) -> Result<Record, LineError> {
    if line.len() > options.max_line_bytes {
        return Err((
            None,
            format!(
                "line is {} bytes, over the limit of {}",
                line.len(),
                options.max_line_bytes
            ),
        ));
    }
    let json: Json =
        serde_json::from_slice(line).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let Json::Object(object) = json else {
        return Err((None, "expected a JSON object".into()));
    };
    let id = match object.get("id") {
        Some(Json::String(s)) if !s.is_empty() => format!("{}{s}", options.id_prefix),
        Some(Json::Number(n)) => format!("{}{n}", options.id_prefix),
        _ => {
            return Err((
                Some("id"),
                "missing or empty `id` (a string or number, unique per source)".into(),
            ));
        }
    };
    let identities = identities(&object)?;
    let kind = match object.get("type") {
        None => "track",
        Some(Json::String(s)) => s.as_str(),
        Some(_) => return Err((Some("type"), "`type` must be a string".into())),
    };
    match kind {
        "track" => {
            let event_type = match object.get("event") {
                Some(Json::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err((
                        Some("event"),
                        "a track record needs a non-empty `event` name".into(),
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
                return Err((
                    Some("traits"),
                    "an identify record needs at least one trait".into(),
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
                return Err((
                    Some("identities"),
                    "an alias record links at least two identities".into(),
                ));
            }
            Ok(Record::IdentityLink(IdentityLink {
                source_id: id,
                identities,
            }))
        }
        other => Err((
            Some("type"),
            format!("unknown type `{other}`; expected track, identify or alias"),
        )),
    }
}

fn identities(object: &Map<String, Json>) -> Result<Vec<Identity>, LineError> {
    let Some(Json::Object(ids)) = object.get("identities") else {
        return Err((
            Some("identities"),
            "missing `identities` object (e.g. {\"email\": \"…\"})".into(),
        ));
    };
    let mut out = Vec::with_capacity(ids.len());
    for (kind, value) in ids {
        match value {
            Json::String(s) if !s.trim().is_empty() => out.push(Identity::new(kind, s)),
            Json::Number(n) => out.push(Identity::new(kind, &n.to_string())),
            Json::Null => {}
            _ => {
                return Err((
                    Some("identities"),
                    format!("identity `{kind}` must be a non-empty string"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err((
            Some("identities"),
            "no identity given; at least one is needed to find the person".into(),
        ));
    }
    Ok(out)
}

fn timestamp(value: Option<&Json>) -> Result<i64, LineError> {
    match value {
        Some(Json::Number(n)) => n.as_i64().ok_or_else(|| {
            (
                Some("at"),
                "`at` as a number must be whole milliseconds since the epoch".into(),
            )
        }),
        Some(Json::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|e| {
                (
                    Some("at"),
                    format!("`at` is not an RFC 3339 time ({e}): `{s}`"),
                )
            }),
        _ => Err((
            Some("at"),
            "missing `at` (RFC 3339 text or epoch milliseconds)".into(),
        )),
    }
}

fn fields(value: Option<&Json>, name: &'static str) -> Result<Vec<FieldValue>, LineError> {
    let object = match value {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Object(object)) => object,
        Some(_) => return Err((Some(name), format!("`{name}` must be an object"))),
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
                            _ => Err((
                                Some(name),
                                format!("`{name}.{key}`: lists may hold only strings"),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Json::Object(_) => {
                    return Err((
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

tessera_sdk::export_connector!(Ndjson);
