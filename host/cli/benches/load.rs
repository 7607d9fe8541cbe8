//! Load benchmark of `tessera serve` over loopback: batched Segment ingest
//! (`POST /v1/batch`) and a no-op endpoint (`GET /healthz`) in the same run,
//! plus the in-process rate of the same work without HTTP.
//!
//! ```sh
//! cargo bench -p tessera --bench load                       # 15 s per phase, 4 connections
//! cargo bench -p tessera --bench load -- --seconds 5 --connections 8
//! cargo bench -p tessera --bench load -- --server /path/to/other/tessera   # compare two builds
//! ```
//!
//! Results and their reading are in `docs/BENCHMARKS.md` (section 5).
//!
//! What it does:
//!
//! 1. Creates a deployment in a temporary directory and starts the real
//!    server, `tessera serve --init --tenant bench --listen 127.0.0.1:0`, as a
//!    child process (client and server are separate processes, as in
//!    production), with the rate limit off (`TESSERA_RATE_LIMIT_RPS=0`: the
//!    default of 200 requests a second per tenant would be the bottleneck).
//! 2. Creates an `ingest` token (the write key) over the API and seeds 1,000
//!    known people (identify calls with an email and a first name), untimed.
//! 3. `ingest`, twice: K connections (HTTP/1.1 keep-alive, one request in
//!    flight each) post batches of [`BATCH`] messages with unique
//!    `messageId`s, first of the `known` mix (only the seeded people: the
//!    steady state), then of the `mixed` one (new people and anonymous
//!    visitors too; see [`Mix`]). Each phase has a warm-up, then is measured,
//!    bounded by time (`--seconds`) and by count (`--max-requests`).
//! 4. `no-op`: the same K connections `GET /healthz` for the same time.
//! 5. Stops the server (SIGTERM: it flushes and exits 0).
//!
//! Before the server starts, the same batches run in this process, on one
//! thread, without HTTP: parse and convert (`tessera_api::segment`) and
//! `Vault::ingest_batch` on a fresh vault seeded the same way, for each mix:
//! what the server does per batch, minus HTTP, authentication and
//! scheduling. That is the baseline the HTTP rates are divided by.
//!
//! Every answer must be 200 with no refused message; any other answer is
//! counted as an error and the run fails (exit 1) if there is one.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Connection, Flags, Server, max_ms, micros, percentile_ms};
use hyper::http::{Method, StatusCode};
use serde_json::Value;
use tessera_api::segment::{self, Defaults};
use tessera_privacy::MasterKey;
use tessera_vault::{Actor, TenantSettings, Vault};

/// The server's allocator, so that the in-process baseline runs the vault
/// as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";
/// Messages per ingest request.
const BATCH: usize = 100;
/// People identified before the measurement.
const KNOWN: u64 = 1_000;
/// Device ids of anonymous visitors.
const DEVICES: u64 = 5_000;
const EVENTS: [&str; 4] = [
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
];

#[derive(Debug, Clone)]
struct Options {
    seconds: f64,
    warmup: f64,
    connections: usize,
    max_requests: u64,
    /// Another `tessera` binary to serve (to compare two builds).
    server: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &["--seconds", "--warmup", "--connections", "--max-requests"],
            &[],
        )?;
        Ok(Self {
            seconds: flags.number("--seconds", 15.0, 0.1..=600.0)?,
            warmup: flags.number("--warmup", 3.0, 0.0..=60.0)?,
            connections: flags.number("--connections", 4.0, 1.0..=256.0)? as usize,
            max_requests: flags.number("--max-requests", 100_000.0, 1.0..=1e9)? as u64,
            server: flags.text("--server"),
        })
    }
}

/// Who the messages are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Only the [`KNOWN`] people: 10 % identify, 20 % page, 70 % track (the
    /// steady state, as `vault_known` in the vault's benchmark).
    Known,
    /// 5 % identify calls of new people, 5 % identify calls of known people,
    /// 70 % track and 10 % page calls of known people, 10 % page calls of
    /// anonymous visitors (a pool of [`DEVICES`] device ids).
    Mixed,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Known => "known",
            Mix::Mixed => "mixed",
        }
    }
}

/// Generates Segment messages: every `messageId` and new person is unique
/// across the whole run (all connections share the counter).
#[derive(Debug)]
struct Workload {
    mix: Mix,
    next: AtomicU64,
}

impl Workload {
    fn new(mix: Mix) -> Self {
        Self {
            mix,
            next: AtomicU64::new(0),
        }
    }

    /// A `/v1/batch` body of [`BATCH`] messages.
    fn batch(&self) -> String {
        let first = self.next.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut body = String::with_capacity(BATCH * 300);
        body.push_str("{\"batch\":[");
        for n in first..first + BATCH as u64 {
            if n > first {
                body.push(',');
            }
            message(&mut body, n, self.mix);
        }
        body.push_str("],\"sentAt\":\"");
        body.push_str(&now_iso());
        body.push_str("\"}");
        body
    }
}

/// Message `n` of `mix`.
fn message(out: &mut String, n: u64, mix: Mix) {
    // A scattered walk over the known people (7919 is prime to 1,000).
    let known = n * 7_919 % KNOWN;
    let context = r#""context":{"library":{"name":"tessera-load","version":"1"},"ip":"127.0.0.1"}"#;
    let prefix = mix.name();
    let case = match (mix, n % 20) {
        // Known: an identify of a known person, page calls, track calls.
        (Mix::Known, 0 | 1) => 1,
        (Mix::Known, 2..=5) => 2,
        (Mix::Known, _) => 6,
        (Mix::Mixed, case) => case,
    };
    let _ = match case {
        0 => write!(
            out,
            r#"{{"type":"identify","userId":"new-{prefix}-{n}","messageId":"{prefix}-{n}","traits":{{"email":"new{n}@load.example","firstName":"New {n}","city":"Lyon"}},{context}}}"#
        ),
        1 => write!(
            out,
            r#"{{"type":"identify","userId":"u-{known}","messageId":"{prefix}-{n}","traits":{{"tier":"gold","lifetimeValue":{}}},{context}}}"#,
            100 + n % 900
        ),
        2 | 3 => write!(
            out,
            r#"{{"type":"page","userId":"u-{known}","messageId":"{prefix}-{n}","name":"Product","properties":{{"path":"/products/sku-{}","referrer":"https://search.example/?q=shoes"}},{context}}}"#,
            n % 20_000
        ),
        4 | 5 => write!(
            out,
            r#"{{"type":"page","anonymousId":"dev-{}","messageId":"{prefix}-{n}","name":"Home","properties":{{"path":"/","referrer":"https://ads.example/c/42"}},{context}}}"#,
            n * 31 % DEVICES
        ),
        _ => write!(
            out,
            r#"{{"type":"track","userId":"u-{known}","messageId":"{prefix}-{n}","event":"{}","properties":{{"sku":"SKU-{:05}","price":{}.90,"quantity":{},"currency":"EUR"}},{context}}}"#,
            EVENTS[(n % 4) as usize],
            n % 20_000,
            20 + n % 180,
            1 + n % 3
        ),
    };
}

/// The seed: one identify call for each known person.
fn seed_batches() -> Vec<String> {
    (0..KNOWN)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|people| {
            let messages: Vec<String> = people
                .iter()
                .map(|p| {
                    format!(
                        r#"{{"type":"identify","userId":"u-{p}","messageId":"seed-{p}","traits":{{"email":"person{p}@load.example","firstName":"Person {p}"}}}}"#
                    )
                })
                .collect();
            format!("{{\"batch\":[{}]}}", messages.join(","))
        })
        .collect()
}

fn now_iso() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Phase {
    elapsed: Duration,
    requests: u64,
    messages: u64,
    events_inserted: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn merge(&mut self, other: Phase) {
        self.requests += other.requests;
        self.messages += other.messages;
        self.events_inserted += other.events_inserted;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Ingest,
    Noop,
}

/// Runs `target` on `connections` connections until `until` or until
/// `max_requests` requests were sent in all.
async fn run_phase(
    address: &str,
    authorization: Arc<String>,
    workload: Arc<Workload>,
    target: Target,
    connections: usize,
    duration: Duration,
    max_requests: u64,
) -> Result<Phase, String> {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut connection = Connection::open(address).await?;
        let authorization = authorization.clone();
        let workload = workload.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut phase = Phase::default();
            while Instant::now() < until && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
                let (method, path, auth, body) = match target {
                    Target::Ingest => (
                        Method::POST,
                        "/v1/batch",
                        Some(authorization.as_str()),
                        Some(workload.batch()),
                    ),
                    Target::Noop => (Method::GET, "/healthz", None, None),
                };
                let began = Instant::now();
                let answer = connection.send(method, path, auth, body).await;
                let latency = began.elapsed();
                phase.requests += 1;
                phase.latencies_us.push(micros(latency));
                let failure = match answer {
                    Err(error) => Some(error),
                    Ok((status, body)) if status != StatusCode::OK => Some(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )),
                    Ok((_, body)) if target == Target::Ingest => {
                        let report: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let accepted = report["accepted"].as_u64().unwrap_or(0);
                        phase.messages += accepted;
                        phase.events_inserted += report["events_inserted"].as_u64().unwrap_or(0);
                        (accepted != BATCH as u64)
                            .then(|| format!("not every message was accepted: {report}"))
                    }
                    Ok(_) => None,
                };
                if let Some(failure) = failure {
                    phase.errors += 1;
                    phase.first_error.get_or_insert(failure);
                    if phase.errors > 100 {
                        break;
                    }
                    // A broken connection is replaced.
                    if connection.reopen_if_closed().await.is_err() {
                        break;
                    }
                }
            }
            phase
        }));
    }
    let mut total = Phase::default();
    for task in tasks {
        total.merge(task.await.map_err(|e| e.to_string())?);
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// The same work as the server's per batch, in this process on one thread:
/// parse and convert every message, then `ingest_batch`.
#[derive(Debug, Default)]
struct InProcess {
    batches: u64,
    messages: u64,
    convert: Duration,
    vault: Duration,
}

fn in_process(dir: &Path, mix: Mix, duration: Duration) -> Result<InProcess, String> {
    let vault = Vault::open(
        dir.join("data"),
        dir.join("keys"),
        MasterKey::generate().map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let actor = Actor::new("operator", "bench");
    vault
        .create_tenant(TENANT, TenantSettings::default(), &actor)
        .map_err(|e| e.to_string())?;
    let settings = vault.settings(TENANT).map_err(|e| e.to_string())?;
    let ingest = Actor::new("ingest", "bench");
    let run = |body: &str, result: &mut InProcess| -> Result<(), String> {
        let began = Instant::now();
        #[derive(serde::Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            batch: Vec<&'a serde_json::value::RawValue>,
        }
        let parsed: Body<'_> = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let now = tessera_now_ms();
        let items = parsed
            .batch
            .iter()
            .map(|raw| {
                segment::parse(raw.get())
                    .and_then(|m| segment::convert(m, None, &Defaults::default(), &settings, now))
                    .map_err(|e| e.message)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let converted = Instant::now();
        vault
            .ingest_batch(TENANT, &items, &ingest)
            .map_err(|e| e.to_string())?;
        result.convert += converted - began;
        result.vault += converted.elapsed();
        result.batches += 1;
        result.messages += items.len() as u64;
        Ok(())
    };
    let mut seed = InProcess::default();
    for body in seed_batches() {
        run(&body, &mut seed)?;
    }
    let workload = Workload::new(mix);
    let mut result = InProcess::default();
    let warmup_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < warmup_until {
        run(&workload.batch(), &mut InProcess::default())?;
    }
    let until = Instant::now() + duration;
    while Instant::now() < until {
        run(&workload.batch(), &mut result)?;
    }
    Ok(result)
}

fn tessera_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn row(name: &str, phase: &Phase, per_request: u64) -> String {
    let rps = phase.per_second(phase.requests);
    format!(
        "| {name} | {:.0} | {rps:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
        rps * per_request as f64,
        phase.percentile_ms(50.0),
        phase.percentile_ms(99.0),
        max_ms(&phase.latencies_us),
        phase.requests,
        phase.errors,
    )
}

/// What the server phases measured.
#[derive(Debug)]
struct Measured {
    known: Phase,
    mixed: Phase,
    noop: Phase,
}

async fn measure(options: &Options, server: &Server) -> Result<Measured, String> {
    let address = server.address.as_str();
    let mut admin = Connection::open(address).await?;
    let operator = format!("Bearer {}", server.operator);
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/tokens",
            Some(&operator),
            Some(r#"{"role":"ingest","name":"load benchmark"}"#.into()),
        )
        .await?;
    if status != StatusCode::CREATED {
        return Err(format!(
            "creating the ingest token: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let created: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let write_key = created["token"].as_str().ok_or("no token")?.to_owned();
    let authorization = Arc::new(format!("Bearer {write_key}"));
    for body in seed_batches() {
        let (status, answer) = admin
            .send(Method::POST, "/v1/batch", Some(&authorization), Some(body))
            .await?;
        if status != StatusCode::OK {
            return Err(format!(
                "seeding: {status} {}",
                String::from_utf8_lossy(&answer)
            ));
        }
    }
    let k = options.connections;
    let seconds = Duration::from_secs_f64(options.seconds);
    let warmup = Duration::from_secs_f64(options.warmup);
    let phase = async |target: Target, mix: Mix, workload: &Arc<Workload>| {
        if !warmup.is_zero() {
            let warm = run_phase(
                address,
                authorization.clone(),
                workload.clone(),
                target,
                k,
                warmup,
                u64::MAX,
            )
            .await?;
            if warm.errors > 0 {
                return Err(format!(
                    "warm-up of {target:?} ({}): {} errors, first: {}",
                    mix.name(),
                    warm.errors,
                    warm.first_error.unwrap_or_default()
                ));
            }
        }
        let max = match target {
            Target::Ingest => options.max_requests,
            Target::Noop => options.max_requests.saturating_mul(BATCH as u64),
        };
        run_phase(
            address,
            authorization.clone(),
            workload.clone(),
            target,
            k,
            seconds,
            max,
        )
        .await
    };
    let known = Arc::new(Workload::new(Mix::Known));
    let mixed = Arc::new(Workload::new(Mix::Mixed));
    Ok(Measured {
        known: phase(Target::Ingest, Mix::Known, &known).await?,
        mixed: phase(Target::Ingest, Mix::Mixed, &mixed).await?,
        noop: phase(Target::Noop, Mix::Known, &known).await?,
    })
}

fn main() -> ExitCode {
    common::exit_code(run(), "load benchmark")
}

fn run() -> Result<bool, String> {
    let options = Options::parse()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!(
        "tessera load benchmark: {} connection(s), {} s per phase after {} s of warm-up, batches of {BATCH}, {} cores",
        options.connections,
        options.seconds,
        options.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    // In process first: the server's log (a line per request) is not yet
    // being written back to the disk the vault syncs to.
    println!("in process: the batches of both mixes, one thread, no HTTP …");
    let seconds = Duration::from_secs_f64(options.seconds);
    let local_known = in_process(&dir.path().join("in-process-known"), Mix::Known, seconds)?;
    let local_mixed = in_process(&dir.path().join("in-process-mixed"), Mix::Mixed, seconds)?;
    let tessera = options
        .server
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_tessera"));
    let server = Server::start(&dir.path().join("server"), tessera, TENANT, &[])?;
    println!("server: tessera serve on http://{}", server.address);
    // The client: one thread, so that the server keeps most of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let measured = runtime.block_on(measure(&options, &server));
    let (rss, fds) = (server.rss_kib(), server.open_fds());
    server.stop()?;
    let Measured { known, mixed, noop } = measured?;

    println!("\n| phase | events/s | requests/s | p50 ms | p99 ms | max ms | requests | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("ingest, known people", &known, BATCH as u64));
    println!("{}", row("ingest, mixed", &mixed, BATCH as u64));
    println!("{}", row("no-op `GET /healthz`", &noop, 1));
    let noop_rps = noop.per_second(noop.requests);
    println!(
        "\n(events/s = Segment messages accepted per second; identify calls store traits, not events)"
    );
    println!(
        "\n| mix | HTTP events/s | stored events/s | in process, 1 thread | parse + convert ms/batch | vault ms/batch | vault alone events/s | HTTP / in process | HTTP / vault alone | HTTP events/s / no-op req/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mix, phase, local) in [
        (Mix::Known, &known, &local_known),
        (Mix::Mixed, &mixed, &local_mixed),
    ] {
        let http = phase.per_second(phase.messages);
        let local_eps = local.messages as f64 / (local.convert + local.vault).as_secs_f64();
        let vault_eps = local.messages as f64 / local.vault.as_secs_f64();
        let batches = local.batches.max(1) as f64;
        println!(
            "| {} | {http:.0} | {:.0} | {local_eps:.0} | {:.2} | {:.2} | {vault_eps:.0} | {:.2} | {:.2} | {:.3} |",
            mix.name(),
            phase.per_second(phase.events_inserted),
            local.convert.as_secs_f64() * 1e3 / batches,
            local.vault.as_secs_f64() * 1e3 / batches,
            http / local_eps,
            http / vault_eps,
            http / noop_rps,
        );
    }
    let log = std::fs::metadata(dir.path().join("server/server.log")).map_or(0, |m| m.len());
    println!("\nserver log: {} KiB", log / 1024);
    if let Some(rss) = rss {
        println!("server resident set after the phases: {} MiB", rss / 1024);
    }
    if let Some(fds) = fds {
        println!("server open file descriptors after the phases: {fds}");
    }
    let mut ok = true;
    for (name, phase) in [
        ("ingest, known", &known),
        ("ingest, mixed", &mixed),
        ("no-op", &noop),
    ] {
        if phase.errors > 0 {
            ok = false;
            eprintln!(
                "{name}: {} error(s); first: {}",
                phase.errors,
                phase.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(ok)
}
