//! Segment memberships: which people are in a segment, since when, and when
//! they left. A membership lives in two places, written together under the
//! tenant's lock:
//!
//! - in the subject's own sealed profile (`segments`, and the bounded
//!   history `past_segments`): what the person sees in the access view and
//!   the export, shredded with the subject's key;
//! - in a sealed index document per (segment, subject), for listing and
//!   counting a segment's members a page at a time. An erasure removes the
//!   person's index documents before it destroys their key.
//!
//! Whether someone belongs is decided elsewhere (the segments engine, by a
//! segment plugin); the vault records the outcome and nothing else.

use serde::{Deserialize, Serialize};

use crate::error::VaultError;
use crate::model::{Membership, PastMembership};
use crate::vault::{Loaded, Tenant, Vault};

/// Document kind of the membership index (sealed; id `<segment>/<subject>`).
const KIND_MEMBER: &str = "segment_member";

/// The most past memberships a profile keeps (the oldest go first).
pub const MAX_PAST_SEGMENTS: usize = 200;

/// What an index document holds.
#[derive(Serialize, Deserialize)]
struct Indexed {
    entered_at_ms: i64,
}

/// A member of a segment, from the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentMember {
    pub subject: String,
    pub entered_at_ms: i64,
}

/// What [`Vault::apply_memberships`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChanges {
    /// Subjects who entered the segment.
    pub entered: Vec<String>,
    /// Subjects who left it.
    pub left: Vec<String>,
    /// Results that changed nothing.
    pub unchanged: u64,
    /// Subjects named as members who are erased or unknown: not recorded.
    pub skipped: u64,
}

fn index_id(segment: &str, subject: &str) -> String {
    format!("{segment}/{subject}")
}

impl Vault {
    /// Records, for each `(subject, member)`, whether the subject is in
    /// `segment` now: an entry is added to (or removed from) the subject's
    /// profile and the segment's index, and a departure joins the profile's
    /// history. Results that match what is recorded change nothing, so a
    /// recompute costs one index read per subject that stays. A subject who
    /// is erased or unknown cannot enter (it is counted as skipped); its
    /// index entry, if any, is removed. Durable on return.
    pub fn apply_memberships(
        &self,
        tenant: &str,
        segment: &str,
        results: &[(String, bool)],
    ) -> Result<MembershipChanges, VaultError> {
        let tenant = self.tenant(tenant)?;
        let _guard = self.write_lock(&tenant)?;
        let now = self.now();
        let mut changes = MembershipChanges::default();
        for (subject, member) in results {
            let id = index_id(segment, subject);
            let indexed = self.store.document(&tenant.id, KIND_MEMBER, &id)?.is_some();
            if indexed == *member {
                changes.unchanged += 1;
                continue;
            }
            let loaded = match self.try_load(&tenant, subject) {
                Ok(loaded) => loaded,
                Err(VaultError::SubjectErased { .. }) => None,
                Err(error) => return Err(error),
            };
            let Some(mut loaded) = loaded else {
                if indexed {
                    self.store.delete_document(&tenant.id, KIND_MEMBER, &id)?;
                    changes.left.push(subject.clone());
                } else {
                    changes.skipped += 1;
                }
                continue;
            };
            if *member {
                self.enter(&tenant, &mut loaded, segment, now)?;
                changes.entered.push(subject.clone());
            } else {
                leave(&mut loaded, segment, now);
                self.store.delete_document(&tenant.id, KIND_MEMBER, &id)?;
                changes.left.push(subject.clone());
            }
            loaded.profile.updated_at_ms = now;
            self.save(&tenant, &loaded)?;
        }
        if !(changes.entered.is_empty() && changes.left.is_empty()) {
            self.store.flush()?;
        }
        Ok(changes)
    }

    fn enter(
        &self,
        tenant: &Tenant,
        loaded: &mut Loaded,
        segment: &str,
        now: i64,
    ) -> Result<(), VaultError> {
        let segments = &mut loaded.profile.segments;
        let entered_at_ms = match segments.iter().find(|m| m.segment == segment) {
            Some(existing) => existing.entered_at_ms,
            None => {
                segments.push(Membership {
                    segment: segment.to_owned(),
                    entered_at_ms: now,
                });
                now
            }
        };
        let plain = serde_json::to_vec(&Indexed { entered_at_ms })
            .map_err(|e| VaultError::corrupt(&tenant.id, "membership", e))?;
        self.put_sealed_document(
            &tenant.id,
            KIND_MEMBER,
            &index_id(segment, &loaded.id),
            &plain,
        )
    }

    /// At most `limit` members of `segment`, by subject id, after the
    /// subject `after`.
    pub fn segment_members(
        &self,
        tenant: &str,
        segment: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SegmentMember>, VaultError> {
        let prefix = index_id(segment, "");
        let after = after.map(|subject| index_id(segment, subject));
        self.sealed_documents_under(tenant, KIND_MEMBER, &prefix, after.as_deref(), limit)?
            .into_iter()
            .map(|(id, plain)| {
                let indexed: Indexed = serde_json::from_slice(&plain)
                    .map_err(|e| VaultError::corrupt(tenant, "membership", e))?;
                Ok(SegmentMember {
                    subject: id[prefix.len()..].to_owned(),
                    entered_at_ms: indexed.entered_at_ms,
                })
            })
            .collect()
    }

    /// How many members `segment` has (read from the index without opening
    /// its documents).
    pub fn segment_size(&self, tenant: &str, segment: &str) -> Result<u64, VaultError> {
        const PAGE: usize = 1024;
        let prefix = index_id(segment, "");
        let mut after: Option<String> = None;
        let mut size = 0;
        loop {
            let page =
                self.store
                    .documents_under(tenant, KIND_MEMBER, &prefix, after.as_deref(), PAGE)?;
            size += page.len() as u64;
            match page.last() {
                Some((last, _)) if page.len() == PAGE => after = Some(last.clone()),
                _ => return Ok(size),
            }
        }
    }

    /// Whether `subject` is in `segment` (by the index).
    pub fn is_member(
        &self,
        tenant: &str,
        segment: &str,
        subject: &str,
    ) -> Result<bool, VaultError> {
        Ok(self
            .store
            .document(tenant, KIND_MEMBER, &index_id(segment, subject))?
            .is_some())
    }

    /// Everyone leaves `segment` (it is being removed); returns how many left.
    pub fn clear_segment(&self, tenant: &str, segment: &str) -> Result<u64, VaultError> {
        let mut left = 0;
        loop {
            let page = self.segment_members(tenant, segment, None, 512)?;
            if page.is_empty() {
                return Ok(left);
            }
            let results: Vec<(String, bool)> =
                page.into_iter().map(|m| (m.subject, false)).collect();
            left += self
                .apply_memberships(tenant, segment, &results)?
                .left
                .len() as u64;
        }
    }

    /// Removes the index entries of a subject about to be erased (before
    /// its key is destroyed, while its profile still opens).
    pub(crate) fn unindex_memberships(
        &self,
        tenant: &Tenant,
        subject: &Loaded,
    ) -> Result<(), VaultError> {
        for membership in &subject.profile.segments {
            self.store.delete_document(
                &tenant.id,
                KIND_MEMBER,
                &index_id(&membership.segment, &subject.id),
            )?;
        }
        Ok(())
    }

    /// Removes the index entries of `subject` in every segment, without its
    /// profile (its key is gone): the index is walked one segment at a
    /// time, jumping from each segment's first entry past all of its
    /// entries. Returns how many were removed.
    pub(crate) fn unindex_without_profile(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<u64, VaultError> {
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .documents(tenant, KIND_MEMBER, after.as_deref(), 1)?;
            let Some((first, _)) = page.first() else {
                return Ok(removed);
            };
            let Some((segment, _)) = first.split_once('/') else {
                after = Some(first.clone());
                continue;
            };
            if self
                .store
                .delete_document(tenant, KIND_MEMBER, &index_id(segment, subject))?
            {
                removed += 1;
            }
            // '0' follows '/': every id of this segment sorts before it.
            after = Some(format!("{segment}0"));
        }
    }
}

fn leave(loaded: &mut Loaded, segment: &str, now: i64) {
    let profile = &mut loaded.profile;
    let Some(at) = profile.segments.iter().position(|m| m.segment == segment) else {
        return;
    };
    let membership = profile.segments.remove(at);
    profile.past_segments.push(PastMembership {
        segment: membership.segment,
        entered_at_ms: membership.entered_at_ms,
        left_at_ms: now,
    });
    let over = profile
        .past_segments
        .len()
        .saturating_sub(MAX_PAST_SEGMENTS);
    profile.past_segments.drain(..over);
}
