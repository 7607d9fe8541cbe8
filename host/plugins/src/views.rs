//! The data view the host builds before every plugin call: a columnar
//! [`ProfileBatch`] of only the granted fields, aggregates and event queries
//! (and the memberships of the segments a plan reads), of only the
//! people who consent to the call's purpose now, keyed by pseudonyms; and
//! the row → subject mapping, which stays in the host. It must never put a
//! value in a column the plugin was not granted, a subject id in the batch,
//! or hand over a view without writing its `plugin.read` audit entry.

mod aggregates;
mod convert;
mod queries;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tessera_runtime::api::types::{
    AggregateSpec, Column, ColumnData, ProfileBatch, TextColumn, TextListColumn, ValueKind,
};
use tessera_runtime::{CallScope, EventQuery, Needs, PluginInfo, StateKeys, TraitKinds};
use tessera_vault::{
    Actor, AuditEntry, Selection, TenantSettings, TraitClass, TraitType, Vault, VaultError,
    ViewPerson,
};

use crate::{Permissions, PiiClass};
use aggregates::Outcome;
use convert::Cell;

/// Which people a view covers.
#[derive(Debug, Clone, Copy)]
pub enum Subjects<'a> {
    /// These subjects, in this order (a merged subject stands for its
    /// person; a person named twice is one row). Unknown subjects are an
    /// error; erased ones and those without consent are left out.
    Ids(&'a [String]),
    /// A page of every person of the tenant, after the cursor `after` (from
    /// [`View::next`]) and up to the subject id `until` (inclusive; `None`:
    /// to the end); `limit` bounds the subjects read, so a page may hold
    /// fewer rows.
    Page {
        after: Option<&'a str>,
        until: Option<&'a str>,
        limit: usize,
    },
}

/// Everything a view is built for besides its subjects.
#[derive(Debug, Clone, Copy)]
pub struct ViewRequest<'a> {
    pub tenant: &'a str,
    /// The plugin as installed: its name and version (for errors and the
    /// audit trail).
    pub plugin: &'a PluginInfo,
    /// The columns to serve, in order: what [`tessera_runtime::Plugin::plan`]
    /// answered for the call's parameters (the manifest's fields and
    /// aggregates for a plugin that does not plan,
    /// [`Needs::declared`]). Each is served only as far as it is granted.
    pub needs: &'a Needs,
    /// The host's installation id: it scopes pseudonyms and names the reader
    /// in the audit trail.
    pub installation: &'a str,
    /// What the operator granted this installation.
    pub granted: &'a Permissions,
    /// What the call processes data for: one of the granted purposes.
    pub purpose: &'a str,
    /// "Now" for the call, in ms since the epoch: aggregate windows end here.
    pub now_ms: i64,
}

/// Why a view could not be built. Nothing was handed to the plugin and
/// nothing was audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    #[error(
        "plugin {plugin} is not granted purpose {purpose:?} (granted: {granted}); an operator \
         must grant it before the plugin processes data for it"
    )]
    PurposeNotGranted {
        plugin: String,
        purpose: String,
        granted: String,
    },
    #[error(
        "two subjects of one view share the key {key:016x} for installation {installation:?}; \
         build the view again with fewer subjects"
    )]
    KeyCollision { installation: String, key: u64 },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A built view: the batch for the plugin, and what stays in the host.
#[derive(Debug, Clone)]
pub struct View {
    /// What the plugin receives.
    pub batch: ProfileBatch,
    keys: Arc<ViewKeys>,
    fields: Vec<String>,
    event_types: Vec<String>,
    without_consent: usize,
    next: Option<String>,
    audit_seq: Option<u64>,
}

impl View {
    /// The subject id of a row (never given to the plugin).
    pub fn subject(&self, row: usize) -> Option<&str> {
        self.keys.subjects.get(row).map(String::as_str)
    }

    /// The subject id of every row, in row order.
    pub fn subjects(&self) -> &[String] {
        &self.keys.subjects
    }

    /// The fields that carry values: asked for (planned or declared) and
    /// granted.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The event types whose aggregates were computed.
    pub fn event_types(&self) -> &[String] {
        &self.event_types
    }

    /// People of the selection left out because they do not consent.
    pub fn without_consent(&self) -> usize {
        self.without_consent
    }

    /// For [`Subjects::Page`]: the cursor of the next page (`None`: done).
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// The sequence number of the view's `plugin.read` audit entry (`None`
    /// for a view without rows, which reveals nothing and is not audited).
    pub fn audit_seq(&self) -> Option<u64> {
        self.audit_seq
    }

    /// The runtime scope of a call given this view: the plugin may keep
    /// state under `subject/<row key>/` for these rows, and no others.
    pub fn scope(&self) -> CallScope {
        CallScope::new().with_subjects(self.keys.clone())
    }
}

/// Rows by pseudonym and subject id, for the runtime's state keys.
#[derive(Debug, Default)]
struct ViewKeys {
    subjects: Vec<String>,
    keys: Vec<u64>,
    by_key: HashMap<u64, usize>,
    by_subject: HashMap<String, usize>,
}

impl StateKeys for ViewKeys {
    fn subject(&self, key: u64) -> Option<&str> {
        self.by_key
            .get(&key)
            .map(|row| self.subjects[*row].as_str())
    }

    fn key(&self, subject: &str) -> Option<u64> {
        self.by_subject.get(subject).map(|row| self.keys[*row])
    }

    fn rows(&self) -> Vec<(u64, &str)> {
        self.keys
            .iter()
            .zip(&self.subjects)
            .map(|(key, subject)| (*key, subject.as_str()))
            .collect()
    }
}

/// The PII class a plugin must be granted for a schema trait's class.
fn permission_class(class: tessera_vault::PiiClass) -> PiiClass {
    use tessera_vault::PiiClass as Schema;
    match class {
        Schema::Email => PiiClass::Email,
        Schema::Phone => PiiClass::Phone,
        Schema::Name => PiiClass::Name,
        Schema::Address => PiiClass::Address,
        Schema::BirthDate => PiiClass::BirthDate,
        Schema::Location => PiiClass::Location,
        Schema::DeviceId => PiiClass::DeviceId,
        Schema::IpAddress => PiiClass::IpAddress,
        Schema::SpecialCategory => PiiClass::SpecialCategory,
    }
}

/// In a grant's `traits` or `events`: every one of the tenant's schema (a
/// `pii` or `sensitive` field still needs its PII class).
pub const ANY: &str = "*";

/// Whether the plugin may see trait `name`: the trait is granted and in the
/// schema and, if the schema classes it `pii` or `sensitive`, its PII class
/// is granted too (a class is never implied; no class, never shown).
pub fn field_granted(settings: &TenantSettings, granted: &Permissions, name: &str) -> bool {
    field_refusal(settings, granted, name).is_none()
}

/// Why the plugin may not see trait `name` (`None`: it may), in words an
/// operator or marketer can act on.
pub fn field_refusal(
    settings: &TenantSettings,
    granted: &Permissions,
    name: &str,
) -> Option<String> {
    if !granted.traits.iter().any(|t| t == name || t == ANY) {
        return Some(format!("trait `{name}` is not granted"));
    }
    let Some(spec) = settings.schema.get(name) else {
        return Some(format!("trait `{name}` is not in the tenant's schema"));
    };
    class_refusal(granted, spec.class, spec.pii_class).map(|why| format!("trait `{name}` {why}"))
}

/// Why a `pii` or `sensitive` value is not shown (`None`: a `standard` one,
/// or one whose PII class is granted; a classed value without a class is
/// never shown).
fn class_refusal(
    granted: &Permissions,
    class: TraitClass,
    pii_class: Option<tessera_vault::PiiClass>,
) -> Option<String> {
    let class_name = match class {
        TraitClass::Standard => return None,
        TraitClass::Pii => "pii",
        TraitClass::Sensitive => "sensitive",
    };
    match pii_class {
        Some(pii) if granted.pii.contains(&permission_class(pii)) => None,
        Some(pii) => Some(format!(
            "is {class_name}, and its PII class `{}` is not granted",
            pii.as_str()
        )),
        None => Some(format!(
            "is {class_name} without a PII class in the schema, so it is never shown"
        )),
    }
}

/// Whether the plugin may have aggregate `spec`: its event type is granted
/// and, for a `sum`, `min` or `max`, the property it reads passes the rule
/// of traits: if the tenant's event schema classes it `pii` or `sensitive`,
/// its PII class is granted too (never implied; no class, never
/// aggregated). A property the event schema does not list counts as
/// `standard`, strict event type or not: a strict type refuses unlisted
/// properties at ingest, so only events stored before it became strict can
/// hold one, and they were taken as unclassed data.
pub fn aggregate_granted(
    settings: &TenantSettings,
    granted: &Permissions,
    spec: &AggregateSpec,
) -> bool {
    aggregate_refusal(settings, granted, spec).is_none()
}

/// Why the plugin may not have aggregate `spec` (`None`: it may), in words
/// an operator or marketer can act on.
pub fn aggregate_refusal(
    settings: &TenantSettings,
    granted: &Permissions,
    spec: &AggregateSpec,
) -> Option<String> {
    use tessera_runtime::api::types::AggregateFn;
    if !granted
        .events
        .iter()
        .any(|e| e == &spec.event_type || e == ANY)
    {
        return Some(format!("event type `{}` is not granted", spec.event_type));
    }
    if !matches!(
        spec.function,
        AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max
    ) {
        return None;
    }
    let property = spec.property.as_ref()?;
    property_refusal(settings, granted, &spec.event_type, property)
}

/// Why the plugin may not read `property` of events of `event_type` (the
/// event type itself granted), by the rule of traits; `None`: it may.
fn property_refusal(
    settings: &TenantSettings,
    granted: &Permissions,
    event_type: &str,
    property: &str,
) -> Option<String> {
    let listed = settings
        .events
        .get(event_type)
        .and_then(|event| event.properties.get(property))?;
    class_refusal(granted, listed.class, listed.pii_class)
        .map(|why| format!("property `{property}` of event type `{event_type}` {why}"))
}

/// Whether the plugin may have event query `query`: as strict as an
/// aggregate, its event type is granted and every property its filter reads
/// or its sums add passes the rule of traits ([`aggregate_granted`]). A
/// filter that does not parse reads nothing.
pub fn query_granted(settings: &TenantSettings, granted: &Permissions, query: &EventQuery) -> bool {
    query_refusal(settings, granted, query).is_none()
}

/// Why the plugin may not have event query `query` (`None`: it may).
pub fn query_refusal(
    settings: &TenantSettings,
    granted: &Permissions,
    query: &EventQuery,
) -> Option<String> {
    prepare(settings, granted, query).err()
}

/// A query's filter parsed and its reads checked against the grant.
fn prepare<'a>(
    settings: &TenantSettings,
    granted: &Permissions,
    query: &'a EventQuery,
) -> Result<queries::Prepared<'a>, String> {
    if !granted
        .events
        .iter()
        .any(|e| e == &query.event_type || e == ANY)
    {
        return Err(format!("event type `{}` is not granted", query.event_type));
    }
    let filter = query
        .filter
        .as_deref()
        .map(tessera_rules::parse_filter)
        .transpose()
        .map_err(|error| format!("its filter does not parse: {error}"))?;
    let mut read: BTreeSet<&str> = query.sums.iter().map(String::as_str).collect();
    let filtered = filter
        .as_ref()
        .map(tessera_rules::filter_properties)
        .unwrap_or_default();
    read.extend(filtered.iter().map(String::as_str));
    if let Some(why) = read
        .into_iter()
        .find_map(|property| property_refusal(settings, granted, &query.event_type, property))
    {
        return Err(why);
    }
    Ok(queries::Prepared { query, filter })
}

/// The properties of its event type a query reads: those its filter names
/// and those it sums (`purchase.amount`), in name order.
fn query_reads(prepared: &queries::Prepared<'_>) -> BTreeSet<String> {
    let query = prepared.query;
    let mut read: BTreeSet<String> = query.sums.iter().cloned().collect();
    if let Some(filter) = &prepared.filter {
        read.extend(tessera_rules::filter_properties(filter));
    }
    read.into_iter()
        .map(|p| format!("{}.{p}", query.event_type))
        .collect()
}

/// The segment definitions live in the tenant's sealed documents of this
/// kind, one per segment, its id the segment's name. The segments crate
/// owns them; the views only check that a planned segment exists.
pub const SEGMENT_DOCUMENT_KIND: &str = "segment";

/// Whether the tenant has a segment named `name`.
pub fn segment_exists(vault: &Vault, tenant: &str, name: &str) -> Result<bool, VaultError> {
    // Segment names are 1 to 64 bytes; anything else names no segment.
    if name.is_empty() || name.len() > 64 {
        return Ok(false);
    }
    Ok(vault
        .sealed_document(tenant, SEGMENT_DOCUMENT_KIND, name)?
        .is_some())
}

/// The column kind a trait of the schema's `kind` is planned as
/// (`tessera:plan/schema`): a date is a timestamp, `any` is text.
pub fn trait_value_kind(kind: TraitType) -> ValueKind {
    match kind {
        TraitType::String | TraitType::Any => ValueKind::Text,
        TraitType::Number => ValueKind::Number,
        TraitType::Bool => ValueKind::Boolean,
        TraitType::Date => ValueKind::Timestamp,
    }
}

/// What `tessera:plan/schema`'s `trait-kind` answers a plugin: the kind of
/// every trait of the schema it may read ([`field_granted`]), by name.
pub fn trait_kinds(settings: &TenantSettings, granted: &Permissions) -> TraitKinds {
    let kinds: BTreeMap<String, ValueKind> = settings
        .schema
        .iter()
        .filter(|(name, _)| field_granted(settings, granted, name))
        .map(|(name, spec)| (name.clone(), trait_value_kind(spec.kind)))
        .collect();
    Arc::new(kinds)
}

/// Which kind of column a plugin asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedKind {
    /// A profile trait.
    Field,
    /// An event aggregate.
    Aggregate,
    /// An event query (its count, first, last and sums).
    Query,
    /// Another segment's membership.
    Segment,
}

/// A field or aggregate a plugin asks for that its grant does not cover:
/// its column would arrive with every row missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ungranted {
    pub kind: NeedKind,
    /// The trait's name, the aggregate's or query's (the name the plugin
    /// gave it), or the segment's.
    pub name: String,
    /// Why, e.g. "event type `purchase` is not granted".
    pub reason: String,
}

impl std::fmt::Display for Ungranted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            NeedKind::Field => f.write_str(&self.reason),
            NeedKind::Aggregate => write!(f, "aggregate `{}`: {}", self.name, self.reason),
            NeedKind::Query => write!(f, "query `{}`: {}", self.name, self.reason),
            NeedKind::Segment => f.write_str(&self.reason),
        }
    }
}

/// The planned segments of `needs` that the tenant does not have: their
/// columns would arrive with every row missing.
pub fn unknown_segments(
    vault: &Vault,
    tenant: &str,
    needs: &Needs,
) -> Result<Vec<Ungranted>, VaultError> {
    let mut unknown = Vec::new();
    for name in &needs.segments {
        if !segment_exists(vault, tenant, name)? {
            unknown.push(Ungranted {
                kind: NeedKind::Segment,
                name: name.clone(),
                reason: format!("segment `{name}` does not exist"),
            });
        }
    }
    Ok(unknown)
}

/// What of `needs` the grant does not cover, in the order of `needs`
/// (fields, aggregates, then queries): by the same rules the view serves
/// columns by. Planned segments are checked by [`unknown_segments`].
pub fn ungranted(
    settings: &TenantSettings,
    granted: &Permissions,
    needs: &Needs,
) -> Vec<Ungranted> {
    let fields = needs.fields.iter().filter_map(|f| {
        field_refusal(settings, granted, &f.name).map(|reason| Ungranted {
            kind: NeedKind::Field,
            name: f.name.clone(),
            reason,
        })
    });
    let aggregates = needs.aggregates.iter().filter_map(|a| {
        aggregate_refusal(settings, granted, a).map(|reason| Ungranted {
            kind: NeedKind::Aggregate,
            name: a.name.clone(),
            reason,
        })
    });
    let queries = needs.queries.iter().filter_map(|q| {
        query_refusal(settings, granted, q).map(|reason| Ungranted {
            kind: NeedKind::Query,
            name: q.name.clone(),
            reason,
        })
    });
    fields.chain(aggregates).chain(queries).collect()
}

/// Builds the view of `subjects` for one call, and writes its `plugin.read`
/// audit entry (plugin, version, fields, purpose, and the subject or a
/// digest of the batch's subjects; never values). Consent to the purpose is
/// read now, so a revocation takes effect on the very next view.
pub fn build_view(
    vault: &Vault,
    request: &ViewRequest<'_>,
    subjects: Subjects<'_>,
) -> Result<View, ViewError> {
    let needs = request.needs;
    if !request
        .granted
        .purposes
        .iter()
        .any(|p| p == request.purpose)
    {
        return Err(ViewError::PurposeNotGranted {
            plugin: request.plugin.label(),
            purpose: request.purpose.to_owned(),
            granted: if request.granted.purposes.is_empty() {
                "none".to_owned()
            } else {
                request.granted.purposes.join(", ")
            },
        });
    }
    let settings = vault.settings(request.tenant)?;
    let fields: Vec<bool> = needs
        .fields
        .iter()
        .map(|f| field_granted(&settings, request.granted, &f.name))
        .collect();
    let computed: Vec<bool> = needs
        .aggregates
        .iter()
        .map(|a| aggregate_granted(&settings, request.granted, a))
        .collect();
    let read_for_view: Vec<&AggregateSpec> = needs
        .aggregates
        .iter()
        .zip(&computed)
        .filter(|(spec, granted)| **granted && aggregates::needs_events(spec))
        .map(|(spec, _)| spec)
        .collect();
    let prepared: Vec<Option<queries::Prepared<'_>>> = needs
        .queries
        .iter()
        .map(|q| prepare(&settings, request.granted, q).ok())
        .collect();
    let reads = aggregates::reads_for(
        read_for_view,
        prepared.iter().flatten().map(|p| p.query),
        request.now_ms,
    );

    let selection = match subjects {
        Subjects::Ids(ids) => Selection::Subjects(ids),
        Subjects::Page {
            after,
            until,
            limit,
        } => Selection::Page {
            after,
            until,
            limit,
        },
    };
    let found = vault.consenting_people(request.tenant, selection, request.purpose, &reads)?;
    let people = found.people;

    let mut keys = ViewKeys::default();
    for (row, person) in people.iter().enumerate() {
        let subject = &person.person.subject;
        let key = vault.pseudonym(request.tenant, request.installation, subject)?;
        if keys.by_key.insert(key, row).is_some() {
            return Err(ViewError::KeyCollision {
                installation: request.installation.to_owned(),
                key,
            });
        }
        keys.by_subject.insert(subject.clone(), row);
        keys.subjects.push(subject.clone());
        keys.keys.push(key);
    }

    let mut field_columns: Vec<Column> = needs
        .fields
        .iter()
        .zip(&fields)
        .map(|(spec, granted)| {
            let cells = people.iter().map(|p| {
                granted
                    .then(|| p.person.traits.get(&spec.name))
                    .flatten()
                    .and_then(|value| convert::convert(value, spec.kind))
            });
            column(spec.kind, cells)
        })
        .collect();
    // Other segments' memberships, after the fields; a segment the tenant
    // does not have is missing for every row.
    let mut segments_read = Vec::new();
    for name in &needs.segments {
        let exists = segment_exists(vault, request.tenant, name)?;
        let mut cells = Vec::with_capacity(people.len());
        for person in &people {
            cells.push(if exists {
                Some(Cell::Boolean(vault.is_member(
                    request.tenant,
                    name,
                    &person.person.subject,
                )?))
            } else {
                None
            });
        }
        if exists {
            segments_read.push(format!("segment:{name}"));
        }
        field_columns.push(column(ValueKind::Boolean, cells.into_iter()));
    }
    let mut aggregate_columns = Vec::with_capacity(needs.aggregates.len());
    for (spec, granted) in needs.aggregates.iter().zip(&computed) {
        let mut outcomes = Vec::with_capacity(people.len());
        for person in &people {
            outcomes.push(if *granted {
                aggregate(vault, request, spec, person)?
            } else {
                Outcome::Missing
            });
        }
        aggregate_columns.push(aggregate_column(spec, &outcomes));
    }
    // Each query's count, first, last and sums, after the aggregates.
    for (query, prepared) in needs.queries.iter().zip(&prepared) {
        let facts: Vec<Option<queries::Facts>> = people
            .iter()
            .map(|person| {
                prepared
                    .as_ref()
                    .map(|p| queries::facts(p, &person.events, request.now_ms))
            })
            .collect();
        aggregate_columns.extend(query_columns(query, &facts));
    }

    let field_names: Vec<String> = needs
        .fields
        .iter()
        .zip(&fields)
        .filter(|(_, granted)| **granted)
        .map(|(spec, _)| spec.name.clone())
        .collect();
    let event_types: Vec<String> = needs
        .aggregates
        .iter()
        .zip(&computed)
        .filter(|(_, granted)| **granted)
        .map(|(spec, _)| spec.event_type.clone())
        .chain(
            prepared
                .iter()
                .flatten()
                .map(|p| p.query.event_type.clone()),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // What the audit names: each event type read, with the property its
    // sum/min/max read (`purchase.amount`), since a property can carry as
    // much as a trait.
    let events_read: Vec<String> = needs
        .aggregates
        .iter()
        .zip(&computed)
        .filter(|(_, granted)| **granted)
        .map(|(spec, _)| match &spec.property {
            Some(property) => format!("{}.{property}", spec.event_type),
            None => spec.event_type.clone(),
        })
        // A query names its event type and each property its filter or
        // sums read (`purchase.category`, `purchase.amount`).
        .chain(
            prepared
                .iter()
                .flatten()
                .flat_map(|p| std::iter::once(p.query.event_type.clone()).chain(query_reads(p))),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = u32::try_from(people.len()).unwrap_or(u32::MAX);
    let audit_seq = (rows > 0)
        .then(|| {
            let read: Vec<String> = field_names.iter().cloned().chain(segments_read).collect();
            audit(vault, request, &keys.subjects, &read, &events_read)
        })
        .transpose()?;
    Ok(View {
        batch: ProfileBatch {
            rows,
            keys: keys.keys.clone(),
            fields: field_columns,
            aggregates: aggregate_columns,
            now: request.now_ms,
        },
        keys: Arc::new(keys),
        fields: field_names,
        event_types,
        without_consent: found.without_consent,
        next: found.next,
        audit_seq,
    })
}

/// One person's aggregate: from the running totals, else from the events
/// read for the view, else (a sum the totals do not keep) from the
/// person's events of that type, read now.
fn aggregate(
    vault: &Vault,
    request: &ViewRequest<'_>,
    spec: &AggregateSpec,
    person: &ViewPerson,
) -> Result<Outcome, VaultError> {
    let totals = person.person.aggregates.get(&spec.event_type);
    match aggregates::from_totals(spec, totals) {
        Outcome::NeedsEvents if aggregates::needs_events(spec) => Ok(aggregates::from_events(
            spec,
            &person.events,
            request.now_ms,
        )),
        Outcome::NeedsEvents => {
            let reads = aggregates::reads_for([spec], [], request.now_ms);
            let subject = std::slice::from_ref(&person.person.subject);
            let again = vault.consenting_people(
                request.tenant,
                Selection::Subjects(subject),
                request.purpose,
                &reads,
            )?;
            let events = again.people.first().map_or(&[][..], |p| &p.events[..]);
            Ok(aggregates::from_events(spec, events, request.now_ms))
        }
        outcome => Ok(outcome),
    }
}

fn audit(
    vault: &Vault,
    request: &ViewRequest<'_>,
    subjects: &[String],
    fields: &[String],
    events_read: &[String],
) -> Result<u64, VaultError> {
    let manifest = &request.plugin.manifest;
    let mut entry = AuditEntry {
        plugin: Some(manifest.name.clone()),
        plugin_version: Some(manifest.version.clone()),
        purpose: Some(request.purpose.to_owned()),
        ..AuditEntry::new(&Actor::new("plugin", request.installation), "plugin.read").fields(
            fields
                .iter()
                .cloned()
                .chain(events_read.iter().map(|t| format!("event:{t}"))),
        )
    };
    match subjects {
        [one] => entry.subject = Some(one.clone()),
        many => {
            entry.batch = Some(many.len() as u64);
            entry.detail = Some(format!("subjects sha256:{}", batch_digest(many)));
        }
    }
    vault.record_plugin_access(request.tenant, entry)
}

/// SHA-256 over the sorted subject ids, one per line: names the batch in the
/// audit trail without listing it, and lets an auditor who holds a list of
/// subjects check that it is the one.
pub fn batch_digest(subjects: &[String]) -> String {
    let mut sorted: Vec<&str> = subjects.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hash = Sha256::new();
    for subject in sorted {
        hash.update(subject.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// Validity bytes: empty when every row has a value.
fn validity(present: Vec<u8>) -> Vec<u8> {
    if present.iter().all(|p| *p == 1) {
        Vec::new()
    } else {
        present
    }
}

/// Dictionary-encodes strings: each distinct string once.
#[derive(Default)]
struct Dictionary {
    words: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Dictionary {
    fn code(&mut self, word: String) -> u32 {
        if let Some(code) = self.codes.get(&word) {
            return *code;
        }
        let code = self.words.len() as u32;
        self.codes.insert(word.clone(), code);
        self.words.push(word);
        code
    }
}

/// A column of `kind` from one optional cell per row; a cell of another kind
/// (which conversion never makes) is missing.
fn column(kind: ValueKind, cells: impl Iterator<Item = Option<Cell>>) -> Column {
    let mut present = Vec::new();
    let data = match kind {
        ValueKind::Boolean => ColumnData::Boolean(collect(cells, &mut present, |c| match c {
            Cell::Boolean(b) => Some(u8::from(b)),
            _ => None,
        })),
        ValueKind::Integer => ColumnData::Integer(collect(cells, &mut present, |c| match c {
            Cell::Integer(i) => Some(i),
            _ => None,
        })),
        ValueKind::Number => ColumnData::Number(collect(cells, &mut present, |c| match c {
            Cell::Number(n) => Some(n),
            _ => None,
        })),
        ValueKind::Timestamp => ColumnData::Timestamp(collect(cells, &mut present, |c| match c {
            Cell::Timestamp(t) => Some(t),
            _ => None,
        })),
        ValueKind::Text => {
            let mut dictionary = Dictionary::default();
            let codes = collect(cells, &mut present, |c| match c {
                Cell::Text(t) => Some(dictionary.code(t)),
                _ => None,
            });
            ColumnData::Text(TextColumn {
                dictionary: dictionary.words,
                codes,
            })
        }
        ValueKind::TextList => {
            let mut dictionary = Dictionary::default();
            let mut offsets = vec![0u32];
            let mut codes = Vec::new();
            for cell in cells {
                match cell {
                    Some(Cell::TextList(words)) => {
                        codes.extend(words.into_iter().map(|w| dictionary.code(w)));
                        present.push(1);
                    }
                    _ => present.push(0),
                }
                offsets.push(codes.len() as u32);
            }
            ColumnData::TextList(TextListColumn {
                dictionary: dictionary.words,
                offsets,
                codes,
            })
        }
    };
    Column {
        data,
        present: validity(present),
    }
}

/// One value per row (the default as a placeholder where missing), and the
/// row's validity byte pushed onto `present`.
fn collect<T: Default>(
    cells: impl Iterator<Item = Option<Cell>>,
    present: &mut Vec<u8>,
    mut value: impl FnMut(Cell) -> Option<T>,
) -> Vec<T> {
    cells
        .map(|cell| match cell.and_then(&mut value) {
            Some(v) => {
                present.push(1);
                v
            }
            None => {
                present.push(0);
                T::default()
            }
        })
        .collect()
}

/// An aggregate's column: count is an integer, first-at and last-at are
/// timestamps, sum, min and max are numbers.
fn aggregate_column(spec: &AggregateSpec, outcomes: &[Outcome]) -> Column {
    use tessera_runtime::api::types::AggregateFn;
    let kind = match spec.function {
        AggregateFn::Count => ValueKind::Integer,
        AggregateFn::FirstAt | AggregateFn::LastAt => ValueKind::Timestamp,
        AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max => ValueKind::Number,
    };
    column(
        kind,
        outcomes.iter().map(|outcome| match *outcome {
            Outcome::Integer(i) => Some(Cell::Integer(i)),
            Outcome::Number(n) => Some(Cell::Number(n)),
            Outcome::Timestamp(t) => Some(Cell::Timestamp(t)),
            Outcome::Missing | Outcome::NeedsEvents => None,
        }),
    )
}

/// A query's columns: `count` (integer), `first` and `last` (timestamps,
/// missing without events), then one number per sum; every row missing
/// for a person whose facts were not computed (the query is not granted).
fn query_columns(query: &EventQuery, facts: &[Option<queries::Facts>]) -> Vec<Column> {
    let mut columns = vec![
        column(
            ValueKind::Integer,
            facts.iter().map(|f| {
                f.as_ref()
                    .map(|f| Cell::Integer(i64::try_from(f.count).unwrap_or(i64::MAX)))
            }),
        ),
        column(
            ValueKind::Timestamp,
            facts
                .iter()
                .map(|f| f.as_ref().and_then(|f| f.first_ms).map(Cell::Timestamp)),
        ),
        column(
            ValueKind::Timestamp,
            facts
                .iter()
                .map(|f| f.as_ref().and_then(|f| f.last_ms).map(Cell::Timestamp)),
        ),
    ];
    for index in 0..query.sums.len() {
        columns.push(column(
            ValueKind::Number,
            facts
                .iter()
                .map(|f| f.as_ref().map(|f| Cell::Number(f.sums[index]))),
        ));
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_pii_class_is_a_permission_class_of_the_same_name() {
        use tessera_vault::PiiClass as Schema;
        for class in [
            Schema::Email,
            Schema::Phone,
            Schema::Name,
            Schema::Address,
            Schema::BirthDate,
            Schema::Location,
            Schema::DeviceId,
            Schema::IpAddress,
            Schema::SpecialCategory,
        ] {
            assert_eq!(permission_class(class).as_str(), class.as_str());
        }
    }

    #[test]
    fn the_batch_digest_ignores_order_and_separates_ids() {
        let ab = batch_digest(&["a".into(), "b".into()]);
        assert_eq!(ab, batch_digest(&["b".into(), "a".into()]));
        assert_ne!(ab, batch_digest(&["ab".into()]));
        assert_eq!(ab.len(), 64);
    }

    #[test]
    fn a_column_with_gaps_marks_them_and_one_without_has_no_validity() {
        let full = column(
            ValueKind::Text,
            [Some(Cell::Text("fr".into())), Some(Cell::Text("fr".into()))].into_iter(),
        );
        assert!(full.present.is_empty());
        let ColumnData::Text(text) = &full.data else {
            panic!("text column")
        };
        assert_eq!(
            (text.dictionary.len(), text.codes.as_slice()),
            (1, &[0, 0][..])
        );
        let gaps = column(
            ValueKind::Number,
            [None, Some(Cell::Number(2.0))].into_iter(),
        );
        assert_eq!(gaps.present, vec![0, 1]);
        let list = column(
            ValueKind::TextList,
            [Some(Cell::TextList(vec!["a".into(), "b".into()])), None].into_iter(),
        );
        let ColumnData::TextList(list_data) = &list.data else {
            panic!("text-list column")
        };
        assert_eq!(list_data.offsets, vec![0, 2, 2]);
        assert_eq!(list.present, vec![1, 0]);
    }
}
