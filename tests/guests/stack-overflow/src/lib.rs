//! Hostile: unbounded recursion with tiny frames, which overflows the wasm
//! call stack itself (Trap::StackOverflow).
use tessera_sdk::prelude::*;

struct StackOverflow;

#[inline(never)]
fn down(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    down(n + 1).wrapping_add(std::hint::black_box(1))
}

impl Segment for StackOverflow {
    fn describe() -> Manifest {
        Manifest::new("stack-overflow", "0.1.0", "hostile: recurses without end")
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let depth = down(0);
        Ok(Memberships::from_fn(batch.rows(), |_| depth > 0))
    }
}

tessera_sdk::export_segment!(StackOverflow);
