//! Verbatim copies into PostgreSQL of what another backend holds, for
//! `tessera migrate`: audit entries under their own sequence numbers and
//! plugin state with its scope's version, which the [`Store`](tessera_store::Store)
//! writes, built for live use, would renumber.
//!
//! Both are idempotent: a row already stored is left as it is (the caller
//! compares before it copies, and verifies after), so an interrupted copy is
//! finished by running it again.

use tessera_state::StateScope;
use tessera_store::{AuditRecord, StoreError, check_id};

use crate::{Fail, PgStore};

impl PgStore {
    /// Stores audit entries of `tenant` under their own sequence numbers,
    /// skipping any number already stored, and moves the tenant's audit head
    /// up to `head` (never down). A source whose head is past its last entry
    /// (a removed entry, a restarted chain) is copied as it is, so that
    /// verifying the chain on the copy finds what it found on the original.
    pub fn copy_audit(
        &self,
        tenant: &str,
        entries: &[AuditRecord],
        head: u64,
    ) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let t = tenant.as_bytes();
        let seqs = entries
            .iter()
            .map(|entry| {
                i64::try_from(entry.seq)
                    .ok()
                    .filter(|&seq| seq >= 1)
                    .ok_or(StoreError::InvalidAuditSeq)
            })
            .collect::<Result<Vec<i64>, _>>()?;
        let data: Vec<&[u8]> = entries.iter().map(|entry| entry.data.as_slice()).collect();
        let head = i64::try_from(head).map_err(|_| StoreError::InvalidAuditSeq)?;
        self.transact(|tx| {
            if !seqs.is_empty() {
                tx.execute(
                    "INSERT INTO audit (tenant, seq, entry) \
                     SELECT $1, s, e FROM unnest($2::bigint[], $3::bytea[]) AS u(s, e) \
                     ON CONFLICT (tenant, seq) DO NOTHING",
                    &[&t, &seqs, &data],
                )?;
            }
            if head >= 1 {
                tx.execute(
                    "INSERT INTO audit_heads (tenant, head) VALUES ($1, $2) \
                     ON CONFLICT (tenant) DO UPDATE \
                     SET head = GREATEST(audit_heads.head, EXCLUDED.head)",
                    &[&t, &head],
                )?;
            }
            Ok(())
        })
        .map_err(Fail::into_store)
    }

    /// Stores entries of a plugin state scope as they are, skipping keys
    /// already stored, and sets the scope's version and usage to the
    /// original's (a retired scope stays retired: its version is
    /// [`tessera_state::RETIRED`]).
    pub fn copy_state(
        &self,
        scope: &StateScope,
        version: u64,
        usage: u64,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        check_id("tenant id", &scope.tenant)?;
        check_id("plugin id", &scope.plugin)?;
        let (t, p) = (scope.tenant.as_bytes(), scope.plugin.as_bytes());
        let keys: Vec<&[u8]> = entries.iter().map(|(key, _)| key.as_bytes()).collect();
        let values: Vec<&[u8]> = entries.iter().map(|(_, value)| value.as_slice()).collect();
        // Stored bit for bit, as the backend's own writes do (RETIRED is -1).
        let version = version.cast_signed();
        let usage = i64::try_from(usage).unwrap_or(i64::MAX);
        self.transact(|tx| {
            if !keys.is_empty() {
                tx.execute(
                    "INSERT INTO plugin_state (tenant, plugin, key, value) \
                     SELECT $1, $2, k, v FROM unnest($3::bytea[], $4::bytea[]) AS u(k, v) \
                     ON CONFLICT (tenant, plugin, key) DO NOTHING",
                    &[&t, &p, &keys, &values],
                )?;
            }
            tx.execute(
                "INSERT INTO plugin_scopes (tenant, plugin, version, usage) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, plugin) DO UPDATE \
                 SET version = EXCLUDED.version, usage = EXCLUDED.usage",
                &[&t, &p, &version, &usage],
            )?;
            Ok(())
        })
        .map_err(Fail::into_store)
    }
}
