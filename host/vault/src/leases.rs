//! Work a node holds a store lease on while it runs: a segment recompute
//! shard, an import reading its data. The lease stays short (so that a node
//! that dies loses its work to the others soon) and is renewed in the
//! background while the work goes on; dropping the [`HeldLease`] stops the
//! renewals (it neither completes nor releases the job: the worker does
//! that, or the lease runs out).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tessera_store::JobRecord;

use crate::{Vault, VaultError};

/// The worker name of a vault that shares no store: its leases are only
/// ever its own.
pub const LOCAL_WORKER: &str = "local";

/// A lease this node holds and renews every third of its length until
/// dropped.
#[derive(Debug)]
pub struct HeldLease {
    job: String,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl HeldLease {
    /// The job the lease is on.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Whether a renewal found the job gone or held by another worker:
    /// this node's lease ran out (it stalled longer than the lease) and
    /// another node has taken the work over, so this one should stop.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

impl Vault {
    /// The name this node claims store jobs under: its node id when the
    /// store is shared, [`LOCAL_WORKER`] otherwise.
    pub fn worker_id(&self) -> &str {
        self.node_id().unwrap_or(LOCAL_WORKER)
    }

    /// Claims the due job of `kind` that no worker holds for `lease_ms`,
    /// as this node ([`Vault::worker_id`]), and keeps its lease renewed
    /// until the returned [`HeldLease`] is dropped.
    pub fn claim_held(
        &self,
        kind: &str,
        lease_ms: u64,
    ) -> Result<Option<(JobRecord, HeldLease)>, VaultError> {
        let Some(job) = self
            .store()
            .claim_job(kind, self.worker_id(), lease_ms, self.now_ms())?
        else {
            return Ok(None);
        };
        let held = self.hold_lease(&job.id, lease_ms);
        Ok(Some((job, held)))
    }

    /// Keeps renewing the lease this node holds on the job `id` (claimed
    /// with [`tessera_store::Store::claim_job`] as [`Vault::worker_id`])
    /// every third of `lease_ms`, on a thread of its own, until the
    /// returned [`HeldLease`] is dropped. A renewal that fails on a store
    /// error is tried again at the next turn; one that finds the lease
    /// taken marks it [`HeldLease::lost`] and stops.
    pub fn hold_lease(&self, id: &str, lease_ms: u64) -> HeldLease {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let store = Arc::clone(self.store());
        let clock = self.clock.clone();
        let worker = self.worker_id().to_owned();
        let job = id.to_owned();
        let period = Duration::from_millis((lease_ms / 3).max(10));
        let renewer = {
            let lost = Arc::clone(&lost);
            let job = job.clone();
            std::thread::Builder::new()
                .name("tessera-lease".into())
                .spawn(move || {
                    loop {
                        match stopped.recv_timeout(period) {
                            Err(RecvTimeoutError::Timeout) => {}
                            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                        }
                        match store.renew_job(&job, &worker, lease_ms, clock()) {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(
                                    %job, %worker,
                                    "a lease ran out and another worker took the job over"
                                );
                                lost.store(true, Ordering::Relaxed);
                                return;
                            }
                            Err(error) => {
                                tracing::warn!(%job, %error, "cannot renew a lease; trying again");
                            }
                        }
                    }
                })
        };
        let renewer = match renewer {
            Ok(handle) => Some(handle),
            Err(error) => {
                // Without a renewer the lease lasts its first term: the
                // work may be taken over and done twice, which every
                // leased job tolerates.
                tracing::warn!(%error, job = %id, "cannot start a lease renewer");
                None
            }
        };
        HeldLease {
            job,
            lost,
            stop: Some(stop),
            renewer,
        }
    }
}
