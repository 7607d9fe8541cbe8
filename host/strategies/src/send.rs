//! Sends: a running campaign decided for its whole segment at once (an
//! email-style campaign), each decision delivered through a destination
//! connector to the person it was made for.
//!
//! A send reads the segment's members a page at a time and applies to each
//! person the checks of [`Strategies::decide`]: in the segment now, consent
//! to the campaign's purpose now (read as the page is sent), the holdout
//! arm by the campaign's salt, the frequency cap and the budget. Only people
//! with a trusted address of the kind asked for are decided for, in both
//! arms (the address is not the arm's doing, so the arms stay comparable).
//! The strategy is asked once per page, over a view of the page's people in
//! treatment. Every decision is logged exactly as decide logs it, so
//! feedback, evaluation and learning take sends as they take decide.
//!
//! Each logged decision with an action becomes one delivery of kind
//! [`SEND_ACTION`], whose delivery id is the decision id: the strategy's
//! choice in treatment, the fallback in control (nothing when the campaign
//! has none). Capped people, and those the budget leaves out, get nothing.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tessera_imports::{Deliverer, DeliverySpec};
use tessera_plugins::{ParamValue, field_values, stored_params};
use tessera_runtime::api::records::Action;
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry, IdentityKind, SegmentMember, VaultError};

use crate::campaign::{Campaign, CampaignStatus};
use crate::decide::{Arm, DecisionRecord, FallbackReason, Moment, Placement};
use crate::store::{KIND_SEND, decode, encode, new_id};
use crate::{Strategies, StrategyError};

/// Members per page: the most people of one strategy call and of one
/// delivery run.
pub const SEND_PAGE: usize = 1_000;
/// The kind of every action a send delivers (its attributes say which of
/// the campaign's actions it is).
pub const SEND_ACTION: &str = "campaign_action";

/// Where to send a campaign, and to which address of each person.
#[derive(Debug, Clone)]
pub struct SendSpec {
    /// An installed destination connector (e.g. `webhook-out`).
    pub connector: String,
    /// Its parameters (e.g. the webhook's `url`).
    pub params: Vec<FieldValue>,
    /// The identity each person is addressed by.
    pub recipient: IdentityKind,
    /// Where the decisions are shown (`email`, `sms`, `push`, …): the
    /// strategy's context, logged with each decision.
    pub channel: String,
}

/// Where a send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendStatus {
    Running,
    /// Every member was decided for and sent, set aside as a dead letter,
    /// or skipped.
    Completed,
    /// Stopped: `error` says why. What was decided stays logged; what was
    /// sent stays sent.
    Failed,
}

impl SendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Running => "running",
            SendStatus::Completed => "completed",
            SendStatus::Failed => "failed",
        }
    }
}

/// Members a send decided nothing for, by the reason decide would give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFallbacks {
    /// Listed in the segment's index, but not in the segment now.
    pub not_in_segment: u64,
    /// Not consenting to the campaign's purpose now: nothing of them
    /// reached the strategy, nothing was logged or sent.
    pub no_consent: u64,
    /// Served the most decisions the frequency cap allows.
    pub capped: u64,
    /// Left out because the campaign's budget was spent.
    pub budget_exhausted: u64,
}

/// One send of a campaign, and what became of its segment's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSend {
    /// `snd-<start ms>-<random>`.
    pub id: String,
    pub campaign: String,
    /// The campaign's segment.
    pub segment: String,
    pub connector: String,
    /// The connector's parameters, as validated.
    pub params: Vec<(String, ParamValue)>,
    /// The identity kind people are addressed by (`email`, `member_id`, …).
    pub recipient: String,
    pub channel: String,
    /// The campaign's purpose: only members who consent to it now are
    /// decided for.
    pub purpose: String,
    pub status: SendStatus,
    pub started_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    pub started_by: Actor,
    /// Members read from the segment.
    pub members: u64,
    /// Treatment decisions the strategy made (logged).
    pub decided: u64,
    /// Control answers (logged): the fallback, if any, is sent.
    pub control: u64,
    /// Treatment people the strategy failed to decide for: the fallback,
    /// logged as `strategy_failed` (and sent, if there is one).
    pub strategy_failed: u64,
    /// Decisions logged without an action to send (control without a
    /// fallback, or the strategy chose nothing).
    pub without_action: u64,
    /// Members decided nothing for, and why.
    pub fallback: SendFallbacks,
    /// Consenting members with no identity of the kind (not decided for).
    pub without_address: u64,
    /// Consenting members whose identities of the kind no trusted source
    /// asserted (not decided for).
    pub unconfirmed: u64,
    /// Members erased since the segment was computed.
    pub gone: u64,
    /// Actions given to the connector.
    pub sent: u64,
    /// Of those, the connector reported delivered.
    pub delivered: u64,
    /// Of those, not delivered: dead letters of the runs, to replay.
    pub dead_letters: u64,
    /// The delivery runs, one per page with something to send, in order.
    pub runs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Campaign {
    /// Why the campaign does not decide at `now` (`None`: it does).
    fn not_running(&self, now: i64) -> Option<StrategyError> {
        if self.runs_at(now) {
            return None;
        }
        let why = if self.status != CampaignStatus::Running {
            format!("is {}", self.status)
        } else if self.starts_at_ms.is_some_and(|s| now < s) {
            "has not reached its start yet".to_owned()
        } else {
            "is past its end".to_owned()
        };
        Some(StrategyError::NotRunning {
            name: self.name.clone(),
            why,
        })
    }
}

impl Strategies {
    /// Checks a send of the campaign `campaign` and stores its record,
    /// `running`; [`Strategies::run_send`] decides and sends. The campaign
    /// must run, and the destination be granted the campaign's purpose and
    /// the PII class of the addresses. Nothing is read of the members here,
    /// and an error leaves nothing stored.
    pub fn start_send(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        campaign: &str,
        spec: SendSpec,
        actor: &Actor,
    ) -> Result<(CampaignSend, Vec<FieldValue>), StrategyError> {
        let campaign = self.get(tenant, campaign)?;
        let now = self.vault().now_ms();
        if let Some(error) = campaign.not_running(now) {
            return Err(error);
        }
        if spec.channel.is_empty() || spec.channel.len() > 64 {
            return Err(StrategyError::Invalid {
                field: "channel",
                reason: "a channel is 1 to 64 bytes (email, sms, push, …)".into(),
            });
        }
        let params = deliverer.audience_destination(
            tenant,
            &spec.connector,
            &spec.params,
            &campaign.purpose,
            &spec.recipient,
            |what| StrategyError::SendNotGranted {
                connector: spec.connector.clone(),
                what,
            },
        )?;
        let send = CampaignSend {
            id: new_id("snd", now)?,
            campaign: campaign.name,
            segment: campaign.segment,
            connector: spec.connector,
            params: stored_params(&params),
            recipient: spec.recipient.label(),
            channel: spec.channel,
            purpose: campaign.purpose,
            status: SendStatus::Running,
            started_at_ms: now,
            finished_at_ms: None,
            started_by: actor.clone(),
            members: 0,
            decided: 0,
            control: 0,
            strategy_failed: 0,
            without_action: 0,
            fallback: SendFallbacks::default(),
            without_address: 0,
            unconfirmed: 0,
            gone: 0,
            sent: 0,
            delivered: 0,
            dead_letters: 0,
            runs: Vec::new(),
            error: None,
        };
        self.put_send(tenant, &send)?;
        Ok((send, params))
    }

    /// Decides for and sends the members of a send
    /// [`Strategies::start_send`] stored, a page at a time, updating its
    /// record after each page; ends with the record completed (or failed,
    /// with the reason: e.g. the campaign was paused) and a `campaign.send`
    /// audit entry with its counts. Blocks: run it on a blocking pool.
    pub fn run_send(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        mut send: CampaignSend,
        params: Vec<FieldValue>,
    ) -> Result<CampaignSend, StrategyError> {
        let outcome = self.send_pages(deliverer, tenant, &mut send, &params);
        send.finished_at_ms = Some(self.vault().now_ms());
        match &outcome {
            Ok(()) => send.status = SendStatus::Completed,
            Err(error) => {
                send.status = SendStatus::Failed;
                send.error = Some(error.to_string());
            }
        }
        self.put_send(tenant, &send)?;
        let f = &send.fallback;
        self.vault().record_admin_action(
            tenant,
            AuditEntry::new(&send.started_by, "campaign.send").detail(format!(
                "{} of campaign {} to {} by {} ({}): {} members, {} decided, {} control, {} \
                 strategy failed, {} not in the segment, {} without consent, {} capped, {} over \
                 budget, {} without an address, {} unconfirmed, {} sent, {} delivered",
                send.id,
                send.campaign,
                send.connector,
                send.recipient,
                send.status.as_str(),
                send.members,
                send.decided,
                send.control,
                send.strategy_failed,
                f.not_in_segment,
                f.no_consent,
                f.capped,
                f.budget_exhausted,
                send.without_address,
                send.unconfirmed,
                send.sent,
                send.delivered,
            )),
        )?;
        outcome.map(|()| send)
    }

    fn send_pages(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        send: &mut CampaignSend,
        params: &[FieldValue],
    ) -> Result<(), StrategyError> {
        // People already decided for in this send (a person listed twice,
        // merged since the segment was computed, is decided for once).
        let mut seen = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            // Read again for every page: a campaign paused (or past its
            // end) stops the send.
            let campaign = self.get(tenant, &send.campaign)?;
            let now = self.vault().now_ms();
            if let Some(error) = campaign.not_running(now) {
                return Err(error);
            }
            let page = self.vault().segment_members(
                tenant,
                &campaign.segment,
                after.as_deref(),
                SEND_PAGE,
            )?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.subject.clone());
            send.members += page.len() as u64;
            let actions = self.decide_page(tenant, &campaign, send, &page, &mut seen, now)?;
            if !actions.is_empty() {
                send.sent += actions.len() as u64;
                let spec = DeliverySpec {
                    connector: send.connector.clone(),
                    params: params.to_vec(),
                    source: format!("campaign {} ({})", send.campaign, send.id),
                };
                let actor = send.started_by.clone();
                let run = deliverer.deliver_page(tenant, spec, actions, &actor, |run| {
                    send.runs.push(run.to_owned());
                    self.put_send(tenant, send)
                })?;
                send.delivered += run.report.delivered;
                send.dead_letters += run.report.dead_letters;
            }
            self.put_send(tenant, send)?;
            if page.len() < SEND_PAGE {
                return Ok(());
            }
        }
    }

    /// Decides for one page of members, logs every decision and counts
    /// it; returns the actions to deliver, one per logged decision with an
    /// action, addressed to its person.
    fn decide_page(
        &self,
        tenant: &str,
        campaign: &Campaign,
        send: &mut CampaignSend,
        page: &[SegmentMember],
        seen: &mut HashSet<String>,
        now: i64,
    ) -> Result<Vec<Action>, StrategyError> {
        let vault = self.vault();
        let kind = IdentityKind::parse(&send.recipient)
            .map_err(|e| StrategyError::Corrupt(e.to_string()))?;
        // In the segment now, as decide checks it (by the person's root).
        let mut members = Vec::with_capacity(page.len());
        for member in page {
            let root = match vault.resolve_subject(tenant, &member.subject) {
                Ok(root) => root,
                Err(VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. }) => {
                    send.gone += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if !seen.insert(root.clone()) {
                continue;
            }
            if vault.is_member(tenant, &campaign.segment, &root)? {
                members.push(root);
            } else {
                send.fallback.not_in_segment += 1;
            }
        }
        // Consent now, and a trusted address of the kind: the rule of
        // segment exports. No one else is decided for, in either arm.
        let audience = vault.audience(tenant, &members, &kind, &campaign.purpose)?;
        send.fallback.no_consent += audience.without_consent;
        send.without_address += audience.without_address;
        send.unconfirmed += audience.unconfirmed;
        send.gone += audience.gone;
        // The holdout, the cap and the budget, as decide applies them; the
        // page's people in treatment count against the budget before any
        // of them is logged.
        let attributes = field_values(&[("send".to_owned(), ParamValue::Text(send.id.clone()))]);
        let moment = Moment {
            channel: &send.channel,
            attributes: &attributes,
            now,
        };
        let salt = campaign.salt_bytes()?;
        let mut records = Vec::new();
        let mut treated = Vec::new();
        for person in &audience.recipients {
            let in_flight = treated.len() as u64;
            match self.placement(tenant, campaign, &salt, &person.subject, now, in_flight)? {
                Placement::Control => {
                    records.push(campaign.control_record(&person.subject, &moment)?)
                }
                Placement::Treatment => treated.push(person.subject.clone()),
                Placement::Skipped(FallbackReason::Capped) => send.fallback.capped += 1,
                Placement::Skipped(_) => send.fallback.budget_exhausted += 1,
            }
        }
        // The strategy, once for the page's people in treatment.
        let asked = self.ask_strategy(tenant, campaign, &treated, &moment)?;
        // Someone who withdrew consent since the audience was read is not
        // in the strategy's view.
        send.fallback.no_consent += (treated.len() - asked.records.len()) as u64;
        if asked.failed {
            send.strategy_failed += asked.records.len() as u64;
        } else {
            send.decided += asked.records.len() as u64;
        }
        records.extend(asked.records);
        let addresses: HashMap<&str, &str> = audience
            .recipients
            .iter()
            .map(|r| (r.subject.as_str(), r.address.as_str()))
            .collect();
        let mut actions = Vec::with_capacity(records.len());
        for record in &records {
            self.log(tenant, record)?;
            if record.arm == Arm::Control {
                send.control += 1;
            }
            let (Some(action), Some(address)) =
                (&record.action, addresses.get(record.subject.as_str()))
            else {
                send.without_action += 1;
                continue;
            };
            actions.push(Action {
                delivery_id: record.id.clone(),
                recipient: (*address).to_owned(),
                action: SEND_ACTION.to_owned(),
                attributes: action_attributes(send, record, action),
            });
        }
        Ok(actions)
    }

    /// One send of the campaign `campaign`.
    pub fn send(
        &self,
        tenant: &str,
        campaign: &str,
        id: &str,
    ) -> Result<CampaignSend, StrategyError> {
        let campaign = self.get(tenant, campaign)?;
        let unknown = || StrategyError::UnknownSend {
            id: id.chars().take(64).collect(),
        };
        // Ids are `snd-<13 digits>-<8 hex digits>`.
        if !id.starts_with("snd-") || id.len() > 64 {
            return Err(unknown());
        }
        self.vault()
            .sealed_document(tenant, KIND_SEND, &send_doc(&campaign.name, id))?
            .map(|plain| decode(&plain))
            .transpose()?
            .ok_or_else(unknown)
    }

    /// The sends of the campaign `campaign`, oldest first.
    pub fn sends(&self, tenant: &str, campaign: &str) -> Result<Vec<CampaignSend>, StrategyError> {
        let campaign = self.get(tenant, campaign)?;
        self.documents_under(tenant, KIND_SEND, &send_doc(&campaign.name, ""))
    }

    /// Marks the sends a stop cut off as failed (their delivery runs turn
    /// what they had not sent into dead letters); run before serving.
    /// Returns how many there were.
    pub fn fail_interrupted_sends(&self, tenant: &str) -> Result<u64, StrategyError> {
        let mut failed = 0;
        for mut send in self.documents_under::<CampaignSend>(tenant, KIND_SEND, "")? {
            if send.status == SendStatus::Running {
                send.status = SendStatus::Failed;
                send.finished_at_ms = Some(self.vault().now_ms());
                send.error = Some(
                    "cut off by a stop of the server; members not yet decided for were not sent \
                     (send again: a frequency cap keeps those already served from a second \
                     action)"
                        .to_owned(),
                );
                self.put_send(tenant, &send)?;
                failed += 1;
            }
        }
        Ok(failed)
    }

    fn put_send(&self, tenant: &str, send: &CampaignSend) -> Result<(), StrategyError> {
        self.vault().put_sealed_document(
            tenant,
            KIND_SEND,
            &send_doc(&send.campaign, &send.id),
            &encode(send)?,
        )?;
        Ok(())
    }
}

/// `<campaign>/<send id>`.
fn send_doc(campaign: &str, id: &str) -> String {
    format!("{campaign}/{id}")
}

/// The attributes of a decision's action: what the receiver shows, and
/// what it needs to post feedback (the decision id).
fn action_attributes(
    send: &CampaignSend,
    record: &DecisionRecord,
    action: &str,
) -> Vec<FieldValue> {
    field_values(&[
        (
            "campaign".to_owned(),
            ParamValue::Text(record.campaign.clone()),
        ),
        ("decision".to_owned(), ParamValue::Text(record.id.clone())),
        ("action".to_owned(), ParamValue::Text(action.to_owned())),
        (
            "arm".to_owned(),
            ParamValue::Text(record.arm.as_str().to_owned()),
        ),
        ("send".to_owned(), ParamValue::Text(send.id.clone())),
    ])
}
