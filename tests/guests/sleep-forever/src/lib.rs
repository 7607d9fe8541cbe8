//! Hostile: sleeps (waits on a WASI clock pollable) for decades, which would
//! park a host thread where neither fuel nor the epoch deadline reaches.
use std::time::Duration;

use tessera_sdk::prelude::*;

struct SleepForever;

impl Segment for SleepForever {
    fn describe() -> Manifest {
        Manifest::new("sleep-forever", "0.1.0", "hostile: blocks the host thread")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        std::thread::sleep(Duration::from_secs(1 << 30));
        Ok(Memberships::from_fn(batch.rows(), |_| false))
    }
}

tessera_sdk::export_segment!(SleepForever);
