//! Soak run of `tessera serve` over loopback: mixed ingest, decide,
//! feedback, segment recomputes and subject deletions for a bounded time,
//! with a hostile plugin installed and trapping throughout.
//!
//! ```sh
//! cargo bench -p tessera --bench soak                        # 300 s, a sample every 10 s
//! cargo bench -p tessera --bench soak -- --seconds 600 --interval 20
//! cargo bench -p tessera --bench soak -- --server /path/to/other/tessera
//! ```
//!
//! Results and their reading are in `docs/BENCHMARKS.md` (section 10).
//!
//! What it does:
//!
//! 1. Seeds a deployment with `--people` people (in this process, untimed),
//!    starts the real server as a child process, and over the API saves the
//!    rules segment `buyers` and sets the Thompson-sampling campaign
//!    `bench-offers` running on it (the decide benchmark's deployment).
//! 2. Installs a hostile plugin the way an operator would, through the CLI:
//!    a publisher key, the signed bundle of `loop-forever` (a segment plugin
//!    that never returns), trust, install, approve.
//! 3. Runs, side by side, for `--seconds`, each on its own keep-alive
//!    connection:
//!    - **ingest**: batches of 20 Segment messages (purchases by seeded
//!      people, so that the segment's streaming updates run, and identify
//!      calls of new people), back to back;
//!    - **decide**: two connections deciding for random seeded people, back
//!      to back; a third of the treatment decisions get a `click`, and a
//!      tenth of those a `conversion`, through `POST /v1/feedback`;
//!    - **recompute**: `POST /v1/segments/buyers/recompute` every 15 s;
//!    - **deletions**: every 2 s, a new person is identified, looked up and
//!      erased (`DELETE /v1/subjects/{id}`);
//!    - **hostile**: every 3 s, a preview of a segment of `loop-forever`,
//!      which the server must stop and answer with an error; when the
//!      plugin is quarantined for trapping too often, the operator releases
//!      it so that it goes on trapping.
//! 4. Every `--interval` s it samples each stream's throughput and p99, the
//!    server's resident set size and its open file descriptors.
//!
//! It fails (exit 1) if any honest request fails (a non-2xx answer, or a
//! refused message), if a hostile call is answered with success, if the
//! hostile plugin never trapped, if the resident set of the last quarter of
//! the run is more than 1.5× that of the first quarter plus 64 MiB (growth
//! without bound shows as a slope that a 10-minute run cannot hide), or if
//! the open descriptors grew by more than 64.

#[path = "common/campaign.rs"]
mod campaign;
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campaign::{CAMPAIGN, PURPOSE, SEGMENT, TENANT, mix, seed, set_up, write_key};
use common::{Connection, Flags, Server, micros, percentile_ms};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

const HOSTILE: &str = "loop-forever";
const INGEST_BATCH: u64 = 20;

#[derive(Debug, Clone)]
struct Options {
    seconds: f64,
    interval: f64,
    people: u64,
    store_cache_mib: u64,
    server: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &["--seconds", "--interval", "--people", "--store-cache-mib"],
            &[],
        )?;
        Ok(Self {
            seconds: flags.number("--seconds", 300.0, 10.0..=600.0)?,
            interval: flags.number("--interval", 10.0, 1.0..=120.0)?,
            people: flags.number("--people", 5_000.0, 100.0..=1e6)? as u64,
            store_cache_mib: flags.number("--store-cache-mib", 64.0, 8.0..=65_536.0)? as u64,
            server: flags.text("--server"),
        })
    }
}

/// The streams of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Ingest,
    Decide,
    Feedback,
    Recompute,
    Delete,
    Hostile,
}

impl Stream {
    const ALL: [Stream; 6] = [
        Stream::Ingest,
        Stream::Decide,
        Stream::Feedback,
        Stream::Recompute,
        Stream::Delete,
        Stream::Hostile,
    ];

    fn name(self) -> &'static str {
        match self {
            Stream::Ingest => "ingest",
            Stream::Decide => "decide",
            Stream::Feedback => "feedback",
            Stream::Recompute => "recompute",
            Stream::Delete => "delete",
            Stream::Hostile => "hostile",
        }
    }
}

/// What the streams did since the last sample, and in all.
#[derive(Debug, Default)]
struct Tally {
    /// Requests answered, by stream, since the last sample.
    window: BTreeMap<Stream, Vec<u32>>,
    /// Requests answered, by stream, in all.
    total: BTreeMap<Stream, u64>,
    /// Ingested messages accepted, in all.
    messages: u64,
    /// Honest requests that failed, and the first of them.
    failures: u64,
    first_failure: Option<String>,
    /// Hostile calls the server stopped, those refused while the plugin was
    /// quarantined, and releases from quarantine.
    traps: u64,
    quarantined: u64,
    releases: u64,
    /// Hostile calls answered with success (must stay 0).
    hostile_successes: u64,
    /// The first error a hostile call was answered with.
    first_trap: Option<String>,
    /// Decide answers by outcome (`treatment`, `control`, the fallback).
    outcomes: BTreeMap<String, u64>,
    /// How long each batch recompute took, from its start to its end, µs.
    recomputes: Vec<u32>,
}

type Shared = Arc<Mutex<Tally>>;

impl Tally {
    fn answered(&mut self, stream: Stream, latency: Duration) {
        self.window.entry(stream).or_default().push(micros(latency));
        *self.total.entry(stream).or_default() += 1;
    }

    fn failed(&mut self, stream: Stream, what: String) {
        self.failures += 1;
        self.first_failure
            .get_or_insert_with(|| format!("{}: {what}", stream.name()));
    }
}

/// A request of an honest stream: it must answer `expected`. Records its
/// latency and, if it failed, why; gives back the answer's JSON when it
/// succeeded.
async fn honest(
    tally: &Shared,
    stream: Stream,
    connection: &mut Connection,
    request: (Method, &str, &str, Option<Value>),
    expected: StatusCode,
) -> Option<Value> {
    let (method, path, authorization, body) = request;
    let began = Instant::now();
    let answer = connection
        .send(
            method.clone(),
            path,
            Some(authorization),
            body.map(|b| b.to_string()),
        )
        .await;
    let latency = began.elapsed();
    let mut tally = tally.lock().expect("tally");
    tally.answered(stream, latency);
    match answer {
        Ok((status, body)) if status == expected => {
            serde_json::from_slice(&body).ok().or(Some(Value::Null))
        }
        Ok((status, body)) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            tally.failed(stream, format!("{method} {path}: {status} {text}"));
            None
        }
        Err(error) => {
            tally.failed(stream, format!("{method} {path}: {error}"));
            None
        }
    }
}

/// Identifies for the soak, by stream: the operator (staff) token and the
/// ingest write key.
struct Tokens {
    operator: String,
    write_key: String,
}

async fn ingest(
    address: String,
    tokens: Arc<Tokens>,
    people: u64,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> Result<(), String> {
    let mut connection = Connection::open(&address).await?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(INGEST_BATCH as usize);
        for _ in 0..INGEST_BATCH {
            n += 1;
            batch.push(if n.is_multiple_of(5) {
                json!({
                    "type": "identify",
                    "userId": format!("soak-new-{n}"),
                    "messageId": format!("soak-{n}"),
                    "traits": {"email": format!("new{n}@soak.example"), "tier": "bronze"},
                })
            } else {
                json!({
                    "type": "track",
                    "userId": format!("m-{}", mix(n) % people),
                    "messageId": format!("soak-{n}"),
                    "event": "purchase",
                    "properties": {"amount": 10 + n % 190, "sku": format!("SKU-{:04}", n % 500)},
                })
            });
        }
        let body = json!({"batch": batch});
        let report = honest(
            &tally,
            Stream::Ingest,
            &mut connection,
            (Method::POST, "/v1/batch", &tokens.write_key, Some(body)),
            StatusCode::OK,
        )
        .await;
        if let Some(report) = report {
            let accepted = report["accepted"].as_u64().unwrap_or(0);
            let mut tally = tally.lock().expect("tally");
            tally.messages += accepted;
            if accepted != INGEST_BATCH {
                tally.failed(
                    Stream::Ingest,
                    format!("not every message was accepted: {report}"),
                );
            }
        }
    }
    Ok(())
}

async fn decide(
    address: String,
    tokens: Arc<Tokens>,
    people: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> Result<(), String> {
    let mut connection = Connection::open(&address).await?;
    let mut n = seed << 40;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({
            "campaign": CAMPAIGN,
            "identity": {"kind": "member_id", "value": format!("m-{}", mix(n) % people)},
            "channel": "web",
            "attributes": {"page": format!("/products/{}", n % 50)},
        });
        let Some(answer) = honest(
            &tally,
            Stream::Decide,
            &mut connection,
            (Method::POST, "/v1/decide", &tokens.operator, Some(body)),
            StatusCode::OK,
        )
        .await
        else {
            continue;
        };
        let outcome = answer["arm"]
            .as_str()
            .or_else(|| answer["fallback"].as_str())
            .unwrap_or("?")
            .to_owned();
        *tally
            .lock()
            .expect("tally")
            .outcomes
            .entry(outcome.clone())
            .or_default() += 1;
        let Some(decision) = answer["decision"].as_str() else {
            continue;
        };
        if outcome != "treatment" || !mix(n ^ 0xfeed).is_multiple_of(3) {
            continue;
        }
        let mut kinds = vec!["click"];
        if mix(n ^ 0xbeef).is_multiple_of(10) {
            kinds.push("conversion");
        }
        for kind in kinds {
            honest(
                &tally,
                Stream::Feedback,
                &mut connection,
                (
                    Method::POST,
                    "/v1/feedback",
                    &tokens.operator,
                    Some(json!({"decision": decision, "kind": kind})),
                ),
                StatusCode::OK,
            )
            .await;
        }
    }
    Ok(())
}

/// Sleeps `period`, in short steps so that a stop is seen; false once
/// stopped.
async fn pause(period: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    !stop.load(Ordering::Relaxed)
}

/// The segment's last recompute's end (ms), or 0 before the first; none
/// if the segment could not be read (recorded as a failure).
async fn last_recompute(
    tally: &Shared,
    connection: &mut Connection,
    authorization: &str,
) -> Option<i64> {
    let path = format!("/v1/segments/{SEGMENT}");
    let segment = honest(
        tally,
        Stream::Recompute,
        connection,
        (Method::GET, &path, authorization, None),
        StatusCode::OK,
    )
    .await?;
    Some(
        segment["last_recompute"]["finished_at_ms"]
            .as_i64()
            .unwrap_or(0),
    )
}

/// Every 15 s, starts a batch recompute of the segment and waits until it
/// has finished (the segment's `last_recompute` moves on), up to 120 s.
async fn recompute(
    address: String,
    tokens: Arc<Tokens>,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> Result<(), String> {
    let mut connection = Connection::open(&address).await?;
    let path = format!("/v1/segments/{SEGMENT}/recompute");
    while pause(Duration::from_secs(15), &stop).await {
        let Some(before) = last_recompute(&tally, &mut connection, &tokens.operator).await else {
            continue;
        };
        let began = Instant::now();
        let started = honest(
            &tally,
            Stream::Recompute,
            &mut connection,
            (Method::POST, &path, &tokens.operator, None),
            StatusCode::ACCEPTED,
        )
        .await;
        if started.is_none() {
            continue;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match last_recompute(&tally, &mut connection, &tokens.operator).await {
                Some(finished) if finished > before => {
                    let mut tally = tally.lock().expect("tally");
                    tally.recomputes.push(micros(began.elapsed()));
                    break;
                }
                Some(_) if began.elapsed() < Duration::from_secs(120) => {}
                Some(_) => {
                    tally.lock().expect("tally").failed(
                        Stream::Recompute,
                        "a recompute did not finish within 120 s".into(),
                    );
                    break;
                }
                None => break,
            }
        }
    }
    Ok(())
}

async fn deletions(
    address: String,
    tokens: Arc<Tokens>,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> Result<(), String> {
    let mut connection = Connection::open(&address).await?;
    let mut n = 0u64;
    while pause(Duration::from_secs(2), &stop).await {
        n += 1;
        let member = format!("soak-leaver-{n}");
        let identify = json!({
            "userId": member,
            "messageId": format!("soak-leaver-{n}"),
            "traits": {"email": format!("leaver{n}@soak.example")},
        });
        if honest(
            &tally,
            Stream::Delete,
            &mut connection,
            (
                Method::POST,
                "/v1/identify",
                &tokens.write_key,
                Some(identify),
            ),
            StatusCode::OK,
        )
        .await
        .is_none()
        {
            continue;
        }
        let lookup = json!({"kind": "member_id", "value": member});
        let Some(found) = honest(
            &tally,
            Stream::Delete,
            &mut connection,
            (
                Method::POST,
                "/v1/subjects/lookup",
                &tokens.operator,
                Some(lookup),
            ),
            StatusCode::OK,
        )
        .await
        else {
            continue;
        };
        let Some(subject) = found["subject"].as_str() else {
            tally
                .lock()
                .expect("tally")
                .failed(Stream::Delete, format!("lookup answered {found}"));
            continue;
        };
        let path = format!("/v1/subjects/{subject}?reason=soak_test");
        honest(
            &tally,
            Stream::Delete,
            &mut connection,
            (Method::DELETE, &path, &tokens.operator, None),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    Ok(())
}

/// Previews a segment of the hostile plugin every 3 s: each must be
/// answered with an error (stopped, or refused while quarantined); a
/// quarantine is released so that it goes on trapping.
async fn hostile(
    address: String,
    tokens: Arc<Tokens>,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> Result<(), String> {
    let mut connection = Connection::open(&address).await?;
    let preview = json!({"plugin": HOSTILE, "params": {}, "purpose": PURPOSE}).to_string();
    while pause(Duration::from_secs(3), &stop).await {
        let began = Instant::now();
        let answer = connection
            .send(
                Method::POST,
                "/v1/segments/preview",
                Some(&tokens.operator),
                Some(preview.clone()),
            )
            .await;
        let latency = began.elapsed();
        let quarantined = {
            let mut tally = tally.lock().expect("tally");
            tally.answered(Stream::Hostile, latency);
            match answer {
                Err(error) => {
                    tally.failed(Stream::Hostile, format!("the connection failed: {error}"));
                    false
                }
                Ok((status, _)) if status.is_success() => {
                    tally.hostile_successes += 1;
                    false
                }
                Ok((_, body)) => {
                    let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let text = error.to_string();
                    if text.contains("quarantine") {
                        tally.quarantined += 1;
                        true
                    } else {
                        tally.traps += 1;
                        tally.first_trap.get_or_insert(text);
                        false
                    }
                }
            }
        };
        if quarantined {
            let path = format!("/v1/plugins/{HOSTILE}/release");
            if honest(
                &tally,
                Stream::Hostile,
                &mut connection,
                (Method::POST, &path, &tokens.operator, None),
                StatusCode::OK,
            )
            .await
            .is_some()
            {
                tally.lock().expect("tally").releases += 1;
            }
        }
    }
    Ok(())
}

/// One sample of the run.
#[derive(Debug)]
struct Sample {
    at: Duration,
    /// Per stream: requests a second over the window, and their p99 (ms).
    streams: BTreeMap<Stream, (f64, f64)>,
    rss_kib: Option<u64>,
    fds: Option<usize>,
    /// The bytes of the data directory's files.
    store_bytes: u64,
}

/// What the server holds now: resident set (KiB), open descriptors and the
/// size of its data directory.
type Reading = (Option<u64>, Option<usize>, u64);

/// The bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs `tessera ARGS` against the server as its operator.
fn cli(tessera: &str, dir: &Path, server: &Server, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tessera)
        .args(args)
        .current_dir(dir)
        .env("TESSERA_SERVER", format!("http://{}", server.address))
        .env("TESSERA_TOKEN", &server.operator)
        .output()
        .map_err(|e| format!("cannot run {tessera}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "tessera {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Signs, trusts, installs and approves the bundle of the hostile plugin.
fn install_hostile(tessera: &str, dir: &Path, server: &Server) -> Result<(), String> {
    let p = |path: &Path| path.to_str().expect("a UTF-8 temporary path").to_owned();
    let keys = dir.join("publisher");
    cli(
        tessera,
        dir,
        server,
        &["keys", "publisher", "new", "--out", &p(&keys)],
    )?;
    let source = dir.join("hostile-bundle");
    std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
    std::fs::copy(
        tessera_guests::test_programs::LOOP_FOREVER,
        source.join("loop-forever.wasm"),
    )
    .map_err(|e| format!("the loop-forever component: {e}"))?;
    std::fs::write(
        source.join("bundle.toml"),
        format!(
            r#"publisher = "Soak Hostiles"
version = "1.0.0"

[[plugins]]
name = "{HOSTILE}"
kind = "segment"
wit_version = "0.1.0"
description = "never returns"
component = "loop-forever.wasm"

[plugins.permissions]
purposes = ["{PURPOSE}"]
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let bundle = dir.join("hostile.tsb");
    cli(
        tessera,
        dir,
        server,
        &["bundle", "build", &p(&source), "--out", &p(&bundle)],
    )?;
    let key = p(&keys.join("publisher.key"));
    cli(
        tessera,
        dir,
        server,
        &["bundle", "sign", &p(&bundle), "--key", &key],
    )?;
    let public = p(&keys.join("publisher.pub"));
    cli(
        tessera,
        dir,
        server,
        &[
            "keys",
            "publisher",
            "trust",
            &public,
            "--name",
            "Soak Hostiles",
        ],
    )?;
    cli(tessera, dir, server, &["plugin", "install", &p(&bundle)])?;
    cli(tessera, dir, server, &["plugin", "approve", HOSTILE])?;
    Ok(())
}

/// Creates the write key, then runs the streams for the run's time,
/// sampling every interval.
async fn soak(
    options: &Options,
    server: &Server,
    read: impl Fn() -> Reading,
) -> Result<(Vec<Sample>, Tally), String> {
    let address = server.address.clone();
    let operator = format!("Bearer {}", server.operator);
    set_up(&address, &operator).await?;
    let mut admin = Connection::open(&address).await?;
    let write_key = write_key(&mut admin, &operator, "soak").await?;
    let tokens = Arc::new(Tokens {
        operator,
        write_key,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Shared = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(ingest(
        address.clone(),
        tokens.clone(),
        options.people,
        stop.clone(),
        tally.clone(),
    ));
    for seed in 0..2 {
        tasks.spawn(decide(
            address.clone(),
            tokens.clone(),
            options.people,
            seed,
            stop.clone(),
            tally.clone(),
        ));
    }
    tasks.spawn(recompute(
        address.clone(),
        tokens.clone(),
        stop.clone(),
        tally.clone(),
    ));
    tasks.spawn(deletions(
        address.clone(),
        tokens.clone(),
        stop.clone(),
        tally.clone(),
    ));
    tasks.spawn(hostile(
        address.clone(),
        tokens.clone(),
        stop.clone(),
        tally.clone(),
    ));

    let start = Instant::now();
    let until = start + Duration::from_secs_f64(options.seconds);
    let interval = Duration::from_secs_f64(options.interval);
    let (rss, fds, store_bytes) = read();
    let mut samples = vec![Sample {
        at: Duration::ZERO,
        streams: BTreeMap::new(),
        rss_kib: rss,
        fds,
        store_bytes,
    }];
    let mut last = start;
    while Instant::now() < until {
        tokio::time::sleep(interval.min(until.saturating_duration_since(Instant::now()))).await;
        let now = Instant::now();
        let window = std::mem::take(&mut tally.lock().expect("tally").window);
        let seconds = now.duration_since(last).as_secs_f64();
        last = now;
        let streams = window
            .into_iter()
            .map(|(stream, mut latencies)| {
                latencies.sort_unstable();
                let rate = latencies.len() as f64 / seconds;
                (stream, (rate, percentile_ms(&latencies, 99.0)))
            })
            .collect();
        let (rss_kib, fds, store_bytes) = read();
        samples.push(Sample {
            at: now.duration_since(start),
            streams,
            rss_kib,
            fds,
            store_bytes,
        });
        let sample = samples.last().expect("just pushed");
        println!("{}", sample_row(sample));
    }
    stop.store(true, Ordering::Relaxed);
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        let mut errors = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => errors.push(error),
                Err(error) => errors.push(error.to_string()),
            }
        }
        errors
    })
    .await
    .map_err(|_| "the streams did not stop within 120 s".to_owned())?;
    if let Some(error) = drained.into_iter().next() {
        return Err(error);
    }
    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    Ok((samples, tally))
}

fn sample_row(sample: &Sample) -> String {
    let mut row = format!("| {:.0} |", sample.at.as_secs_f64());
    for stream in Stream::ALL {
        match sample.streams.get(&stream) {
            Some((rate, p99)) => {
                let _ = write!(row, " {rate:.1} / {p99:.1} |");
            }
            None => row.push_str(" – |"),
        }
    }
    let _ = write!(
        row,
        " {} | {} | {:.0} |",
        sample
            .rss_kib
            .map_or("?".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
        sample.fds.map_or("?".to_owned(), |n| n.to_string()),
        sample.store_bytes as f64 / f64::from(1 << 20),
    );
    row
}

/// The mean resident set (KiB) of the samples taken within `range` of the
/// run's fraction.
fn mean_rss(samples: &[Sample], total: Duration, range: std::ops::Range<f64>) -> Option<f64> {
    let inside: Vec<f64> = samples
        .iter()
        .filter(|s| range.contains(&(s.at.as_secs_f64() / total.as_secs_f64())))
        .filter_map(|s| s.rss_kib.map(|kib| kib as f64))
        .collect();
    (!inside.is_empty()).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
}

fn main() -> ExitCode {
    common::exit_code(run(), "soak run")
}

fn run() -> Result<bool, String> {
    let options = Options::parse()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let deployment = dir.path().join("server");
    println!(
        "tessera soak run: {} s, a sample every {} s, {} people, a store cache of {} MiB, {} cores",
        options.seconds,
        options.interval,
        options.people,
        options.store_cache_mib,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let tessera = options
        .server
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_tessera"));
    let key_file = common::master_key_file(&deployment, tessera)?;
    seed(&deployment, &key_file, options.people)?;
    let server = Server::start(
        &deployment,
        tessera,
        TENANT,
        &[(
            "TESSERA_STORE_CACHE_MIB",
            options.store_cache_mib.to_string(),
        )],
    )?;
    println!("server: tessera serve on http://{}", server.address);
    install_hostile(tessera, dir.path(), &server)?;
    println!("installed the hostile plugin `{HOSTILE}`");
    println!(
        "\nper stream: requests/s / p99 ms over the window\n\n| s | {} | RSS MiB | fds | store MiB |",
        Stream::ALL.map(Stream::name).join(" | ")
    );
    println!("|---:|{}---:|---:|---:|", "---:|".repeat(Stream::ALL.len()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let soaked = runtime.block_on(soak(&options, &server, || {
        (
            server.rss_kib(),
            server.open_fds(),
            bytes_under(&deployment.join("data")),
        )
    }));
    server.stop()?;
    let (samples, tally) = soaked?;

    let total = Duration::from_secs_f64(options.seconds);
    println!("\nin all:");
    for stream in Stream::ALL {
        println!(
            "  {:<9} {} requests",
            stream.name(),
            tally.total.get(&stream).copied().unwrap_or(0)
        );
    }
    let outcomes: Vec<String> = tally
        .outcomes
        .iter()
        .map(|(outcome, n)| format!("{outcome} {n}"))
        .collect();
    println!("  messages accepted: {}", tally.messages);
    let mut recomputes = tally.recomputes.clone();
    recomputes.sort_unstable();
    println!(
        "  batch recomputes: {} finished, median {:.0} ms, slowest {:.0} ms",
        recomputes.len(),
        percentile_ms(&recomputes, 50.0),
        common::max_ms(&recomputes)
    );
    println!("  decide outcomes: {}", outcomes.join(", "));
    println!(
        "  hostile plugin: {} calls stopped, {} refused while quarantined, {} releases",
        tally.traps, tally.quarantined, tally.releases
    );
    if let Some(first) = &tally.first_trap {
        println!("  the first hostile answer: {first}");
    }
    let first = mean_rss(&samples, total, 0.0..0.26);
    let last = mean_rss(&samples, total, 0.75..1.01);
    let fds_first = samples.first().and_then(|s| s.fds);
    let fds_last = samples.last().and_then(|s| s.fds);
    if let (Some(first), Some(last)) = (first, last) {
        println!(
            "  resident set: first quarter {:.1} MiB, last quarter {:.1} MiB ({:.2}×)",
            first / 1024.0,
            last / 1024.0,
            last / first
        );
    }
    if let (Some(first), Some(last)) = (fds_first, fds_last) {
        println!("  open descriptors: {first} at the start, {last} at the end");
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        println!(
            "  data directory: {:.0} MiB at the start, {:.0} MiB at the end",
            first.store_bytes as f64 / f64::from(1 << 20),
            last.store_bytes as f64 / f64::from(1 << 20)
        );
    }

    let mut ok = true;
    let mut fail = |why: String| {
        ok = false;
        eprintln!("FAILED: {why}");
    };
    if tally.failures > 0 {
        fail(format!(
            "{} honest request(s) failed; first: {}",
            tally.failures,
            tally.first_failure.unwrap_or_default()
        ));
    }
    if tally.hostile_successes > 0 {
        fail(format!(
            "the hostile plugin's preview succeeded {} time(s)",
            tally.hostile_successes
        ));
    }
    if tally.traps == 0 {
        fail("the hostile plugin never trapped".into());
    }
    if tally.outcomes.get("treatment").copied().unwrap_or(0) == 0 {
        fail("no treatment decision was made; the campaign did not run".into());
    }
    if tally.recomputes.is_empty() {
        fail("no batch recompute finished".into());
    }
    for stream in [Stream::Ingest, Stream::Decide, Stream::Delete] {
        if tally.total.get(&stream).copied().unwrap_or(0) == 0 {
            fail(format!("the {} stream made no request", stream.name()));
        }
    }
    match (first, last) {
        (Some(first), Some(last)) if last > first * 1.5 + 64.0 * 1024.0 => fail(format!(
            "the resident set grew from {:.1} MiB to {:.1} MiB",
            first / 1024.0,
            last / 1024.0
        )),
        (Some(_), Some(_)) => {}
        _ => fail("the resident set could not be read".into()),
    }
    match (fds_first, fds_last) {
        (Some(first), Some(last)) if last > first + 64 => {
            fail(format!("open descriptors grew from {first} to {last}"))
        }
        (Some(_), Some(_)) => {}
        _ => fail("the open descriptors could not be counted".into()),
    }
    Ok(ok)
}
