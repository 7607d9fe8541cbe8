//! Subject rights: access, rectification, consents and linked apps,
//! retention choice, export, and deletion (crypto-shredding, purge, receipt,
//! suppression).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_privacy::ErasureCause;
use tessera_store::JobRecord;

use crate::audit::{self, AuditEntry};
use crate::error::VaultError;
use crate::ingest::{StoredEvent, check_trait, consent_entry};
use crate::model::{
    Actor, ConsentChange, ConsentEntry, ConsentState, Consents, DeletionRequest, DeletionStatus,
    Event, LinkedApp, Receipt, Removed, Retention, SubjectView,
};
use crate::normalize::IdentityKind;
use crate::vault::{KIND_CONSENT, KIND_EVENT, Loaded, Tenant, Vault, decode_json, random_id};

/// Store document kind of deletion requests.
const DELETION_DOC: &str = "deletion";
/// Job kind of purges.
pub const PURGE_JOB: &str = "purge";
/// How long a worker holds a purge job before another may take it over.
const PURGE_LEASE_MS: u64 = 10 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Serialize, Deserialize)]
pub(crate) struct PurgePayload {
    pub(crate) tenant: String,
    pub(crate) request: String,
}

/// What [`Vault::run_jobs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsReport {
    pub purges_completed: Vec<String>,
}

impl Vault {
    /// Everything held about the person `subject` belongs to, decrypted, in
    /// one structure (the access right). The read is audited.
    pub fn access(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
    ) -> Result<SubjectView, VaultError> {
        let tenant = self.tenant(tenant)?;
        let view = self.view(&tenant, subject)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.access").subject(&view.subject),
        )?;
        Ok(view)
    }

    /// The subject (the person's current root) that the identity `raw` of
    /// `kind` belongs to, if any: the value is normalised with the tenant's
    /// rules and looked up by its keyed hash, so it is never stored or
    /// logged. Every lookup is audited (`subject.lookup`, with the subject
    /// when one was found, never the value), since learning whether a person
    /// is known is itself personal data.
    pub fn find_subject(
        &self,
        tenant: &str,
        kind: &IdentityKind,
        raw: &str,
        actor: &Actor,
    ) -> Result<Option<String>, VaultError> {
        self.audited_lookup(tenant, kind, raw, actor, false)
    }

    /// [`Vault::find_subject`] for signing a person in: the identity must
    /// also be trusted — asserted by a trusted source, not only by records
    /// from an untrusted one ([`Vault::ingest_batch_untrusted`]), where
    /// anyone can attach any address to anyone. Else `None`, as for an
    /// unknown identity. Audited the same way.
    pub fn find_trusted_subject(
        &self,
        tenant: &str,
        kind: &IdentityKind,
        raw: &str,
        actor: &Actor,
    ) -> Result<Option<String>, VaultError> {
        self.audited_lookup(tenant, kind, raw, actor, true)
    }

    /// As [`Vault::find_trusted_subject`], but not audited: for a service
    /// that audits what it does with the answer itself, where anyone may
    /// cause lookups (login with a one-time code audits the codes it sends,
    /// not every address asked for).
    pub fn find_trusted_subject_unaudited(
        &self,
        tenant: &str,
        kind: &IdentityKind,
        raw: &str,
    ) -> Result<Option<String>, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.identify(&tenant, kind, raw, true)
    }

    /// As [`Vault::find_subject`], but not audited: for a service that logs
    /// what it does with the answer itself (a campaign's decision names its
    /// person in the decision log).
    pub fn find_subject_unaudited(
        &self,
        tenant: &str,
        kind: &IdentityKind,
        raw: &str,
    ) -> Result<Option<String>, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.identify(&tenant, kind, raw, false)
    }

    fn audited_lookup(
        &self,
        tenant: &str,
        kind: &IdentityKind,
        raw: &str,
        actor: &Actor,
        trusted_only: bool,
    ) -> Result<Option<String>, VaultError> {
        let tenant = self.tenant(tenant)?;
        let found = self.identify(&tenant, kind, raw, trusted_only)?;
        let mut entry = AuditEntry::new(actor, "subject.lookup").detail(kind.label());
        if let Some(subject) = &found {
            entry = entry.subject(subject);
        }
        self.audit(&tenant, entry)?;
        Ok(found)
    }

    /// The root an identity finds; with `trusted_only`, only if no subject
    /// of the person holds it as untrusted.
    fn identify(
        &self,
        tenant: &Tenant,
        kind: &IdentityKind,
        raw: &str,
        trusted_only: bool,
    ) -> Result<Option<String>, VaultError> {
        let (pair, hash) = tenant.identity(kind, raw)?;
        Ok(match self.store.find_identity(&tenant.id, hash)? {
            Some(subject) => match self.load_root(tenant, &subject) {
                Ok(root) if !trusted_only => Some(root.id),
                Ok(root) => {
                    // The identity is the person's, and no untrusted source
                    // ever linked a sign-in identity to the person: anything
                    // such a source attached may be someone else's, and a
                    // trusted record that later reached the person through
                    // it may have added more (docs/privacy.md).
                    let id = root.id.clone();
                    let group = self.load_group(tenant, root)?;
                    let held = group.iter().any(|m| m.profile.identities.contains(&pair));
                    let touched = group.iter().any(|m| {
                        m.profile
                            .untrusted
                            .iter()
                            .any(|(label, _)| crate::ingest::signs_in(label))
                    });
                    (held && !touched).then_some(id)
                }
                Err(VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. }) => None,
                Err(error) => return Err(error),
            },
            None => None,
        })
    }

    /// The subject that stands for the person `subject` belongs to now (the
    /// root of its merge group). Not audited: it reveals only that the
    /// subject exists; callers audit what they do with it.
    pub fn resolve_subject(&self, tenant: &str, subject: &str) -> Result<String, VaultError> {
        let tenant = self.tenant(tenant)?;
        Ok(self.load_root(&tenant, subject)?.id)
    }

    /// The person's consents per purpose, linked apps and their history,
    /// without the rest of the access view. The read is audited
    /// (`subject.access`, detail `consents`).
    pub fn consents(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
    ) -> Result<Consents, VaultError> {
        let tenant = self.tenant(tenant)?;
        let (root, consents) = self.consent_state(&tenant, subject)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.access")
                .subject(&root)
                .detail("consents"),
        )?;
        Ok(consents)
    }

    fn consent_state(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<(String, Consents), VaultError> {
        let root = self.load_root(tenant, subject)?;
        let group = self.load_group(tenant, root)?;
        let mut history = Vec::new();
        for member in &group {
            history.extend(self.consent_history(tenant, member)?);
        }
        history.sort_by_key(ConsentEntry::at_ms);
        let (consents, linked_apps) = current_consents(&tenant.settings.purposes, &history);
        Ok((
            group[0].id.clone(),
            Consents {
                consents,
                linked_apps,
                history,
            },
        ))
    }

    /// Revokes a linked app if the person has it linked now: `false` (and
    /// nothing written) if not, so an app id of someone else's changes
    /// nothing here.
    pub fn unlink_app(
        &self,
        tenant: &str,
        subject: &str,
        app: &str,
        actor: &Actor,
    ) -> Result<bool, VaultError> {
        let (_, consents) = self.consent_state(&*self.tenant(tenant)?, subject)?;
        if !consents.linked_apps.iter().any(|linked| linked.app == app) {
            return Ok(false);
        }
        self.revoke_app(tenant, subject, app, actor)?;
        Ok(true)
    }

    /// The person's retention period, their choice and the tenant's bounds.
    /// The read is audited (`subject.access`, detail `retention`).
    pub fn retention(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
    ) -> Result<Retention, VaultError> {
        let tenant = self.tenant(tenant)?;
        let root = self.load_root(&tenant, subject)?;
        let settings = &tenant.settings;
        let chosen = root.profile.retention_days;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.access")
                .subject(&root.id)
                .detail("retention"),
        )?;
        Ok(Retention {
            days: settings.retention_days(chosen),
            chosen,
            default_days: settings.retention.default_days,
            min_days: settings.retention.min_days,
            max_days: settings.retention.max_days,
        })
    }

    fn view(&self, tenant: &Tenant, subject: &str) -> Result<SubjectView, VaultError> {
        let root = self.load_root(tenant, subject)?;
        let group = self.load_group(tenant, root)?;
        let root = &group[0];
        let settings = &tenant.settings;

        let mut traits = BTreeMap::new();
        let mut identities = std::collections::BTreeSet::new();
        let mut aggregates: BTreeMap<String, crate::Aggregate> = BTreeMap::new();
        let mut events = Vec::new();
        let mut history = Vec::new();
        let mut merges = Vec::new();
        let mut plugin_state = Vec::new();
        for member in &group {
            for (name, value) in &member.profile.traits {
                // A trait dropped from the schema is still held, so it is
                // still shown (as pii, the most protected class).
                let class = settings
                    .schema
                    .get(name)
                    .map_or(crate::TraitClass::Pii, |spec| spec.class);
                traits
                    .entry(name.clone())
                    .or_insert_with(|| (value.clone(), class));
            }
            identities.extend(member.profile.identities.iter().cloned());
            for (kind, aggregate) in &member.profile.aggregates {
                aggregates
                    .entry(kind.clone())
                    .or_default()
                    .combine(aggregate);
            }
            events.extend(self.events_of(tenant, member)?);
            history.extend(self.consent_history(tenant, member)?);
            merges.extend(member.profile.merges.iter().cloned());
            for (plugin, key, value) in self.store.subject_state(&tenant.id, &member.id)? {
                plugin_state.push((plugin, key, String::from_utf8_lossy(&value).into_owned()));
            }
        }
        events.sort_by_key(|e| e.at_ms);
        history.sort_by_key(ConsentEntry::at_ms);
        merges.sort_by_key(|m| m.at_ms);
        merges.dedup();
        let (consents, linked_apps) = current_consents(&settings.purposes, &history);
        let ids: Vec<&str> = group.iter().map(|m| m.id.as_str()).collect();
        let mut access_log = Vec::new();
        let mut from = 1;
        loop {
            let (page, next) = audit::read_page(self.store.as_ref(), &tenant.id, from, 1024)?;
            access_log.extend(
                page.into_iter()
                    .filter(|e| e.subject.as_deref().is_some_and(|s| ids.contains(&s))),
            );
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        let mut view = SubjectView {
            tenant: tenant.id.clone(),
            subject: root.id.clone(),
            created_at_ms: root.created_at_ms,
            merged_subjects: group[1..].iter().map(|m| m.id.clone()).collect(),
            identities: identities.into_iter().collect(),
            traits,
            events,
            aggregates,
            consents,
            consent_history: history,
            linked_apps,
            segments: root.profile.segments.clone(),
            past_segments: root.profile.past_segments.clone(),
            retention_days: settings.retention_days(root.profile.retention_days),
            retention_chosen: root.profile.retention_days.is_some(),
            merge_history: merges,
            plugin_state,
            decisions: Vec::new(),
            access_log,
        };
        let subjects: Vec<String> = group.iter().map(|m| m.id.clone()).collect();
        self.gather_elsewhere(&tenant.id, &subjects, &mut view)?;
        Ok(view)
    }

    /// At most `limit` people (root subjects, with the subjects merged into
    /// them folded in) after the subject id `after`, for the host to build
    /// plugin views from. Not audited by itself: the caller records the
    /// plugin's read with [`Vault::record_plugin_access`] when it hands the
    /// view over. Erased subjects are skipped. A page may hold fewer than
    /// `limit` people (merged subjects are skipped); continue from the
    /// returned cursor until it is `None`.
    pub fn people(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<crate::Person>, Option<String>), VaultError> {
        let tenant = self.tenant(tenant)?;
        let page = self.store.subjects(&tenant.id, after, limit.max(1))?;
        let cursor = (page.len() >= limit.max(1))
            .then(|| page.last().map(|r| r.id.clone()))
            .flatten();
        let mut people = Vec::new();
        for record in page {
            let root = match self.try_load(&tenant, &record.id) {
                Ok(Some(loaded)) if loaded.profile.merged_into.is_none() => loaded,
                Ok(_) | Err(VaultError::SubjectErased { .. }) => continue,
                Err(error) => return Err(error),
            };
            let group = self.load_group(&tenant, root)?;
            people.push(crate::plugin_view::person_of(&group));
        }
        Ok((people, cursor))
    }

    pub(crate) fn events_of(
        &self,
        tenant: &Tenant,
        member: &Loaded,
    ) -> Result<Vec<Event>, VaultError> {
        self.store
            .events(&tenant.id, &member.id, i64::MIN, i64::MAX)?
            .into_iter()
            .map(|record| {
                let stored: StoredEvent =
                    self.open_record(tenant, member, KIND_EVENT, &record.source_id, &record.data)?;
                Ok(Event {
                    subject: member.id.clone(),
                    event_type: stored.event_type,
                    at_ms: record.at_ms,
                    channel: stored.channel,
                    properties: stored.properties,
                })
            })
            .collect()
    }

    pub(crate) fn consent_history(
        &self,
        tenant: &Tenant,
        member: &Loaded,
    ) -> Result<Vec<ConsentEntry>, VaultError> {
        self.store
            .consents(&tenant.id, &member.id)?
            .into_iter()
            .map(|record| {
                self.open_record(
                    tenant,
                    member,
                    KIND_CONSENT,
                    &record.at_ms.to_string(),
                    &record.data,
                )
            })
            .collect()
    }

    /// Edits traits (`None` removes one), checked against the schema; the
    /// audit entry names the fields, never the values.
    pub fn rectify(
        &self,
        tenant: &str,
        subject: &str,
        changes: &BTreeMap<String, Option<Value>>,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        let lock_of = self.tenant(tenant)?;
        let _guard = self.write_lock(&lock_of)?;
        // The settings as of now, under the lock: a schema change cannot
        // slip between this check and the write.
        let tenant = self.tenant(tenant)?;
        for (name, value) in changes {
            // Removing is allowed for any name, so a trait dropped from the
            // schema can still be erased.
            if value.is_some() {
                check_trait(&tenant, name, value.as_ref())?;
            }
        }
        let root = self.load_root(&tenant, subject)?;
        let mut group = self.load_group(&tenant, root)?;
        let now = self.now();
        for (index, member) in group.iter_mut().enumerate() {
            let mut changed = false;
            for (name, value) in changes {
                match value {
                    // Set on the root, which wins over merged subjects.
                    Some(value) if index == 0 => {
                        member.profile.traits.insert(name.clone(), value.clone());
                        changed = true;
                    }
                    Some(_) => {}
                    // Removed everywhere, or a merged subject's value shows through.
                    None => changed |= member.profile.traits.remove(name).is_some(),
                }
            }
            if changed || index == 0 {
                member.profile.updated_at_ms = now;
                self.save(&tenant, member)?;
            }
        }
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.rectify")
                .subject(&group[0].id)
                .fields(changes.keys().cloned()),
        )?;
        self.flush()?;
        self.notify(&tenant.id, &[group[0].id.clone()]);
        Ok(())
    }

    /// Confirms that an identity an untrusted source linked to the person
    /// `subject` belongs to is theirs (an operator, after checking with
    /// the person): its untrusted mark is removed from every subject of the
    /// person. Once no untrusted mark on a sign-in identity is left, the
    /// person can sign in again ([`Vault::find_trusted_subject`]). Returns
    /// whether a mark was removed; an identity linked to someone else (or
    /// to no one) is [`VaultError::NotLinked`]. Audited
    /// (`identity.confirm`, the kind, never the value).
    pub fn confirm_identity(
        &self,
        tenant: &str,
        subject: &str,
        kind: &IdentityKind,
        raw: &str,
        actor: &Actor,
    ) -> Result<bool, VaultError> {
        let lock_of = self.tenant(tenant)?;
        let _guard = self.write_lock(&lock_of)?;
        let tenant = self.tenant(tenant)?;
        let (pair, hash) = tenant.identity(kind, raw)?;
        let root = self.load_root(&tenant, subject)?;
        let linked_root = match self.store.find_identity(&tenant.id, hash)? {
            Some(linked) => Some(self.load_root(&tenant, &linked)?.id),
            None => None,
        };
        if linked_root.as_deref() != Some(root.id.as_str()) {
            return Err(VaultError::NotLinked {
                tenant: tenant.id.clone(),
                subject: root.id,
                kind: kind.label(),
            });
        }
        let mut group = self.load_group(&tenant, root)?;
        let now = self.now();
        let mut removed = false;
        for member in &mut group {
            if member.profile.untrusted.remove(&pair) {
                member.profile.updated_at_ms = now;
                self.save(&tenant, member)?;
                removed = true;
            }
        }
        self.audit(
            &tenant,
            AuditEntry::new(actor, "identity.confirm")
                .subject(&group[0].id)
                .detail(pair.0.clone()),
        )?;
        self.flush()?;
        Ok(removed)
    }

    /// Grants or revokes consent to a purpose; takes effect on the next
    /// plugin call. Kept in the history with who, when and how.
    pub fn set_consent(
        &self,
        tenant: &str,
        subject: &str,
        change: &ConsentChange,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        // Checked under the tenant's lock, against the settings of now.
        let lock_of = self.tenant(tenant)?;
        let _guard = self.write_lock(&lock_of)?;
        let tenant = self.tenant(tenant)?;
        self.check_purpose(&tenant, &change.purpose)?;
        let mut root = self.load_root(&tenant, subject)?;
        let now = self.now();
        self.append_consent_entry(&tenant, &mut root, consent_entry(change, actor, now))?;
        self.save(&tenant, &root)?;
        let action = if change.granted {
            "consent.grant"
        } else {
            "consent.revoke"
        };
        self.audit(
            &tenant,
            AuditEntry {
                purpose: Some(change.purpose.clone()),
                ..AuditEntry::new(actor, action).subject(&root.id)
            },
        )?;
        self.flush()?;
        self.notify(&tenant.id, &[root.id.clone()]);
        Ok(())
    }

    /// Whether the person has granted `purpose` (never decided = not granted).
    pub fn has_consent(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
    ) -> Result<bool, VaultError> {
        let tenant = self.tenant(tenant)?;
        let root = self.load_root(&tenant, subject)?;
        let group = self.load_group(&tenant, root)?;
        let mut history = Vec::new();
        for member in &group {
            history.extend(self.consent_history(&tenant, member)?);
        }
        history.sort_by_key(ConsentEntry::at_ms);
        let (states, _) = current_consents(&[purpose.to_owned()], &history);
        Ok(states.first().is_some_and(|s| s.granted))
    }

    /// Records that the person granted an app or third party access.
    pub fn link_app(
        &self,
        tenant: &str,
        subject: &str,
        app: &LinkedApp,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        self.app_change(tenant, subject, app, true, actor)
    }

    /// Revokes a linked app's access.
    pub fn revoke_app(
        &self,
        tenant: &str,
        subject: &str,
        app: &str,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        let linked = LinkedApp {
            app: app.to_owned(),
            name: String::new(),
            scopes: Vec::new(),
            granted_at_ms: 0,
        };
        self.app_change(tenant, subject, &linked, false, actor)
    }

    fn app_change(
        &self,
        tenant: &str,
        subject: &str,
        app: &LinkedApp,
        granted: bool,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        let tenant = self.tenant(tenant)?;
        if app.app.is_empty() || app.app.len() > 128 {
            return Err(VaultError::InvalidEvent {
                reason: "an app id must be 1 to 128 bytes".into(),
            });
        }
        let _guard = self.write_lock(&tenant)?;
        let mut root = self.load_root(&tenant, subject)?;
        let now = self.now();
        let entry = ConsentEntry::App {
            app: app.app.clone(),
            name: app.name.clone(),
            scopes: app.scopes.clone(),
            granted,
            actor: actor.clone(),
            at_ms: now,
        };
        self.append_consent_entry(&tenant, &mut root, entry)?;
        self.save(&tenant, &root)?;
        let action = if granted { "app.link" } else { "app.revoke" };
        self.audit(
            &tenant,
            AuditEntry::new(actor, action)
                .subject(&root.id)
                .detail(app.app.clone()),
        )?;
        self.flush()
    }

    /// Sets how long the person's data is kept, within the tenant's bounds.
    pub fn set_retention(
        &self,
        tenant: &str,
        subject: &str,
        days: u32,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        // Checked under the tenant's lock, against the settings of now.
        let lock_of = self.tenant(tenant)?;
        let _guard = self.write_lock(&lock_of)?;
        let tenant = self.tenant(tenant)?;
        let bounds = tenant.settings.retention;
        if days < bounds.min_days || days > bounds.max_days {
            return Err(VaultError::RetentionOutOfBounds {
                tenant: tenant.id.clone(),
                days,
                min: bounds.min_days,
                max: bounds.max_days,
            });
        }
        let mut root = self.load_root(&tenant, subject)?;
        root.profile.retention_days = Some(days);
        root.profile.updated_at_ms = self.now();
        self.save(&tenant, &root)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.retention")
                .subject(&root.id)
                .detail(format!("{days} days")),
        )?;
        self.flush()
    }

    /// The export right, machine-readable: the access view as JSON.
    pub fn export_json(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
    ) -> Result<String, VaultError> {
        let tenant = self.tenant(tenant)?;
        let view = self.view(&tenant, subject)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.export")
                .subject(&view.subject)
                .detail("json"),
        )?;
        serde_json::to_string_pretty(&view)
            .map_err(|e| VaultError::corrupt(&tenant.id, "export", e))
    }

    /// The export right as CSV: one table per file name.
    pub fn export_csv(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
    ) -> Result<BTreeMap<String, String>, VaultError> {
        let tenant = self.tenant(tenant)?;
        let view = self.view(&tenant, subject)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.export")
                .subject(&view.subject)
                .detail("csv"),
        )?;
        Ok(crate::export::csv_tables(&view))
    }

    // ---- deletion ------------------------------------------------------

    /// Erases the person: at once, every subject key of the person is
    /// destroyed (crypto-shredding: every copy of their records, in this
    /// store, in copies and in backups of the data directory, becomes
    /// unreadable) and their identities are suppressed; a purge job then
    /// removes the records and ends with a receipt. Returns the request,
    /// whose deadline is the tenant's `deletion_deadline_days` away.
    pub fn request_deletion(
        &self,
        tenant: &str,
        subject: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<DeletionRequest, VaultError> {
        let tenant = self.tenant(tenant)?;
        let _guard = self.write_lock(&tenant)?;
        let root = self.load_root(&tenant, subject)?;
        let group = self.load_group(&tenant, root)?;
        self.erase_group(&tenant, &group, reason, actor, true)
    }

    pub(crate) fn erase_group(
        &self,
        tenant: &Tenant,
        group: &[Loaded],
        reason: &str,
        actor: &Actor,
        suppress: bool,
    ) -> Result<DeletionRequest, VaultError> {
        let store = self.store.as_ref();
        let now = self.now();
        let id = random_id()?;
        // The segment index names the person outside their sealed records:
        // it goes while their profile still opens. (Should the process stop
        // before the request is recorded, the next recompute rebuilds it.)
        for member in group {
            self.unindex_memberships(tenant, member)?;
        }
        let subjects: Vec<String> = group.iter().map(|m| m.id.clone()).collect();
        self.notify_erasure(&tenant.id, &subjects)?;
        // Suppress first, so that nothing re-creates the person between the
        // key destruction and the purge. Only identities that name one
        // person (not device ids, which families share), and only when the
        // person asked: a retention expiry lets a returning customer back.
        let mut suppressed = 0;
        if suppress {
            let entry = serde_json::to_vec(&serde_json::json!({ "request": id, "at_ms": now }))
                .map_err(|e| VaultError::corrupt(&tenant.id, "suppression", e))?;
            for member in group {
                for (label, normalized) in &member.profile.identities {
                    let merging = IdentityKind::parse(label)
                        .is_ok_and(|kind| tenant.settings.merges_on(&kind));
                    if merging {
                        store.suppress(
                            &tenant.id,
                            tenant.hasher.hash(label, normalized),
                            &entry,
                        )?;
                        suppressed += 1;
                    }
                }
            }
        }
        // Then record the request and its purge job, durably: if the process
        // stops anywhere after this, the job destroys the keys and purges.
        let mut request = DeletionRequest {
            id: id.clone(),
            tenant: tenant.id.clone(),
            subject: group[0].id.clone(),
            subjects: group.iter().map(|m| m.id.clone()).collect(),
            requested_at_ms: now,
            deadline_ms: now
                .saturating_add(i64::from(tenant.settings.deletion_deadline_days) * DAY_MS),
            keys_destroyed_at_ms: None,
            status: DeletionStatus::Pending,
            reason: reason.to_owned(),
            actor: actor.clone(),
            identities_suppressed: suppressed,
            identities_unlinked: 0,
            receipt: None,
        };
        queue_deletion(store, tenant, &request, now)?;
        self.audit_or_log(
            tenant,
            AuditEntry::new(actor, "subject.delete")
                .subject(&request.subject)
                .detail(format!("request {id}; {reason}")),
        );
        store.flush()?;
        // Crypto-shredding: from here on no copy of the records opens.
        let cause = if suppress {
            ErasureCause::Request
        } else {
            ErasureCause::Expiry
        };
        for member in group {
            self.destroy_key(tenant, &member.id, cause)?;
        }
        // Other nodes drop the keys they cached.
        self.announce_change_or_log(&tenant.id);
        // No lookup finds the person any more: a returning customer (after a
        // retention expiry) becomes a new subject at once, not at the purge.
        for member in group {
            for hash in store.identities_of(&tenant.id, &member.id)? {
                if store.unlink_identity(&tenant.id, hash)?.is_some() {
                    request.identities_unlinked += 1;
                }
            }
        }
        request.keys_destroyed_at_ms = Some(self.now());
        request.status = DeletionStatus::KeysDestroyed;
        self.put_request(tenant, &request)?;
        store.flush()?;
        Ok(request)
    }

    fn put_request(&self, tenant: &Tenant, request: &DeletionRequest) -> Result<(), VaultError> {
        put_deletion_request(self.store.as_ref(), tenant, request)
    }

    /// A deletion request, with its receipt once completed.
    pub fn deletion_request(&self, tenant: &str, id: &str) -> Result<DeletionRequest, VaultError> {
        let bytes = self
            .store
            .document(tenant, DELETION_DOC, id)?
            .ok_or_else(|| VaultError::UnknownRequest {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            })?;
        decode_json(tenant, "deletion request", &bytes)
    }

    /// Every deletion request of a tenant, in id order.
    pub fn deletion_requests(&self, tenant: &str) -> Result<Vec<DeletionRequest>, VaultError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .documents(tenant, DELETION_DOC, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, bytes) in &page {
                all.push(decode_json(tenant, "deletion request", bytes)?);
            }
        }
        Ok(all)
    }

    /// Runs the due background jobs (purges) until none is left.
    pub fn run_jobs(&self, worker: &str) -> Result<JobsReport, VaultError> {
        let mut report = JobsReport::default();
        while let Some(job) = self
            .store
            .claim_job(PURGE_JOB, worker, PURGE_LEASE_MS, self.now())?
        {
            let payload: PurgePayload = decode_json("-", "job", &job.payload)?;
            self.purge(&payload.tenant, &payload.request)?;
            self.store.complete_job(&job.id)?;
            report.purges_completed.push(payload.request);
        }
        self.store.flush()?;
        Ok(report)
    }

    /// The purge of a request whose keys are destroyed: removes every record
    /// and the subject-keyed plugin state, then writes the receipt. Running
    /// it again after a crash finishes it; a completed request is left alone.
    fn purge(&self, tenant: &str, id: &str) -> Result<(), VaultError> {
        let tenant = self.tenant(tenant)?;
        let _guard = self.write_lock(&tenant)?;
        let mut request = self.deletion_request(&tenant.id, id)?;
        if request.status == DeletionStatus::Completed {
            return Ok(());
        }
        if request.keys_destroyed_at_ms.is_none() {
            // A retention expiry suppresses nothing; anything else was asked.
            let cause = if request.actor == Actor::system("retention") {
                ErasureCause::Expiry
            } else {
                ErasureCause::Request
            };
            for subject in &request.subjects {
                self.destroy_key(&tenant, subject, cause)?;
            }
            self.announce_change_or_log(&tenant.id);
            request.keys_destroyed_at_ms = Some(self.now());
        }
        let mut removed = Removed {
            identities: request.identities_unlinked,
            ..Removed::default()
        };
        for subject in &request.subjects {
            let report = self.store.purge_subject(&tenant.id, subject)?;
            removed.subjects += u64::from(report.subject);
            removed.identities += report.identities;
            removed.events += report.events;
            removed.consents += report.consents;
            removed.plugin_state += self.store.purge_subject_state(&tenant.id, subject)?;
        }
        let completed = self.now();
        request.status = DeletionStatus::Completed;
        request.receipt = Some(receipt(&tenant, &request, removed, completed));
        self.put_request(&tenant, &request)?;
        self.audit_or_log(
            &tenant,
            AuditEntry::new(&Actor::system("purge"), "subject.purge")
                .subject(&request.subject)
                .detail(format!("request {id} completed")),
        );
        self.store.flush()?;
        Ok(())
    }

    /// Checks a receipt's digest and MAC against the tenant's receipt key.
    pub fn verify_receipt(&self, receipt: &Receipt) -> Result<bool, VaultError> {
        let tenant = self.tenant(&receipt.tenant)?;
        let digest = receipt_digest(receipt);
        Ok(hex::encode(digest) == receipt.digest
            && hex::decode(&receipt.mac)
                .is_ok_and(|mac| tenant.receipt_mac.verify(&[&digest], &mac)))
    }
}

/// Records a new deletion request and queues the job that purges its
/// subjects (due at `now`).
pub(crate) fn queue_deletion(
    store: &dyn tessera_store::Store,
    tenant: &Tenant,
    request: &DeletionRequest,
    now: i64,
) -> Result<(), VaultError> {
    put_deletion_request(store, tenant, request)?;
    let payload = serde_json::to_vec(&PurgePayload {
        tenant: tenant.id.clone(),
        request: request.id.clone(),
    })
    .map_err(|e| VaultError::corrupt(&tenant.id, "job", e))?;
    store.enqueue_job(&JobRecord {
        id: format!("purge:{}:{}", tenant.id, request.id),
        kind: PURGE_JOB.into(),
        not_before_ms: now,
        payload,
    })?;
    Ok(())
}

/// Stores a deletion request.
pub(crate) fn put_deletion_request(
    store: &dyn tessera_store::Store,
    tenant: &Tenant,
    request: &DeletionRequest,
) -> Result<(), VaultError> {
    let bytes = serde_json::to_vec(request)
        .map_err(|e| VaultError::corrupt(&tenant.id, "deletion request", e))?;
    store.put_document(&tenant.id, DELETION_DOC, &request.id, &bytes)?;
    Ok(())
}

fn receipt(
    tenant: &Tenant,
    request: &DeletionRequest,
    removed: Removed,
    completed_at_ms: i64,
) -> Receipt {
    let mut receipt = Receipt {
        request: request.id.clone(),
        tenant: tenant.id.clone(),
        subjects: request.subjects.clone(),
        requested_at_ms: request.requested_at_ms,
        keys_destroyed_at_ms: request.keys_destroyed_at_ms.unwrap_or(completed_at_ms),
        completed_at_ms,
        deadline_ms: request.deadline_ms,
        met_deadline: completed_at_ms <= request.deadline_ms,
        removed,
        identities_suppressed: request.identities_suppressed,
        digest: String::new(),
        mac: String::new(),
    };
    let digest = receipt_digest(&receipt);
    receipt.digest = hex::encode(digest);
    receipt.mac = hex::encode(tenant.receipt_mac.mac(&[&digest]));
    receipt
}

/// SHA-256 over the receipt's canonical JSON without its digest and MAC.
fn receipt_digest(receipt: &Receipt) -> [u8; 32] {
    let body = Receipt {
        digest: String::new(),
        mac: String::new(),
        ..receipt.clone()
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// The current state of each purpose and the apps still linked, from a
/// time-ordered history.
pub(crate) fn current_consents(
    purposes: &[String],
    history: &[ConsentEntry],
) -> (Vec<ConsentState>, Vec<LinkedApp>) {
    let mut states: Vec<ConsentState> = purposes
        .iter()
        .map(|p| ConsentState {
            purpose: p.clone(),
            granted: false,
            at_ms: None,
        })
        .collect();
    let mut apps: BTreeMap<String, LinkedApp> = BTreeMap::new();
    for entry in history {
        match entry {
            ConsentEntry::Purpose {
                purpose,
                granted,
                at_ms,
                ..
            } => {
                if let Some(state) = states.iter_mut().find(|s| &s.purpose == purpose) {
                    state.granted = *granted;
                    state.at_ms = Some(*at_ms);
                }
            }
            ConsentEntry::App {
                app,
                name,
                scopes,
                granted,
                at_ms,
                ..
            } => {
                if *granted {
                    apps.insert(
                        app.clone(),
                        LinkedApp {
                            app: app.clone(),
                            name: name.clone(),
                            scopes: scopes.clone(),
                            granted_at_ms: *at_ms,
                        },
                    );
                } else {
                    apps.remove(app);
                }
            }
        }
    }
    (states, apps.into_values().collect())
}
