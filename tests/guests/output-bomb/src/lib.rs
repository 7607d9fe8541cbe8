//! Hostile: returns a result far larger than the output cap (16 MiB of scores
//! and a huge tier dictionary), though within its memory limit.
use tessera_sdk::TextColumn;
use tessera_sdk::prelude::*;

struct OutputBomb;

impl Segment for OutputBomb {
    fn describe() -> Manifest {
        Manifest::new("output-bomb", "0.1.0", "hostile: floods its result")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let rows = batch.rows();
        let word = "x".repeat(1 << 10);
        Ok(Memberships {
            member: vec![1; rows],
            scores: vec![1.0; 2_000_000],
            tiers: Some(TextColumn {
                dictionary: vec![word; 8_192],
                codes: vec![0; rows],
            }),
        })
    }
}

tessera_sdk::export_segment!(OutputBomb);
