//! Campaign definitions and their lifecycle.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tessera_plugins::views::segment_exists;
use tessera_plugins::{ParamValue, field_values, stored_params};
use tessera_runtime::PluginKind;
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry};

use crate::store::{KIND_CAMPAIGN, decode, encode, new_salt};
use crate::{Strategies, StrategyError};

/// The most campaigns a tenant keeps.
pub(crate) const MAX_CAMPAIGNS: usize = 1_000;
/// The largest holdout share: at least half the audience gets the campaign.
pub const MAX_HOLDOUT: f64 = 0.5;
/// The longest description, in bytes.
const MAX_DESCRIPTION: usize = 1_000;
/// The longest goal window and frequency-cap period, in days.
const MAX_DAYS: u32 = 365;

/// At most `max` decisions served to one person within `days` days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequencyCap {
    pub max: u32,
    pub days: u32,
}

/// What counts as success, within `window_days` days after a person's
/// first decision (in either arm).
///
/// From `events` (the default): an event of type `event`; `value`, a
/// numeric property of it, adds up to the person's revenue. From
/// `feedback`: a `conversion` feedback on any of the person's decisions
/// (control answers too: their decision ids are logged), and the amounts
/// of `revenue` feedback; `event` and `value` are unused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub window_days: u32,
    #[serde(default)]
    pub source: GoalSource,
}

/// Where a campaign's outcomes are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalSource {
    /// The people's own events, as ingested.
    #[default]
    Events,
    /// Feedback on their decisions.
    Feedback,
}

/// What a marketer asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpec {
    /// The strategy plugin.
    pub strategy: String,
    /// Its parameters.
    pub params: Vec<FieldValue>,
    /// The segment whose members the campaign decides for.
    pub segment: String,
    /// What decisions process data for; default: the first purpose the
    /// strategy works for that it was granted.
    pub purpose: Option<String>,
    /// The share of the segment held out as the control group (0 to
    /// [`MAX_HOLDOUT`]).
    pub holdout: f64,
    pub frequency_cap: Option<FrequencyCap>,
    /// The most decisions served in all (control answers do not count).
    pub budget: Option<u64>,
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub goal: Goal,
    /// The action a person gets when the strategy does not decide for them
    /// (control, caps, budget, a failed call); none: no action.
    pub fallback: Option<String>,
    /// A strategy (and its parameters) run beside the live one on every
    /// decision, logged but never served ([`Strategies::shadow_estimate`]).
    pub shadow: Option<(String, Vec<FieldValue>)>,
    pub description: String,
}

/// A shadow strategy of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shadow {
    pub strategy: String,
    pub params: Vec<(String, ParamValue)>,
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Saved; parameters can change.
    Draft,
    /// Its forecast was computed; parameters can still change (which
    /// makes it a draft again).
    Simulated,
    /// Deciding.
    Running,
    /// Answers with the fallback until resumed.
    Paused,
    /// Over; kept as the strategy's track record.
    Completed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Simulated => "simulated",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
        }
    }

    /// Whether a campaign may go from `self` to `to` by a marketer's
    /// request. `simulated` is reached by simulating, not asked for; a
    /// campaign runs only once simulated (its forecast seen).
    pub fn may_become(self, to: CampaignStatus) -> bool {
        use CampaignStatus::*;
        matches!(
            (self, to),
            (Simulated, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Running | Paused, Completed)
        )
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of a campaign's status (or of its definition: `from == to`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<CampaignStatus>,
    pub to: CampaignStatus,
    pub at_ms: i64,
    pub by: Actor,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Campaigns as last decoded, each with the stored bytes it was decoded
/// from: every decision reads its campaign, and decoding the JSON was
/// about a tenth of a decision's work. The store is still read every time
/// (so a change made by another node is seen at once); the decoding is
/// skipped only when the bytes are the ones decoded before. Campaigns hold
/// no personal data. At most [`Decoded::CAPACITY`] entries: when full, it
/// starts again empty.
#[derive(Default)]
pub(crate) struct Decoded {
    /// By tenant, then by campaign name.
    by_tenant: HashMap<String, HashMap<String, (Vec<u8>, Campaign)>>,
}

impl Decoded {
    const CAPACITY: usize = 1024;

    fn get(&self, tenant: &str, name: &str, plain: &[u8]) -> Option<Campaign> {
        let (bytes, campaign) = self.by_tenant.get(tenant)?.get(name)?;
        (bytes.as_slice() == plain).then(|| campaign.clone())
    }

    /// Only after a miss (a campaign saved or changed), so counting here
    /// costs nothing on the decision path.
    fn put(&mut self, tenant: &str, name: &str, plain: Vec<u8>, campaign: &Campaign) {
        if self.len() >= Self::CAPACITY {
            self.by_tenant.clear();
        }
        self.by_tenant
            .entry(tenant.to_owned())
            .or_default()
            .insert(name.to_owned(), (plain, campaign.clone()));
    }

    /// How many campaigns are held.
    fn len(&self) -> usize {
        self.by_tenant.values().map(HashMap::len).sum()
    }
}

/// A saved campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub name: String,
    pub strategy: String,
    /// The strategy's version when the campaign was last saved.
    pub strategy_version: String,
    /// Its parameters, as the plugin validated them (defaults filled in).
    pub params: Vec<(String, ParamValue)>,
    /// The actions the strategy chooses among, by index.
    pub actions: Vec<String>,
    pub segment: String,
    pub purpose: String,
    pub holdout: f64,
    /// Hex; with the subject id, decides who is held out.
    pub salt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<FrequencyCap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<i64>,
    pub goal: Goal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
    pub description: String,
    pub status: CampaignStatus,
    /// The latest forecast ([`Strategies::simulate`]); a change of the
    /// definition clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulation: Option<crate::Simulation>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Every change, oldest first.
    pub history: Vec<Transition>,
}

impl Campaign {
    /// The parameters as the plugin takes them.
    pub fn field_values(&self) -> Vec<FieldValue> {
        field_values(&self.params)
    }

    /// The runtime scope of a call of the campaign's strategy over `view`:
    /// the campaign's own part of the strategy's state (`campaign/<name>`),
    /// so that two campaigns of one strategy learn apart.
    pub fn state_scope(&self, view: &tessera_plugins::View) -> tessera_runtime::CallScope {
        view.scope().with_state_namespace(self.state_namespace())
    }

    /// The runtime scope of a call of the campaign's shadow strategy over
    /// `view`: its own part of the shadow's state (`campaign/<name>/shadow`).
    pub fn shadow_state_scope(&self, view: &tessera_plugins::View) -> tessera_runtime::CallScope {
        view.scope().with_state_namespace(self.shadow_namespace())
    }

    fn state_namespace(&self) -> String {
        format!("campaign/{}", self.name)
    }

    fn shadow_namespace(&self) -> String {
        format!("campaign/{}/shadow", self.name)
    }

    /// When the campaign first ran, if it has.
    pub fn started_at_ms(&self) -> Option<i64> {
        self.history
            .iter()
            .find(|t| t.to == CampaignStatus::Running)
            .map(|t| t.at_ms)
    }
}

/// 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter or a digit.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StrategyError {
    StrategyError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Strategies {
    /// Saves the campaign `name` as a draft (replacing a draft or simulated
    /// one of that name, which keeps its salt and history). The strategy
    /// must be a running strategy plugin granted the purpose, take the
    /// parameters, and offer the fallback action; the segment must exist.
    /// Audited (`campaign.put`).
    pub fn put(
        &self,
        tenant: &str,
        name: &str,
        spec: CampaignSpec,
        actor: &Actor,
    ) -> Result<Campaign, StrategyError> {
        if !valid_name(name) {
            return Err(StrategyError::BadName {
                name: name.to_owned(),
            });
        }
        let mut campaign = self.define(tenant, name, spec)?;
        let now = self.vault().now_ms();
        let previous = self.find(tenant, name)?;
        if let Some(previous) = &previous
            && !matches!(
                previous.status,
                CampaignStatus::Draft | CampaignStatus::Simulated
            )
        {
            return Err(StrategyError::NotEditable {
                name: name.to_owned(),
                status: previous.status,
            });
        }
        if previous.is_none() && self.list(tenant)?.len() >= MAX_CAMPAIGNS {
            return Err(StrategyError::TooMany);
        }
        let (salt, created_at_ms, mut history) = match previous {
            Some(p) => (p.salt, p.created_at_ms, p.history),
            None => (new_salt()?, now, Vec::new()),
        };
        history.push(Transition {
            from: history.last().map(|t| t.to),
            to: CampaignStatus::Draft,
            at_ms: now,
            by: actor.clone(),
            note: "saved".into(),
        });
        campaign.salt = salt;
        campaign.created_at_ms = created_at_ms;
        campaign.updated_at_ms = now;
        campaign.history = history;
        self.store_campaign(tenant, &campaign)?;
        self.vault().record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(campaign.strategy.clone()),
                plugin_version: Some(campaign.strategy_version.clone()),
                ..AuditEntry::new(actor, "campaign.put").detail(format!(
                    "campaign {name} on segment {} for {}, holdout {}",
                    campaign.segment, campaign.purpose, campaign.holdout
                ))
            },
        )?;
        Ok(campaign)
    }

    /// The campaign `spec` defines, checked as [`Strategies::put`] checks
    /// it, named `name` and saved nowhere: a draft without a salt or a
    /// history.
    pub(crate) fn define(
        &self,
        tenant: &str,
        name: &str,
        spec: CampaignSpec,
    ) -> Result<Campaign, StrategyError> {
        let live = self.registry().callable(tenant, &spec.strategy)?;
        let info = live.plugin.info();
        if info.kind != PluginKind::Strategy {
            return Err(StrategyError::NotAStrategy {
                plugin: spec.strategy.clone(),
                kind: info.kind.as_str().to_owned(),
            });
        }
        let params = live
            .plugin
            .validate(&spec.params)
            .map_err(|e| invalid("params", e.to_string()))?;
        let actions: Vec<String> = live
            .plugin
            .strategy_actions(&params)
            .map_err(|e| invalid("params", e.to_string()))?
            .value
            .into_iter()
            .map(|a| a.name)
            .collect();
        let purpose = self.purpose(tenant, &spec, &live)?;
        check_spec(&spec, &actions)?;
        let shadow = match &spec.shadow {
            Some((strategy, params)) => Some(self.shadow(tenant, strategy, params, &purpose)?),
            None => None,
        };
        if !segment_exists(self.vault(), tenant, &spec.segment)? {
            return Err(StrategyError::UnknownSegment {
                name: spec.segment.clone(),
            });
        }
        Ok(Campaign {
            name: name.to_owned(),
            strategy: spec.strategy,
            strategy_version: info.manifest.version.clone(),
            params: stored_params(&params),
            actions,
            segment: spec.segment,
            purpose,
            holdout: spec.holdout,
            salt: String::new(),
            frequency_cap: spec.frequency_cap,
            budget: spec.budget,
            starts_at_ms: spec.starts_at_ms,
            ends_at_ms: spec.ends_at_ms,
            goal: spec.goal,
            fallback: spec.fallback,
            shadow,
            description: spec.description,
            status: CampaignStatus::Draft,
            simulation: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            history: Vec::new(),
        })
    }

    /// The purpose decisions process data for: asked for, or the first the
    /// strategy works for that it was granted; declared by the plugin,
    /// granted to it and known to the tenant.
    fn purpose(
        &self,
        tenant: &str,
        spec: &CampaignSpec,
        live: &tessera_plugins::Live,
    ) -> Result<String, StrategyError> {
        let declared = &live.plugin.info().manifest.purposes;
        let listed = || {
            if declared.is_empty() {
                "no purpose".to_owned()
            } else {
                declared.join(", ")
            }
        };
        let purpose = match &spec.purpose {
            Some(p) if !declared.contains(p) => {
                return Err(invalid(
                    "purpose",
                    format!(
                        "plugin {:?} works for {}, not for {p:?}",
                        spec.strategy,
                        listed()
                    ),
                ));
            }
            Some(p) if !live.granted.purposes.contains(p) => {
                return Err(invalid(
                    "purpose",
                    format!(
                        "plugin {:?} is not granted purpose {p:?}; an operator must grant it",
                        spec.strategy
                    ),
                ));
            }
            Some(p) => p.clone(),
            None => declared
                .iter()
                .find(|p| live.granted.purposes.contains(p))
                .cloned()
                .ok_or_else(|| StrategyError::NoPurpose {
                    plugin: spec.strategy.clone(),
                    declared: listed(),
                })?,
        };
        let known = self.vault().settings(tenant)?.purposes;
        if !known.contains(&purpose) {
            return Err(StrategyError::UnknownPurpose {
                purpose,
                known: known.join(", "),
            });
        }
        Ok(purpose)
    }

    /// Checks a shadow strategy: a running strategy plugin granted the
    /// campaign's purpose, taking the parameters.
    fn shadow(
        &self,
        tenant: &str,
        strategy: &str,
        params: &[FieldValue],
        purpose: &str,
    ) -> Result<Shadow, StrategyError> {
        let live = self.registry().callable(tenant, strategy)?;
        let info = live.plugin.info();
        if info.kind != PluginKind::Strategy {
            return Err(StrategyError::NotAStrategy {
                plugin: strategy.to_owned(),
                kind: info.kind.as_str().to_owned(),
            });
        }
        if !live.granted.purposes.iter().any(|p| p == purpose) {
            return Err(invalid(
                "shadow",
                format!(
                    "plugin {strategy:?} is not granted purpose {purpose:?}; an operator must \
                     grant it before it runs in a campaign's shadow"
                ),
            ));
        }
        let params = live
            .plugin
            .validate(params)
            .map_err(|e| invalid("shadow.params", e.to_string()))?;
        Ok(Shadow {
            strategy: strategy.to_owned(),
            params: stored_params(&params),
        })
    }

    /// The campaign `name`.
    pub fn get(&self, tenant: &str, name: &str) -> Result<Campaign, StrategyError> {
        self.find(tenant, name)?
            .ok_or_else(|| StrategyError::Unknown {
                name: name.to_owned(),
            })
    }

    fn find(&self, tenant: &str, name: &str) -> Result<Option<Campaign>, StrategyError> {
        if !valid_name(name) {
            return Ok(None);
        }
        let Some(plain) = self.vault().sealed_document(tenant, KIND_CAMPAIGN, name)? else {
            return Ok(None);
        };
        if let Some(campaign) = self.decoded().get(tenant, name, &plain) {
            return Ok(Some(campaign));
        }
        let campaign: Campaign = decode(&plain)?;
        self.decoded().put(tenant, name, plain, &campaign);
        Ok(Some(campaign))
    }

    /// Every campaign of the tenant, by name.
    pub fn list(&self, tenant: &str) -> Result<Vec<Campaign>, StrategyError> {
        let mut out = Vec::new();
        self.vault()
            .for_each_sealed_document(tenant, KIND_CAMPAIGN, |_, plain| {
                out.push(decode(&plain)?);
                Ok::<_, StrategyError>(())
            })?;
        Ok(out)
    }

    /// Moves the campaign to `to` (see [`CampaignStatus::may_become`]).
    /// Audited (`campaign.status`).
    pub fn transition(
        &self,
        tenant: &str,
        name: &str,
        to: CampaignStatus,
        actor: &Actor,
    ) -> Result<Campaign, StrategyError> {
        let mut campaign = self.get(tenant, name)?;
        if !campaign.status.may_become(to) {
            return Err(StrategyError::BadTransition {
                name: name.to_owned(),
                from: campaign.status,
                to,
            });
        }
        self.set_status(tenant, &mut campaign, to, actor, String::new())?;
        Ok(campaign)
    }

    pub(crate) fn set_status(
        &self,
        tenant: &str,
        campaign: &mut Campaign,
        to: CampaignStatus,
        actor: &Actor,
        note: String,
    ) -> Result<(), StrategyError> {
        let now = self.vault().now_ms();
        let from = campaign.status;
        campaign.history.push(Transition {
            from: Some(from),
            to,
            at_ms: now,
            by: actor.clone(),
            note,
        });
        campaign.status = to;
        campaign.updated_at_ms = now;
        self.store_campaign(tenant, campaign)?;
        self.vault().record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(campaign.strategy.clone()),
                plugin_version: Some(campaign.strategy_version.clone()),
                ..AuditEntry::new(actor, "campaign.status")
                    .detail(format!("campaign {}: {from} → {to}", campaign.name))
            },
        )?;
        Ok(())
    }

    /// Removes a campaign that never ran (a draft or simulated one), and
    /// what its strategy and shadow keep in its parts of their state;
    /// completed campaigns stay as their strategy's track record.
    /// Audited (`campaign.delete`).
    pub fn delete(&self, tenant: &str, name: &str, actor: &Actor) -> Result<(), StrategyError> {
        let campaign = self.get(tenant, name)?;
        if !matches!(
            campaign.status,
            CampaignStatus::Draft | CampaignStatus::Simulated
        ) {
            return Err(StrategyError::NotEditable {
                name: name.to_owned(),
                status: campaign.status,
            });
        }
        // Its state first: if that fails, the campaign is still there to
        // remove again.
        self.clear_campaign_state(tenant, &campaign)?;
        self.vault()
            .delete_sealed_document(tenant, KIND_CAMPAIGN, name)?;
        self.vault().record_admin_action(
            tenant,
            AuditEntry::new(actor, "campaign.delete").detail(format!("campaign {name}")),
        )?;
        Ok(())
    }

    /// Deletes what the campaign's strategy and its shadow keep in the
    /// campaign's parts of their state. The parts stay usable: a campaign
    /// of the same name may come later.
    pub(crate) fn clear_campaign_state(
        &self,
        tenant: &str,
        campaign: &Campaign,
    ) -> Result<u64, StrategyError> {
        let registry = self.registry();
        let mut removed =
            registry.clear_namespace(tenant, &campaign.strategy, &campaign.state_namespace())?;
        if let Some(shadow) = &campaign.shadow {
            removed +=
                registry.clear_namespace(tenant, &shadow.strategy, &campaign.shadow_namespace())?;
        }
        Ok(removed)
    }

    pub(crate) fn store_campaign(
        &self,
        tenant: &str,
        campaign: &Campaign,
    ) -> Result<(), StrategyError> {
        self.vault().put_sealed_document(
            tenant,
            KIND_CAMPAIGN,
            &campaign.name,
            &encode(campaign)?,
        )?;
        Ok(())
    }
}

/// Checks what the plugin and the store do not.
fn check_spec(spec: &CampaignSpec, actions: &[String]) -> Result<(), StrategyError> {
    if !(0.0..=MAX_HOLDOUT).contains(&spec.holdout) {
        return Err(invalid(
            "holdout",
            format!(
                "the holdout share is 0 to {MAX_HOLDOUT}, not {}",
                spec.holdout
            ),
        ));
    }
    if let Some(cap) = spec.frequency_cap
        && (cap.max == 0 || !(1..=MAX_DAYS).contains(&cap.days))
    {
        return Err(invalid(
            "frequency_cap",
            format!("at least 1 decision within 1 to {MAX_DAYS} days"),
        ));
    }
    if spec.budget == Some(0) {
        return Err(invalid("budget", "a budget is at least 1 decision"));
    }
    if let (Some(start), Some(end)) = (spec.starts_at_ms, spec.ends_at_ms)
        && end <= start
    {
        return Err(invalid(
            "ends_at_ms",
            "the campaign must end after it starts",
        ));
    }
    if spec.goal.source == GoalSource::Events
        && (spec.goal.event.is_empty() || spec.goal.event.len() > 64)
    {
        return Err(invalid("goal.event", "an event type of 1 to 64 bytes"));
    }
    if !(1..=MAX_DAYS).contains(&spec.goal.window_days) {
        return Err(invalid("goal.window_days", format!("1 to {MAX_DAYS} days")));
    }
    if let Some(fallback) = &spec.fallback
        && !actions.contains(fallback)
    {
        return Err(invalid(
            "fallback",
            format!(
                "{fallback:?} is not one of the strategy's actions ({})",
                actions.join(", ")
            ),
        ));
    }
    if spec.description.len() > MAX_DESCRIPTION {
        return Err(invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        use CampaignStatus::*;
        let all = [Draft, Simulated, Running, Paused, Completed];
        let allowed: Vec<(CampaignStatus, CampaignStatus)> = all
            .iter()
            .flat_map(|from| all.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Simulated, Running),
                (Running, Paused),
                (Running, Completed),
                (Paused, Running),
                (Paused, Completed),
            ]
        );
    }

    fn campaign(name: &str) -> Campaign {
        serde_json::from_value(serde_json::json!({
            "name": name, "strategy": "thompson", "strategy_version": "1.0.0",
            "params": [], "actions": ["a", "b"], "segment": "buyers",
            "purpose": "personalization", "holdout": 0.1, "salt": "00",
            "goal": {"window_days": 7}, "description": "", "status": "draft",
            "created_at_ms": 0, "updated_at_ms": 0, "history": [],
        }))
        .unwrap()
    }

    #[test]
    fn a_decoded_campaign_is_reused_only_for_the_same_bytes_and_the_cache_is_bounded() {
        let mut decoded = Decoded::default();
        let spring = campaign("spring");
        assert_eq!(decoded.get("acme", "spring", b"v1"), None);
        decoded.put("acme", "spring", b"v1".to_vec(), &spring);
        assert_eq!(decoded.get("acme", "spring", b"v1"), Some(spring.clone()));
        // Other bytes (the campaign changed), another tenant, another name:
        // decoded again.
        assert_eq!(decoded.get("acme", "spring", b"v2"), None);
        assert_eq!(decoded.get("other", "spring", b"v1"), None);
        assert_eq!(decoded.get("acme", "summer", b"v1"), None);
        let mut paused = spring.clone();
        paused.status = CampaignStatus::Paused;
        decoded.put("acme", "spring", b"v2".to_vec(), &paused);
        assert_eq!(decoded.len(), 1, "a new version replaces the old one");
        assert_eq!(decoded.get("acme", "spring", b"v2"), Some(paused));
        assert_eq!(decoded.get("acme", "spring", b"v1"), None);
        for i in 1..Decoded::CAPACITY {
            decoded.put(&format!("t{i}"), "spring", b"v1".to_vec(), &spring);
        }
        assert_eq!(decoded.len(), Decoded::CAPACITY);
        decoded.put("late", "spring", b"v1".to_vec(), &spring);
        assert_eq!(decoded.len(), 1, "a full cache starts again empty");
        assert_eq!(decoded.get("late", "spring", b"v1"), Some(spring));
        assert_eq!(decoded.get("acme", "spring", b"v2"), None);
    }

    #[test]
    fn names_are_checked() {
        for good in ["spring", "a", "win-back_2", "9lives"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-x", "Spring", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
