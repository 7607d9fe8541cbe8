//! Hostile: allocates until memory runs out.
use tessera_sdk::prelude::*;

struct MemoryBomb;

impl Segment for MemoryBomb {
    fn describe() -> Manifest {
        Manifest::new("memory-bomb", "0.1.0", "hostile: allocates without end")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            if hoard.len() == usize::MAX {
                return Ok(Memberships::from_fn(batch.rows(), |_| false));
            }
        }
    }
}

tessera_sdk::export_segment!(MemoryBomb);
