//! Plugin state on PostgreSQL: entries in `plugin_state`, each scope's
//! version and usage in `plugin_scopes`, whose row lock serialises writers.
//!
//! A scope's version is a u64 stored bit for bit in a bigint, so the retired
//! marker `u64::MAX` reads -1 in SQL.

use std::collections::{BTreeMap, HashSet};

use r2d2_postgres::postgres::{self, Transaction};
use tessera_state::{RETIRED, SUBJECT_PREFIX, StateError, StateScope, StateStore, StateWrite};
use tessera_store::{MAX_ID_LEN, StoreError};

use crate::{Fail, Failure, PgStore, check_id, prefix_end, sql_limit, utf8};

type StateFail = Failure<StateError>;

pub(crate) fn state_error(error: &postgres::Error) -> StateError {
    StateError::Backend(format!("PostgreSQL: {}", crate::error_detail(error)))
}

fn into_state(fail: StateFail) -> StateError {
    match fail {
        Failure::Db(error) => state_error(&error),
        Failure::Abort(error) => error,
    }
}

/// Refuses scopes whose names no backend keys (as sled does).
fn check_scope(scope: &StateScope) -> Result<(), StateError> {
    if scope.tenant.len() > MAX_ID_LEN || scope.plugin.len() > MAX_ID_LEN {
        return Err(StateError::Backend(format!(
            "tenant and plugin names must be at most {MAX_ID_LEN} bytes long"
        )));
    }
    Ok(())
}

/// What an entry counts against its scope's quota: key plus value bytes.
fn entry_size(key_len: usize, value_len: usize) -> u64 {
    (key_len as u64).saturating_add(value_len as u64)
}

fn stored_version(version: i64) -> u64 {
    version.cast_unsigned()
}

fn sql_version(version: u64) -> i64 {
    version.cast_signed()
}

fn sql_usage(usage: u64) -> i64 {
    i64::try_from(usage).unwrap_or(i64::MAX)
}

/// The key range `[low, high)` of a subject's plugin state
/// (`subject/<subject>/…`), after checking the ids.
pub(crate) fn subject_range(tenant: &str, subject: &str) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    check_id("tenant id", tenant)?;
    check_id("subject id", subject)?;
    if subject.contains('/') {
        return Err(StoreError::AmbiguousSubject {
            subject: subject.to_owned(),
        });
    }
    let low = format!("{SUBJECT_PREFIX}{subject}/").into_bytes();
    // The prefix ends in '/', so it has an end.
    let high = prefix_end(&low).unwrap_or_default();
    Ok((low, high))
}

/// Removes one scope's entries in `[low, high)`: usage drops by what went,
/// and the version moves on if anything did. Returns how many went.
pub(crate) fn purge_scope(
    tx: &mut Transaction<'_>,
    tenant: &[u8],
    plugin: &[u8],
    low: &[u8],
    high: &[u8],
) -> Result<u64, Fail> {
    // The scope's row lock first, as every writer of the scope takes it.
    let meta = tx.query_opt(
        "SELECT version, usage FROM plugin_scopes WHERE tenant = $1 AND plugin = $2 FOR UPDATE",
        &[&tenant, &plugin],
    )?;
    let freed: Vec<(i32, i32)> = tx
        .query(
            "DELETE FROM plugin_state WHERE tenant = $1 AND plugin = $2 AND key >= $3 AND key < $4 \
             RETURNING octet_length(key), octet_length(value)",
            &[&tenant, &plugin, &low, &high],
        )?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if freed.is_empty() {
        return Ok(0);
    }
    let freed_bytes = freed.iter().fold(0u64, |sum, (key, value)| {
        sum.saturating_add(entry_size(
            usize::try_from(*key).unwrap_or(0),
            usize::try_from(*value).unwrap_or(0),
        ))
    });
    let (version, usage) = match meta {
        Some(row) => (
            stored_version(row.get(0)),
            u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        ),
        None => (0, 0),
    };
    let next = version.checked_add(1).ok_or_else(|| {
        Failure::Abort(StoreError::Corrupt {
            family: "state meta",
            detail: "version is exhausted".into(),
        })
    })?;
    tx.execute(
        "INSERT INTO plugin_scopes (tenant, plugin, version, usage) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, plugin) DO UPDATE SET version = excluded.version, \
         usage = excluded.usage",
        &[
            &tenant,
            &plugin,
            &sql_version(next),
            &sql_usage(usage.saturating_sub(freed_bytes)),
        ],
    )?;
    Ok(freed.len() as u64)
}

impl StateStore for PgStore {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        check_scope(scope)?;
        let row = self.with_state_client(|client| {
            client.query_opt(
                "SELECT value FROM plugin_state WHERE tenant = $1 AND plugin = $2 AND key = $3",
                &[
                    &scope.tenant.as_bytes(),
                    &scope.plugin.as_bytes(),
                    &key.as_bytes(),
                ],
            )
        })?;
        Ok(row.map(|row| row.get(0)))
    }

    fn usage(&self, scope: &StateScope) -> Result<u64, StateError> {
        Ok(self.meta(scope)?.1)
    }

    fn version(&self, scope: &StateScope) -> Result<u64, StateError> {
        Ok(self.meta(scope)?.0)
    }

    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        check_scope(scope)?;
        let end = prefix_end(prefix.as_bytes());
        let rows = self.with_state_client(|client| {
            client.query(
                "SELECT key FROM plugin_state WHERE tenant = $1 AND plugin = $2 \
                 AND key >= $3 AND ($4::bytea IS NULL OR key < $4) ORDER BY key LIMIT $5",
                &[
                    &scope.tenant.as_bytes(),
                    &scope.plugin.as_bytes(),
                    &prefix.as_bytes(),
                    &end,
                    &sql_limit(limit),
                ],
            )
        })?;
        rows.into_iter()
            .map(|row| {
                utf8(row.get(0), "state").map_err(|error| StateError::Backend(error.to_string()))
            })
            .collect()
    }

    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError> {
        check_scope(scope)?;
        // Applying the writes in order leaves the last write of each key.
        let last: BTreeMap<&str, Option<&[u8]>> = writes
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()))
            .collect();
        let keys: Vec<&[u8]> = last.keys().map(|key| key.as_bytes()).collect();
        let mut put_keys = Vec::new();
        let mut put_values = Vec::new();
        let mut deletes = Vec::new();
        // Subjects that writes (not deletes) file state under, in key order:
        // each must exist when the writes apply.
        let mut subjects: Vec<&str> = Vec::new();
        for (key, value) in &last {
            match value {
                Some(value) => {
                    put_keys.push(key.as_bytes());
                    put_values.push(*value);
                    let subject = key
                        .strip_prefix(SUBJECT_PREFIX)
                        .and_then(|rest| rest.split_once('/'))
                        .map(|(subject, _)| subject)
                        .filter(|subject| !subject.is_empty());
                    if let Some(subject) = subject
                        && !subjects.contains(&subject)
                    {
                        subjects.push(subject);
                    }
                }
                None => deletes.push(key.as_bytes()),
            }
        }
        let (t, p) = (scope.tenant.as_bytes(), scope.plugin.as_bytes());
        self.transact(|tx| {
            tx.execute(
                "INSERT INTO plugin_scopes (tenant, plugin, version, usage) VALUES ($1, $2, 0, 0) \
                 ON CONFLICT (tenant, plugin) DO NOTHING",
                &[&t, &p],
            )?;
            // Held until commit: writers of a scope go one at a time, and a
            // writer numbered for an older version finds it moved on.
            let row = tx.query_one(
                "SELECT version, usage FROM plugin_scopes WHERE tenant = $1 AND plugin = $2 \
                 FOR UPDATE",
                &[&t, &p],
            )?;
            let version = stored_version(row.get(0));
            let usage = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            if version == RETIRED {
                return Err(Failure::Abort(StateError::Retired));
            }
            if version != base {
                return Err(Failure::Abort(StateError::Conflict));
            }
            if !subjects.is_empty() {
                let ids: Vec<&[u8]> = subjects.iter().map(|s| s.as_bytes()).collect();
                // Locked against a purge until commit.
                let found: HashSet<Vec<u8>> = tx
                    .query(
                        "SELECT subject FROM subjects WHERE tenant = $1 AND subject = ANY($2) \
                         ORDER BY subject FOR KEY SHARE",
                        &[&t, &ids],
                    )?
                    .into_iter()
                    .map(|row| row.get(0))
                    .collect();
                if let Some(missing) = subjects.iter().find(|s| !found.contains(s.as_bytes())) {
                    return Err(Failure::Abort(StateError::UnknownSubject {
                        subject: (*missing).to_owned(),
                    }));
                }
            }
            let mut needed = usage;
            for row in tx.query(
                "SELECT octet_length(key), octet_length(value) FROM plugin_state \
                 WHERE tenant = $1 AND plugin = $2 AND key = ANY($3)",
                &[&t, &p, &keys],
            )? {
                let (key, value): (i32, i32) = (row.get(0), row.get(1));
                needed = needed.saturating_sub(entry_size(
                    usize::try_from(key).unwrap_or(0),
                    usize::try_from(value).unwrap_or(0),
                ));
            }
            for (key, value) in put_keys.iter().zip(&put_values) {
                needed = needed.saturating_add(entry_size(key.len(), value.len()));
            }
            if needed > quota && needed > usage {
                return Err(Failure::Abort(StateError::Quota { quota, needed }));
            }
            if !put_keys.is_empty() {
                tx.execute(
                    "INSERT INTO plugin_state (tenant, plugin, key, value) \
                     SELECT $1, $2, k, v FROM unnest($3::bytea[], $4::bytea[]) AS u(k, v) \
                     ON CONFLICT (tenant, plugin, key) DO UPDATE SET value = excluded.value",
                    &[&t, &p, &put_keys, &put_values],
                )?;
            }
            if !deletes.is_empty() {
                tx.execute(
                    "DELETE FROM plugin_state WHERE tenant = $1 AND plugin = $2 AND key = ANY($3)",
                    &[&t, &p, &deletes],
                )?;
            }
            let next = version.checked_add(1).ok_or_else(|| {
                Failure::Abort(StateError::Backend("state version is exhausted".into()))
            })?;
            tx.execute(
                "UPDATE plugin_scopes SET version = $3, usage = $4 \
                 WHERE tenant = $1 AND plugin = $2",
                &[&t, &p, &sql_version(next), &sql_usage(needed)],
            )?;
            Ok(())
        })
        .map_err(into_state)
    }

    fn retire(&self, scope: &StateScope) -> Result<u64, StateError> {
        check_scope(scope)?;
        let (t, p) = (scope.tenant.as_bytes(), scope.plugin.as_bytes());
        // Retired and emptied in one transaction: no write lands between.
        self.transact(|tx| {
            tx.execute(
                "INSERT INTO plugin_scopes (tenant, plugin, version, usage) VALUES ($1, $2, $3, 0) \
                 ON CONFLICT (tenant, plugin) DO UPDATE SET version = excluded.version, usage = 0",
                &[&t, &p, &sql_version(RETIRED)],
            )?;
            let removed = tx.execute(
                "DELETE FROM plugin_state WHERE tenant = $1 AND plugin = $2",
                &[&t, &p],
            )?;
            Ok(removed)
        })
        .map_err(into_state)
    }

    fn scopes(&self, tenant: &str, prefix: &str) -> Result<Vec<StateScope>, StateError> {
        if tenant.len() > MAX_ID_LEN {
            return Ok(Vec::new());
        }
        let end = prefix_end(prefix.as_bytes());
        // Every scope ever written or retired has its row.
        let rows = self.with_state_client(|client| {
            client.query(
                "SELECT plugin FROM plugin_scopes WHERE tenant = $1 \
                 AND plugin >= $2 AND ($3::bytea IS NULL OR plugin < $3) ORDER BY plugin",
                &[&tenant.as_bytes(), &prefix.as_bytes(), &end],
            )
        })?;
        rows.into_iter()
            .map(|row| {
                Ok(StateScope {
                    tenant: tenant.to_owned(),
                    plugin: utf8(row.get(0), "state meta")
                        .map_err(|error| StateError::Backend(error.to_string()))?,
                })
            })
            .collect()
    }
}

impl PgStore {
    /// A scope's (version, usage), (0, 0) if it never held state.
    fn meta(&self, scope: &StateScope) -> Result<(u64, u64), StateError> {
        check_scope(scope)?;
        let row = self.with_state_client(|client| {
            client.query_opt(
                "SELECT version, usage FROM plugin_scopes WHERE tenant = $1 AND plugin = $2",
                &[&scope.tenant.as_bytes(), &scope.plugin.as_bytes()],
            )
        })?;
        Ok(match row {
            Some(row) => (
                stored_version(row.get(0)),
                u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            ),
            None => (0, 0),
        })
    }
}
