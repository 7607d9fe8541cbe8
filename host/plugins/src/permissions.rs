//! Requests, grants and what changes between them. A grant has the shape of
//! a request ([`Permissions`]) and must be a subset of it, item by item; a
//! [`PermissionDiff`] is what an operator reviews before approving an
//! install or an upgrade.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_bundle::{Permissions, RequestedLimits};
use tessera_runtime::Limits;

/// Items added and removed in one category of permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Change {
    fn between<'a>(
        from: impl IntoIterator<Item = &'a str>,
        to: impl IntoIterator<Item = &'a str>,
    ) -> Change {
        let from: BTreeSet<&str> = from.into_iter().collect();
        let to: BTreeSet<&str> = to.into_iter().collect();
        Change {
            added: to.difference(&from).map(|s| s.to_string()).collect(),
            removed: from.difference(&to).map(|s| s.to_string()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// One limit that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitChange {
    /// The limit's name, as in a bundle manifest (`memory_bytes`, `fuel_base`…).
    pub name: String,
    pub from: u64,
    pub to: u64,
}

/// What going from one set of permissions and limits to another adds and
/// removes: the review an operator sees for a pending install or upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionDiff {
    pub traits: Change,
    pub events: Change,
    pub pii: Change,
    pub purposes: Change,
    pub outbound_hosts: Change,
    /// `[from, to]` bytes, when the state quota changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_quota: Option<[u64; 2]>,
    /// Limits that change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<LimitChange>,
}

impl PermissionDiff {
    /// The difference from `from` (with its limits) to `to`.
    pub fn between(
        from: &Permissions,
        from_limits: &Limits,
        to: &Permissions,
        to_limits: &Limits,
    ) -> PermissionDiff {
        let names = |p: &Permissions| -> Vec<String> {
            p.pii.iter().map(|c| c.as_str().to_string()).collect()
        };
        let (from_pii, to_pii) = (names(from), names(to));
        PermissionDiff {
            traits: Change::between(strs(&from.traits), strs(&to.traits)),
            events: Change::between(strs(&from.events), strs(&to.events)),
            pii: Change::between(strs(&from_pii), strs(&to_pii)),
            purposes: Change::between(strs(&from.purposes), strs(&to.purposes)),
            outbound_hosts: Change::between(strs(&from.outbound_hosts), strs(&to.outbound_hosts)),
            state_quota: (from.state_quota != to.state_quota)
                .then_some([from.state_quota, to.state_quota]),
            limits: limit_pairs(from_limits, to_limits)
                .into_iter()
                .filter(|(_, a, b)| a != b)
                .map(|(name, from, to)| LimitChange {
                    name: name.to_string(),
                    from,
                    to,
                })
                .collect(),
        }
    }

    /// Whether `to` asks for anything `from` did not have: an item in any
    /// category, a larger state quota, or a higher limit. Such an upgrade
    /// waits for an operator's approval.
    pub fn asks_for_more(&self) -> bool {
        [
            &self.traits,
            &self.events,
            &self.pii,
            &self.purposes,
            &self.outbound_hosts,
        ]
        .iter()
        .any(|c| !c.added.is_empty())
            || self.state_quota.is_some_and(|[from, to]| to > from)
            || self.limits.iter().any(|l| l.to > l.from)
    }

    /// No change at all.
    pub fn is_empty(&self) -> bool {
        [
            &self.traits,
            &self.events,
            &self.pii,
            &self.purposes,
            &self.outbound_hosts,
        ]
        .iter()
        .all(|c| c.is_empty())
            && self.state_quota.is_none()
            && self.limits.is_empty()
    }
}

fn strs(list: &[String]) -> impl Iterator<Item = &str> {
    list.iter().map(String::as_str)
}

/// The same permissions, every list sorted and without duplicates, so that
/// stored grants compare and display the same way whatever order they came in.
pub fn normalized(p: &Permissions) -> Permissions {
    fn set(list: &[String]) -> Vec<String> {
        list.iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
    let mut pii = p.pii.clone();
    pii.sort_by_key(|c| c.as_str());
    pii.dedup();
    Permissions {
        traits: set(&p.traits),
        events: set(&p.events),
        pii,
        purposes: set(&p.purposes),
        outbound_hosts: set(&p.outbound_hosts),
        state_quota: p.state_quota,
    }
}

/// Checks that `grant` is part of `request`: every item was asked for and
/// the state quota is no larger. The error names the first item that was not.
pub fn check_subset(grant: &Permissions, request: &Permissions) -> Result<(), String> {
    let lists: [(&str, &[String], &[String]); 4] = [
        ("trait", &grant.traits, &request.traits),
        ("event type", &grant.events, &request.events),
        ("purpose", &grant.purposes, &request.purposes),
        (
            "outbound host",
            &grant.outbound_hosts,
            &request.outbound_hosts,
        ),
    ];
    for (what, granted, requested) in lists {
        if let Some(extra) = granted.iter().find(|g| !requested.contains(g)) {
            return Err(format!(
                "the grant includes {what} `{extra}`, which the plugin did not ask for"
            ));
        }
    }
    if let Some(extra) = grant.pii.iter().find(|c| !request.pii.contains(c)) {
        return Err(format!(
            "the grant includes PII class `{}`, which the plugin did not ask for",
            extra.as_str()
        ));
    }
    if grant.state_quota > request.state_quota {
        return Err(format!(
            "the grant's state quota of {} bytes is more than the {} bytes the plugin asked for",
            grant.state_quota, request.state_quota
        ));
    }
    Ok(())
}

/// The limits a plugin runs with: the host's defaults, with what the plugin
/// (or the operator, lowering it) asked for in their place.
pub fn limits_for(requested: &RequestedLimits) -> Limits {
    let mut limits = Limits::default();
    if let Some(v) = requested.memory_bytes {
        limits.memory_bytes = v;
    }
    if let Some(v) = requested.fuel_base {
        limits.fuel_base = v;
    }
    if let Some(v) = requested.fuel_per_unit {
        limits.fuel_per_unit = v;
    }
    if let Some(v) = requested.time_base_ms {
        limits.time_base = Duration::from_millis(v);
    }
    if let Some(v) = requested.time_per_unit_ms {
        limits.time_per_unit = Duration::from_millis(v);
    }
    if let Some(v) = requested.output_bytes {
        limits.output_bytes = v;
    }
    limits
}

/// Checks that limits the operator sets are no higher than those requested
/// (an operator lowers limits; raising them is a new request).
pub fn check_limits_within(granted: &Limits, requested: &Limits) -> Result<(), String> {
    match limit_pairs(granted, requested)
        .into_iter()
        .find(|(_, granted, requested)| granted > requested)
    {
        Some((name, granted, requested)) => Err(format!(
            "the granted {name} of {granted} is more than the {requested} the plugin asked for"
        )),
        None => Ok(()),
    }
}

/// The limits a bundle may ask for, as `(name, a, b)`, in manifest names.
fn limit_pairs(a: &Limits, b: &Limits) -> Vec<(&'static str, u64, u64)> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    vec![
        ("memory_bytes", a.memory_bytes, b.memory_bytes),
        ("fuel_base", a.fuel_base, b.fuel_base),
        ("fuel_per_unit", a.fuel_per_unit, b.fuel_per_unit),
        ("time_base_ms", ms(a.time_base), ms(b.time_base)),
        ("time_per_unit_ms", ms(a.time_per_unit), ms(b.time_per_unit)),
        ("output_bytes", a.output_bytes, b.output_bytes),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_bundle::PiiClass;

    fn perms(traits: &[&str], pii: &[PiiClass], quota: u64) -> Permissions {
        Permissions {
            traits: traits.iter().map(|s| s.to_string()).collect(),
            events: vec!["purchase".into()],
            pii: pii.to_vec(),
            purposes: vec!["analytics".into()],
            outbound_hosts: Vec::new(),
            state_quota: quota,
        }
    }

    #[test]
    fn a_grant_must_be_part_of_the_request() {
        let request = perms(&["country", "email"], &[PiiClass::Email], 1024);
        assert!(check_subset(&perms(&["country"], &[], 0), &request).is_ok());
        assert!(check_subset(&request, &request).is_ok());
        let extra = check_subset(&perms(&["city"], &[], 0), &request).unwrap_err();
        assert!(extra.contains("trait `city`"), "{extra}");
        let pii = check_subset(&perms(&["email"], &[PiiClass::Phone], 0), &request).unwrap_err();
        assert!(pii.contains("PII class `phone`"), "{pii}");
        let quota = check_subset(&perms(&[], &[], 4096), &request).unwrap_err();
        assert!(quota.contains("4096"), "{quota}");
    }

    #[test]
    fn asking_for_more_is_any_addition_or_increase() {
        let d = Limits::default();
        let v1 = perms(&["country"], &[], 1024);
        let same = PermissionDiff::between(&v1, &d, &v1, &d);
        assert!(same.is_empty() && !same.asks_for_more());

        let less = PermissionDiff::between(&v1, &d, &perms(&[], &[], 512), &d);
        assert!(!less.asks_for_more());
        assert_eq!(less.traits.removed, ["country"]);
        assert_eq!(less.state_quota, Some([1024, 512]));

        let more = PermissionDiff::between(
            &v1,
            &d,
            &perms(&["country", "email"], &[PiiClass::Email], 1024),
            &d,
        );
        assert!(more.asks_for_more());
        assert_eq!(more.traits.added, ["email"]);
        assert_eq!(more.pii.added, ["email"]);

        let bigger = Limits {
            memory_bytes: d.memory_bytes * 2,
            ..d.clone()
        };
        let limits = PermissionDiff::between(&v1, &d, &v1, &bigger);
        assert!(limits.asks_for_more());
        assert_eq!(limits.limits[0].name, "memory_bytes");
    }

    #[test]
    fn limits_take_the_request_over_the_defaults_and_may_only_be_lowered() {
        let requested = limits_for(&RequestedLimits {
            memory_bytes: Some(8 << 20),
            time_base_ms: Some(500),
            ..RequestedLimits::default()
        });
        assert_eq!(requested.memory_bytes, 8 << 20);
        assert_eq!(requested.time_base, Duration::from_millis(500));
        assert_eq!(requested.fuel_base, Limits::default().fuel_base);
        let lower = Limits {
            memory_bytes: 4 << 20,
            ..requested.clone()
        };
        assert!(check_limits_within(&lower, &requested).is_ok());
        let higher = Limits {
            memory_bytes: 16 << 20,
            ..requested.clone()
        };
        let error = check_limits_within(&higher, &requested).unwrap_err();
        assert!(error.contains("memory_bytes"), "{error}");
    }

    #[test]
    fn normalising_sorts_and_dedups() {
        let p = Permissions {
            traits: vec!["b".into(), "a".into(), "b".into()],
            pii: vec![PiiClass::Phone, PiiClass::Email, PiiClass::Phone],
            ..Permissions::default()
        };
        let n = normalized(&p);
        assert_eq!(n.traits, ["a", "b"]);
        assert_eq!(n.pii, [PiiClass::Email, PiiClass::Phone]);
    }
}
