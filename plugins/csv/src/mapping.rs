//! The per-import mapping (JSON, see the crate docs): which column is which
//! identity, trait, event property, time or source id. Checked whole at
//! `validate`; bound to a header's column positions once per chunk.

use serde_json::{Map, Value as Json};

use crate::values::{TimeFormat, zone};

/// The type a trait or property column is read as.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String,
    Number,
    Integer,
    Boolean,
    /// A time in this format (parsed, and as written); the offset (seconds
    /// east of UTC) applies when the format carries none.
    Date(TimeFormat, String, i32),
}

/// A trait or property column.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    pub column: String,
    pub name: String,
    pub kind: Kind,
    pub required: bool,
}

/// An identity column.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityMap {
    pub column: String,
    pub kind: String,
    pub required: bool,
}

/// Where an event's type comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EventType {
    Fixed(String),
    Column(String),
}

/// The event each row becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMap {
    pub event_type: EventType,
    pub time_column: String,
    pub time_format: TimeFormat,
    pub time_offset: i32,
    pub time_format_text: String,
    pub properties: Vec<FieldMap>,
}

/// A checked mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub source: String,
    /// Names of the columns of a file without a header row.
    pub columns: Option<Vec<String>>,
    pub identities: Vec<IdentityMap>,
    pub traits: Vec<FieldMap>,
    pub event: Option<EventMap>,
    /// The column holding each row's id; `None` derives it from the row.
    pub source_id: Option<String>,
}

type Fail = String;

fn object<'a>(
    value: &'a Json,
    path: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Json>, Fail> {
    let Json::Object(map) = value else {
        return Err(format!("{path} must be an object"));
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{path}: unknown key \"{key}\" (expected one of: {})",
            allowed.join(", ")
        ));
    }
    Ok(map)
}

fn text<'a>(value: &'a Json, path: &str) -> Result<&'a str, Fail> {
    match value {
        Json::String(s) if !s.trim().is_empty() => Ok(s.trim()),
        _ => Err(format!("{path} must be a non-empty string")),
    }
}

fn flag(map: &Map<String, Json>, path: &str) -> Result<bool, Fail> {
    match map.get("required") {
        None => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{path}.required must be true or false")),
    }
}

/// The name a column is matched by: trimmed, case folded.
pub fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn identity_kind(kind: &str) -> Result<String, Fail> {
    let known = ["email", "phone", "member_id", "device_id"];
    if known.contains(&kind) {
        return Ok(kind.into());
    }
    if let Some(system) = kind.strip_prefix("external:")
        && !system.is_empty()
        && system
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Ok(kind.into());
    }
    Err(format!(
        "unknown identity kind \"{kind}\" (expected email, phone, member_id, device_id or \
         external:<system>)"
    ))
}

fn date_kind(
    map: Option<&Map<String, Json>>,
    path: &str,
    default_format: &str,
    default_zone: Option<i32>,
) -> Result<(TimeFormat, String, i32), Fail> {
    let format = match map.and_then(|m| m.get("format")) {
        Some(value) => text(value, &format!("{path}.format"))?,
        None => default_format,
    };
    let parsed =
        TimeFormat::parse(format).map_err(|e| format!("{path}.format \"{format}\": {e}"))?;
    let offset = match map.and_then(|m| m.get("timezone")) {
        Some(value) => {
            let name = text(value, &format!("{path}.timezone"))?;
            Some(zone(name).map_err(|e| format!("{path}.timezone: {e}"))?)
        }
        None => default_zone,
    };
    let offset = match offset {
        Some(offset) => offset,
        None if parsed.has_offset() => 0,
        None => {
            return Err(format!(
                "{path}: the format \"{format}\" has no offset (%z), so a \"timezone\" is needed \
                 here or at the top of the mapping, e.g. \"+08:00\""
            ));
        }
    };
    Ok((parsed, format.to_owned(), offset))
}

fn fields(
    value: Option<&Json>,
    path: &str,
    default_zone: Option<i32>,
) -> Result<Vec<FieldMap>, Fail> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Json::Object(map) = value else {
        return Err(format!(
            "{path} must be an object of column: type or column: {{name, type, …}}"
        ));
    };
    let mut out: Vec<FieldMap> = Vec::with_capacity(map.len());
    for (column, spec) in map {
        let path = format!("{path}.\"{column}\"");
        if column.trim().is_empty() {
            return Err(format!("{path}: a column name cannot be empty"));
        }
        let (name, kind, options) = match spec {
            Json::String(kind) => (column.trim(), kind.as_str(), None),
            Json::Object(_) => {
                let map = object(
                    spec,
                    &path,
                    &["name", "type", "format", "timezone", "required"],
                )?;
                let name = match map.get("name") {
                    Some(value) => text(value, &format!("{path}.name"))?,
                    None => column.trim(),
                };
                let kind = match map.get("type") {
                    Some(value) => text(value, &format!("{path}.type"))?,
                    None => "string",
                };
                (name, kind, Some(map))
            }
            _ => return Err(format!("{path} must be a type name or an object")),
        };
        let kind = match kind {
            "string" => Kind::String,
            "number" => Kind::Number,
            "integer" => Kind::Integer,
            "bool" | "boolean" => Kind::Boolean,
            "date" => {
                let (format, text, offset) = date_kind(options, &path, "%Y-%m-%d", default_zone)?;
                Kind::Date(format, text, offset)
            }
            other => {
                return Err(format!(
                    "{path}: unknown type \"{other}\" (expected string, number, integer, bool or \
                     date)"
                ));
            }
        };
        if let Some(options) = options
            && !matches!(kind, Kind::Date(..))
            && (options.contains_key("format") || options.contains_key("timezone"))
        {
            return Err(format!(
                "{path}: format and timezone apply only to type \"date\""
            ));
        }
        if out.iter().any(|f| f.name == name) {
            return Err(format!("{path}: the name \"{name}\" is used twice"));
        }
        let required = match options {
            Some(map) => flag(map, &path)?,
            None => false,
        };
        out.push(FieldMap {
            column: column.trim().into(),
            name: name.into(),
            kind,
            required,
        });
    }
    Ok(out)
}

impl Mapping {
    /// Parses and checks a mapping; the error names the key at fault.
    pub fn parse(json: &str) -> Result<Mapping, Fail> {
        let root: Json = serde_json::from_str(json).map_err(|e| format!("not valid JSON ({e})"))?;
        let root = object(
            &root,
            "the mapping",
            &[
                "source",
                "columns",
                "timezone",
                "identities",
                "traits",
                "event",
                "source_id",
            ],
        )?;
        let source = text(
            root.get("source")
                .ok_or("\"source\" is required: a name for this source, e.g. \"pos-shanghai\"")?,
            "source",
        )?
        .to_owned();
        if source.len() > 64 || source.contains(char::is_whitespace) {
            return Err("source must be at most 64 characters without spaces".into());
        }
        let columns = match root.get("columns") {
            None => None,
            Some(Json::Array(items)) if !items.is_empty() => {
                let mut names: Vec<String> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let name = text(item, &format!("columns[{i}]"))?;
                    if names.iter().any(|n| key(n) == key(name)) {
                        return Err(format!("columns: \"{name}\" is named twice"));
                    }
                    names.push(name.into());
                }
                Some(names)
            }
            Some(_) => return Err("columns must be a non-empty list of column names".into()),
        };
        let default_zone = match root.get("timezone") {
            None => None,
            Some(value) => {
                Some(zone(text(value, "timezone")?).map_err(|e| format!("timezone: {e}"))?)
            }
        };

        let mut identities = Vec::new();
        match root.get("identities") {
            Some(Json::Object(map)) => {
                for (column, spec) in map {
                    let path = format!("identities.\"{column}\"");
                    let (kind, required) = match spec {
                        Json::String(kind) => (kind.as_str(), false),
                        Json::Object(_) => {
                            let map = object(spec, &path, &["kind", "required"])?;
                            let kind = text(
                                map.get("kind").ok_or(format!("{path}.kind is required"))?,
                                &format!("{path}.kind"),
                            )?;
                            (kind, flag(map, &path)?)
                        }
                        _ => return Err(format!("{path} must be an identity kind or an object")),
                    };
                    let kind = identity_kind(kind).map_err(|e| format!("{path}: {e}"))?;
                    identities.push(IdentityMap {
                        column: column.trim().into(),
                        kind,
                        required,
                    });
                }
            }
            Some(_) => {
                return Err("identities must be an object of column: identity kind".into());
            }
            None => {}
        }
        if identities.is_empty() {
            return Err(
                "identities must map at least one column to an identity kind, e.g. \
                 {\"member_no\": \"member_id\"}"
                    .into(),
            );
        }

        let traits = fields(root.get("traits"), "traits", default_zone)?;

        let event = match root.get("event") {
            None => None,
            Some(value) => {
                let map = object(value, "event", &["type", "time", "properties"])?;
                let event_type = match map.get("type") {
                    Some(Json::String(s)) if !s.trim().is_empty() => {
                        EventType::Fixed(s.trim().into())
                    }
                    Some(spec @ Json::Object(_)) => {
                        let map = object(spec, "event.type", &["column"])?;
                        EventType::Column(
                            text(
                                map.get("column").ok_or("event.type.column is required")?,
                                "event.type.column",
                            )?
                            .into(),
                        )
                    }
                    _ => {
                        return Err("event.type must be an event name (e.g. \"purchase\") or \
                                    {\"column\": \"<column>\"}"
                            .into());
                    }
                };
                let time = map.get("time").ok_or(
                    "event.time is required, e.g. {\"column\": \"purchased_at\", \"format\": \
                     \"%Y-%m-%d %H:%M:%S\", \"timezone\": \"+08:00\"}",
                )?;
                let time = object(time, "event.time", &["column", "format", "timezone"])?;
                let time_column = text(
                    time.get("column").ok_or("event.time.column is required")?,
                    "event.time.column",
                )?
                .to_owned();
                if !time.contains_key("format") {
                    return Err("event.time.format is required (a pattern such as \
                                \"%Y-%m-%d %H:%M:%S\", or rfc3339, epoch_s, epoch_ms)"
                        .into());
                }
                let (time_format, time_format_text, time_offset) =
                    date_kind(Some(time), "event.time", "", default_zone)?;
                let properties = fields(map.get("properties"), "event.properties", default_zone)?;
                Some(EventMap {
                    event_type,
                    time_column,
                    time_format,
                    time_offset,
                    time_format_text,
                    properties,
                })
            }
        };

        if event.is_none() && traits.is_empty() && identities.len() < 2 {
            return Err(
                "the mapping makes nothing of a row: give an event, traits, or at least two \
                 identity columns to link"
                    .into(),
            );
        }

        let source_id = match root.get("source_id") {
            None => None,
            Some(Json::String(s)) if s == "derived" => None,
            Some(spec @ Json::Object(_)) => {
                let map = object(spec, "source_id", &["column"])?;
                Some(
                    text(
                        map.get("column").ok_or("source_id.column is required")?,
                        "source_id.column",
                    )?
                    .to_owned(),
                )
            }
            Some(_) => {
                return Err("source_id must be {\"column\": \"<column>\"} or \"derived\"".into());
            }
        };

        let mapping = Mapping {
            source,
            columns,
            identities,
            traits,
            event,
            source_id,
        };
        if let Some(columns) = &mapping.columns {
            let named = |c: &str| columns.iter().any(|n| key(n) == key(c));
            if let Some(missing) = mapping.referenced().find(|c| !named(c)) {
                return Err(format!(
                    "column \"{missing}\" is not one of the names in columns"
                ));
            }
        }
        Ok(mapping)
    }

    /// Every column the mapping reads.
    pub fn referenced(&self) -> impl Iterator<Item = &str> {
        let event = self.event.iter().flat_map(|e| {
            let by_column = match &e.event_type {
                EventType::Column(c) => Some(c.as_str()),
                EventType::Fixed(_) => None,
            };
            by_column
                .into_iter()
                .chain(std::iter::once(e.time_column.as_str()))
                .chain(e.properties.iter().map(|p| p.column.as_str()))
        });
        self.identities
            .iter()
            .map(|i| i.column.as_str())
            .chain(self.traits.iter().map(|t| t.column.as_str()))
            .chain(event)
            .chain(self.source_id.as_deref())
    }
}

/// Where a bound event's type comes from.
#[derive(Debug)]
pub enum EventTypeAt {
    Fixed(String),
    Column(usize),
}

/// Column positions of a mapping in one file.
#[derive(Debug)]
pub struct Plan {
    /// The file's column names, as written (for messages); empty when the
    /// file has neither a header nor `columns`.
    pub names: Vec<String>,
    pub identities: Vec<usize>,
    pub traits: Vec<usize>,
    pub event_type: EventTypeAt,
    pub time: usize,
    pub properties: Vec<usize>,
    pub source_id: Option<usize>,
}

impl Plan {
    /// Binds `mapping` to a file whose columns are `names`, or, when `names`
    /// is empty, to positions (`"1"` is the first column).
    pub fn bind(mapping: &Mapping, names: Vec<String>) -> Result<Plan, Fail> {
        let position = |column: &str| -> Result<usize, Fail> {
            if names.is_empty() {
                return column
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| n - 1)
                    .ok_or(format!(
                        "column \"{column}\": a file without a header names its columns in the \
                         mapping's \"columns\" or by position (\"1\", \"2\", …)"
                    ));
            }
            let wanted = key(column);
            let mut found = names.iter().enumerate().filter(|(_, n)| key(n) == wanted);
            match (found.next(), found.next()) {
                (Some((i, _)), None) => Ok(i),
                (Some(_), Some(_)) => Err(format!(
                    "column \"{column}\" appears more than once in the header"
                )),
                (None, _) => Err(format!(
                    "column \"{column}\" of the mapping is not in the header (the header has: {})",
                    names.join(", ")
                )),
            }
        };
        let all = |list: &[FieldMap]| -> Result<Vec<usize>, Fail> {
            list.iter().map(|f| position(&f.column)).collect()
        };
        let identities = mapping
            .identities
            .iter()
            .map(|i| position(&i.column))
            .collect::<Result<_, _>>()?;
        let traits = all(&mapping.traits)?;
        let (event_type, time, properties) = match &mapping.event {
            Some(event) => (
                match &event.event_type {
                    EventType::Column(c) => EventTypeAt::Column(position(c)?),
                    EventType::Fixed(name) => EventTypeAt::Fixed(name.clone()),
                },
                position(&event.time_column)?,
                all(&event.properties)?,
            ),
            None => (EventTypeAt::Fixed(String::new()), 0, Vec::new()),
        };
        let source_id = mapping.source_id.as_deref().map(position).transpose()?;
        Ok(Plan {
            names,
            identities,
            traits,
            event_type,
            time,
            properties,
            source_id,
        })
    }

    /// The name of a column for messages.
    pub fn name(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(name) => name.clone(),
            None => (index + 1).to_string(),
        }
    }
}
