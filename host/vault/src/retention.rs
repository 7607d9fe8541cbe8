//! The retention sweeper: removes events older than each person's retention
//! period and sends people with no activity within it down the deletion path.

use crate::error::VaultError;
use crate::model::{Actor, Aggregate, SweepReport};
use crate::vault::Vault;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const PAGE: usize = 256;

impl Vault {
    /// Sweeps one tenant. For each person (a root subject and the subjects
    /// merged into it), the retention period is their own choice or the
    /// tenant default; their events older than `now - period` are removed
    /// and their aggregates recomputed from what is left. A person whose last
    /// activity (event, change or creation) is older than the period is
    /// erased through [`Vault::request_deletion`]'s path, with reason
    /// `retention`.
    pub fn sweep_retention(&self, tenant: &str) -> Result<SweepReport, VaultError> {
        let tenant = self.tenant(tenant)?;
        let mut report = SweepReport::default();
        let mut after: Option<String> = None;
        let actor = Actor::system("retention");
        loop {
            let page = self.store.subjects(&tenant.id, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for record in page {
                let _guard = self.write_lock(&tenant)?;
                let root = match self.try_load(&tenant, &record.id) {
                    Ok(Some(loaded)) if loaded.profile.merged_into.is_none() => loaded,
                    // Merged subjects are swept with their root; erased ones
                    // are waiting for their purge.
                    Ok(_) | Err(VaultError::SubjectErased { .. }) => continue,
                    Err(error) => return Err(error),
                };
                report.subjects_scanned += 1;
                let days = tenant.settings.retention_days(root.profile.retention_days);
                let cutoff = self.now().saturating_sub(i64::from(days) * DAY_MS);
                let mut group = self.load_group(&tenant, root)?;
                if group
                    .iter()
                    .map(|m| m.last_activity_ms())
                    .max()
                    .unwrap_or(i64::MIN)
                    < cutoff
                {
                    let request = self.erase_group(&tenant, &group, "retention", &actor, false)?;
                    report.subjects_expired.push(request.subject);
                    continue;
                }
                for member in &mut group {
                    let removed = self
                        .store
                        .delete_events_before(&tenant.id, &member.id, cutoff)?;
                    // Recomputed also when nothing was removed now but the
                    // aggregates still count older events (a sweep stopped
                    // between the removal and the save).
                    let stale = member
                        .profile
                        .aggregates
                        .values()
                        .any(|a| a.first_ms < cutoff);
                    if removed == 0 && !stale {
                        continue;
                    }
                    report.events_removed += removed;
                    // Recompute from what is left, so aggregates describe held data only.
                    member.profile.aggregates.clear();
                    member.profile.last_event_ms = None;
                    for event in self.events_of(&tenant, member)? {
                        member
                            .profile
                            .aggregates
                            .entry(event.event_type.clone())
                            .or_insert_with(Aggregate::default)
                            .add(event.at_ms, &event.properties);
                        member.profile.last_event_ms = Some(
                            member
                                .profile
                                .last_event_ms
                                .map_or(event.at_ms, |l| l.max(event.at_ms)),
                        );
                    }
                    self.save(&tenant, member)?;
                }
            }
        }
        if report.events_removed > 0 {
            self.audit(
                &tenant,
                crate::AuditEntry::new(&actor, "retention.sweep").detail(format!(
                    "{} events removed, {} subjects expired",
                    report.events_removed,
                    report.subjects_expired.len()
                )),
            )?;
        }
        self.flush()?;
        Ok(report)
    }
}
