//! The schema's versioned migrations (`migrations/NNNN_name.sql`), applied in
//! order when a store opens; it must never change a migration once released.
//!
//! Opening takes a transaction-scoped advisory lock for the schema, creates
//! `tessera_schema_migrations` if missing, applies each migration that table
//! does not list and records it, all in one transaction: nodes that start
//! together migrate once, and a failed migration leaves nothing behind.

use r2d2_postgres::postgres::Client;
use tessera_store::StoreError;

use crate::backend;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, …: applied in this order, each once.
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this build knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "subject_keys",
        sql: include_str!("../migrations/0002_subject_keys.sql"),
    },
];

/// Brings the schema in the connection's `search_path` up to this build's.
pub(crate) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    let mut tx = client.transaction().map_err(|e| backend(&e))?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('tessera migrations ' || \
         coalesce(current_schema(), '')));
         CREATE TABLE IF NOT EXISTS tessera_schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .map_err(|e| backend(&e))?;
    let applied: Vec<u32> = tx
        .query(
            "SELECT version FROM tessera_schema_migrations ORDER BY version",
            &[],
        )
        .map_err(|e| backend(&e))?
        .iter()
        .map(|row| u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX))
        .collect();
    if let Some(&found) = applied.iter().max()
        && found > latest
    {
        return Err(StoreError::Schema {
            found,
            expected: latest,
        });
    }
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql)
            .map_err(|e| StoreError::Backend {
                detail: format!(
                    "PostgreSQL refused migration {} ({}): {}",
                    migration.version,
                    migration.name,
                    crate::error_detail(&e)
                ),
            })?;
        tx.execute(
            "INSERT INTO tessera_schema_migrations (version, name) VALUES ($1, $2)",
            &[
                &i32::try_from(migration.version).unwrap_or(i32::MAX),
                &migration.name,
            ],
        )
        .map_err(|e| backend(&e))?;
    }
    tx.commit().map_err(|e| backend(&e))
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (n, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, n + 1, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty());
        }
    }
}
