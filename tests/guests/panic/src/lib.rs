//! Hostile (or merely buggy): panics.
use tessera_sdk::prelude::*;

struct Panics;

impl Segment for Panics {
    fn describe() -> Manifest {
        Manifest::new("panic", "0.1.0", "hostile: panics")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let index = std::hint::black_box(batch.rows() + 10);
        let rows = vec![false; batch.rows()];
        Ok(Memberships::from_fn(batch.rows(), |_| rows[index]))
    }
}

tessera_sdk::export_segment!(Panics);
