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
    Migration {
        version: 3,
        name: "erasure_ledger",
        sql: include_str!("../migrations/0003_erasure_ledger.sql"),
    },
];

/// The migrations of a key database of its own (`storage.keys_url`):
/// the subject keys and the erasure ledger, nothing of the records. They
/// create only what is missing, so they may also run on a schema that the
/// records' migrations already gave these tables.
pub const KEY_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "subject_keys_and_erasure_ledger",
    sql: include_str!("../migrations/keys/0001_subject_keys_and_erasure_ledger.sql"),
}];

/// Brings the schema in the connection's `search_path` up to this build's.
pub(crate) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    run(
        client,
        "tessera_schema_migrations",
        "tessera migrations ",
        MIGRATIONS,
    )
}

/// Brings a key database's schema up to this build's ([`KEY_MIGRATIONS`]).
pub(crate) fn migrate_keys(client: &mut Client) -> Result<(), StoreError> {
    run(
        client,
        "tessera_key_schema_migrations",
        "tessera key migrations ",
        KEY_MIGRATIONS,
    )
}

/// Applies what `table` does not list of `migrations`, under an advisory
/// lock named by `lock` and the schema.
fn run(
    client: &mut Client,
    table: &str,
    lock: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let latest = migrations.last().map_or(0, |m| m.version);
    let mut tx = client.transaction().map_err(|e| backend(&e))?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('{lock}' || \
         coalesce(current_schema(), '')));
         CREATE TABLE IF NOT EXISTS {table} (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .map_err(|e| backend(&e))?;
    let applied: Vec<u32> = tx
        .query(
            &format!("SELECT version FROM {table} ORDER BY version"),
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
    for migration in migrations {
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
            &format!("INSERT INTO {table} (version, name) VALUES ($1, $2)"),
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
    use super::{KEY_MIGRATIONS, MIGRATIONS};

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for list in [MIGRATIONS, KEY_MIGRATIONS] {
            for (n, migration) in list.iter().enumerate() {
                assert_eq!(migration.version as usize, n + 1, "{}", migration.name);
                assert!(!migration.sql.trim().is_empty());
            }
        }
    }
}
