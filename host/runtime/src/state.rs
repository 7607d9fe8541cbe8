//! Plugin-scoped state behind the `state` import. The host holds it; a plugin
//! sees only its own scope (tenant + plugin name). Writes of one call are
//! buffered and applied atomically when the call succeeds, so a call that traps
//! or fails leaves the state as it was.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// Whose state: one plugin in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateScope {
    pub tenant: String,
    pub plugin: String,
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("state quota of {quota} bytes would be exceeded ({needed} bytes needed)")]
    Quota { quota: u64, needed: u64 },
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
    /// Keys with a prefix, in order, at most `limit`.
    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError>;
    /// Applies writes atomically, or none of them if the scope would go over `quota`.
    fn apply(
        &self,
        scope: &StateScope,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError>;
}

/// State in process memory.
#[derive(Debug, Default)]
pub struct MemoryState {
    scopes: Mutex<BTreeMap<StateScope, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<StateScope, BTreeMap<String, Vec<u8>>>> {
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
        Ok(self.lock().get(scope).and_then(|m| m.get(key).cloned()))
    }

    fn usage(&self, scope: &StateScope) -> Result<u64, StateError> {
        Ok(self.lock().get(scope).map(scope_usage).unwrap_or(0))
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
            .map(|m| {
                m.range(prefix.to_string()..)
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
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError> {
        let mut scopes = self.lock();
        let mut next = scopes.get(scope).cloned().unwrap_or_default();
        for (key, value) in writes {
            match value {
                Some(value) => next.insert(key.clone(), value.clone()),
                None => next.remove(key),
            };
        }
        let needed = scope_usage(&next);
        if needed > quota {
            return Err(StateError::Quota { quota, needed });
        }
        scopes.insert(scope.clone(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(plugin: &str) -> StateScope {
        StateScope {
            tenant: "acme".into(),
            plugin: plugin.into(),
        }
    }

    #[test]
    fn writes_apply_atomically_within_the_quota_and_scopes_are_separate() {
        let state = MemoryState::new();
        let writes = vec![
            ("a".to_string(), Some(vec![1; 10])),
            ("b".to_string(), Some(vec![2; 10])),
        ];
        state.apply(&scope("one"), &writes, 22).unwrap();
        assert_eq!(state.usage(&scope("one")).unwrap(), 22);
        assert_eq!(
            state.get(&scope("two"), "a").unwrap(),
            None,
            "another plugin sees nothing"
        );

        let over = vec![
            ("a".to_string(), None),
            ("c".to_string(), Some(vec![3; 30])),
        ];
        assert_eq!(
            state.apply(&scope("one"), &over, 22),
            Err(StateError::Quota {
                quota: 22,
                needed: 42
            })
        );
        assert_eq!(
            state.get(&scope("one"), "a").unwrap(),
            Some(vec![1; 10]),
            "a refused batch changes nothing"
        );
        assert_eq!(state.keys(&scope("one"), "", 10).unwrap(), vec!["a", "b"]);
    }
}
