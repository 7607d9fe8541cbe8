//! Hostile: floods the host with calls. Parameter `attack`: `log` (endless
//! short lines), `log-bytes` (endless 64 KiB lines), `state` (endless writes),
//! `clock` (endless clock reads); or `write-then-fail` (one state write, then
//! an error: the write must not be kept).
use tessera_sdk::host::{self, Level};
use tessera_sdk::prelude::*;
use tessera_sdk::state;

struct HostFlood;

impl Segment for HostFlood {
    fn describe() -> Manifest {
        Manifest::new("host-flood", "0.1.0", "hostile: floods host calls").param(
            ParamSpec::text("attack", "which flood")
                .choices(&["log", "log-bytes", "state", "clock", "write-then-fail"])
                .required(),
        )
    }
    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let attack = params.text("attack")?;
        if attack == "write-then-fail" {
            state::put("written", b"by a call that then failed")?;
            return Err(Error::internal("failing after a state write"));
        }
        let big = "x".repeat(64 << 10);
        let mut i: u64 = 0;
        loop {
            match attack {
                "log" => host::log(Level::Info, "flood"),
                "log-bytes" => host::log(Level::Info, &big),
                "state" => {
                    let _ = state::put(&format!("k{i}"), b"0123456789");
                }
                _ => {
                    std::hint::black_box(host::now());
                }
            }
            i += 1;
            if i == u64::MAX {
                return Ok(Memberships::from_fn(batch.rows(), |_| false));
            }
        }
    }
}

tessera_sdk::export_segment!(HostFlood);
