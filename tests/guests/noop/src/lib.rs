//! Honest: does nothing, as cheaply as possible (benchmark baseline).
use tessera_sdk::prelude::*;

struct Noop;

impl Segment for Noop {
    fn describe() -> Manifest {
        Manifest::new("noop", "0.1.0", "does nothing")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        Ok(Memberships::from_fn(batch.rows(), |_| false))
    }
}

tessera_sdk::export_segment!(Noop);
