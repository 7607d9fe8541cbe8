//! Plugin-scoped state behind the `state` import: the contract between the
//! runtime, which buffers a call's writes, and the stores that keep them.
//! A plugin sees only its own scope (tenant + installation); the runtime
//! commits a call's writes atomically, and only if the call succeeded.
//!
//! State under `subject/<key>/` belongs to a subject (see [`StateKeys`]):
//! plugins name subjects by the pseudonymous keys of their batch rows, the
//! store by subject id, so that a subject's export and erasure reach it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// Whose state: one plugin installation in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateScope {
    pub tenant: String,
    /// The host's installation id (never the plugin's self-declared name).
    pub plugin: String,
}

impl StateScope {
    /// A part of this scope's state of its own, named `namespace` (e.g. a
    /// campaign's within its strategy's): the scope of plugin id
    /// `<plugin>#<namespace>`. It goes with the scope
    /// ([`StateStore::scopes`] lists it under the prefix
    /// [`StateScope::namespace_prefix`]).
    pub fn namespace(&self, namespace: &str) -> StateScope {
        StateScope {
            tenant: self.tenant.clone(),
            plugin: format!("{}{namespace}", self.namespace_prefix()),
        }
    }

    /// What the plugin id of each of this scope's namespaces begins with.
    pub fn namespace_prefix(&self) -> String {
        format!("{}#", self.plugin)
    }
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("state quota of {quota} bytes would be exceeded ({needed} bytes needed)")]
    Quota { quota: u64, needed: u64 },
    #[error("another call changed this plugin's state first")]
    Conflict,
    #[error("state store failed: {0}")]
    Backend(String),
    /// A write for a subject the store no longer has (erased during the
    /// call), or never had.
    #[error("subject {subject} no longer exists; its state is not kept")]
    UnknownSubject { subject: String },
    /// The plugin was removed; its state is gone and stays gone.
    #[error("this plugin was removed; its state is not kept")]
    Retired,
}

/// The version of a retired scope: no write is ever applied to it again.
pub const RETIRED: u64 = u64::MAX;

/// One buffered write: `None` deletes the key.
pub type StateWrite = (String, Option<Vec<u8>>);

/// Where plugin state lives. The embedded store and PostgreSQL implement it
/// later; [`MemoryState`] serves tests, the demo and `tessera plugin test`.
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The value of a key.
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Bytes used by the scope (keys + values).
    fn usage(&self, scope: &StateScope) -> Result<u64, StateError>;
    /// A number that changes whenever the scope's contents change.
    fn version(&self, scope: &StateScope) -> Result<u64, StateError>;
    /// Keys with a prefix, in order, at most `limit`.
    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError>;
    /// Applies writes atomically, or none of them: refused with
    /// [`StateError::Conflict`] if the scope's version is no longer `base`,
    /// and with [`StateError::Quota`] if the writes would grow the scope past
    /// `quota` (writes that shrink an over-quota scope are allowed).
    ///
    /// Backends that know subjects refuse (with [`StateError::UnknownSubject`])
    /// a write under `subject/<id>/` for a subject they do not have, so that
    /// a call still running when its subject is erased cannot bring state
    /// back after the erasure; deletes are always applied. A retired scope
    /// refuses every write with [`StateError::Retired`].
    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError>;

    /// Deletes every entry of a scope and refuses any write to it from then
    /// on (a removed plugin: a call still running cannot bring its state
    /// back). Returns how many entries were deleted. Re-running it finishes
    /// an interrupted retirement.
    fn retire(&self, scope: &StateScope) -> Result<u64, StateError>;

    /// The scopes of `tenant` whose plugin id begins with `prefix`, in
    /// order: each scope that holds state or once did (a retired one too).
    /// For the parts of an installation's state of their own
    /// (`<installation>#<namespace>`), which go with it.
    fn scopes(&self, tenant: &str, prefix: &str) -> Result<Vec<StateScope>, StateError>;
}

/// State in process memory.
#[derive(Debug, Default)]
pub struct MemoryState {
    scopes: Mutex<BTreeMap<StateScope, Scope>>,
}

#[derive(Debug, Default, Clone)]
struct Scope {
    version: u64,
    entries: BTreeMap<String, Vec<u8>>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<StateScope, Scope>> {
        self.scopes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

fn scope_usage(map: &BTreeMap<String, Vec<u8>>) -> u64 {
    map.iter().map(|(k, v)| entry_size(k, v)).sum()
}

impl StateStore for MemoryState {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .lock()
            .get(scope)
            .and_then(|s| s.entries.get(key).cloned()))
    }

    fn usage(&self, scope: &StateScope) -> Result<u64, StateError> {
        Ok(self
            .lock()
            .get(scope)
            .map(|s| scope_usage(&s.entries))
            .unwrap_or(0))
    }

    fn version(&self, scope: &StateScope) -> Result<u64, StateError> {
        Ok(self.lock().get(scope).map_or(0, |s| s.version))
    }

    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        Ok(self
            .lock()
            .get(scope)
            .map(|s| {
                s.entries
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(limit)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError> {
        let mut scopes = self.lock();
        let current = scopes.get(scope).cloned().unwrap_or_default();
        if current.version == RETIRED {
            return Err(StateError::Retired);
        }
        if current.version != base {
            return Err(StateError::Conflict);
        }
        let mut next = current.entries.clone();
        for (key, value) in writes {
            match value {
                Some(value) => next.insert(key.clone(), value.clone()),
                None => next.remove(key),
            };
        }
        let needed = scope_usage(&next);
        if needed > quota && needed > scope_usage(&current.entries) {
            return Err(StateError::Quota { quota, needed });
        }
        scopes.insert(
            scope.clone(),
            Scope {
                version: current.version + 1,
                entries: next,
            },
        );
        Ok(())
    }

    fn retire(&self, scope: &StateScope) -> Result<u64, StateError> {
        let mut scopes = self.lock();
        let entry = scopes.entry(scope.clone()).or_default();
        let removed = entry.entries.len() as u64;
        entry.entries.clear();
        entry.version = RETIRED;
        Ok(removed)
    }

    fn scopes(&self, tenant: &str, prefix: &str) -> Result<Vec<StateScope>, StateError> {
        Ok(self
            .lock()
            .keys()
            .filter(|s| s.tenant == tenant && s.plugin.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// The prefix of subject-keyed state: a key `subject/<s>/…` belongs to
/// subject `s` (the store's convention, which export and erasure follow).
pub const SUBJECT_PREFIX: &str = "subject/";

/// The subjects one call may keep state for: the rows of the batch the call
/// was given, by the pseudonymous key the plugin sees (`keys` of its
/// `profile-batch`) and by the subject id the host knows. Plugins write
/// `subject/<key as 16 lowercase hex digits>/…`; the runtime stores
/// `subject/<subject id>/…` and translates back when it lists keys, so a
/// plugin never learns a subject id, and state for a subject that is not
/// a row of the call is refused.
pub trait StateKeys: Send + Sync + fmt::Debug {
    /// The subject id behind a row's key, if `key` is a row of this call.
    fn subject(&self, key: u64) -> Option<&str>;
    /// The key of `subject`, if it is a row of this call.
    fn key(&self, subject: &str) -> Option<u64>;
    /// Every row of the call, as (key, subject id).
    fn rows(&self) -> Vec<(u64, &str)>;
}

/// A row's key as it appears in a state key: 16 lowercase hex digits.
pub fn key_text(key: u64) -> String {
    format!("{key:016x}")
}

/// The row key that `text` spells (exactly 16 lowercase hex digits).
fn parse_key(text: &str) -> Option<u64> {
    let canonical = text.len() == 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// Why a state key a plugin used was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "state key {key:?} is under `subject/` but does not name a row of this call: \
     subject state is `subject/<key>/<name>`, where <key> is a row's key from the \
     batch as 16 lowercase hex digits"
)]
pub struct KeyRefused {
    /// The key as the plugin wrote it, cut to 80 bytes.
    pub key: String,
}

fn refused(key: &str) -> KeyRefused {
    let mut end = key.len().min(80);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    KeyRefused {
        key: key[..end].to_owned(),
    }
}

/// The stored key for the key a plugin used: unchanged outside `subject/`,
/// `subject/<subject id>/…` for `subject/<row key>/…` of a row of the call,
/// refused for any other key under `subject/` (with no `keys`, all of them).
pub fn store_key(keys: Option<&dyn StateKeys>, key: &str) -> Result<String, KeyRefused> {
    let Some(rest) = key.strip_prefix(SUBJECT_PREFIX) else {
        return Ok(key.to_owned());
    };
    let (row, tail) = rest.split_once('/').ok_or_else(|| refused(key))?;
    let subject = parse_key(row)
        .and_then(|row| keys.and_then(|k| k.subject(row)))
        .ok_or_else(|| refused(key))?;
    Ok(format!("{SUBJECT_PREFIX}{subject}/{tail}"))
}

/// The key a plugin sees for a stored key: unchanged outside `subject/`,
/// `subject/<row key>/…` for a subject of the call, `None` (hidden) for any
/// other subject's state.
pub fn plugin_key(keys: Option<&dyn StateKeys>, stored: &str) -> Option<String> {
    let Some(rest) = stored.strip_prefix(SUBJECT_PREFIX) else {
        return Some(stored.to_owned());
    };
    let (subject, tail) = rest.split_once('/')?;
    let row = keys?.key(subject)?;
    Some(format!("{SUBJECT_PREFIX}{}/{tail}", key_text(row)))
}

/// How to list the keys with a prefix a plugin asked for, in store terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// List this stored prefix as asked; every key found is outside
    /// `subject/` or under one subject of the call.
    Prefix(String),
    /// List each of these stored prefixes (one per matching subject).
    Subjects(Vec<String>),
    /// The prefix spans `subject/`: list it whole, then translate each key
    /// with [`plugin_key`] (hiding other subjects'), sort and cut.
    Whole(String),
    /// Nothing the plugin may see has this prefix.
    Nothing,
}

/// How to serve a plugin's listing of `prefix`.
pub fn listing(keys: Option<&dyn StateKeys>, prefix: &str) -> Listing {
    match prefix.strip_prefix(SUBJECT_PREFIX) {
        None if SUBJECT_PREFIX.starts_with(prefix) => Listing::Whole(prefix.to_owned()),
        None => Listing::Prefix(prefix.to_owned()),
        Some(rest) => match rest.split_once('/') {
            Some(_) => store_key(keys, prefix).map_or(Listing::Nothing, Listing::Prefix),
            None => Listing::Subjects(
                keys.map(|k| k.rows())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(row, _)| key_text(*row).starts_with(rest))
                    .map(|(_, subject)| format!("{SUBJECT_PREFIX}{subject}/"))
                    .collect(),
            ),
        },
    }
}

// MemoryState's behaviour is specified by the state cases of the store
// conformance suite (`tessera_store::conformance::state_cases`), which run
// against it as well as against every storage backend.

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Rows(Vec<(u64, String)>);

    impl StateKeys for Rows {
        fn subject(&self, key: u64) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| s.as_str())
        }
        fn key(&self, subject: &str) -> Option<u64> {
            self.0.iter().find(|(_, s)| s == subject).map(|(k, _)| *k)
        }
        fn rows(&self) -> Vec<(u64, &str)> {
            self.0.iter().map(|(k, s)| (*k, s.as_str())).collect()
        }
    }

    fn rows() -> Rows {
        Rows(vec![
            (0xab, "s-one".into()),
            (0xcd00_0000_0000_0000, "s-two".into()),
        ])
    }

    #[test]
    fn row_keys_translate_to_subject_ids_and_back() {
        let rows = rows();
        let keys = Some(&rows as &dyn StateKeys);
        let stored = store_key(keys, "subject/00000000000000ab/seen").unwrap();
        assert_eq!(stored, "subject/s-one/seen");
        assert_eq!(
            plugin_key(keys, &stored).as_deref(),
            Some("subject/00000000000000ab/seen")
        );
        assert_eq!(store_key(keys, "counter").unwrap(), "counter");
        assert_eq!(plugin_key(keys, "counter").as_deref(), Some("counter"));
    }

    #[test]
    fn subject_keys_outside_the_call_are_refused_and_hidden() {
        let rows = rows();
        let keys = Some(&rows as &dyn StateKeys);
        for key in [
            "subject/00000000000000ac/seen",
            "subject/00000000000000AB/seen",
            "subject/ab/seen",
            "subject/s-one/seen",
            "subject/00000000000000ab",
            "subject/",
        ] {
            assert!(store_key(keys, key).is_err(), "{key}");
        }
        assert!(store_key(None, "subject/00000000000000ab/seen").is_err());
        assert_eq!(plugin_key(keys, "subject/s-three/seen"), None);
        assert_eq!(plugin_key(None, "subject/s-one/seen"), None);
    }

    #[test]
    fn listings_stay_within_the_call() {
        let rows = rows();
        let keys = Some(&rows as &dyn StateKeys);
        assert_eq!(listing(keys, "count"), Listing::Prefix("count".into()));
        assert_eq!(listing(keys, ""), Listing::Whole(String::new()));
        assert_eq!(listing(keys, "subj"), Listing::Whole("subj".into()));
        assert_eq!(
            listing(keys, "subject/00000000000000ab/s"),
            Listing::Prefix("subject/s-one/s".into())
        );
        assert_eq!(listing(keys, "subject/00000000000000ac/"), Listing::Nothing);
        assert_eq!(
            listing(keys, "subject/0"),
            Listing::Subjects(vec!["subject/s-one/".into()])
        );
        assert_eq!(listing(None, "subject/"), Listing::Subjects(vec![]));
    }
}
