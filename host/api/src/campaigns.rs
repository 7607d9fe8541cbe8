//! The strategy catalog, campaigns, decisions and feedback
//! (`docs/api.md`, Strategies and campaigns; `docs/strategies.md`).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};
use tessera_runtime::PluginKind;
use tessera_strategies::{
    Campaign, CampaignSend, CampaignSpec, CampaignStatus, DecideRequest, DecisionOutcome,
    Evaluation, FeedbackKind, FeedbackSpec, FrequencyCap, Goal, GoalSource, OffPolicyView,
    SendSpec, Simulation, Strategies, StrategyError,
};
use tessera_vault::IdentityKind;

use crate::AppState;
use crate::error::{ApiError, Json, Path, Query};
use crate::imports::{param_json, params_of, shown_params};
use crate::segmentation::recipient_kind;
use crate::tokens::Principal;

/// `PUT /v1/campaigns/{name}`, and `POST /v1/simulate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCampaign {
    /// The strategy plugin (from `GET /v1/catalog`).
    strategy: String,
    /// Its parameters, by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// The segment whose members the campaign decides for.
    segment: String,
    /// What decisions process data for. Default: the first purpose the
    /// strategy works for that it was granted.
    #[serde(default)]
    purpose: Option<String>,
    /// The share of the segment held out as the control group, 0 to 0.5.
    #[serde(default = "default_holdout")]
    holdout: f64,
    #[serde(default)]
    frequency_cap: Option<CapBody>,
    /// The most decisions served in all.
    #[serde(default)]
    budget: Option<u64>,
    #[serde(default)]
    starts_at_ms: Option<i64>,
    #[serde(default)]
    ends_at_ms: Option<i64>,
    goal: GoalBody,
    /// The action served when the strategy does not decide (holdout, caps,
    /// a failure); none: no action.
    #[serde(default)]
    fallback: Option<String>,
    /// A strategy run beside the live one on every decision, logged but
    /// never served, to compare before switching.
    #[serde(default)]
    shadow: Option<ShadowBody>,
    #[serde(default)]
    description: String,
}

/// A shadow strategy and its parameters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShadowBody {
    strategy: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
}

fn default_holdout() -> f64 {
    0.1
}

/// At most `max` decisions per person within `days` days.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    pub max: u32,
    pub days: u32,
}

/// What counts as success within `window_days` after a person's first
/// decision: with `source` `events` (the default), an event of type
/// `event`, whose numeric property `value` adds up to revenue; with
/// `feedback`, a `conversion` feedback on the person's decisions, and the
/// amounts of `revenue` feedback.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalBody {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default = "default_window")]
    pub window_days: u32,
    /// `events` or `feedback`.
    #[serde(default = "default_source")]
    pub source: String,
}

fn default_source() -> String {
    "events".into()
}

fn default_window() -> u32 {
    7
}

/// A campaign as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub name: String,
    pub strategy: String,
    pub strategy_version: String,
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
    /// The actions the strategy chooses among.
    pub actions: Vec<String>,
    pub segment: String,
    pub purpose: String,
    pub holdout: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<CapBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<i64>,
    pub goal: GoalBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The shadow strategy: `{strategy, params}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub shadow: Option<JsonValue>,
    pub description: String,
    /// `draft`, `simulated`, `running`, `paused` or `completed`.
    pub status: String,
    /// The latest forecast.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub simulation: Option<Simulation>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Every change: `{from, to, at_ms, by, note}`, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<JsonValue>,
}

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        CampaignView {
            params: shown_params(&c.params),
            history: c
                .history
                .iter()
                .map(|t| {
                    json!({
                        "from": t.from.map(CampaignStatus::as_str),
                        "to": t.to.as_str(),
                        "at_ms": t.at_ms,
                        "by": format!("{}:{}", t.by.role, t.by.id),
                        "note": t.note,
                    })
                })
                .collect(),
            name: c.name,
            strategy: c.strategy,
            strategy_version: c.strategy_version,
            actions: c.actions,
            segment: c.segment,
            purpose: c.purpose,
            holdout: c.holdout,
            frequency_cap: c.frequency_cap.map(|f| CapBody {
                max: f.max,
                days: f.days,
            }),
            budget: c.budget,
            starts_at_ms: c.starts_at_ms,
            ends_at_ms: c.ends_at_ms,
            goal: GoalBody {
                event: c.goal.event,
                value: c.goal.value,
                window_days: c.goal.window_days,
                source: match c.goal.source {
                    GoalSource::Events => "events",
                    GoalSource::Feedback => "feedback",
                }
                .to_owned(),
            },
            fallback: c.fallback,
            shadow: c
                .shadow
                .map(|s| json!({"strategy": s.strategy, "params": shown_params(&s.params)})),
            description: c.description,
            status: c.status.as_str().to_owned(),
            simulation: c.simulation,
            created_at_ms: c.created_at_ms,
            updated_at_ms: c.updated_at_ms,
        }
    }
}

/// The tenant's campaigns, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

/// `POST /v1/campaigns/{name}/status`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    /// `running` (from simulated or paused), `paused` (from running) or
    /// `completed` (from running or paused).
    status: String,
}

/// `POST /v1/decide`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    campaign: String,
    /// The person's subject id; or give `identity`.
    #[serde(default)]
    subject: Option<String>,
    /// An identity of the person: `{"kind": "member_id", "value": "M-1"}`.
    #[serde(default)]
    identity: Option<IdentityBody>,
    /// Where the decision is shown (`web`, `email`, `app`, `store`, …).
    #[serde(default = "default_channel")]
    channel: String,
    /// What else the strategy may know of the moment (page, device, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: BTreeMap<String, JsonValue>,
}

fn default_channel() -> String {
    "web".into()
}

/// An identity of a person.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityBody {
    /// `email`, `phone`, `member_id`, `device_id` or `external:<namespace>`.
    kind: String,
    value: String,
}

/// A decision.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionView {
    pub campaign: String,
    /// The logged decision's id, for feedback; none when nothing was
    /// logged (a fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// `treatment` or `control`; none for a fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// The action to show; none: show nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The probability it was chosen with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// Every action the strategy ranked, best first: `{action, score,
    /// propensity}`.
    #[schema(value_type = Vec<Object>)]
    pub ranked: Vec<JsonValue>,
    pub explanation: String,
    /// Why the strategy did not decide: `not_running`, `not_in_segment`,
    /// `no_consent`, `control`, `capped`, `budget_exhausted`,
    /// `strategy_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// `POST /v1/feedback`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackBody {
    /// The decision's id.
    decision: String,
    /// `impression`, `click`, `conversion` or `revenue`.
    kind: String,
    /// The amount for `revenue` (required), else 1 by default.
    #[serde(default)]
    value: Option<f64>,
    /// Stored once per decision, kind and key (default: the kind).
    #[serde(default)]
    key: Option<String>,
}

/// What feedback did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackView {
    pub decision: String,
    pub campaign: String,
    /// Stored before: nothing changed.
    pub duplicate: bool,
    /// Queued for the strategy to learn from.
    pub queued: bool,
}

/// `GET /v1/campaigns/{name}/evaluation`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluationQuery {
    /// Segments for a breakdown, comma-separated.
    #[serde(default)]
    by: Option<String>,
}

/// One strategy of the catalog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogEntry {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The actions it chooses among: `{name, description}`.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<JsonValue>,
    /// Its parameters: `{name, kind, description, required, default, min,
    /// max, choices}`.
    #[schema(value_type = Vec<Object>)]
    pub parameters: Vec<JsonValue>,
    /// The purposes it works for, and those it was granted.
    pub purposes: Vec<String>,
    pub granted_purposes: Vec<String>,
    /// The profile fields it reads.
    pub fields: Vec<String>,
    /// Its campaigns' latest evaluations: `{campaign, segment, status,
    /// treatment_subjects, control_subjects, absolute_uplift,
    /// relative_uplift}`.
    #[schema(value_type = Vec<Object>)]
    pub track_record: Vec<JsonValue>,
}

/// The strategy catalog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Catalog {
    pub strategies: Vec<CatalogEntry>,
}

impl From<StrategyError> for ApiError {
    fn from(error: StrategyError) -> Self {
        use StrategyError as E;
        let message = error.to_string();
        match error {
            E::BadName { .. } => ApiError::unprocessable("invalid_campaign_name", message)
                .with_field("name", "1 to 64 of a-z, 0-9, `-` and `_`"),
            E::Unknown { .. } => ApiError::not_found("unknown_campaign", message),
            E::UnknownSegment { .. } => ApiError::not_found("unknown_segment", message),
            E::UnknownDecision { .. } => ApiError::not_found("unknown_decision", message),
            E::NotAStrategy { .. } => ApiError::unprocessable("not_a_strategy", message),
            E::Invalid {
                field: "channel", ..
            } => ApiError::unprocessable("invalid_send", message).with_field("channel", ""),
            E::Invalid { field, .. } => {
                ApiError::unprocessable("invalid_campaign", message).with_field(field, "")
            }
            E::NoPurpose { .. } | E::UnknownPurpose { .. } => {
                ApiError::unprocessable("invalid_purpose", message).with_field("purpose", "")
            }
            E::BadTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
            }
            E::NotEditable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "campaign_not_editable", message)
            }
            E::NoActionServed { .. } => ApiError::unprocessable("no_action_served", message),
            E::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_campaigns", message),
            E::NotRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "campaign_not_running", message)
            }
            E::SendNotGranted { .. } => ApiError::unprocessable("not_granted", message),
            E::UnknownSend { .. } => ApiError::not_found("unknown_send", message),
            E::Delivery(inner) => inner.into(),
            E::Registry(tessera_plugins::RegistryError::Call(
                tessera_runtime::CallError::InvalidParams { .. },
            )) => ApiError::unprocessable("invalid_params", message),
            E::Registry(inner) => inner.into(),
            E::Vault(inner) => inner.into(),
            other => ApiError::internal(&other),
        }
    }
}

fn strategies(state: &AppState) -> Result<Strategies, ApiError> {
    state.strategies.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_plugin_runtime",
            "this server runs without a plugin runtime, so it has no strategies",
        )
    })
}

/// Runs campaign work (it calls plugins and the store) on the blocking pool.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(Strategies) -> Result<T, StrategyError> + Send + 'static,
) -> Result<T, ApiError> {
    let strategies = strategies(state)?;
    crate::blocking(move || work(strategies).map_err(ApiError::from)).await
}

/// `GET /v1/catalog`: the strategy plugins installed and running, what
/// they choose among and need, and how their campaigns did.
#[utoipa::path(get, path = "/v1/catalog", tag = "strategies",
    responses((status = 200, description = "The catalog.", body = Catalog)))]
pub(crate) async fn catalog(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Catalog>, ApiError> {
    let tenant = principal.tenant.clone();
    let registry = state.plugins.clone();
    let catalog = run(&state, move |s| {
        let Some(registry) = registry else {
            return Ok(Catalog {
                strategies: Vec::new(),
            });
        };
        let campaigns = s.list(&tenant)?;
        let mut strategies = Vec::new();
        for entry in registry.entries(&tenant)? {
            let Some(live) = entry.live else { continue };
            let info = live.plugin.info();
            if info.kind != PluginKind::Strategy {
                continue;
            }
            let mut track_record = Vec::new();
            for campaign in campaigns.iter().filter(|c| c.strategy == entry.name) {
                if let Some(evaluation) = s.last_evaluation(&tenant, &campaign.name)? {
                    track_record.push(track_entry(campaign, &evaluation));
                }
            }
            let manifest = &info.manifest;
            strategies.push(CatalogEntry {
                name: entry.name.clone(),
                version: manifest.version.clone(),
                description: manifest.description.clone(),
                actions: info
                    .actions
                    .iter()
                    .map(|a| json!({"name": a.name, "description": a.description}))
                    .collect(),
                parameters: manifest
                    .parameters
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "kind": tessera_runtime::kind_name(p.kind),
                            "description": p.description,
                            "required": p.required,
                            "default": p.default.as_ref().map(|v| param_json(&tessera_plugins::ParamValue::from(v))),
                            "min": p.min,
                            "max": p.max,
                            "choices": p.choices,
                        })
                    })
                    .collect(),
                purposes: manifest.purposes.clone(),
                granted_purposes: live.granted.purposes.clone(),
                fields: manifest.fields.iter().map(|f| f.name.clone()).collect(),
                track_record,
            });
        }
        Ok(Catalog { strategies })
    })
    .await?;
    Ok(Json(catalog))
}

fn track_entry(campaign: &Campaign, evaluation: &Evaluation) -> JsonValue {
    let estimate =
        |e: &tessera_stats::Estimate| json!({"value": e.value, "lower": e.lower, "upper": e.upper});
    json!({
        "campaign": campaign.name,
        "segment": campaign.segment,
        "status": campaign.status.as_str(),
        "evaluated_at_ms": evaluation.computed_at_ms,
        "treatment_subjects": evaluation.treatment_subjects,
        "control_subjects": evaluation.control_subjects,
        "absolute_uplift": evaluation.report.as_ref().map(|r| estimate(&r.absolute_uplift)),
        "relative_uplift": evaluation.report.as_ref().and_then(|r| r.relative_uplift.as_ref().map(estimate)),
    })
}

/// `GET /v1/campaigns`.
#[utoipa::path(get, path = "/v1/campaigns", tag = "strategies",
    responses((status = 200, description = "The tenant's campaigns.", body = CampaignList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<CampaignList>, ApiError> {
    let tenant = principal.tenant.clone();
    let campaigns = run(&state, move |s| s.list(&tenant)).await?;
    Ok(Json(CampaignList {
        campaigns: campaigns.into_iter().map(CampaignView::from).collect(),
    }))
}

/// `PUT /v1/campaigns/{name}`: saves a campaign as a draft (replacing a
/// draft or simulated one). Audited.
#[utoipa::path(put, path = "/v1/campaigns/{name}", tag = "strategies",
    params(("name" = String, Path, description = "1 to 64 of a-z, 0-9, `-` and `_`.")),
    request_body = NewCampaign,
    responses(
        (status = 200, description = "The campaign, a draft.", body = CampaignView),
        (status = 404, description = "No such strategy or segment.", body = crate::error::ErrorBody),
        (status = 409, description = "The campaign runs or ran, or the strategy is quarantined, or there are too many.", body = crate::error::ErrorBody),
        (status = 422, description = "A field is wrong; the error names it.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<NewCampaign>,
) -> Result<Json<CampaignView>, ApiError> {
    let spec = body.spec()?;
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let campaign = run(&state, move |s| s.put(&tenant, &name, spec, &actor)).await?;
    Ok(Json(campaign.into()))
}

impl NewCampaign {
    /// The spec the body asks for (`goal.source` checked; the rest is
    /// checked with the strategy and the store).
    fn spec(self) -> Result<CampaignSpec, ApiError> {
        let source = match self.goal.source.as_str() {
            "events" => GoalSource::Events,
            "feedback" => GoalSource::Feedback,
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_campaign",
                    "goal.source: `events` or `feedback`",
                )
                .with_field("goal.source", "events or feedback"));
            }
        };
        Ok(CampaignSpec {
            strategy: self.strategy,
            params: params_of(&self.params),
            segment: self.segment,
            purpose: self.purpose,
            holdout: self.holdout,
            frequency_cap: self.frequency_cap.map(|c| FrequencyCap {
                max: c.max,
                days: c.days,
            }),
            budget: self.budget,
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: self.ends_at_ms,
            goal: Goal {
                event: self.goal.event,
                value: self.goal.value,
                window_days: self.goal.window_days,
                source,
            },
            fallback: self.fallback,
            shadow: self.shadow.map(|s| (s.strategy, params_of(&s.params))),
            description: self.description,
        })
    }
}

/// `GET /v1/campaigns/{name}`.
#[utoipa::path(get, path = "/v1/campaigns/{name}", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    responses(
        (status = 200, description = "The campaign.", body = CampaignView),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let tenant = principal.tenant.clone();
    let campaign = run(&state, move |s| s.get(&tenant, &name)).await?;
    Ok(Json(campaign.into()))
}

/// `DELETE /v1/campaigns/{name}`: removes a campaign that never ran.
/// Audited.
#[utoipa::path(delete, path = "/v1/campaigns/{name}", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
        (status = 409, description = "It runs or ran: complete it instead.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    run(&state, move |s| s.delete(&tenant, &name, &actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/campaigns/{name}/simulate` and `POST /v1/simulate`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimulateQuery {
    /// The campaign whose logged decisions the strategy is replayed over
    /// (default: the one on the same segment that started last).
    #[serde(default)]
    logs_from: Option<String>,
}

/// `POST /v1/campaigns/{name}/simulate`: forecasts the campaign over its
/// segment now, replays its strategy over another campaign's logged
/// decisions (off-policy estimates), and makes it `simulated`, ready to
/// run.
#[utoipa::path(post, path = "/v1/campaigns/{name}/simulate", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name."), SimulateQuery),
    responses(
        (status = 200, description = "The forecast.", body = Object),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
        (status = 409, description = "It runs or ran.", body = crate::error::ErrorBody),
        (status = 422, description = "The strategy failed.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn simulate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(query): Query<SimulateQuery>,
) -> Result<Json<Simulation>, ApiError> {
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let simulation = run(&state, move |s| {
        s.simulate(&tenant, &name, query.logs_from.as_deref(), &actor)
    })
    .await?;
    Ok(Json(simulation))
}

/// `POST /v1/simulate`: what-if. The forecast and replay that simulating
/// would give a campaign of this definition (the body of `PUT
/// /v1/campaigns/{name}`, checked the same way), before there is one:
/// nothing is saved and no campaign changes.
#[utoipa::path(post, path = "/v1/simulate", tag = "strategies",
    params(SimulateQuery),
    request_body = NewCampaign,
    responses(
        (status = 200, description = "The forecast.", body = Object),
        (status = 404, description = "No such strategy, segment or campaign to replay.", body = crate::error::ErrorBody),
        (status = 409, description = "The strategy is quarantined.", body = crate::error::ErrorBody),
        (status = 422, description = "A field is wrong (the error names it), or the strategy failed.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn simulate_spec(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<SimulateQuery>,
    Json(body): Json<NewCampaign>,
) -> Result<Json<Simulation>, ApiError> {
    let spec = body.spec()?;
    let tenant = principal.tenant.clone();
    let simulation = run(&state, move |s| {
        s.simulate_spec(&tenant, spec, query.logs_from.as_deref())
    })
    .await?;
    Ok(Json(simulation))
}

/// `GET /v1/campaigns/{name}/shadow`: the shadow strategy weighed against
/// the live one on the live decisions (off-policy estimates of its
/// conversion rate per decision).
#[utoipa::path(get, path = "/v1/campaigns/{name}/shadow", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    responses(
        (status = 200, description = "The estimate.", body = Object),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
        (status = 422, description = "No shadow, or too few logged decisions.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn shadow(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<OffPolicyView>, ApiError> {
    let tenant = principal.tenant.clone();
    let view = run(&state, move |s| {
        let campaign = s.get(&tenant, &name)?;
        s.shadow_estimate(&tenant, &campaign)
    })
    .await?;
    Ok(Json(view))
}

/// `POST /v1/campaigns/{name}/status`: runs, pauses or completes a
/// campaign. Audited.
#[utoipa::path(post, path = "/v1/campaigns/{name}/status", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The campaign.", body = CampaignView),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
        (status = 409, description = "Not a transition its status allows.", body = crate::error::ErrorBody),
        (status = 422, description = "Not a status.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<StatusBody>,
) -> Result<Json<CampaignView>, ApiError> {
    let to = match body.status.as_str() {
        "running" => CampaignStatus::Running,
        "paused" => CampaignStatus::Paused,
        "completed" => CampaignStatus::Completed,
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_status",
                "`status` is running, paused or completed",
            )
            .with_field("status", "running, paused or completed"));
        }
    };
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let campaign = run(&state, move |s| s.transition(&tenant, &name, to, &actor)).await?;
    Ok(Json(campaign.into()))
}

/// `GET /v1/campaigns/{name}/evaluation`: treatment against holdout on the
/// campaign's goal now, with a per-segment breakdown if asked.
#[utoipa::path(get, path = "/v1/campaigns/{name}/evaluation", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name."), EvaluationQuery),
    responses(
        (status = 200, description = "The evaluation.", body = Object),
        (status = 404, description = "No such campaign.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn evaluation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(query): Query<EvaluationQuery>,
) -> Result<Json<Evaluation>, ApiError> {
    let tenant = principal.tenant.clone();
    let by: Vec<String> = query
        .by
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let evaluation = run(&state, move |s| s.evaluate(&tenant, &name, &by)).await?;
    Ok(Json(evaluation))
}

/// `POST /v1/decide`: the campaign's decision for one person now.
#[utoipa::path(post, path = "/v1/decide", tag = "strategies",
    request_body = DecideBody,
    responses(
        (status = 200, description = "The decision, or the fallback and why.", body = DecisionView),
        (status = 404, description = "No such campaign or person.", body = crate::error::ErrorBody),
        (status = 422, description = "Neither or both of `subject` and `identity`.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<DecideBody>,
) -> Result<Json<DecisionView>, ApiError> {
    let identity = match (&body.subject, &body.identity) {
        (Some(_), None) => None,
        (None, Some(identity)) => Some((
            IdentityKind::parse(&identity.kind).map_err(|_| {
                ApiError::unprocessable(
                    "invalid_identity",
                    "`identity.kind` is email, phone, member_id, device_id or external:<namespace>",
                )
                .with_field("identity.kind", "an identity kind")
            })?,
            identity.value.clone(),
        )),
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_decide",
                "name the person by `subject` or by `identity`, not both",
            )
            .with_field("subject", "or identity"));
        }
    };
    let tenant = principal.tenant.clone();
    let vault = state.vault.clone();
    let _turn = state
        .decide_gate
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let view = run(&state, move |s| {
        let subject = match (body.subject, identity) {
            (Some(subject), _) => subject,
            (None, Some((kind, value))) => vault
                .find_subject_unaudited(&tenant, &kind, &value)?
                .ok_or_else(|| tessera_vault::VaultError::UnknownSubject {
                    tenant: tenant.clone(),
                    subject: format!("({})", kind.label()),
                })?,
            (None, None) => unreachable!("checked above"),
        };
        let request = DecideRequest {
            campaign: body.campaign.clone(),
            subject,
            channel: body.channel,
            attributes: params_of(&body.attributes),
        };
        let outcome = s.decide(&tenant, &request)?;
        Ok(decision_view(&body.campaign, outcome))
    })
    .await?;
    Ok(Json(view))
}

fn decision_view(campaign: &str, outcome: DecisionOutcome) -> DecisionView {
    match outcome {
        DecisionOutcome::Logged(record) => {
            let record = *record;
            DecisionView {
            campaign: campaign.to_owned(),
            decision: Some(record.id),
            arm: Some(record.arm.as_str().to_owned()),
            propensity: Some(record.propensity),
            ranked: record
                .ranked
                .iter()
                .map(|r| json!({"action": r.action, "score": r.score, "propensity": r.propensity}))
                .collect(),
            fallback: match record.arm {
                tessera_strategies::Arm::Control => Some("control".into()),
                tessera_strategies::Arm::Treatment if record.ranked.is_empty() => {
                    Some("strategy_failed".into())
                }
                tessera_strategies::Arm::Treatment => None,
            },
            action: record.action,
            explanation: record.explanation,
        }
        }
        DecisionOutcome::Fallback { reason, action } => DecisionView {
            campaign: campaign.to_owned(),
            decision: None,
            arm: None,
            propensity: None,
            ranked: Vec::new(),
            explanation: format!("the campaign's fallback: {}", reason.as_str()),
            fallback: Some(reason.as_str().to_owned()),
            action,
        },
    }
}

/// `POST /v1/feedback`: what happened after a decision; stored once per
/// decision, kind and key.
#[utoipa::path(post, path = "/v1/feedback", tag = "strategies",
    request_body = FeedbackBody,
    responses(
        (status = 200, description = "Stored (or a duplicate).", body = FeedbackView),
        (status = 404, description = "No such decision.", body = crate::error::ErrorBody),
        (status = 422, description = "A bad kind, value or key.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn feedback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<FeedbackBody>,
) -> Result<Json<FeedbackView>, ApiError> {
    let kind = match body.kind.as_str() {
        "impression" => FeedbackKind::Impression,
        "click" => FeedbackKind::Click,
        "conversion" => FeedbackKind::Conversion,
        "revenue" => FeedbackKind::Revenue,
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_feedback",
                "`kind` is impression, click, conversion or revenue",
            )
            .with_field("kind", "impression, click, conversion or revenue"));
        }
    };
    let tenant = principal.tenant.clone();
    let spec = FeedbackSpec {
        decision: body.decision,
        kind,
        value: body.value,
        key: body.key,
    };
    let outcome = run(&state, move |s| s.feedback(&tenant, &spec)).await?;
    Ok(Json(FeedbackView {
        decision: outcome.decision,
        campaign: outcome.campaign,
        duplicate: outcome.duplicate,
        queued: outcome.queued,
    }))
}

/// Strategies ranked for a segment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecommendationList {
    pub segment: String,
    /// Best first: `{strategy, basis, score, reasons}`.
    #[schema(value_type = Vec<Object>)]
    pub recommendations: Vec<tessera_strategies::Recommendation>,
}

/// `GET /v1/segments/{name}/recommendations`: the catalog ranked for the
/// segment, by what each strategy would earn on the decisions logged on it
/// (replayed off-policy), then by its campaigns' uplift on similar
/// segments, with the reasons.
#[utoipa::path(get, path = "/v1/segments/{name}/recommendations", tag = "strategies",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 200, description = "The ranking.", body = RecommendationList),
        (status = 404, description = "No such segment.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn recommendations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<RecommendationList>, ApiError> {
    let tenant = principal.tenant.clone();
    let segment = name.clone();
    let recommendations = run(&state, move |s| s.recommend(&tenant, &name)).await?;
    Ok(Json(RecommendationList {
        segment,
        recommendations,
    }))
}

/// `POST /v1/campaigns/{name}/sends`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSend {
    /// An installed destination connector (e.g. `webhook-out`), granted
    /// the campaign's purpose and the PII class of the addresses.
    connector: String,
    /// Its parameters, by name (e.g. `{"url": "https://…"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// The identity each person is addressed by: `email`, `phone`,
    /// `member_id`, `device_id` or `external:<namespace>`.
    recipient: String,
    /// Where the decisions are shown, for the strategy and the log
    /// (default `email`).
    #[serde(default = "default_send_channel")]
    channel: String,
}

fn default_send_channel() -> String {
    "email".into()
}

/// Members a send decided nothing for, by reason.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendFallbackView {
    /// In the segment's index but no longer in the segment.
    pub not_in_segment: u64,
    /// Not consenting to the campaign's purpose now.
    pub no_consent: u64,
    /// Served the most decisions the frequency cap allows.
    pub capped: u64,
    /// Left out because the budget was spent.
    pub budget_exhausted: u64,
}

/// A send of a campaign, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendView {
    pub id: String,
    pub campaign: String,
    pub segment: String,
    pub connector: String,
    /// The connector's parameters (credentials and URL queries hidden).
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
    pub recipient: String,
    pub channel: String,
    pub purpose: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// `<role>:<token id>` of who started it.
    pub started_by: String,
    /// Members read from the segment so far.
    pub members: u64,
    /// Treatment decisions the strategy made (logged).
    pub decided: u64,
    /// Control answers (logged); the fallback, if any, is sent to them.
    pub control: u64,
    /// Treatment people the strategy failed to decide for: the fallback,
    /// logged.
    pub strategy_failed: u64,
    /// Logged decisions with no action to send.
    pub without_action: u64,
    /// Members decided nothing for, by reason.
    pub fallback: SendFallbackView,
    /// Consenting members without an address of the kind, or only with
    /// addresses no trusted source gave (not decided for); erased members.
    pub without_address: u64,
    pub unconfirmed: u64,
    pub gone: u64,
    /// Actions given to the connector.
    pub sent: u64,
    /// Of those, delivered.
    pub delivered: u64,
    /// Of those, not delivered: dead letters of the delivery runs.
    pub dead_letters: u64,
    /// The delivery runs, one per page of members.
    pub runs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<CampaignSend> for SendView {
    fn from(s: CampaignSend) -> Self {
        SendView {
            params: shown_params(&s.params),
            status: s.status.as_str().to_owned(),
            started_by: format!("{}:{}", s.started_by.role, s.started_by.id),
            fallback: SendFallbackView {
                not_in_segment: s.fallback.not_in_segment,
                no_consent: s.fallback.no_consent,
                capped: s.fallback.capped,
                budget_exhausted: s.fallback.budget_exhausted,
            },
            id: s.id,
            campaign: s.campaign,
            segment: s.segment,
            connector: s.connector,
            recipient: s.recipient,
            channel: s.channel,
            purpose: s.purpose,
            started_at_ms: s.started_at_ms,
            finished_at_ms: s.finished_at_ms,
            members: s.members,
            decided: s.decided,
            control: s.control,
            strategy_failed: s.strategy_failed,
            without_action: s.without_action,
            without_address: s.without_address,
            unconfirmed: s.unconfirmed,
            gone: s.gone,
            sent: s.sent,
            delivered: s.delivered,
            dead_letters: s.dead_letters,
            runs: s.runs,
            error: s.error,
        }
    }
}

/// The sends of a campaign, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SendList {
    pub sends: Vec<SendView>,
}

/// `POST /v1/campaigns/{name}/sends`: decides for the running campaign's
/// whole segment and delivers each decision through a destination
/// connector, in the background; the answer is the send, `running`. The
/// checks and the log are decide's; only members who consent to the
/// campaign's purpose now and have a trusted address of the kind asked for
/// are decided for. Audited.
#[utoipa::path(post, path = "/v1/campaigns/{name}/sends", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    request_body = NewSend,
    responses(
        (status = 202, description = "The send, running.", body = SendView),
        (status = 404, description = "No campaign of that name, or no such connector.", body = crate::error::ErrorBody),
        (status = 409, description = "The campaign does not run, or the connector is quarantined.", body = crate::error::ErrorBody),
        (status = 422, description = "Not a destination, not granted the purpose or the address's PII class, bad parameters, recipient kind or channel.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn send(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<NewSend>,
) -> Result<(StatusCode, Json<SendView>), ApiError> {
    let recipient = recipient_kind(&body.recipient)?;
    let deliverer = crate::segmentation::deliverer(&state)?;
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let spec = SendSpec {
        connector: body.connector,
        params: params_of(&body.params),
        recipient,
        channel: body.channel,
    };
    let shown = run(&state, move |s| {
        let (send, params) = s.start_send(&deliverer, &tenant, &name, spec, &actor)?;
        let shown = SendView::from(send.clone());
        crate::in_background("tessera-send", move || {
            if let Err(error) = s.run_send(&deliverer, &tenant, send, params) {
                tracing::warn!(%tenant, %error, "campaign send failed");
            }
        })
        .map_err(|error| StrategyError::Corrupt(format!("cannot start the send: {error}")))?;
        Ok(shown)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(shown)))
}

/// `GET /v1/campaigns/{name}/sends`: the campaign's sends, oldest first.
#[utoipa::path(get, path = "/v1/campaigns/{name}/sends", tag = "strategies",
    params(("name" = String, Path, description = "The campaign's name.")),
    responses(
        (status = 200, description = "The sends.", body = SendList),
        (status = 404, description = "No campaign of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn sends(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<SendList>, ApiError> {
    let tenant = principal.tenant.clone();
    let sends = run(&state, move |s| s.sends(&tenant, &name)).await?;
    Ok(Json(SendList {
        sends: sends.into_iter().map(SendView::from).collect(),
    }))
}

/// `GET /v1/campaigns/{name}/sends/{id}`: one send and what became of the
/// segment's members.
#[utoipa::path(get, path = "/v1/campaigns/{name}/sends/{id}", tag = "strategies",
    params(
        ("name" = String, Path, description = "The campaign's name."),
        ("id" = String, Path, description = "The send's id."),
    ),
    responses(
        (status = 200, description = "The send.", body = SendView),
        (status = 404, description = "No such campaign or send.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn send_record(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<SendView>, ApiError> {
    let tenant = principal.tenant.clone();
    let send = run(&state, move |s| s.send(&tenant, &name, &id)).await?;
    Ok(Json(send.into()))
}
