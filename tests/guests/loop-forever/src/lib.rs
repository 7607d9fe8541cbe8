//! Hostile: never returns. Stopped by fuel, or by the epoch deadline when fuel is plentiful.
use tessera_sdk::prelude::*;

struct LoopForever;

impl Segment for LoopForever {
    fn describe() -> Manifest {
        // Works for a purpose people consent to, so that a server calls it
        // on their data (the soak benchmark installs it as a segment plugin).
        Manifest::new("loop-forever", "0.1.0", "hostile: spins forever").purpose("personalization")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let mut x = batch.rows() as u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

tessera_sdk::export_segment!(LoopForever);
