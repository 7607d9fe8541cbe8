//! The tenant write lock shared by every node ([`Store::lock_tenant`]): a
//! PostgreSQL session advisory lock on a pooled connection, held until the
//! guard drops. A node that dies holding it loses its session, and the
//! server releases the lock with it.
//!
//! [`Store::lock_tenant`]: tessera_store::Store::lock_tenant

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use r2d2_postgres::r2d2::PooledConnection;
use tessera_store::{StoreError, TenantLock};

use crate::{Manager, PgStore, backend, off_runtime};

/// Connections that may hold a tenant lock at once: the others stay free for
/// the work done under the locks (a pool of N connections all holding
/// locks would leave none to write with).
#[derive(Debug)]
pub(crate) struct LockSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl LockSlots {
    pub(crate) fn new(pool_size: u32) -> Arc<Self> {
        Arc::new(LockSlots {
            free: Mutex::new(usize::try_from(pool_size / 2).unwrap_or(1).max(1)),
            freed: Condvar::new(),
        })
    }

    fn take(self: &Arc<Self>) -> Slot {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Slot(Arc::clone(self))
    }
}

struct Slot(Arc<LockSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// The lock's key: the deployment's schema and the tenant, hashed by the
/// server (advisory locks are per database, so the schema keeps two
/// deployments in one database apart).
const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended($1, 7365))";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 7365))";

struct Held {
    connection: Option<PooledConnection<Manager>>,
    key: String,
    _slot: Slot,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let key = self.key.clone();
        off_runtime(move || {
            if let Err(error) = connection.execute(UNLOCK, &[&key]) {
                // Never hand back a connection that may still hold the
                // lock: closing it ends the session, which releases it.
                tracing::warn!(%error, "cannot release a tenant write lock; closing its connection");
                let _ = connection.batch_execute("SELECT pg_advisory_unlock_all()");
            }
        });
    }
}

impl PgStore {
    pub(crate) fn tenant_lock(&self, tenant: &str) -> Result<Option<TenantLock>, StoreError> {
        tessera_store::check_id("tenant id", tenant)?;
        let slot = self.lock_slots.take();
        let key = format!("{}\u{1f}{tenant}", self.lock_namespace);
        off_runtime(|| {
            let mut connection = self.client()?;
            connection
                .execute(LOCK, &[&key])
                .map_err(|error| backend(&error))?;
            let held: TenantLock = Box::new(Held {
                connection: Some(connection),
                key,
                _slot: slot,
            });
            Ok(Some(held))
        })
    }
}
