//! Exports: a segment's members sent to a destination connector as an
//! audience, one action per person who consents to the segment's purpose,
//! addressed by an identity of the kind the marketer chose.
//!
//! What leaves Tessera is bounded by the destination's grant: it must be
//! granted the segment's purpose, and the PII class of the address (email,
//! phone or device id; member ids and external ids carry none). Consent is
//! read when each page is sent, not when the segment was last computed, and
//! only addresses a trusted source asserted are used. Members are sent a
//! page at a time, each page as one delivery run (retries, backoff and dead
//! letters as for every delivery), and the export's record says what became
//! of every member.

use serde::{Deserialize, Serialize};
use tessera_imports::{Deliverer, DeliverySpec};
use tessera_plugins::{ParamValue, field_values, stored_params};
use tessera_runtime::api::records::Action;
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry, IdentityKind};

use crate::SegmentError;
use crate::engine::{Segments, decode, encode};

/// Document kind of an export record (sealed; id: the export id).
const KIND_EXPORT: &str = "segment_export";
/// Members per page, and so the most actions of one delivery run.
pub const EXPORT_PAGE: usize = 1_000;
/// The action every exported member gets.
pub const EXPORT_ACTION: &str = "segment_member";

/// What to export a segment to.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// An installed destination connector (e.g. `webhook-out`).
    pub connector: String,
    /// Its parameters (e.g. the webhook's `url`).
    pub params: Vec<FieldValue>,
    /// The identity each member is addressed by.
    pub recipient: IdentityKind,
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    Running,
    /// Every member was sent, set aside as a dead letter, or skipped.
    Completed,
    /// Stopped: `error` says why. What was sent stays sent.
    Failed,
}

/// One export of a segment, and what became of its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// `exp-<start ms>-<random>`.
    pub id: String,
    pub segment: String,
    pub connector: String,
    /// The connector's parameters, as validated.
    pub params: Vec<(String, ParamValue)>,
    /// The identity kind members are addressed by (`email`, `member_id`, …).
    pub recipient: String,
    /// The segment's purpose: only members who consent to it now are sent.
    pub purpose: String,
    pub status: ExportStatus,
    pub started_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    pub started_by: Actor,
    /// Members read from the segment.
    pub members: u64,
    /// Members given to the connector.
    pub sent: u64,
    /// Of those, the connector reported delivered.
    pub delivered: u64,
    /// Of those, not delivered: dead letters of the runs, to replay.
    pub dead_letters: u64,
    /// Members who do not consent to the purpose now.
    pub without_consent: u64,
    /// Members with no identity of the kind.
    pub without_address: u64,
    /// Members whose identities of the kind no trusted source asserted.
    pub unconfirmed: u64,
    /// Members erased since the segment was computed.
    pub gone: u64,
    /// The delivery runs, one per page, in order.
    pub runs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Segments {
    /// Checks an export of the segment `name` and stores its record,
    /// `running`; [`Segments::run_export`] sends the members. Nothing is
    /// read of the members here, and an error leaves nothing stored.
    pub fn start_export(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        name: &str,
        spec: ExportSpec,
        actor: &Actor,
    ) -> Result<(Export, Vec<FieldValue>), SegmentError> {
        let segment = self.get(tenant, name)?;
        let params = deliverer.audience_destination(
            tenant,
            &spec.connector,
            &spec.params,
            &segment.purpose,
            &spec.recipient,
            |what| SegmentError::ExportNotGranted {
                connector: spec.connector.clone(),
                what,
            },
        )?;
        let now = self.vault().now_ms();
        let export = Export {
            id: new_id(now)?,
            segment: name.to_owned(),
            connector: spec.connector,
            params: stored_params(&params),
            recipient: spec.recipient.label(),
            purpose: segment.purpose,
            status: ExportStatus::Running,
            started_at_ms: now,
            finished_at_ms: None,
            started_by: actor.clone(),
            members: 0,
            sent: 0,
            delivered: 0,
            dead_letters: 0,
            without_consent: 0,
            without_address: 0,
            unconfirmed: 0,
            gone: 0,
            runs: Vec::new(),
            error: None,
        };
        self.put_export(tenant, &export)?;
        Ok((export, params))
    }

    /// Sends the members of an export [`Segments::start_export`] stored,
    /// a page at a time, updating its record after each page; ends with
    /// the record completed (or failed, with the reason) and a
    /// `segment.export` audit entry. Blocks: run it on a blocking pool.
    pub fn run_export(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        mut export: Export,
        params: Vec<FieldValue>,
    ) -> Result<Export, SegmentError> {
        let outcome = self.send_pages(deliverer, tenant, &mut export, &params);
        export.finished_at_ms = Some(self.vault().now_ms());
        match &outcome {
            Ok(()) => export.status = ExportStatus::Completed,
            Err(error) => {
                export.status = ExportStatus::Failed;
                export.error = Some(error.to_string());
            }
        }
        self.put_export(tenant, &export)?;
        self.vault().record_admin_action(
            tenant,
            AuditEntry::new(&export.started_by, "segment.export").detail(format!(
                "{} of segment {} to {} by {} ({}): {} sent, {} delivered, {} without consent, \
                 {} without an address, {} unconfirmed",
                export.id,
                export.segment,
                export.connector,
                export.recipient,
                match export.status {
                    ExportStatus::Completed => "completed",
                    ExportStatus::Failed => "failed",
                    ExportStatus::Running => "running",
                },
                export.sent,
                export.delivered,
                export.without_consent,
                export.without_address,
                export.unconfirmed,
            )),
        )?;
        outcome.map(|()| export)
    }

    fn send_pages(
        &self,
        deliverer: &Deliverer,
        tenant: &str,
        export: &mut Export,
        params: &[FieldValue],
    ) -> Result<(), SegmentError> {
        let kind = IdentityKind::parse(&export.recipient)
            .map_err(|e| SegmentError::Corrupt(e.to_string()))?;
        let mut after: Option<String> = None;
        loop {
            let page = self.members(tenant, &export.segment, after.as_deref(), EXPORT_PAGE)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.subject.clone());
            export.members += page.len() as u64;
            let subjects: Vec<String> = page.iter().map(|m| m.subject.clone()).collect();
            let audience = self
                .vault()
                .audience(tenant, &subjects, &kind, &export.purpose)?;
            export.without_consent += audience.without_consent;
            export.without_address += audience.without_address;
            export.unconfirmed += audience.unconfirmed;
            export.gone += audience.gone;
            if !audience.recipients.is_empty() {
                let entered = |subject: &str| {
                    page.iter()
                        .find(|m| m.subject == subject)
                        .map(|m| m.entered_at_ms)
                };
                let first = export.sent;
                let actions: Vec<Action> = audience
                    .recipients
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Action {
                        delivery_id: format!("{}-{}", export.id, first + i as u64),
                        recipient: r.address.clone(),
                        action: EXPORT_ACTION.to_owned(),
                        attributes: attributes(&export.segment, entered(&r.subject)),
                    })
                    .collect();
                export.sent += actions.len() as u64;
                let spec = DeliverySpec {
                    connector: export.connector.clone(),
                    params: params.to_vec(),
                    source: format!("segment {} ({})", export.segment, export.id),
                };
                let actor = export.started_by.clone();
                let run = deliverer.deliver_page(tenant, spec, actions, &actor, |run| {
                    export.runs.push(run.to_owned());
                    self.put_export(tenant, export)
                })?;
                export.delivered += run.report.delivered;
                export.dead_letters += run.report.dead_letters;
            }
            self.put_export(tenant, export)?;
            if page.len() < EXPORT_PAGE {
                return Ok(());
            }
        }
    }

    /// One export of the tenant.
    pub fn export(&self, tenant: &str, id: &str) -> Result<Export, SegmentError> {
        // Ids are `exp-<13 digits>-<8 hex digits>`.
        if !id.starts_with("exp-") || id.len() > 64 {
            return Err(SegmentError::UnknownExport {
                id: id.chars().take(64).collect(),
            });
        }
        let plain = self
            .vault()
            .sealed_document(tenant, KIND_EXPORT, id)?
            .ok_or_else(|| SegmentError::UnknownExport { id: id.to_owned() })?;
        decode(&plain)
    }

    /// The exports of the segment `name` (of every segment: `None`), oldest
    /// first.
    pub fn exports(&self, tenant: &str, name: Option<&str>) -> Result<Vec<Export>, SegmentError> {
        let mut out = Vec::new();
        self.vault()
            .for_each_sealed_document(tenant, KIND_EXPORT, |_, plain| {
                let export: Export = decode(&plain)?;
                if name.is_none_or(|n| n == export.segment) {
                    out.push(export);
                }
                Ok::<_, SegmentError>(())
            })?;
        Ok(out)
    }

    /// Marks the exports a stop cut off as failed (their delivery runs
    /// turn what they had not sent into dead letters); run before serving.
    /// Returns how many there were.
    pub fn fail_interrupted_exports(&self, tenant: &str) -> Result<u64, SegmentError> {
        let mut failed = 0;
        for mut export in self.exports(tenant, None)? {
            if export.status == ExportStatus::Running {
                export.status = ExportStatus::Failed;
                export.finished_at_ms = Some(self.vault().now_ms());
                export.error = Some(
                    "cut off by a stop of the server; members not yet sent were not sent \
                     (export again)"
                        .to_owned(),
                );
                self.put_export(tenant, &export)?;
                failed += 1;
            }
        }
        Ok(failed)
    }

    fn put_export(&self, tenant: &str, export: &Export) -> Result<(), SegmentError> {
        self.vault()
            .put_sealed_document(tenant, KIND_EXPORT, &export.id, &encode(export)?)?;
        Ok(())
    }
}

/// `exp-<start ms>-<8 hex digits>`.
fn new_id(now_ms: i64) -> Result<String, SegmentError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| SegmentError::Corrupt(format!("no randomness for an export id: {e}")))?;
    Ok(format!("exp-{:013}-{}", now_ms.max(0), hex::encode(bytes)))
}

/// The attributes of a member's action: the segment, and since when the
/// person is in it.
fn attributes(segment: &str, entered_at_ms: Option<i64>) -> Vec<FieldValue> {
    let mut out = vec![("segment".to_owned(), ParamValue::Text(segment.to_owned()))];
    if let Some(at) = entered_at_ms {
        out.push(("entered_at".to_owned(), ParamValue::Timestamp(at)));
    }
    field_values(&out)
}
