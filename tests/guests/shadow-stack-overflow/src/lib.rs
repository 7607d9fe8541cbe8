//! Hostile: recursion with large frames, which exhausts the shadow stack in
//! linear memory before the wasm stack (usually Trap::MemoryOutOfBounds).
use tessera_sdk::prelude::*;

struct ShadowStackOverflow;

#[inline(never)]
fn down(n: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(n % 4096) as usize] = n as u8;
    let frame = std::hint::black_box(frame);
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    down(n + 1).wrapping_add(frame[7] as u64)
}

impl Segment for ShadowStackOverflow {
    fn describe() -> Manifest {
        Manifest::new(
            "shadow-stack-overflow",
            "0.1.0",
            "hostile: recurses with big frames",
        )
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let depth = down(0);
        Ok(Memberships::from_fn(batch.rows(), |_| depth > 0))
    }
}

tessera_sdk::export_segment!(ShadowStackOverflow);
