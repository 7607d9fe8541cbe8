//! What the host reads to build a plugin's view: the people of a selection
//! who consent to the call's purpose, with traits, aggregates and the events
//! asked for, one merge group loaded once per person; and their pseudonyms.
//! It never decides what a plugin may see (the plugins layer does), never
//! audits by itself, and never returns a person who does not consent.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::VaultError;
use crate::ingest::StoredEvent;
use crate::model::{ConsentEntry, Event, Person};
use crate::rights::current_consents;
use crate::vault::{KIND_EVENT, Loaded, Tenant, Vault};

/// Which people a view covers.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// These subjects (merged subjects stand for their person; a person
    /// named twice is one row). An unknown subject is an error; an erased
    /// one is left out.
    Subjects(&'a [String]),
    /// A page of every person of the tenant, in subject id order, after the
    /// cursor `after` and up to `until` (inclusive; `None`: to the end), so
    /// that a range of ids can be walked apart from the others.
    Page {
        after: Option<&'a str>,
        until: Option<&'a str>,
        limit: usize,
    },
}

/// The events a view needs besides the stored aggregates: events of these
/// types at or after `since_ms` are read and decrypted.
#[derive(Debug, Clone, Default)]
pub struct EventReads {
    pub types: BTreeSet<String>,
    pub since_ms: i64,
}

/// One person of a view: traits and aggregates of the whole merge group, and
/// the events that [`EventReads`] asked for, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewPerson {
    pub person: Person,
    pub events: Vec<Event>,
}

/// The people of a [`Selection`] who consented to the purpose.
#[derive(Debug, Clone, Default)]
pub struct ConsentingPeople {
    pub people: Vec<ViewPerson>,
    /// People of the selection left out because they have not consented.
    pub without_consent: usize,
    /// For [`Selection::Page`]: where the next page starts (`None`: done).
    pub next: Option<String>,
}

impl Vault {
    /// The people of `selection` who consent to `purpose` now, with what a
    /// plugin view of them needs. Consent is read at every call, so a person
    /// who revoked it is absent from the very next view. Not audited: the
    /// caller records what it hands to a plugin with
    /// [`Vault::record_plugin_access`].
    pub fn consenting_people(
        &self,
        tenant: &str,
        selection: Selection<'_>,
        purpose: &str,
        events: &EventReads,
    ) -> Result<ConsentingPeople, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.check_purpose(&tenant, purpose)?;
        let mut out = ConsentingPeople::default();
        let mut seen = BTreeSet::new();
        let mut roots = Vec::new();
        match selection {
            Selection::Subjects(subjects) => {
                for subject in subjects {
                    match self.load_root(&tenant, subject) {
                        Ok(root) => roots.push(root),
                        Err(VaultError::SubjectErased { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            Selection::Page {
                after,
                until,
                limit,
            } => {
                let mut page = self.store.subjects(&tenant.id, after, limit.max(1))?;
                out.next = (page.len() >= limit.max(1))
                    .then(|| page.last().map(|r| r.id.clone()))
                    .flatten();
                if let Some(until) = until {
                    let within = page.partition_point(|r| r.id.as_str() <= until);
                    if within < page.len() {
                        page.truncate(within);
                        out.next = None;
                    }
                }
                for record in page {
                    match self.try_load(&tenant, &record.id) {
                        Ok(Some(loaded)) if loaded.profile.merged_into.is_none() => {
                            roots.push(loaded)
                        }
                        Ok(_) | Err(VaultError::SubjectErased { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        for root in roots {
            if !seen.insert(root.id.clone()) {
                continue;
            }
            let group = self.load_group(&tenant, root)?;
            if !self.group_consents(&tenant, &group, purpose)? {
                out.without_consent += 1;
                continue;
            }
            let mut read = Vec::new();
            if !events.types.is_empty() {
                for member in &group {
                    read.extend(self.events_since(&tenant, member, events)?);
                }
                read.sort_by_key(|e| e.at_ms);
            }
            out.people.push(ViewPerson {
                person: person_of(&group),
                events: read,
            });
        }
        Ok(out)
    }

    /// The key plugin installation `installation` knows subject `subject`
    /// by: a keyed hash (HMAC-SHA256 under the tenant's pseudonym key, which
    /// is derived apart from the identity-hash and audit keys) of the
    /// installation and the subject, truncated to 64 bits. Stable for one
    /// subject and installation, unrelated across installations and
    /// tenants, and not reversible without the tenant key.
    pub fn pseudonym(
        &self,
        tenant: &str,
        installation: &str,
        subject: &str,
    ) -> Result<u64, VaultError> {
        let tenant = self.tenant(tenant)?;
        let tag = tenant
            .pseudonym_mac
            .mac(&[installation.as_bytes(), subject.as_bytes()]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        Ok(u64::from_be_bytes(first))
    }

    /// Whether the merge group's consent history ends with `purpose` granted.
    pub(crate) fn group_consents(
        &self,
        tenant: &Tenant,
        group: &[Loaded],
        purpose: &str,
    ) -> Result<bool, VaultError> {
        let mut history = Vec::new();
        for member in group {
            history.extend(self.consent_history(tenant, member)?);
        }
        history.sort_by_key(ConsentEntry::at_ms);
        let (states, _) = current_consents(&[purpose.to_owned()], &history);
        Ok(states.first().is_some_and(|s| s.granted))
    }

    fn events_since(
        &self,
        tenant: &Tenant,
        member: &Loaded,
        reads: &EventReads,
    ) -> Result<Vec<Event>, VaultError> {
        let mut events = Vec::new();
        for record in self
            .store
            .events(&tenant.id, &member.id, reads.since_ms, i64::MAX)?
        {
            let stored: StoredEvent =
                self.open_record(tenant, member, KIND_EVENT, &record.source_id, &record.data)?;
            if reads.types.contains(&stored.event_type) {
                events.push(Event {
                    subject: member.id.clone(),
                    event_type: stored.event_type,
                    at_ms: record.at_ms,
                    channel: stored.channel,
                    properties: stored.properties,
                });
            }
        }
        Ok(events)
    }
}

/// A merge group (root first) as one person: the first value of each trait
/// in group order, aggregates combined.
pub(crate) fn person_of(group: &[Loaded]) -> Person {
    let mut person = Person {
        subject: group[0].id.clone(),
        created_at_ms: group[0].created_at_ms,
        merged_subjects: group[1..].iter().map(|m| m.id.clone()).collect(),
        identity_kinds: BTreeSet::new(),
        traits: BTreeMap::new(),
        aggregates: BTreeMap::new(),
        retention_days: group[0].profile.retention_days,
    };
    for member in group {
        for (name, value) in &member.profile.traits {
            person
                .traits
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        person.identity_kinds.extend(
            member
                .profile
                .identities
                .iter()
                .map(|(kind, _)| kind.clone()),
        );
        for (kind, aggregate) in &member.profile.aggregates {
            person
                .aggregates
                .entry(kind.clone())
                .or_default()
                .combine(aggregate);
        }
    }
    person
}
