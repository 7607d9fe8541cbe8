//! Hostile: tries to reach outside the sandbox through WASI — files, the
//! environment, arguments, sockets, stdin. Row i of the result is true if
//! probe i got through; every probe must fail.
use std::io::Read;

use tessera_sdk::host::{self, Level};
use tessera_sdk::prelude::*;

struct WasiProbe;

/// A probe returns Ok(what it reached) if it escaped, Err(why not) otherwise.
type Probe = fn() -> Result<String, String>;

fn probes() -> Vec<(&'static str, Probe)> {
    vec![
        ("read /etc/passwd", || {
            std::fs::read_to_string("/etc/passwd")
                .map(|s| s[..s.len().min(16)].to_string())
                .map_err(|e| e.to_string())
        }),
        ("write /tmp", || {
            std::fs::write("/tmp/tessera-escape", b"x")
                .map(|_| "wrote".into())
                .map_err(|e| e.to_string())
        }),
        ("list /", || {
            std::fs::read_dir("/")
                .map(|d| format!("{} entries", d.count()))
                .map_err(|e| e.to_string())
        }),
        ("read env", || {
            std::env::vars()
                .next()
                .map(|(k, _)| k)
                .ok_or_else(|| "no variables".into())
        }),
        ("read HOME", || {
            std::env::var("HOME").map_err(|e| e.to_string())
        }),
        ("read args", || {
            std::env::args().next().ok_or_else(|| "no arguments".into())
        }),
        ("tcp connect", || {
            std::net::TcpStream::connect("127.0.0.1:22")
                .map(|_| "connected".into())
                .map_err(|e| e.to_string())
        }),
        ("tcp listen", || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .map(|_| "listening".into())
                .map_err(|e| e.to_string())
        }),
        ("udp bind", || {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .map(|_| "bound".into())
                .map_err(|e| e.to_string())
        }),
        ("read stdin", || {
            let mut buf = Vec::new();
            match std::io::stdin().read_to_end(&mut buf) {
                Ok(n) if n > 0 => Ok(format!("{n} bytes")),
                Ok(_) => Err("empty".into()),
                Err(e) => Err(e.to_string()),
            }
        }),
    ]
}

impl Segment for WasiProbe {
    fn describe() -> Manifest {
        Manifest::new(
            "wasi-probe",
            "0.1.0",
            "hostile: probes WASI for ambient authority",
        )
    }
    fn evaluate(_: &Params, batch: &Batch) -> Result<Memberships, Error> {
        println!("stdout goes nowhere");
        eprintln!("stderr goes nowhere");
        let probes = probes();
        if batch.rows() != probes.len() {
            return Err(Error::input(format!(
                "send {} rows, one per probe",
                probes.len()
            )));
        }
        let escaped: Vec<bool> = probes
            .iter()
            .map(|(name, probe)| match probe() {
                Ok(what) => {
                    host::log(Level::Error, &format!("{name}: escaped ({what})"));
                    true
                }
                Err(why) => {
                    host::log(Level::Info, &format!("{name}: denied ({why})"));
                    false
                }
            })
            .collect();
        Ok(Memberships::from_bools(escaped))
    }
}

tessera_sdk::export_segment!(WasiProbe);
