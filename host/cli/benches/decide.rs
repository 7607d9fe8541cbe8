//! Load benchmark of `POST /v1/decide` over loopback at a fixed request
//! rate, with a no-op endpoint (`GET /healthz`) at the same rate in the
//! same run.
//!
//! ```sh
//! cargo bench -p tessera --bench decide                      # 2,000 req/s, 15 s a phase
//! cargo bench -p tessera --bench decide -- --rate 1000 --seconds 30
//! cargo bench -p tessera --bench decide -- --server /path/to/other/tessera   # compare two builds
//! ```
//!
//! Results and their reading are in `docs/BENCHMARKS.md` (section 9).
//!
//! What it does:
//!
//! 1. Creates a deployment in a temporary directory and seeds its store in
//!    this process, untimed: the tenant, and `--people` people (10,000 by
//!    default) with a member id, an email, two traits, one to three
//!    purchases (nine in ten of them) and consent to `personalization`
//!    (nine in ten, independently).
//! 2. Starts the real server, `tessera serve --init --tenant bench --listen
//!    127.0.0.1:0`, as a child process on that deployment (client and server
//!    are separate processes, as in production), with the rate limit off.
//! 3. Over the API, with the operator token: saves the segment `buyers`
//!    (rules plugin, `count(purchase) >= 1`, purpose `personalization`) and
//!    waits for its recompute; saves the campaign `bench-offers` (the
//!    first-party `thompson` strategy on `buyers`, 10 % holdout, a cap of
//!    100 decisions a person a day, fallback `no_offer`), simulates it and
//!    sets it running.
//! 4. **Open loop**: requests are released on a fixed schedule, `--rate`
//!    a second in bursts once a millisecond, whether or not earlier ones
//!    were answered (each on a free keep-alive connection, a new one opened
//!    when none is free; connections stay open from one phase to the next,
//!    as a client's would). Latency is measured **from the scheduled release**,
//!    so a server that falls behind shows it in the percentiles instead of
//!    slowing the load down (no coordinated omission). Phases: `decide`
//!    warm-up (`--warmup` s), `decide` (`--seconds` s), `no-op` (`GET
//!    /healthz`, the same schedule and time). It also names the 100 ms
//!    windows (by release) that had an answer over 5 ms, to tell a steady
//!    queue from stalls.
//! 5. **Capacity**: a closed loop of `--capacity-connections` connections
//!    deciding as fast as they are answered, for `--capacity-seconds` s: the
//!    most decisions a second this machine serves, to read the open-loop
//!    rate against.
//! 6. Stops the server (SIGTERM: it flushes and exits 0).
//!
//! Each decide names a person by member id (`identity`), chosen at random
//! among the seeded people, on channel `web` with a page attribute: about
//! 80 % of them are in the segment, which holds only people who consent (a
//! treatment or control decision, logged); the rest get the fallback
//! `not_in_segment` (not logged). Every answer must be a 200 (for decide, with
//! the campaign's answer); any other is an error, and the run fails
//! (exit 1) if there is one.

mod common;
// Shared with the soak benchmark, which uses more of it.
#[allow(dead_code)]
#[path = "common/campaign.rs"]
mod campaign;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campaign::{CAMPAIGN, TENANT, mix, seed, set_up};
use common::{Connection, Flags, Server, max_ms, micros, percentile_ms};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
struct Options {
    rate: f64,
    seconds: f64,
    warmup: f64,
    people: u64,
    max_connections: usize,
    capacity_seconds: f64,
    capacity_connections: usize,
    /// Another `tessera` binary to serve (to compare two builds).
    server: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &[
                "--rate",
                "--seconds",
                "--warmup",
                "--people",
                "--max-connections",
                "--capacity-seconds",
                "--capacity-connections",
            ],
            &[],
        )?;
        Ok(Self {
            rate: flags.number("--rate", 2_000.0, 1.0..=50_000.0)?,
            seconds: flags.number("--seconds", 15.0, 0.1..=600.0)?,
            warmup: flags.number("--warmup", 3.0, 0.0..=60.0)?,
            people: flags.number("--people", 10_000.0, 100.0..=1e6)? as u64,
            max_connections: flags.number("--max-connections", 256.0, 1.0..=1_024.0)? as usize,
            capacity_seconds: flags.number("--capacity-seconds", 5.0, 0.0..=120.0)?,
            capacity_connections: flags.number("--capacity-connections", 4.0, 1.0..=256.0)?
                as usize,
            server: flags.text("--server"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Decide,
    Noop,
}

impl Target {
    fn request(self, n: u64, people: u64) -> (Method, &'static str, Option<String>) {
        match self {
            Self::Decide => (
                Method::POST,
                "/v1/decide",
                Some(
                    json!({
                        "campaign": CAMPAIGN,
                        "identity": {"kind": "member_id", "value": format!("m-{}", mix(n) % people)},
                        "channel": "web",
                        "attributes": {"page": format!("/products/{}", n % 50)},
                    })
                    .to_string(),
                ),
            ),
            Self::Noop => (Method::GET, "/healthz", None),
        }
    }
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Phase {
    elapsed: Duration,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the scheduled release (open loop) or the send (closed loop)
    /// to the whole answer, µs.
    latencies_us: Vec<u32>,
    /// From the send to the whole answer, µs.
    service_us: Vec<u32>,
    /// Open loop: each request's scheduled release (µs from the phase's
    /// start) and its latency (µs), in release order, to find when the
    /// slow answers came.
    timeline: Vec<(u32, u32)>,
    /// Decide answers by outcome: `treatment`, `control`, or the fallback
    /// reason.
    outcomes: BTreeMap<String, u64>,
    /// Connections opened.
    connections: usize,
}

impl Phase {
    fn record(
        &mut self,
        target: Target,
        released: Option<Duration>,
        from_release: Duration,
        service: Duration,
        answer: Answer,
    ) {
        self.requests += 1;
        if let Some(released) = released {
            self.timeline.push((micros(released), micros(from_release)));
        }
        self.latencies_us.push(micros(from_release));
        self.service_us.push(micros(service));
        let failure = match answer {
            Err(error) => Some(error),
            Ok((status, body)) if status != StatusCode::OK => Some(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            Ok((_, body)) if target == Target::Decide => {
                let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let outcome = answer["arm"]
                    .as_str()
                    .or_else(|| answer["fallback"].as_str());
                match outcome {
                    Some(outcome) if answer["campaign"] == CAMPAIGN => {
                        *self.outcomes.entry(outcome.to_owned()).or_default() += 1;
                        None
                    }
                    _ => Some(format!("not a decision: {answer}")),
                }
            }
            Ok(_) => None,
        };
        if let Some(failure) = failure {
            self.errors += 1;
            self.first_error.get_or_insert(failure);
        }
    }

    fn finish(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        self.latencies_us.sort_unstable();
        self.service_us.sort_unstable();
        self.timeline.sort_unstable();
    }

    /// How many 100 ms windows the open loop's releases span.
    fn windows(&self) -> u32 {
        self.timeline
            .last()
            .map_or(0, |&(released, _)| released / 100_000 + 1)
    }

    /// The open loop's 100 ms windows (by release) whose slowest answer
    /// took over `over_ms`: how many, and the five slowest as (start s,
    /// slowest ms, answers over `over_ms`).
    fn slow_windows(&self, over_ms: f64) -> (usize, Vec<(f64, f64, usize)>) {
        let mut windows: BTreeMap<u32, (u32, usize)> = BTreeMap::new();
        let over_us = (over_ms * 1_000.0) as u32;
        for &(released, latency) in &self.timeline {
            if latency > over_us {
                let window = windows.entry(released / 100_000).or_default();
                window.0 = window.0.max(latency);
                window.1 += 1;
            }
        }
        let mut slowest: Vec<(f64, f64, usize)> = windows
            .iter()
            .map(|(&w, &(max, n))| (f64::from(w) / 10.0, f64::from(max) / 1_000.0, n))
            .collect();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        slowest.truncate(5);
        (windows.len(), slowest)
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

type Answer = Result<(StatusCode, hyper::body::Bytes), String>;

/// Free keep-alive connections, shared by the requests in flight.
type Pool = Arc<Mutex<Vec<Connection>>>;

/// Releases `rate` requests a second for `duration`, in bursts once a
/// millisecond, each on a free connection (at most `max_connections`
/// open), and measures each from its scheduled release.
async fn open_loop(
    address: &str,
    authorization: &Arc<String>,
    pool: &Pool,
    target: Target,
    options: &Options,
    duration: Duration,
) -> Result<Phase, String> {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let phase = Arc::new(Mutex::new(Phase::default()));
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = ticks.tick().await;
    let total = (options.rate * duration.as_secs_f64()).round() as u64;
    let mut released = 0u64;
    while released < total {
        let tick = ticks.tick().await;
        // Every request whose time in the schedule has come, released at
        // this tick and measured from it.
        let due = ((tick - start).as_secs_f64() * options.rate).floor() as u64;
        while released < due.min(total) {
            let n = released;
            released += 1;
            let (method, path, body) = target.request(n, options.people);
            let (pool, permits, phase, opened) =
                (pool.clone(), permits.clone(), phase.clone(), opened.clone());
            let (address, authorization) = (address.to_owned(), authorization.clone());
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let free = pool.lock().expect("pool").pop();
                let connection = match free {
                    Some(connection) => Ok(connection),
                    None => {
                        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Connection::open(&address).await
                    }
                };
                let sent = Instant::now();
                let (answer, connection) = match connection {
                    Ok(mut connection) => {
                        let auth = (target == Target::Decide).then_some(authorization.as_str());
                        (
                            connection.send(method, path, auth, body).await,
                            Some(connection),
                        )
                    }
                    Err(error) => (Err(error), None),
                };
                let done = Instant::now();
                if let Some(connection) = connection.filter(|c| !c.sender.is_closed()) {
                    pool.lock().expect("pool").push(connection);
                }
                phase.lock().expect("phase").record(
                    target,
                    Some(tick - start),
                    done.duration_since(tick.into_std()),
                    done - sent,
                    answer,
                );
            });
        }
        // Reap what finished, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let released_in = start.elapsed();
    let drain = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        return Err("requests were still unanswered 60 s after the last release".into());
    }
    let mut phase = std::mem::take(&mut *phase.lock().expect("phase"));
    phase.connections = opened.load(std::sync::atomic::Ordering::Relaxed);
    phase.finish(released_in);
    Ok(phase)
}

/// `connections` connections deciding back to back for `duration`.
async fn closed_loop(
    address: &str,
    authorization: &Arc<String>,
    options: &Options,
    duration: Duration,
) -> Result<Phase, String> {
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = JoinSet::new();
    for c in 0..options.capacity_connections {
        let mut connection = Connection::open(address).await?;
        let authorization = authorization.clone();
        let people = options.people;
        tasks.spawn(async move {
            let mut phase = Phase::default();
            let mut n = (c as u64) << 40;
            while Instant::now() < until && phase.errors <= 100 {
                let (method, path, body) = Target::Decide.request(n, people);
                n += 1;
                let sent = Instant::now();
                let answer = connection
                    .send(method, path, Some(authorization.as_str()), body)
                    .await;
                let service = sent.elapsed();
                phase.record(Target::Decide, None, service, service, answer);
                if connection.sender.is_closed() {
                    break;
                }
            }
            phase
        });
    }
    let mut total = Phase {
        connections: options.capacity_connections,
        ..Phase::default()
    };
    while let Some(phase) = tasks.join_next().await {
        let phase = phase.map_err(|e| e.to_string())?;
        total.requests += phase.requests;
        total.errors += phase.errors;
        if total.first_error.is_none() {
            total.first_error = phase.first_error;
        }
        total.latencies_us.extend(phase.latencies_us);
        total.service_us.extend(phase.service_us);
        for (outcome, n) in phase.outcomes {
            *total.outcomes.entry(outcome).or_default() += n;
        }
    }
    total.finish(start.elapsed());
    Ok(total)
}

/// What the server phases measured.
struct Measured {
    decide: Phase,
    noop: Phase,
    capacity: Option<Phase>,
}

async fn measure(options: &Options, server: &Server) -> Result<Measured, String> {
    let address = server.address.as_str();
    let authorization = Arc::new(format!("Bearer {}", server.operator));
    set_up(address, &authorization).await?;
    let seconds = Duration::from_secs_f64(options.seconds);
    // Keep-alive connections outlive a phase, as a client's would: a phase
    // opens new ones only when all open ones are busy.
    let pool: Pool = Arc::new(Mutex::new(Vec::new()));
    if options.warmup > 0.0 {
        let warm = open_loop(
            address,
            &authorization,
            &pool,
            Target::Decide,
            options,
            Duration::from_secs_f64(options.warmup),
        )
        .await?;
        if warm.errors > 0 {
            return Err(format!(
                "warm-up: {} errors, first: {}",
                warm.errors,
                warm.first_error.unwrap_or_default()
            ));
        }
    }
    let decide = open_loop(
        address,
        &authorization,
        &pool,
        Target::Decide,
        options,
        seconds,
    )
    .await?;
    let noop = open_loop(
        address,
        &authorization,
        &pool,
        Target::Noop,
        options,
        seconds,
    )
    .await?;
    let capacity = if options.capacity_seconds > 0.0 {
        Some(
            closed_loop(
                address,
                &authorization,
                options,
                Duration::from_secs_f64(options.capacity_seconds),
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Measured {
        decide,
        noop,
        capacity,
    })
}

fn row(name: &str, phase: &Phase) -> String {
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
        phase.rate(),
        percentile_ms(&phase.latencies_us, 50.0),
        percentile_ms(&phase.latencies_us, 90.0),
        percentile_ms(&phase.latencies_us, 99.0),
        percentile_ms(&phase.latencies_us, 99.9),
        max_ms(&phase.latencies_us),
        percentile_ms(&phase.service_us, 99.0),
        phase.requests,
        phase.connections,
        phase.errors,
    )
}

fn main() -> ExitCode {
    common::exit_code(run(), "decide benchmark")
}

fn run() -> Result<bool, String> {
    let options = Options::parse()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let deployment = dir.path().join("server");
    println!(
        "tessera decide benchmark: {} req/s open loop, {} s a phase after {} s of warm-up, {} people, {} cores",
        options.rate,
        options.seconds,
        options.warmup,
        options.people,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let tessera = options
        .server
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_tessera"));
    let key_file = common::master_key_file(&deployment, tessera)?;
    let seeding = Instant::now();
    seed(&deployment, &key_file, options.people)?;
    println!(
        "seeded {} people in {:.1} s",
        options.people,
        seeding.elapsed().as_secs_f64()
    );
    let server = Server::start(&deployment, tessera, TENANT, &[])?;
    println!("server: tessera serve on http://{}", server.address);
    // The client: one thread, so that the server keeps most of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let measured = runtime.block_on(measure(&options, &server));
    let (rss, fds) = (server.rss_kib(), server.open_fds());
    server.stop()?;
    let Measured {
        decide,
        noop,
        capacity,
    } = measured?;

    println!(
        "\n| phase | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 from send ms | requests | connections | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("`POST /v1/decide`, open loop", &decide));
    println!("{}", row("no-op `GET /healthz`, open loop", &noop));
    if let Some(capacity) = &capacity {
        println!("{}", row("`POST /v1/decide`, closed loop", capacity));
    }
    println!(
        "\n(open loop: latency from the scheduled release; closed loop: from the send, {} connections)",
        options.capacity_connections
    );
    println!(
        "\ndecide p50 / no-op p50: {:.1}; decide p99 / no-op p99: {:.1}",
        percentile_ms(&decide.latencies_us, 50.0) / percentile_ms(&noop.latencies_us, 50.0),
        percentile_ms(&decide.latencies_us, 99.0) / percentile_ms(&noop.latencies_us, 99.0),
    );
    if let Some(capacity) = &capacity {
        println!(
            "open-loop rate / closed-loop capacity: {:.2}",
            decide.rate() / capacity.rate()
        );
    }
    for (name, phase) in [("decide", &decide), ("no-op", &noop)] {
        let (windows, slowest) = phase.slow_windows(5.0);
        let slowest: Vec<String> = slowest
            .iter()
            .map(|(at, max, n)| format!("{at:.1} s: {max:.1} ms ({n})"))
            .collect();
        println!(
            "{name}, open loop: {windows} of {} windows of 100 ms had an answer over 5 ms; \
             slowest (from, slowest answer, answers over 5 ms): {}",
            phase.windows(),
            slowest.join(", ")
        );
    }
    let outcomes: Vec<String> = decide
        .outcomes
        .iter()
        .map(|(outcome, n)| format!("{outcome} {n}"))
        .collect();
    println!("decide outcomes (open loop): {}", outcomes.join(", "));
    if let Some(rss) = rss {
        println!("server resident set after the phases: {} MiB", rss / 1024);
    }
    if let Some(fds) = fds {
        println!("server open file descriptors after the phases: {fds}");
    }
    let mut ok = true;
    let phases = [("decide", Some(&decide)), ("no-op", Some(&noop))];
    for (name, phase) in phases
        .into_iter()
        .chain([("capacity", capacity.as_ref())])
        .filter_map(|(name, phase)| Some((name, phase?)))
    {
        if phase.errors > 0 {
            ok = false;
            eprintln!(
                "{name}: {} error(s); first: {}",
                phase.errors,
                phase.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    if decide.outcomes.get("treatment").copied().unwrap_or(0) == 0 {
        ok = false;
        eprintln!("decide: no treatment decision was made; the campaign did not run");
    }
    Ok(ok)
}
