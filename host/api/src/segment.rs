//! The Segment tracking spec, mapped onto the vault's ingest records.
//!
//! | Segment | Tessera |
//! |---|---|
//! | `userId` | identity `member_id` |
//! | `anonymousId` | identity `device_id` (attaches, never merges by default) |
//! | `traits.email`, `context.traits.email` | identity `email` |
//! | `traits.phone`, `context.traits.phone` | identity `phone` |
//! | `identify` `traits` | traits, names in snake_case, checked against the tenant schema |
//! | `track` `event` | an event whose type is the name in snake_case |
//! | `page` / `screen` | events `page_view` / `screen_view` (`name`, `category` added to the properties) |
//! | `group` | an event `group` with `group_id` and the group's traits as properties |
//! | `alias` | one record with `userId` and `previousId` (both `member_id`): merges them |
//! | `messageId` | the event's source id `segment:<messageId>`: sent twice, stored once |
//! | `timestamp`, else `originalTimestamp` corrected by `sentAt` | the event's time |

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_vault::normalize::normalize;
use tessera_vault::{Channel, IdentityKind, Incoming, MAX_FUTURE_MS, NewEvent, TenantSettings};

/// The longest `messageId` accepted (the vault takes 512-byte source ids).
const MAX_MESSAGE_ID: usize = 256;

/// The kinds of Segment call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "identify" => Self::Identify,
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }
}

/// Why one message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub code: &'static str,
    pub message: String,
    /// The message field at fault, in Segment's spelling (`userId`, `traits.plan`).
    pub field: Option<String>,
}

impl ItemError {
    fn new(code: &'static str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }
}

/// An id Segment clients send as a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(serde_json::Number),
}

impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some("A string, or a number (kept as written)."))
            .into()
    }
}

impl utoipa::ToSchema for Id {}

impl Id {
    fn text(&self) -> String {
        match self {
            Id::Text(text) => text.clone(),
            Id::Number(number) => number.to_string(),
        }
    }
}

/// The part of `context` Tessera reads.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct Context {
    #[serde(default)]
    traits: Option<Map<String, Value>>,
}

/// One Segment message (unknown fields, e.g. `integrations`, are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `identify`, `track`, `page`, `screen`, `group` or `alias`; on the
    /// single-kind endpoints it may be left out.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Your id of the person (becomes a member id).
    #[serde(default)]
    user_id: Option<Id>,
    /// A device or browser id (becomes a device id; never merges people).
    #[serde(default)]
    anonymous_id: Option<Id>,
    /// `alias`: the id the person had before.
    #[serde(default)]
    previous_id: Option<Id>,
    #[serde(default)]
    group_id: Option<Id>,
    /// Makes the message idempotent: the same id is stored once.
    #[serde(default)]
    message_id: Option<Id>,
    /// `track`: the event name.
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    category: Option<String>,
    /// ISO 8601; when the event happened.
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    original_timestamp: Option<String>,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    traits: Option<Map<String, Value>>,
    #[serde(default)]
    context: Option<Context>,
}

/// What a batch says for all its messages.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub context: Option<Context>,
    pub sent_at: Option<String>,
}

/// Parses one message from its JSON text.
pub fn parse(raw: &str) -> Result<Message, ItemError> {
    serde_json::from_str(raw).map_err(|error| {
        ItemError::new(
            "invalid_message",
            format!(
                "the message is not a Segment message: {}",
                crate::error::json_error_reason(&error)
            ),
            None,
        )
    })
}

/// Converts a message into one ingest record, checking what can be checked
/// without the store: identities (normalised with the tenant's rules), trait
/// names (against the schema), event names, times and the message id.
/// `kind` is the endpoint's (`/v1/track`) or `None` to read the message's
/// `type` (`/v1/events`, `/v1/batch`).
pub fn convert(
    mut message: Message,
    kind: Option<Kind>,
    defaults: &Defaults,
    settings: &TenantSettings,
    now_ms: i64,
) -> Result<Incoming, ItemError> {
    let kind = match kind {
        Some(kind) => kind,
        None => {
            let text = message.kind.as_deref().ok_or_else(|| {
                ItemError::new(
                    "invalid_message",
                    "the message has no `type` (identify, track, page, screen, group or alias)",
                    Some("type"),
                )
            })?;
            Kind::parse(text).ok_or_else(|| {
                ItemError::new(
                    "invalid_message",
                    "`type` must be identify, track, page, screen, group or alias",
                    Some("type"),
                )
            })?
        }
    };
    if message.context.is_none() {
        message.context.clone_from(&defaults.context);
    }
    if message.sent_at.is_none() {
        message.sent_at.clone_from(&defaults.sent_at);
    }
    let mut incoming = Incoming::default();
    let rules = &settings.identity_rules;
    let identity = |identities: &mut Vec<(IdentityKind, String)>,
                    kind: IdentityKind,
                    value: String,
                    field: &str| {
        if let Err(error) = normalize(&kind, &value, rules) {
            return Err(ItemError::new(
                "invalid_identity",
                format!("`{field}` is not a valid {}: {error}", kind.label()),
                Some(field),
            ));
        }
        identities.push((kind, value));
        Ok(())
    };
    if let Some(id) = &message.user_id {
        identity(
            &mut incoming.identities,
            IdentityKind::MemberId,
            id.text(),
            "userId",
        )?;
    }
    if let Some(id) = &message.anonymous_id {
        identity(
            &mut incoming.identities,
            IdentityKind::DeviceId,
            id.text(),
            "anonymousId",
        )?;
    }
    if kind == Kind::Alias {
        let Some(previous) = &message.previous_id else {
            return Err(ItemError::new(
                "invalid_message",
                "an alias needs `previousId`",
                Some("previousId"),
            ));
        };
        if message.user_id.is_none() {
            return Err(ItemError::new(
                "invalid_message",
                "an alias needs `userId`",
                Some("userId"),
            ));
        }
        identity(
            &mut incoming.identities,
            IdentityKind::MemberId,
            previous.text(),
            "previousId",
        )?;
    }
    // Contact identities: the person's own traits (identify) and the
    // context's traits (every call).
    let own_traits = if kind == Kind::Identify {
        message.traits.as_ref()
    } else {
        None
    };
    let sources = [
        ("traits", own_traits),
        (
            "context.traits",
            message.context.as_ref().and_then(|c| c.traits.as_ref()),
        ),
    ];
    for (prefix, traits) in sources {
        let Some(traits) = traits else { continue };
        for (name, kind) in [
            ("email", IdentityKind::Email),
            ("phone", IdentityKind::Phone),
        ] {
            match traits.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => {
                    if !incoming
                        .identities
                        .iter()
                        .any(|(k, v)| *k == kind && v == value)
                    {
                        identity(
                            &mut incoming.identities,
                            kind,
                            value.clone(),
                            &format!("{prefix}.{name}"),
                        )?;
                    }
                }
                Some(_) => {
                    return Err(ItemError::new(
                        "invalid_identity",
                        format!("`{prefix}.{name}` must be a string"),
                        Some(&format!("{prefix}.{name}")),
                    ));
                }
            }
        }
    }
    if incoming.identities.is_empty() {
        return Err(ItemError::new(
            "no_identity",
            "the message names nobody: send a `userId` or an `anonymousId`",
            Some("userId"),
        ));
    }
    if let Some(traits) = own_traits {
        for (name, value) in traits {
            let key = snake_case(name);
            if !settings.schema.contains_key(&key) {
                return Err(ItemError::new(
                    "unknown_trait",
                    format!(
                        "trait `{}` (stored as `{key}`) is not in the tenant's trait schema; add it to the schema with its class first",
                        short(name)
                    ),
                    Some(&format!("traits.{}", short(name))),
                ));
            }
            incoming.traits.insert(key, value.clone());
        }
    }
    let event = match kind {
        Kind::Identify | Kind::Alias => None,
        Kind::Track => {
            let name = message.event.as_deref().unwrap_or_default();
            let event_type = snake_case(name);
            if event_type.is_empty() {
                return Err(ItemError::new(
                    "invalid_event",
                    "a track call needs an `event` name with at least one letter or digit",
                    Some("event"),
                ));
            }
            Some((event_type, message.properties.take().unwrap_or_default()))
        }
        Kind::Page | Kind::Screen => {
            let mut properties = message.properties.take().unwrap_or_default();
            for (key, value) in [("name", &message.name), ("category", &message.category)] {
                if let Some(value) = value {
                    properties
                        .entry(key)
                        .or_insert_with(|| Value::String(value.clone()));
                }
            }
            let event_type = if kind == Kind::Page {
                "page_view"
            } else {
                "screen_view"
            };
            Some((event_type.to_owned(), properties))
        }
        Kind::Group => {
            let Some(group) = &message.group_id else {
                return Err(ItemError::new(
                    "invalid_message",
                    "a group call needs `groupId`",
                    Some("groupId"),
                ));
            };
            let mut properties = message.traits.take().unwrap_or_default();
            properties.insert("group_id".into(), Value::String(group.text()));
            Some(("group".to_owned(), properties))
        }
    };
    if let Some((event_type, properties)) = event {
        let at_ms = event_time(&message, now_ms)?;
        let source_id = match &message.message_id {
            None => None,
            Some(id) => {
                let id = id.text();
                if id.is_empty() || id.len() > MAX_MESSAGE_ID {
                    return Err(ItemError::new(
                        "invalid_message",
                        format!("`messageId` must be 1 to {MAX_MESSAGE_ID} bytes"),
                        Some("messageId"),
                    ));
                }
                Some(format!("segment:{id}"))
            }
        };
        incoming.events.push(NewEvent {
            source_id,
            event_type,
            at_ms,
            channel: Channel::Online,
            properties: properties.into_iter().collect::<BTreeMap<_, _>>(),
        });
    }
    Ok(incoming)
}

/// The event's time: `timestamp`; else `originalTimestamp` shifted by the
/// client's clock error (`sentAt` against the time of receipt), as Segment
/// does; else the time of receipt.
fn event_time(message: &Message, now_ms: i64) -> Result<i64, ItemError> {
    let time = |field: &str, text: &str| {
        crate::time::parse_ms(text).ok_or_else(|| {
            ItemError::new(
                "invalid_timestamp",
                format!("`{field}` is not an ISO 8601 time (e.g. 2026-06-01T12:00:00.000Z)"),
                Some(field),
            )
        })
    };
    let at = if let Some(text) = &message.timestamp {
        time("timestamp", text)?
    } else if let Some(text) = &message.original_timestamp {
        let original = time("originalTimestamp", text)?;
        match &message.sent_at {
            Some(sent) => now_ms.saturating_sub(time("sentAt", sent)?.saturating_sub(original)),
            None => original,
        }
    } else {
        now_ms
    };
    if at > now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err(ItemError::new(
            "invalid_timestamp",
            "the event is dated more than a day in the future; check the client's clock",
            Some("timestamp"),
        ));
    }
    Ok(at)
}

/// At most 64 characters of an untrusted name, for a message.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// `Order Completed` → `order_completed`, `addToCart` → `add_to_cart`,
/// `HTMLPage` → `html_page`: lowercase ASCII words joined by `_`, at most 64
/// characters; other characters separate words.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(char::is_ascii_lowercase));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_end_matches('_').to_owned();
    if out.len() > 64 {
        out.truncate(64);
        out = out.trim_end_matches('_').to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_780_272_000_000;

    fn convert_json(value: Value, kind: Option<Kind>) -> Result<Incoming, ItemError> {
        let message = parse(&value.to_string())?;
        convert(
            message,
            kind,
            &Defaults::default(),
            &TenantSettings::default(),
            NOW,
        )
    }

    #[test]
    fn snake_cases_event_and_trait_names() {
        assert_eq!(snake_case("Order Completed"), "order_completed");
        assert_eq!(snake_case("addToCart"), "add_to_cart");
        assert_eq!(snake_case("HTMLPage"), "html_page");
        assert_eq!(snake_case("firstName"), "first_name");
        assert_eq!(snake_case("  Signed-Up!! v2 "), "signed_up_v2");
        assert_eq!(snake_case("页面"), "");
        assert_eq!(snake_case(&"A".repeat(100)).len(), 64);
    }

    #[test]
    fn a_track_call_becomes_one_online_event_with_a_source_id() {
        let incoming = convert_json(
            json!({
                "userId": "u-1", "anonymousId": "a-1", "event": "Order Completed",
                "messageId": "m-1", "timestamp": "2026-05-31T12:00:00Z",
                "properties": {"revenue": 12.5},
                "context": {"traits": {"email": "Ann@Example.com"}}
            }),
            Some(Kind::Track),
        )
        .unwrap();
        assert_eq!(
            incoming.identities,
            vec![
                (IdentityKind::MemberId, "u-1".into()),
                (IdentityKind::DeviceId, "a-1".into()),
                (IdentityKind::Email, "Ann@Example.com".into()),
            ]
        );
        assert!(
            incoming.traits.is_empty(),
            "context traits are not stored as traits"
        );
        let event = &incoming.events[0];
        assert_eq!(event.event_type, "order_completed");
        assert_eq!(event.source_id.as_deref(), Some("segment:m-1"));
        assert_eq!(event.at_ms, NOW - 12 * 3_600_000);
        assert_eq!(event.properties["revenue"], json!(12.5));
    }

    #[test]
    fn identify_traits_are_snake_cased_and_checked_against_the_schema() {
        let incoming = convert_json(
            json!({"type": "identify", "userId": 42, "traits": {"firstName": "Ann", "email": "ann@example.com"}}),
            None,
        )
        .unwrap();
        assert_eq!(
            incoming.identities[0],
            (IdentityKind::MemberId, "42".into())
        );
        assert_eq!(incoming.identities[1].0, IdentityKind::Email);
        assert_eq!(incoming.traits["first_name"], json!("Ann"));
        assert!(incoming.events.is_empty());
        let error = convert_json(
            json!({"type": "identify", "userId": "u", "traits": {"favouriteColour": "red"}}),
            None,
        )
        .unwrap_err();
        assert_eq!(error.code, "unknown_trait");
        assert_eq!(error.field.as_deref(), Some("traits.favouriteColour"));
    }

    #[test]
    fn page_screen_group_and_alias_map_as_documented() {
        let page = convert_json(
            json!({"anonymousId": "a", "name": "Home", "properties": {"path": "/"}}),
            Some(Kind::Page),
        )
        .unwrap();
        assert_eq!(page.events[0].event_type, "page_view");
        assert_eq!(page.events[0].properties["name"], json!("Home"));
        let screen = convert_json(json!({"type": "screen", "userId": "u"}), None).unwrap();
        assert_eq!(screen.events[0].event_type, "screen_view");
        let group = convert_json(
            json!({"type": "group", "userId": "u", "groupId": "g1", "traits": {"plan": "pro"}}),
            None,
        )
        .unwrap();
        assert_eq!(group.events[0].properties["group_id"], json!("g1"));
        assert_eq!(group.events[0].properties["plan"], json!("pro"));
        let alias = convert_json(
            json!({"type": "alias", "userId": "new", "previousId": "old"}),
            None,
        )
        .unwrap();
        assert_eq!(
            alias.identities,
            vec![
                (IdentityKind::MemberId, "new".into()),
                (IdentityKind::MemberId, "old".into())
            ]
        );
        assert!(alias.events.is_empty());
    }

    #[test]
    fn times_follow_segment_clock_correction() {
        // The client's clock is an hour fast: sentAt says 01:00, it is 00:00.
        let incoming = convert_json(
            json!({"userId": "u", "event": "x",
                   "originalTimestamp": "2026-06-01T00:30:00Z", "sentAt": "2026-06-01T01:00:00Z"}),
            Some(Kind::Track),
        )
        .unwrap();
        assert_eq!(incoming.events[0].at_ms, NOW - 30 * 60_000);
        let none = convert_json(json!({"userId": "u", "event": "x"}), Some(Kind::Track)).unwrap();
        assert_eq!(none.events[0].at_ms, NOW);
    }

    #[test]
    fn bad_messages_name_the_field() {
        let cases = [
            (json!({"event": "x"}), "no_identity", "userId"),
            (json!({"userId": "u"}), "invalid_event", "event"),
            (
                json!({"userId": "u", "event": "x", "timestamp": "soon"}),
                "invalid_timestamp",
                "timestamp",
            ),
            (
                json!({"userId": "u", "event": "x", "timestamp": "2030-01-01T00:00:00Z"}),
                "invalid_timestamp",
                "timestamp",
            ),
            (
                json!({"userId": "u", "event": "x", "context": {"traits": {"email": "nope"}}}),
                "invalid_identity",
                "context.traits.email",
            ),
            (
                json!({"userId": "u", "event": "x", "messageId": ""}),
                "invalid_message",
                "messageId",
            ),
            (
                json!({"userId": "", "event": "x"}),
                "invalid_identity",
                "userId",
            ),
        ];
        for (value, code, field) in cases {
            let error = convert_json(value.clone(), Some(Kind::Track)).unwrap_err();
            assert_eq!(
                (error.code, error.field.as_deref()),
                (code, Some(field)),
                "{value}"
            );
        }
        let error = convert_json(json!({"userId": "u"}), None).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("type"));
        let error = parse(r#"{"userId": ["u"]}"#).unwrap_err();
        assert_eq!(error.code, "invalid_message");
    }
}
