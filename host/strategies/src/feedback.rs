//! Feedback on decisions, and the strategy learning from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_plugins::Subjects;
use tessera_runtime::api::strategies::{
    Feedback as PluginFeedback, FeedbackBatch, FeedbackKind as PluginKind,
};
use tessera_runtime::api::types::{Column, ColumnData, ProfileBatch, TextColumn, TextListColumn};
use tessera_vault::AuditEntry;

use crate::campaign::CampaignStatus;
use crate::decide::{Arm, decision_doc};
use crate::store::{KIND_FEEDBACK, KIND_LEARN_QUEUE, decode, encode, new_id};
use crate::{Strategies, StrategyError};

/// Feedback items per `observe` call.
const LEARN_BATCH: usize = 500;
/// The longest idempotency key, in bytes.
const MAX_KEY: usize = 128;

/// What happened after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// The action was shown.
    Impression,
    Click,
    Conversion,
    /// Revenue attributed to the action (`value` is the amount).
    Revenue,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Impression => "impression",
            FeedbackKind::Click => "click",
            FeedbackKind::Conversion => "conversion",
            FeedbackKind::Revenue => "revenue",
        }
    }

    fn plugin(self) -> PluginKind {
        match self {
            FeedbackKind::Impression => PluginKind::Impression,
            FeedbackKind::Click => PluginKind::Click,
            FeedbackKind::Conversion => PluginKind::Conversion,
            FeedbackKind::Revenue => PluginKind::Revenue,
        }
    }
}

/// Feedback as a caller sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackSpec {
    /// The decision's id.
    pub decision: String,
    pub kind: FeedbackKind,
    /// The reward: the amount for `revenue` (required), else 1 by default.
    pub value: Option<f64>,
    /// Makes the feedback idempotent: the same decision, kind and key is
    /// stored once. Default: the kind, so one of each kind per decision;
    /// give distinct keys for repeated events (two purchases).
    pub key: Option<String>,
}

/// Stored feedback, joined to its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeedbackRecord {
    pub decision: String,
    pub campaign: String,
    pub subject: String,
    pub kind: FeedbackKind,
    pub reward: f64,
    pub key: String,
    pub at_ms: i64,
    pub arm: Arm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_index: Option<u32>,
    pub propensity: f64,
    /// Whether the strategy chose the action (so learns from it).
    pub learnable: bool,
}

/// What [`Strategies::feedback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackOutcome {
    pub decision: String,
    pub campaign: String,
    /// The same feedback was stored before: nothing changed.
    pub duplicate: bool,
    /// Queued for the strategy to learn from (the strategy chose the action).
    pub queued: bool,
}

/// What a learning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnReport {
    /// Feedback items given to strategies.
    pub observed: u64,
    /// Items dropped because their person no longer consents to the
    /// campaign's purpose (or was erased).
    pub without_consent: u64,
    /// Calls that failed; their items stay queued.
    pub failed_calls: u64,
}

impl Strategies {
    /// Stores feedback on a logged decision, once per (decision, kind,
    /// key), and queues it for the strategy if the strategy chose the
    /// action.
    pub fn feedback(
        &self,
        tenant: &str,
        spec: &FeedbackSpec,
    ) -> Result<FeedbackOutcome, StrategyError> {
        let decision = self.decision(tenant, &spec.decision)?;
        let reward = match (spec.kind, spec.value) {
            (FeedbackKind::Revenue, None) => {
                return Err(StrategyError::Invalid {
                    field: "value",
                    reason: "revenue feedback needs its amount".into(),
                });
            }
            (_, Some(v)) if !v.is_finite() || v < 0.0 => {
                return Err(StrategyError::Invalid {
                    field: "value",
                    reason: "a reward is a finite number of 0 or more".into(),
                });
            }
            (_, value) => value.unwrap_or(1.0),
        };
        let key = spec
            .key
            .clone()
            .unwrap_or_else(|| spec.kind.as_str().to_owned());
        if key.is_empty() || key.len() > MAX_KEY || key.contains('/') {
            return Err(StrategyError::Invalid {
                field: "key",
                reason: format!("1 to {MAX_KEY} bytes, without `/`"),
            });
        }
        if decision.action_index.is_none() {
            return Err(StrategyError::NoActionServed {
                id: decision.id,
                kind: spec.kind.as_str().to_owned(),
            });
        }
        let doc = format!(
            "{}/{}/{key}",
            decision_doc(&decision.campaign, &decision.subject, &decision.id),
            spec.kind.as_str()
        );
        let learnable = decision.arm == Arm::Treatment && !decision.ranked.is_empty();
        let vault = self.vault();
        let _counting = self.counters();
        if vault
            .sealed_document(tenant, KIND_FEEDBACK, &doc)?
            .is_some()
        {
            return Ok(FeedbackOutcome {
                decision: decision.id,
                campaign: decision.campaign,
                duplicate: true,
                queued: false,
            });
        }
        let now = vault.now_ms();
        let record = FeedbackRecord {
            decision: decision.id.clone(),
            campaign: decision.campaign.clone(),
            subject: decision.subject.clone(),
            kind: spec.kind,
            reward,
            key,
            at_ms: now,
            arm: decision.arm,
            action_index: decision.action_index,
            propensity: decision.propensity,
            learnable,
        };
        vault.put_sealed_document(tenant, KIND_FEEDBACK, &doc, &encode(&record)?)?;
        if learnable {
            let queued = format!("{}/{}", decision.campaign, new_id("fb", now)?);
            vault.put_sealed_document(tenant, KIND_LEARN_QUEUE, &queued, doc.as_bytes())?;
        }
        Ok(FeedbackOutcome {
            decision: decision.id,
            campaign: decision.campaign,
            duplicate: false,
            queued: learnable,
        })
    }

    /// The feedback stored on one person's decisions in a campaign.
    pub(crate) fn feedback_of(
        &self,
        tenant: &str,
        campaign: &str,
        subject: &str,
    ) -> Result<Vec<FeedbackRecord>, StrategyError> {
        let prefix = format!("{campaign}/{subject}/");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.vault().sealed_documents_under(
                tenant,
                KIND_FEEDBACK,
                &prefix,
                after.as_deref(),
                1_000,
            )?;
            let full = page.len() >= 1_000;
            for (id, plain) in page {
                out.push(decode(&plain)?);
                after = Some(id);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Gives the queued feedback of every running or paused campaign of the
    /// tenant to its strategy, in batches, each with a view of its people
    /// built now (consent is read again: feedback of someone who withdrew
    /// it is dropped, unseen).
    pub fn learn(&self, tenant: &str) -> Result<LearnReport, StrategyError> {
        let mut report = LearnReport::default();
        for campaign in self.list(tenant)? {
            if !matches!(
                campaign.status,
                CampaignStatus::Running | CampaignStatus::Paused
            ) {
                continue;
            }
            loop {
                let queued = self.vault().sealed_documents_under(
                    tenant,
                    KIND_LEARN_QUEUE,
                    &format!("{}/", campaign.name),
                    None,
                    LEARN_BATCH,
                )?;
                if queued.is_empty() {
                    break;
                }
                let full = queued.len() >= LEARN_BATCH;
                match self.observe_batch(tenant, &campaign, &queued)? {
                    Some((observed, dropped)) => {
                        report.observed += observed;
                        report.without_consent += dropped;
                        for (id, _) in &queued {
                            self.vault()
                                .delete_sealed_document(tenant, KIND_LEARN_QUEUE, id)?;
                        }
                    }
                    None => {
                        report.failed_calls += 1;
                        break;
                    }
                }
                if !full {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// One `observe` call over queued feedback; none if the call failed.
    fn observe_batch(
        &self,
        tenant: &str,
        campaign: &crate::Campaign,
        queued: &[(String, Vec<u8>)],
    ) -> Result<Option<(u64, u64)>, StrategyError> {
        let mut records = Vec::with_capacity(queued.len());
        for (_, doc) in queued {
            let doc = String::from_utf8_lossy(doc).into_owned();
            if let Some(plain) = self.vault().sealed_document(tenant, KIND_FEEDBACK, &doc)? {
                records.push(decode::<FeedbackRecord>(&plain)?);
            }
        }
        let mut subjects: Vec<String> = records.iter().map(|r| r.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        let params = campaign.field_values();
        // Erased people are left out of the view, like those who withdrew
        // consent: their feedback is dropped.
        let (live, view) = self.registry().view(
            tenant,
            &campaign.strategy,
            &params,
            &campaign.purpose,
            Subjects::Ids(&subjects),
        )?;
        let row_of: BTreeMap<&str, usize> = (0..view.batch.rows as usize)
            .filter_map(|row| view.subject(row).map(|s| (s, row)))
            .collect();
        let mut rows = Vec::new();
        let mut items = Vec::new();
        let mut dropped = 0;
        for record in &records {
            let (Some(row), Some(action)) =
                (row_of.get(record.subject.as_str()), record.action_index)
            else {
                dropped += 1;
                continue;
            };
            rows.push(*row);
            items.push(PluginFeedback {
                key: view.batch.keys[*row],
                action,
                kind: record.kind.plugin(),
                reward: record.reward,
                propensity: record.propensity,
                at: record.at_ms,
            });
        }
        if items.is_empty() {
            return Ok(Some((0, dropped)));
        }
        let batch = FeedbackBatch {
            profiles: select_rows(&view.batch, &rows),
            items,
        };
        match live
            .plugin
            .observe_with(&params, &batch, &campaign.state_scope(&view))
        {
            Ok(_) => {
                self.vault().record_admin_action(
                    tenant,
                    AuditEntry {
                        plugin: Some(campaign.strategy.clone()),
                        plugin_version: Some(live.plugin.info().manifest.version.clone()),
                        batch: Some(batch.items.len() as u64),
                        ..AuditEntry::new(&tessera_vault::Actor::system("learn"), "campaign.learn")
                            .detail(format!("campaign {}", campaign.name))
                    },
                )?;
                Ok(Some((batch.items.len() as u64, dropped)))
            }
            Err(error) => {
                tracing::warn!(
                    %tenant, campaign = %campaign.name, %error,
                    "the strategy failed to learn from feedback; it stays queued"
                );
                Ok(None)
            }
        }
    }
}

/// The rows `rows` of `batch`, in that order (a row may repeat).
pub(crate) fn select_rows(batch: &ProfileBatch, rows: &[usize]) -> ProfileBatch {
    let column = |c: &Column| Column {
        present: if c.present.is_empty() {
            Vec::new()
        } else {
            rows.iter().map(|r| c.present[*r]).collect()
        },
        data: match &c.data {
            ColumnData::Boolean(v) => ColumnData::Boolean(rows.iter().map(|r| v[*r]).collect()),
            ColumnData::Integer(v) => ColumnData::Integer(rows.iter().map(|r| v[*r]).collect()),
            ColumnData::Number(v) => ColumnData::Number(rows.iter().map(|r| v[*r]).collect()),
            ColumnData::Timestamp(v) => ColumnData::Timestamp(rows.iter().map(|r| v[*r]).collect()),
            ColumnData::Text(t) => ColumnData::Text(TextColumn {
                dictionary: t.dictionary.clone(),
                codes: rows.iter().map(|r| t.codes[*r]).collect(),
            }),
            ColumnData::TextList(t) => {
                let mut offsets = vec![0u32];
                let mut codes = Vec::new();
                for r in rows {
                    let (from, to) = (t.offsets[*r] as usize, t.offsets[*r + 1] as usize);
                    codes.extend_from_slice(&t.codes[from..to]);
                    offsets.push(codes.len() as u32);
                }
                ColumnData::TextList(TextListColumn {
                    dictionary: t.dictionary.clone(),
                    offsets,
                    codes,
                })
            }
        },
    };
    ProfileBatch {
        rows: rows.len() as u32,
        keys: rows.iter().map(|r| batch.keys[*r]).collect(),
        fields: batch.fields.iter().map(column).collect(),
        aggregates: batch.aggregates.iter().map(column).collect(),
        now: batch.now,
    }
}
