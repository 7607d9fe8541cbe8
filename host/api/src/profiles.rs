//! `GET /v1/profiles/{id}`: a customer profile as marketers work with it —
//! traits by the caller's role and each trait's class,
//! event aggregates, the segments the person is in with when and why, and
//! their consents. The full record of the access right stays the
//! operator's (`GET /v1/subjects/{id}`).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value as JsonValue;
use tessera_vault::{ConsentState, TraitClass};

use crate::auth::Role;
use crate::error::{ApiError, Json, Path};
use crate::tokens::Principal;
use crate::{AppState, blocking};

/// A customer profile.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    pub subject: String,
    pub created_at_ms: i64,
    /// Traits the caller's role may read: an operator every trait, a
    /// marketer the `standard` ones.
    #[schema(value_type = Object)]
    pub traits: BTreeMap<String, JsonValue>,
    /// Traits held but withheld from this role, by name, with their class.
    pub withheld: BTreeMap<String, String>,
    /// Per event type: how many, first and last time, and the running sums
    /// of numeric properties (properties classed `pii` or `sensitive` only
    /// for an operator).
    pub aggregates: BTreeMap<String, AggregateView>,
    /// The segments the person is in now, with when they entered and why.
    pub segments: Vec<SegmentMembership>,
    pub consents: Vec<ConsentView>,
}

/// Running totals of one event type.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AggregateView {
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub sums: BTreeMap<String, f64>,
}

/// A segment the person is in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentMembership {
    pub segment: String,
    pub entered_at_ms: i64,
    /// Why: the segment's plugin and, for a rule, the rule in plain
    /// English, else its description.
    pub why: String,
}

/// One purpose's consent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub purpose: String,
    pub granted: bool,
    pub at_ms: Option<i64>,
}

impl From<ConsentState> for ConsentView {
    fn from(c: ConsentState) -> Self {
        ConsentView {
            purpose: c.purpose,
            granted: c.granted,
            at_ms: c.at_ms,
        }
    }
}

/// `GET /v1/profiles/{id}`: the profile of the person the subject belongs
/// to. Audited as an access (`subject.access`), like every read of a
/// person's data.
#[utoipa::path(get, path = "/v1/profiles/{id}", tag = "subjects",
    params(("id" = String, Path, description = "A subject id.")),
    responses(
        (status = 200, description = "The profile.", body = ProfileView),
        (status = 404, description = "The tenant has no subject with that id.", body = crate::error::ErrorBody),
        (status = 410, description = "The subject was erased.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn profile(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    if !crate::handlers::plain_id(&id) {
        return Err(ApiError::not_found(
            "unknown_subject",
            "the tenant has no subject with that id",
        ));
    }
    let view = blocking(move || {
        let vault = &state.vault;
        let settings = vault.settings(&principal.tenant)?;
        let access = vault.access(&principal.tenant, &id, &principal.actor())?;
        let definitions: BTreeMap<String, String> = match &state.segments {
            Some(segments) => segments
                .list(&principal.tenant)
                .map_err(ApiError::from)?
                .into_iter()
                .map(|s| {
                    let why = why(&s);
                    (s.name, why)
                })
                .collect(),
            None => BTreeMap::new(),
        };
        let everything = principal.role == Role::Operator;
        let visible = |class: TraitClass| everything || class == TraitClass::Standard;
        let mut traits = BTreeMap::new();
        let mut withheld = BTreeMap::new();
        for (name, (value, class)) in access.traits {
            if visible(class) {
                traits.insert(name, value);
            } else {
                withheld.insert(name, class.as_str().to_owned());
            }
        }
        let aggregates = access
            .aggregates
            .into_iter()
            .map(|(event, aggregate)| {
                let classes = settings.events.get(&event);
                let sums = aggregate
                    .sums
                    .into_iter()
                    .filter(|(property, _)| {
                        everything
                            || classes
                                .and_then(|e| e.properties.get(property))
                                .is_none_or(|p| p.class == TraitClass::Standard)
                    })
                    .collect();
                (
                    event,
                    AggregateView {
                        count: aggregate.count,
                        first_ms: aggregate.first_ms,
                        last_ms: aggregate.last_ms,
                        sums,
                    },
                )
            })
            .collect();
        Ok(ProfileView {
            subject: access.subject,
            created_at_ms: access.created_at_ms,
            traits,
            withheld,
            aggregates,
            segments: access
                .segments
                .into_iter()
                .map(|m| SegmentMembership {
                    why: definitions
                        .get(&m.segment)
                        .cloned()
                        .unwrap_or_else(|| "a segment that no longer exists".into()),
                    segment: m.segment,
                    entered_at_ms: m.entered_at_ms,
                })
                .collect(),
            consents: access.consents.into_iter().map(ConsentView::from).collect(),
        })
    })
    .await?;
    Ok(Json(view))
}

/// Why a member is in `segment`: a rule in plain English, else the
/// plugin with its description.
pub(crate) fn why(segment: &tessera_segments::Segment) -> String {
    let rule = segment.params.iter().find_map(|(name, value)| match value {
        tessera_plugins::ParamValue::Text(text) if name == tessera_segments::rules::RULE_PARAM => {
            tessera_rules::parse(text).ok()
        }
        _ => None,
    });
    match rule {
        Some(rule) => format!("{}: {}", segment.plugin, rule.explain()),
        None if segment.description.is_empty() => format!("{} segment", segment.plugin),
        None => format!("{}: {}", segment.plugin, segment.description),
    }
}
