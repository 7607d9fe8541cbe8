//! Keeping a node's caches in step with the other nodes that share its store:
//! a per-tenant change mark that writers move and every node polls.
//!
//! Several `tessera serve` nodes on one PostgreSQL database each keep some
//! things in memory (tenant settings and unwrapped subject keys here, the
//! API's verified tokens, the plugin registry's loaded plugins). A change
//! that the others must see (a token revoked, a plugin installed or
//! quarantined, settings edited, a subject erased) ends by moving the
//! tenant's change mark, a store document of kind [`CHANGES_DOC`] holding
//! random bytes ([`Vault::announce_change`]). Each node reads every
//! tenant's mark once per poll interval ([`Vault::poll_changes`]); a mark
//! that differs from the one it last read makes it drop that tenant's
//! caches and tell its [`RemoteChangeListener`]s. A mark is compared for
//! equality only, so two writers racing never hide each other's change,
//! and a node's own changes come back to it too (a harmless reload).
//!
//! A single node with its own key store (sled, or PostgreSQL with the key
//! file) shares nothing: nothing is announced or polled there.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::VaultError;
use crate::vault::{Vault, lock, random_id};

/// The store document kind of the tenants' change marks (one document,
/// id [`CHANGES_ID`], per tenant).
pub const CHANGES_DOC: &str = "cluster-changes";
/// The id of a tenant's change mark.
pub const CHANGES_ID: &str = "mark";

/// Told when another node (or this one) changed something of a tenant
/// that nodes cache: drop or reload it. Called on the polling thread.
pub trait RemoteChangeListener: Send + Sync {
    fn tenant_changed(&self, tenant: &str);
}

/// What this node last read of each tenant's mark, and a local generation
/// per tenant that moves whenever its caches were dropped.
#[derive(Default)]
pub(crate) struct Changes {
    seen: Mutex<HashMap<String, Option<Vec<u8>>>>,
    generations: Mutex<HashMap<String, u64>>,
    listeners: RwLock<Vec<Arc<dyn RemoteChangeListener>>>,
}

/// This node's name, from the file [`crate::NODE_ID_FILE`] in its key
/// directory (created with a random name the first time), and the lock on
/// that file, held as long as the vault lives.
pub(crate) struct NodeIdentity {
    id: String,
    // Held for its lock.
    _file: File,
}

impl NodeIdentity {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Reads (or creates) and locks the node file at `path`.
    pub(crate) fn claim(path: &Path) -> Result<Self, VaultError> {
        let problem = |detail: String| VaultError::KeyDir {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| problem(format!("cannot open the node file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(VaultError::NodeInUse {
                    path: PathBuf::from(path),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(problem(format!("cannot lock the node file: {e}")));
            }
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| problem(format!("cannot read the node file: {e}")))?;
        let id = text.trim().to_owned();
        let id = if id.is_empty() {
            let id = random_id()?;
            file.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| problem(format!("cannot write the node file: {e}")))?;
            id
        } else if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            id
        } else {
            return Err(problem(
                "the node file does not hold a node name (32 hex digits); remove it to get a \
                 new name"
                    .into(),
            ));
        };
        Ok(Self { id, _file: file })
    }
}

impl Vault {
    /// Adds a listener told when a tenant's cached state may have changed
    /// on another node ([`RemoteChangeListener`]).
    pub fn on_remote_change(&self, listener: Arc<dyn RemoteChangeListener>) {
        self.changes
            .listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// How many times this node dropped its caches of `tenant`: a value
    /// read with something cached is stale once this has moved on.
    pub fn cache_generation(&self, tenant: &str) -> u64 {
        lock(&self.changes.generations)
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    /// Tells the other nodes that something of `tenant` they may cache
    /// changed: moves the tenant's change mark. Call it after the change is
    /// stored. Does nothing when nothing is shared.
    pub fn announce_change(&self, tenant: &str) -> Result<(), VaultError> {
        if !self.is_shared() {
            return Ok(());
        }
        let mark = random_id()?;
        self.store
            .put_document(tenant, CHANGES_DOC, CHANGES_ID, mark.as_bytes())?;
        Ok(())
    }

    /// [`Vault::announce_change`] for a change already made, which must
    /// not fail because of it: a failure is logged, and the others then
    /// see the change at their next full reload only.
    pub fn announce_change_or_log(&self, tenant: &str) {
        if let Err(error) = self.announce_change(tenant) {
            tracing::error!(%tenant, %error, "other nodes were not told of a change");
        }
    }

    /// Reads every tenant's change mark and, for each one that moved since
    /// the last poll (or is read for the first time), drops this node's
    /// caches of that tenant and tells the listeners. Returns the tenants
    /// that changed. The server calls it every poll interval when the
    /// store is shared.
    pub fn poll_changes(&self) -> Result<Vec<String>, VaultError> {
        let mut changed = Vec::new();
        for tenant in self.store.tenants()? {
            let mark = self.store.document(&tenant.id, CHANGES_DOC, CHANGES_ID)?;
            let moved = {
                let mut seen = lock(&self.changes.seen);
                let moved = seen.get(&tenant.id) != Some(&mark);
                if moved {
                    seen.insert(tenant.id.clone(), mark);
                }
                moved
            };
            if moved {
                self.forget_cached(&tenant.id)?;
                *lock(&self.changes.generations)
                    .entry(tenant.id.clone())
                    .or_insert(0) += 1;
                let listeners = self
                    .changes
                    .listeners
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                for listener in listeners {
                    listener.tenant_changed(&tenant.id);
                }
                changed.push(tenant.id);
            }
        }
        Ok(changed)
    }
}
