//! Plugin-scoped state behind the `state` import: the contract between the
//! runtime, which buffers a call's writes, and the stores that keep them.
//! A plugin sees only its own scope (tenant + installation); the runtime
//! commits a call's writes atomically, and only if the call succeeded.

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
}

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
    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError>;
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
}

// MemoryState's behaviour is specified by the state cases of the store
// conformance suite (`tessera_store::conformance::state_cases`), which run
// against it as well as against every storage backend.
