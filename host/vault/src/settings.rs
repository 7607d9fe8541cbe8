//! A tenant's settings: its trait and event schemas, purposes, retention
//! bounds, deletion deadline and identity rules. Stored as JSON in the tenant
//! record; they hold no personal data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::normalize::{IdentityKind, NormalizeRules};

/// How sensitive a trait is. Every trait is encrypted at rest whatever its
/// class; the class decides who may see it (plugins need an explicit grant
/// for `pii` and `sensitive` fields, never implied by a field grant) and how
/// it is shown in logs and exports to operators.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TraitClass {
    /// Identifies a person directly: name, email, phone, address.
    Pii,
    /// Special categories and other data whose misuse harms: birthday, health, religion.
    Sensitive,
    /// Everything else: city, tier, preferred language.
    #[default]
    Standard,
}

impl TraitClass {
    /// The class's name, as schemas spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TraitClass::Pii => "pii",
            TraitClass::Sensitive => "sensitive",
            TraitClass::Standard => "standard",
        }
    }
}

/// The type a trait value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TraitType {
    String,
    Number,
    Bool,
    /// An ISO 8601 date or date-time string.
    Date,
    /// Any JSON value.
    Any,
}

/// Which kind of personal data a `pii` or `sensitive` trait holds. A plugin
/// sees such a trait only if the operator granted both the trait and its
/// class: a class is never implied by a field grant. The names are those of
/// the PII classes a plugin bundle asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PiiClass {
    Email,
    Phone,
    Name,
    Address,
    BirthDate,
    Location,
    DeviceId,
    IpAddress,
    /// Health, religion, ethnicity, sexual orientation, gender and the other
    /// special categories of personal data.
    SpecialCategory,
}

impl PiiClass {
    /// The class's name, as schemas and bundles spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiClass::Email => "email",
            PiiClass::Phone => "phone",
            PiiClass::Name => "name",
            PiiClass::Address => "address",
            PiiClass::BirthDate => "birth-date",
            PiiClass::Location => "location",
            PiiClass::DeviceId => "device-id",
            PiiClass::IpAddress => "ip-address",
            PiiClass::SpecialCategory => "special-category",
        }
    }
}

impl TraitType {
    /// Whether a (non-null) value has this type.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            TraitType::String => value.is_string(),
            TraitType::Number => value.is_number(),
            TraitType::Bool => value.is_boolean(),
            TraitType::Date => value.as_str().is_some_and(looks_like_date),
            TraitType::Any => true,
        }
    }

    /// The type's name, as schemas spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TraitType::String => "string",
            TraitType::Number => "number",
            TraitType::Bool => "bool",
            TraitType::Date => "date",
            TraitType::Any => "any",
        }
    }
}

/// `YYYY-MM-DD` with a month of 01 to 12 and a day of 01 to 31, optionally
/// followed by `T` and a time.
pub(crate) fn looks_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .filter(|b| b.iter().all(u8::is_ascii_digit))
            .map(|b| b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    bytes.len() >= 10
        && number(0..4).is_some()
        && bytes[4] == b'-'
        && number(5..7).is_some_and(|month| (1..=12).contains(&month))
        && bytes[7] == b'-'
        && number(8..10).is_some_and(|day| (1..=31).contains(&day))
        && (bytes.len() == 10 || bytes[10] == b'T')
}

/// Whether `value` is one of `allowed` (numbers compare by value, so that
/// `10` and `10.0` are the same amount).
pub(crate) fn is_allowed(allowed: &[Value], value: &Value) -> bool {
    allowed.iter().any(|a| match (a.as_f64(), value.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && value.is_number() => x == y,
        _ => a == value,
    })
}

/// One field of the trait schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraitSpec {
    pub class: TraitClass,
    #[serde(rename = "type")]
    pub kind: TraitType,
    /// For `pii` and `sensitive` traits: the kind of personal data, which a
    /// plugin must be granted besides the trait itself. A `pii` or
    /// `sensitive` trait without one is never shown to any plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_class: Option<PiiClass>,
    /// The values a trait may take, of its type; empty: any value of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
}

/// One property of an event type's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PropertySpec {
    #[serde(rename = "type")]
    pub kind: TraitType,
    /// An event of the type without the property (or with `null`) is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The values the property may take, of its type; empty: any value of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
    /// As for traits; decides whether plugins may aggregate the property.
    #[serde(default)]
    pub class: TraitClass,
    /// For `pii` and `sensitive` properties: the PII class a plugin must be
    /// granted to aggregate it. Without one, it is never aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_class: Option<PiiClass>,
}

impl PropertySpec {
    /// A standard, optional property of type `kind` that takes any value.
    pub fn new(kind: TraitType) -> Self {
        Self {
            kind,
            required: false,
            allowed: Vec::new(),
            class: TraitClass::Standard,
            pii_class: None,
        }
    }
}

/// The schema of one event type: its known properties, and whether others
/// are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    #[serde(default)]
    pub properties: BTreeMap<String, PropertySpec>,
    /// Properties not in `properties` are refused (else they are stored,
    /// unchecked, and count as `standard`).
    #[serde(default)]
    pub strict: bool,
}

/// The most event types a schema lists, properties an event type lists,
/// and allowed values a trait or property lists: a schema is read on
/// every ingested record.
pub const MAX_EVENT_TYPES: usize = 256;
pub const MAX_PROPERTIES: usize = 128;
pub const MAX_ALLOWED: usize = 256;

/// The bounds of a subject's retention choice and the tenant's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionBounds {
    pub min_days: u32,
    pub max_days: u32,
    pub default_days: u32,
}

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct TenantSettings {
    /// Trait name → class and type. A trait not in the schema is refused.
    pub schema: BTreeMap<String, TraitSpec>,
    /// Event type → its properties' types, rules and classes. Events of a
    /// listed type are checked at ingest; other types are accepted as they
    /// come unless `events_strict`. Left out of stored settings (tenants
    /// created before event schemas), it is empty, not the default schema:
    /// their data keeps being accepted as before.
    #[serde(default)]
    pub events: BTreeMap<String, EventSpec>,
    /// Events of a type not in `events` are refused.
    #[serde(default)]
    pub events_strict: bool,
    /// The purposes a subject can consent to.
    pub purposes: Vec<String>,
    pub retention: RetentionBounds,
    /// Days between a deletion request and its deadline.
    pub deletion_deadline_days: u32,
    /// How identities are normalised before hashing.
    pub identity_rules: NormalizeRules,
    /// Identity kinds that, when shared by two subjects, merge them. Kinds not
    /// listed (by default device ids, which families share) attach records to
    /// a subject but never merge two.
    pub merge_on: Vec<String>,
    /// Traits a subject may set or remove themselves (`/v1/me`): facts about
    /// the person, not the tenant's own records about them (tier, lifetime
    /// value), which the tenant rectifies on request.
    pub subject_editable: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        use TraitClass::{Pii, Sensitive, Standard};
        use TraitType::{Date, Number, String as Text};
        let schema = [
            ("email", Pii, Text, Some(PiiClass::Email)),
            ("phone", Pii, Text, Some(PiiClass::Phone)),
            ("name", Pii, Text, Some(PiiClass::Name)),
            ("first_name", Pii, Text, Some(PiiClass::Name)),
            ("last_name", Pii, Text, Some(PiiClass::Name)),
            ("address", Pii, Text, Some(PiiClass::Address)),
            ("birthday", Sensitive, Date, Some(PiiClass::BirthDate)),
            ("gender", Sensitive, Text, Some(PiiClass::SpecialCategory)),
            ("city", Standard, Text, None),
            ("country", Standard, Text, None),
            ("language", Standard, Text, None),
            ("tier", Standard, Text, None),
            ("member_since", Standard, Date, None),
            ("lifetime_value", Standard, Number, None),
        ]
        .into_iter()
        .map(|(name, class, kind, pii_class)| {
            (
                name.to_owned(),
                TraitSpec {
                    class,
                    kind,
                    pii_class,
                    allowed: Vec::new(),
                },
            )
        })
        .collect();
        let required = |kind| PropertySpec {
            required: true,
            ..PropertySpec::new(kind)
        };
        let events = [
            (
                "purchase",
                vec![
                    ("amount", required(Number)),
                    ("currency", PropertySpec::new(Text)),
                    ("store", PropertySpec::new(Text)),
                    ("order_id", PropertySpec::new(Text)),
                ],
            ),
            (
                "page_view",
                vec![
                    ("path", PropertySpec::new(Text)),
                    ("category", PropertySpec::new(Text)),
                ],
            ),
        ]
        .into_iter()
        .map(|(name, properties)| {
            let properties = properties
                .into_iter()
                .map(|(property, spec)| (property.to_owned(), spec))
                .collect();
            (
                name.to_owned(),
                EventSpec {
                    properties,
                    strict: false,
                },
            )
        })
        .collect();
        Self {
            schema,
            events,
            events_strict: false,
            purposes: [
                "analytics",
                "personalization",
                "email_marketing",
                "third_party_sharing",
            ]
            .map(String::from)
            .to_vec(),
            retention: RetentionBounds {
                min_days: 30,
                max_days: 3 * 365,
                default_days: 2 * 365,
            },
            deletion_deadline_days: 30,
            identity_rules: NormalizeRules::default(),
            merge_on: [
                IdentityKind::Email,
                IdentityKind::Phone,
                IdentityKind::MemberId,
            ]
            .iter()
            .map(IdentityKind::label)
            .chain(["external".to_owned()])
            .collect(),
            subject_editable: [
                "email",
                "phone",
                "name",
                "first_name",
                "last_name",
                "address",
                "birthday",
                "gender",
                "city",
                "country",
                "language",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl TenantSettings {
    /// Checks the settings for contradictions; the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        let r = self.retention;
        if r.min_days == 0 || r.min_days > r.max_days {
            return Err(format!(
                "retention.min_days ({}) must be at least 1 and at most max_days ({})",
                r.min_days, r.max_days
            ));
        }
        if r.default_days < r.min_days || r.default_days > r.max_days {
            return Err(format!(
                "retention.default_days ({}) must lie within {}..={}",
                r.default_days, r.min_days, r.max_days
            ));
        }
        if r.max_days > 100 * 366 {
            return Err("retention.max_days must be at most 100 years".into());
        }
        if self.deletion_deadline_days == 0 || self.deletion_deadline_days > 90 {
            return Err(format!(
                "deletion_deadline_days ({}) must be 1 to 90",
                self.deletion_deadline_days
            ));
        }
        for purpose in &self.purposes {
            if !valid_name(purpose) {
                return Err(format!(
                    "purpose {purpose:?} must be 1 to 64 characters of a-z, 0-9 and _"
                ));
            }
        }
        for name in &self.subject_editable {
            if !valid_name(name) {
                return Err(format!(
                    "subject_editable trait {name:?} must be 1 to 64 characters of a-z, 0-9 and _"
                ));
            }
        }
        for (name, spec) in &self.schema {
            if !valid_name(name) {
                return Err(format!(
                    "trait {name:?} must be 1 to 64 characters of a-z, 0-9 and _"
                ));
            }
            if let (TraitClass::Standard, Some(pii_class)) = (spec.class, spec.pii_class) {
                return Err(format!(
                    "trait {name:?} is standard but has pii_class {:?}: a PII class \
                     applies only to pii and sensitive traits (make the trait pii or \
                     sensitive, or remove its pii_class)",
                    pii_class.as_str()
                ));
            }
            check_allowed(&format!("trait {name:?}"), spec.kind, &spec.allowed)?;
        }
        if self.events.len() > MAX_EVENT_TYPES {
            return Err(format!(
                "events lists {} event types, more than {MAX_EVENT_TYPES}",
                self.events.len()
            ));
        }
        for (name, spec) in &self.events {
            check_event_spec(name, spec)?;
        }
        Ok(())
    }

    /// The retention period in days for a person's choice (or none), within
    /// the current bounds even if the choice was made under wider ones.
    pub fn retention_days(&self, choice: Option<u32>) -> u32 {
        let bounds = self.retention;
        choice
            .unwrap_or(bounds.default_days)
            .clamp(bounds.min_days, bounds.max_days.max(bounds.min_days))
    }

    /// Whether a subject may set or remove the trait `name` themselves: it
    /// is in the schema and listed in `subject_editable`.
    pub fn subject_may_edit(&self, name: &str) -> bool {
        self.schema.contains_key(name) && self.subject_editable.iter().any(|t| t == name)
    }

    /// Whether an identity kind merges subjects.
    pub(crate) fn merges_on(&self, kind: &IdentityKind) -> bool {
        let label = kind.label();
        let family = match kind {
            IdentityKind::External(_) => "external",
            _ => label.as_str(),
        };
        self.merge_on.iter().any(|k| k == &label || k == family)
    }
}

/// Checks the schema of event type `name`; the reason names the event type
/// and the property.
pub fn check_event_spec(name: &str, spec: &EventSpec) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "event type {name:?} must be 1 to 64 characters of a-z, 0-9 and _"
        ));
    }
    if spec.properties.len() > MAX_PROPERTIES {
        return Err(format!(
            "event type {name:?} lists {} properties, more than {MAX_PROPERTIES}",
            spec.properties.len()
        ));
    }
    for (property, p) in &spec.properties {
        if !valid_property_name(property) {
            return Err(format!(
                "property {name}.{property:?} must be 1 to 64 characters of a-z, A-Z, 0-9, _ \
                 and -"
            ));
        }
        if let (TraitClass::Standard, Some(pii_class)) = (p.class, p.pii_class) {
            return Err(format!(
                "property {name}.{property} is standard but has pii_class {:?}: a PII class \
                 applies only to pii and sensitive properties (make the property pii or \
                 sensitive, or remove its pii_class)",
                pii_class.as_str()
            ));
        }
        check_allowed(&format!("property {name}.{property}"), p.kind, &p.allowed)?;
    }
    Ok(())
}

/// Allowed values: not too many, none null, each of the field's type.
fn check_allowed(what: &str, kind: TraitType, allowed: &[Value]) -> Result<(), String> {
    if allowed.len() > MAX_ALLOWED {
        return Err(format!(
            "{what} lists {} allowed values, more than {MAX_ALLOWED}",
            allowed.len()
        ));
    }
    for (index, value) in allowed.iter().enumerate() {
        if value.is_null() || !kind.admits(value) {
            return Err(format!(
                "{what}: allowed value {index} is not a {} value",
                kind.as_str()
            ));
        }
    }
    Ok(())
}

/// Names of event properties: what sources send, camelCase included.
pub(crate) fn valid_property_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Names of traits, purposes and event types: lowercase ASCII words.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
