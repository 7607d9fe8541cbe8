//! A tenant's settings: its trait schema, purposes, retention bounds, deletion
//! deadline and identity rules. Stored as JSON in the tenant record; they hold
//! no personal data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::normalize::{IdentityKind, NormalizeRules};

/// How sensitive a trait is. Every trait is encrypted at rest whatever its
/// class; the class decides who may see it (plugins need an explicit grant
/// for `pii` and `sensitive` fields, never implied by a field grant) and how
/// it is shown in logs and exports to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TraitClass {
    /// Identifies a person directly: name, email, phone, address.
    Pii,
    /// Special categories and other data whose misuse harms: birthday, health, religion.
    Sensitive,
    /// Everything else: city, tier, preferred language.
    Standard,
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

/// One field of the trait schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

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
                },
            )
        })
        .collect();
        Self {
            schema,
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

/// Names of traits, purposes and event types: lowercase ASCII words.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
