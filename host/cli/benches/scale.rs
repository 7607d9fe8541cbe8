//! Scale-out benchmark: the same ingest and segment recompute on sled (one
//! node, the baseline) and on PostgreSQL with 1, 2 and 3 `tessera serve`
//! nodes sharing one database, in one run.
//!
//! ```sh
//! cargo bench -p tessera --bench scale                    # sled, PostgreSQL × 1, 2, 3
//! cargo bench -p tessera --bench scale -- --people 2000 --events 20000 --nodes 1,3
//! cargo bench -p tessera --bench scale -- --postgres postgres://tessera@127.0.0.1:5432/tessera
//! ```
//!
//! Results and their reading are in `docs/BENCHMARKS.md` (section 12).
//!
//! What it does, per configuration (each on fresh storage: a new sled
//! directory, or a new schema in the database):
//!
//! 1. Starts the nodes: the real server as child processes on 127.0.0.1,
//!    `tessera serve --init --tenant bench`; on PostgreSQL every node has a
//!    directory of its own (key directory, which names the node, and
//!    compiled-plugin cache), the same master key, and the subject keys in
//!    the database (`keys = "database"`), so they are peers; the first makes
//!    the tenant and its operator token, the others find them.
//! 2. People (timed apart): `--people` identify calls in batches of 100
//!    with the operator token (a trusted source, as the tenant's own systems
//!    send them), then each person consents to `personalization` (a subject token, then
//!    `PUT /v1/me/consents/personalization`), as a segment only evaluates
//!    people who consent.
//! 3. Ingest (the measurement): `--events` purchases, Segment `track`
//!    messages with unique `messageId`s and times spread over the last 60
//!    days, posted to `/v1/batch` 100 at a time by `--connections` keep-alive
//!    connections (closed loop), connection `c` on node `c mod nodes`.
//! 4. Recompute: saves the rules segment `regulars` (`count(purchase, last
//!    30 days) >= 2`) through the first node, waits for the recompute the
//!    save starts, then `--recomputes` times asks the first node for a batch
//!    recompute and polls the segment until its `last_recompute` moves on.
//!    Profiles/s = people evaluated / the time from the request to seeing
//!    the result.
//! 5. Stops the nodes and reads the store directly: the events stored must
//!    be exactly the events acknowledged (`events_inserted`) and the events
//!    sent.
//!
//! PostgreSQL: `--postgres URL`, else `TESSERA_TEST_POSTGRES_URL`, else a
//! throwaway server of its own (`.ci/postgres start`, stopped at the end).
//!
//! It fails (exit 1) if any request fails, any message is refused, any
//! acknowledged event is missing from the store, or a recompute evaluates
//! another number of people or finds other members than the data holds.

mod common;
// Shared with the decide and soak benchmarks, which use more of it.
#[allow(dead_code)]
#[path = "common/campaign.rs"]
mod campaign;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use campaign::{PURPOSE, TENANT, call, mix, write_key};
use common::{Connection, Flags, Server, micros, percentile_ms};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_store::Store;
use tokio::task::JoinSet;

const SEGMENT: &str = "regulars";
const RULE: &str = "count(purchase, last 30 days) >= 2";
/// The rule's window, and the span the purchases are spread over.
const WINDOW_DAYS: u64 = 30;
const SPAN_DAYS: u64 = 60;
/// Messages per `/v1/batch` request.
const BATCH: u64 = 100;
/// The longest a phase or a recompute may take before the run fails.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Options {
    people: u64,
    events: u64,
    connections: usize,
    nodes: Vec<usize>,
    recomputes: u32,
    postgres: Option<String>,
    server: Option<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let flags = Flags::parse(
            &["--people", "--events", "--connections", "--recomputes"],
            &["--nodes", "--postgres"],
        )?;
        let nodes = flags
            .text("--nodes")
            .unwrap_or_else(|| "1,2,3".into())
            .split(',')
            .map(|n| match n.trim().parse::<usize>() {
                Ok(n) if (1..=8).contains(&n) => Ok(n),
                _ => Err(format!("--nodes: {n:?} is not a node count from 1 to 8")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let postgres = flags.text("--postgres").or_else(|| {
            std::env::var("TESSERA_TEST_POSTGRES_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
        });
        Ok(Self {
            people: flags.number("--people", 5_000.0, 100.0..=1e6)? as u64,
            events: flags.number("--events", 50_000.0, 100.0..=1e8)? as u64,
            connections: flags.number("--connections", 6.0, 1.0..=256.0)? as usize,
            recomputes: flags.number("--recomputes", 2.0, 1.0..=20.0)? as u32,
            nodes,
            postgres,
            server: flags.text("--server"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sled,
    Postgres,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    backend: Backend,
    nodes: usize,
}

impl Config {
    fn label(self) -> String {
        let nodes = if self.nodes == 1 { "node" } else { "nodes" };
        match self.backend {
            Backend::Sled => format!("sled, {} {nodes}", self.nodes),
            Backend::Postgres => format!("PostgreSQL, {} {nodes}", self.nodes),
        }
    }
}

/// The generated data, the same in every configuration: `people` people
/// (`p-0` …), and `events` purchases, event `n` by person `mix(n) mod
/// people`, dated 0 to 59 whole days plus 12 hours before it is received,
/// so that a rule's window boundary is hours away from every event during
/// the run.
#[derive(Debug)]
struct Data {
    people: u64,
    events: u64,
}

/// The client clock a purchase is sent with (`sentAt`); its
/// `originalTimestamp` is `days_ago` days and 12 hours earlier, and the
/// server dates it that long before it received it.
const SENT_AT: &str = "2001-04-01T00:00:00.000Z";

/// The `originalTimestamp` `days_ago` (0 to 89) days and 12 hours before
/// [`SENT_AT`]: in March, February or January 2001.
fn original_timestamp(days_ago: u64) -> String {
    let before = days_ago + 1;
    let (month, day) = match before {
        1..=31 => (3, 32 - before),
        32..=59 => (2, 60 - before),
        _ => (1, 91 - before),
    };
    format!("2001-{month:02}-{day:02}T12:00:00.000Z")
}

impl Data {
    fn person_of(&self, n: u64) -> u64 {
        mix(n) % self.people
    }

    fn days_ago(n: u64) -> u64 {
        mix(n ^ 0x5ca1e) % SPAN_DAYS
    }

    /// Batch `i` of the identify calls.
    fn identify_batch(&self, i: u64) -> Value {
        let batch: Vec<Value> = (i * BATCH..((i + 1) * BATCH).min(self.people))
            .map(|p| {
                json!({
                    "type": "identify",
                    "userId": format!("p-{p}"),
                    "messageId": format!("person-{p}"),
                    "traits": {"email": format!("p{p}@scale.example")},
                })
            })
            .collect();
        json!({ "batch": batch })
    }

    /// Batch `i` of the purchases.
    fn event_batch(&self, i: u64) -> Value {
        let batch: Vec<Value> = (i * BATCH..((i + 1) * BATCH).min(self.events))
            .map(|n| {
                json!({
                    "type": "track",
                    "userId": format!("p-{}", self.person_of(n)),
                    "messageId": format!("purchase-{n}"),
                    "event": "purchase",
                    "originalTimestamp": original_timestamp(Self::days_ago(n)),
                    "sentAt": SENT_AT,
                    "properties": {"amount": 10 + mix(n ^ 0xa11) % 190},
                })
            })
            .collect();
        json!({ "batch": batch })
    }

    /// How many of the people the rule holds.
    fn expected_members(&self) -> u64 {
        let mut recent = vec![0u32; self.people as usize];
        for n in 0..self.events {
            if Self::days_ago(n) < WINDOW_DAYS {
                recent[self.person_of(n) as usize] += 1;
            }
        }
        recent.iter().filter(|&&count| count >= 2).count() as u64
    }

    /// The requests of `work`.
    fn requests(&self, work: Work) -> u64 {
        match work {
            Work::People => self.people.div_ceil(BATCH),
            Work::Consents => self.people,
            Work::Events => self.events.div_ceil(BATCH),
        }
    }
}

/// The phases that run over all the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Identify calls, 100 a request.
    People,
    /// A subject token and a consent, per person.
    Consents,
    /// Purchases, 100 a request.
    Events,
}

/// What the phase's connections share.
#[derive(Debug)]
struct Plan {
    data: Data,
    operator: String,
    write_key: String,
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Run {
    elapsed: Duration,
    requests: u64,
    events_inserted: u64,
    latencies_us: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
    /// CPU seconds the nodes and PostgreSQL (if on this machine) used.
    cpu: (f64, f64),
    /// Bytes of write-ahead log PostgreSQL wrote.
    wal_bytes: Option<i64>,
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.requests += other.requests;
        self.events_inserted += other.events_inserted;
        self.latencies_us.extend(other.latencies_us);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// A batch the server must accept whole; gives back the events it stored.
async fn post_batch(
    connection: &mut Connection,
    write_key: &str,
    body: Value,
    events: bool,
) -> Result<u64, String> {
    let sent = body["batch"].as_array().map_or(0, Vec::len) as u64;
    let report = call(
        connection,
        Method::POST,
        "/v1/batch",
        write_key,
        Some(body),
        StatusCode::OK,
    )
    .await?;
    let accepted = report["accepted"].as_u64().unwrap_or(0);
    let inserted = report["events_inserted"].as_u64().unwrap_or(0);
    if accepted != sent || (events && inserted != sent) {
        return Err(format!(
            "{sent} messages sent, {accepted} accepted, {inserted} events stored: {report}"
        ));
    }
    Ok(inserted)
}

/// Request `i` of `work`; gives back the events it stored.
async fn step(plan: &Plan, work: Work, i: u64, connection: &mut Connection) -> Result<u64, String> {
    match work {
        // As the tenant's own systems send them (a staff token: a trusted
        // source), so that the member ids are the people's own and a
        // subject token can be issued by one.
        Work::People => {
            let body = plan.data.identify_batch(i);
            post_batch(connection, &plan.operator, body, false).await
        }
        Work::Events => {
            let body = plan.data.event_batch(i);
            post_batch(connection, &plan.write_key, body, true).await
        }
        Work::Consents => {
            let issued = call(
                connection,
                Method::POST,
                "/v1/subject-tokens",
                &plan.operator,
                Some(json!({"identity": {"kind": "member_id", "value": format!("p-{i}")}})),
                StatusCode::CREATED,
            )
            .await?;
            let token = issued["token"].as_str().ok_or("no subject token")?;
            call(
                connection,
                Method::PUT,
                &format!("/v1/me/consents/{PURPOSE}"),
                &format!("Bearer {token}"),
                Some(json!({"granted": true})),
                StatusCode::OK,
            )
            .await?;
            Ok(0)
        }
    }
}

/// Runs every request of `work` on `connections` keep-alive connections,
/// connection `c` to `addresses[c mod nodes]`, each sending its next
/// request as soon as the last is answered.
async fn closed_loop(
    addresses: &[String],
    connections: usize,
    plan: &Arc<Plan>,
    work: Work,
) -> Result<Run, String> {
    let total = plan.data.requests(work);
    let next = Arc::new(AtomicU64::new(0));
    let mut opened = Vec::new();
    for c in 0..connections {
        opened.push(Connection::open(&addresses[c % addresses.len()]).await?);
    }
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for mut connection in opened {
        let (plan, next) = (plan.clone(), next.clone());
        tasks.spawn(async move {
            let mut run = Run::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let began = Instant::now();
                let outcome = step(&plan, work, i, &mut connection).await;
                run.latencies_us.push(micros(began.elapsed()));
                run.requests += 1;
                match outcome {
                    Ok(inserted) => run.events_inserted += inserted,
                    Err(error) => {
                        run.failures += 1;
                        run.first_failure.get_or_insert(error);
                        // Give up after 100; a broken connection is replaced.
                        let broken = connection.reopen_if_closed().await.is_err();
                        if broken || run.failures > 100 {
                            break;
                        }
                    }
                }
            }
            run
        });
    }
    let mut run = Run::default();
    let joined = tokio::time::timeout(PHASE_LIMIT, async {
        while let Some(done) = tasks.join_next().await {
            run.merge(done.map_err(|e| e.to_string())?);
        }
        Ok::<(), String>(())
    })
    .await;
    match joined {
        Ok(result) => result?,
        Err(_) => return Err(format!("{work:?} did not finish within {PHASE_LIMIT:?}")),
    }
    run.elapsed = start.elapsed();
    run.latencies_us.sort_unstable();
    Ok(run)
}

/// One batch recompute as the bench saw it.
#[derive(Debug)]
struct Recompute {
    evaluated: u64,
    members: u64,
    /// From the request to the poll that saw its result.
    seen_after: Duration,
    /// The server's own start to finish.
    server_ms: i64,
}

/// Polls the segment until its `last_recompute` finished after
/// `after_ms`; gives back that recompute.
async fn finished_after(
    connection: &mut Connection,
    operator: &str,
    after_ms: i64,
) -> Result<Value, String> {
    let path = format!("/v1/segments/{SEGMENT}");
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let segment = call(
            connection,
            Method::GET,
            &path,
            operator,
            None,
            StatusCode::OK,
        )
        .await?;
        let last = &segment["last_recompute"];
        if last["finished_at_ms"].as_i64().unwrap_or(i64::MIN) > after_ms {
            return Ok(last.clone());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the recompute did not finish within {PHASE_LIMIT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn recompute_of(last: &Value, seen_after: Duration) -> Recompute {
    Recompute {
        evaluated: last["evaluated"].as_u64().unwrap_or(0),
        members: last["members"].as_u64().unwrap_or(0),
        seen_after,
        server_ms: last["finished_at_ms"].as_i64().unwrap_or(0)
            - last["started_at_ms"].as_i64().unwrap_or(0),
    }
}

/// Saves the segment through `address`, waits for the recompute the save
/// starts (the first, returned apart), then runs `runs` more.
async fn recomputes(
    address: &str,
    operator: &str,
    runs: u32,
) -> Result<(Recompute, Vec<Recompute>), String> {
    let mut admin = Connection::open(address).await?;
    let began = Instant::now();
    call(
        &mut admin,
        Method::PUT,
        &format!("/v1/segments/{SEGMENT}"),
        operator,
        Some(json!({
            "plugin": "rules",
            "params": {"rule": RULE},
            "purpose": PURPOSE,
            "description": "bought at least twice in the last 30 days",
        })),
        StatusCode::OK,
    )
    .await?;
    let last = finished_after(&mut admin, operator, i64::MIN).await?;
    let first = recompute_of(&last, began.elapsed());
    let mut before = last["finished_at_ms"].as_i64().unwrap_or(0);
    let mut measured = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        call(
            &mut admin,
            Method::POST,
            &format!("/v1/segments/{SEGMENT}/recompute"),
            operator,
            None,
            StatusCode::ACCEPTED,
        )
        .await?;
        let last = finished_after(&mut admin, operator, before).await?;
        before = last["finished_at_ms"].as_i64().unwrap_or(before);
        measured.push(recompute_of(&last, began.elapsed()));
    }
    Ok((first, measured))
}

/// What one configuration measured.
#[derive(Debug)]
struct Outcome {
    config: Config,
    people: Run,
    consents: Run,
    events: Run,
    first: Recompute,
    recomputes: Vec<Recompute>,
    /// Events found in the store after the nodes stopped.
    stored: u64,
    load_before: String,
    load_after: String,
}

impl Outcome {
    fn events_per_second(&self) -> f64 {
        self.events.events_inserted as f64 / self.events.elapsed.as_secs_f64()
    }

    fn profiles_per_second(&self) -> f64 {
        let evaluated: u64 = self.recomputes.iter().map(|r| r.evaluated).sum();
        let seconds: f64 = self
            .recomputes
            .iter()
            .map(|r| r.seen_after.as_secs_f64())
            .sum();
        evaluated as f64 / seconds
    }
}

/// A PostgreSQL server of the bench's own, stopped (and its directory
/// removed) when dropped.
#[derive(Debug)]
struct OwnPostgres {
    script: PathBuf,
    dir: PathBuf,
}

impl OwnPostgres {
    fn start() -> Result<(Self, String), String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/postgres");
        // Not below a private temporary directory: the server runs as the
        // `postgres` user, which must reach it.
        let dir = std::env::temp_dir().join(format!("tessera-scale-pg-{}", std::process::id()));
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let own = Self { script, dir };
        if !out.status.success() {
            return Err(format!(
                ".ci/postgres start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((own, url))
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Drops a configuration's schema, with everything in it, when dropped.
#[derive(Debug)]
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// The events of the tenant in `store`, counted subject by subject.
fn stored_events(store: &dyn Store) -> Result<u64, String> {
    let mut total = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .subjects(TENANT, after.as_deref(), 1_000)
            .map_err(|e| e.to_string())?;
        for subject in &page {
            total += store
                .events(TENANT, &subject.id, i64::MIN, i64::MAX)
                .map_err(|e| e.to_string())?
                .len() as u64;
        }
        match page.last() {
            Some(last) if page.len() == 1_000 => after = Some(last.id.clone()),
            _ => return Ok(total),
        }
    }
}

/// The process id of the PostgreSQL server whose data directory is
/// `dir`, or (without `dir`) of the one at `url` if it runs on this machine
/// and its role may read where its data directory is.
fn postmaster(url: &str, dir: Option<PathBuf>) -> Option<u32> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = postgres::Client::connect(url, postgres::NoTls).ok()?;
                    let row = client.query_one("SHOW data_directory", &[]).ok()?;
                    row.try_get::<_, String>(0).ok().map(PathBuf::from)
                })
                .join()
                .ok()
                .flatten()
        })?,
    };
    let pid = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

/// The CPU time the PostgreSQL server `postmaster` used so far, in
/// seconds: its own, its live backends' and that of the backends that
/// ended.
fn postgres_cpu_seconds(postmaster: u32) -> f64 {
    let Some(server) = common::proc_stat(postmaster) else {
        return 0.0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let backends: u64 = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(common::proc_stat)
        .filter(|stat| stat.parent == postmaster)
        .map(|stat| stat.utime + stat.stime)
        .sum();
    (server.utime + server.stime + server.children + backends) as f64 / 100.0
}

/// The server's write-ahead log position, in bytes. On a thread of its
/// own: the synchronous client runs a runtime, which cannot start inside
/// the bench's.
fn wal_position(url: &str) -> Option<i64> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut client = postgres::Client::connect(url, postgres::NoTls).ok()?;
                let row = client
                    .query_one(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
                        &[],
                    )
                    .ok()?;
                row.try_get::<_, i64>(0).ok()
            })
            .join()
            .ok()
            .flatten()
    })
}

/// The CPU seconds the nodes and the PostgreSQL server (if it is known)
/// have used so far.
fn cpu_now(nodes: &[Server], postmaster: Option<u32>) -> (f64, f64) {
    let nodes = nodes.iter().filter_map(Server::cpu_seconds).sum();
    (nodes, postmaster.map_or(0.0, postgres_cpu_seconds))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Starts the configuration's nodes in `root` (one directory each).
fn start_nodes(
    config: Config,
    tessera: &str,
    root: &Path,
    postgres: Option<(&str, &str)>,
) -> Result<Vec<Server>, String> {
    let settings = |dir: &Path| {
        let mut settings = vec![
            // A consent a person through /v1/me: the highest limit there is
            // (1,000 a second a node), and a burst of as many.
            ("TESSERA_SUBJECT_TOKEN_RPS", "1000".to_owned()),
            ("TESSERA_SUBJECT_TOKEN_BURST", "1000".to_owned()),
            (
                "TESSERA_CACHE_DIR",
                dir.join("compiled").display().to_string(),
            ),
        ];
        if let Some((url, schema)) = postgres {
            settings.extend([
                ("TESSERA_STORAGE_BACKEND", "postgres".to_owned()),
                ("TESSERA_STORAGE_URL", url.to_owned()),
                ("TESSERA_STORAGE_SCHEMA", schema.to_owned()),
                ("TESSERA_STORAGE_KEYS", "database".to_owned()),
            ]);
        }
        settings
    };
    let first_dir = root.join("node-0");
    let first = Server::start(&first_dir, tessera, TENANT, &settings(&first_dir))?;
    let mut nodes = vec![first];
    for n in 1..config.nodes {
        let dir = root.join(format!("node-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(first_dir.join("master.key"), dir.join("master.key"))
            .map_err(|e| format!("copying the master key: {e}"))?;
        let operator = nodes[0].operator.clone();
        nodes.push(Server::join(
            &dir,
            tessera,
            TENANT,
            &settings(&dir),
            &operator,
        )?);
    }
    Ok(nodes)
}

/// The phases over the API, on running nodes.
async fn drive(
    options: &Options,
    data: Data,
    nodes: &[Server],
    postgres_url: Option<&str>,
    postmaster: Option<u32>,
) -> Result<(Run, Run, Run, Recompute, Vec<Recompute>), String> {
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let operator = format!("Bearer {}", nodes[0].operator);
    let mut admin = Connection::open(&addresses[0]).await?;
    let write_key = write_key(&mut admin, &operator, "scale benchmark").await?;
    let plan = Arc::new(Plan {
        data,
        operator: operator.clone(),
        write_key,
    });
    let k = options.connections;
    let people = closed_loop(&addresses, k, &plan, Work::People).await?;
    println!(
        "  people: {} identified in {:.1} s",
        plan.data.people,
        people.elapsed.as_secs_f64()
    );
    let consents = closed_loop(&addresses, k, &plan, Work::Consents).await?;
    println!(
        "  consents: {} in {:.1} s",
        plan.data.people,
        consents.elapsed.as_secs_f64()
    );
    let wal_before = postgres_url.and_then(wal_position);
    let before = cpu_now(nodes, postmaster);
    let mut events = closed_loop(&addresses, k, &plan, Work::Events).await?;
    let after = cpu_now(nodes, postmaster);
    events.cpu = (after.0 - before.0, after.1 - before.1);
    if let (Some(before), Some(after)) = (wal_before, postgres_url.and_then(wal_position)) {
        events.wal_bytes = Some(after - before);
    }
    println!(
        "  events: {} acknowledged in {:.1} s ({:.0}/s), batch p50 {:.1} ms, p99 {:.1} ms",
        events.events_inserted,
        events.elapsed.as_secs_f64(),
        events.events_inserted as f64 / events.elapsed.as_secs_f64(),
        percentile_ms(&events.latencies_us, 50.0),
        percentile_ms(&events.latencies_us, 99.0),
    );
    let per_thousand = 1_000.0 / events.events_inserted.max(1) as f64;
    println!(
        "  CPU: nodes {:.1} s, PostgreSQL {:.1} s ({:.0} ms and {:.0} ms per 1,000 events)",
        events.cpu.0,
        events.cpu.1,
        events.cpu.0 * per_thousand * 1e3,
        events.cpu.1 * per_thousand * 1e3,
    );
    let (first, measured) = recomputes(&addresses[0], &operator, options.recomputes).await?;
    for (n, r) in std::iter::once(&first).chain(&measured).enumerate() {
        println!(
            "  recompute {}: {} evaluated, {} members, seen after {:.2} s (server: {:.2} s)",
            if n == 0 {
                "on save".to_owned()
            } else {
                n.to_string()
            },
            r.evaluated,
            r.members,
            r.seen_after.as_secs_f64(),
            r.server_ms as f64 / 1e3,
        );
    }
    Ok((people, consents, events, first, measured))
}

/// Runs one configuration from fresh storage to the count of what it
/// stored.
fn measure(
    options: &Options,
    config: Config,
    tessera: &str,
    root: &Path,
    postgres_url: Option<&str>,
    postmaster: Option<u32>,
) -> Result<Outcome, String> {
    println!("\n{}:", config.label());
    let load_before = load_average();
    let data = Data {
        people: options.people,
        events: options.events,
    };
    let schema = format!("tessera_scale_{}_{}", std::process::id(), config.nodes);
    let _drop = postgres_url.map(|url| DropSchema {
        url: url.to_owned(),
        schema: schema.clone(),
    });
    let nodes = start_nodes(
        config,
        tessera,
        root,
        postgres_url.map(|url| (url, schema.as_str())),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let driven = runtime.block_on(drive(options, data, &nodes, postgres_url, postmaster));
    let load_after = load_average();
    for node in nodes {
        node.stop()?;
    }
    let (people, consents, events, first, recomputes) = driven?;
    let stored = match postgres_url {
        None => {
            let store = tessera_store::SledStore::open(root.join("node-0/data"))
                .map_err(|e| format!("reopening the sled store: {e}"))?;
            stored_events(&store)?
        }
        Some(url) => {
            let options = tessera_store_postgres::PgOptions::new(url).schema(schema.clone());
            let store = tessera_store_postgres::PgStore::open_with(&options)
                .map_err(|e| format!("opening the schema {schema}: {e}"))?;
            stored_events(&store)?
        }
    };
    println!("  stored: {stored} events");
    Ok(Outcome {
        config,
        people,
        consents,
        events,
        first,
        recomputes,
        stored,
        load_before,
        load_after,
    })
}

fn main() -> ExitCode {
    common::exit_code(run(), "scale benchmark")
}

fn run() -> Result<bool, String> {
    let options = Options::parse()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "tessera scale benchmark: {} people, {} events in batches of {BATCH}, {} connection(s), \
         {} measured recompute(s), {cores} cores, load average {}",
        options.people,
        options.events,
        options.connections,
        options.recomputes,
        load_average(),
    );
    let tessera = options
        .server
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tessera").to_owned());
    let (own, url) = match &options.postgres {
        Some(url) => (None, url.clone()),
        None => {
            let (own, url) = OwnPostgres::start()?;
            println!("PostgreSQL: a server of the bench's own, {url}");
            (Some(own), url)
        }
    };
    let postmaster = postmaster(&url, own.as_ref().map(|own| own.dir.join("data")));
    if postmaster.is_none() {
        println!("(the PostgreSQL server's process is not known: its CPU time is not measured)");
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = Data {
        people: options.people,
        events: options.events,
    };
    let expected_members = data.expected_members();
    let mut configs = vec![Config {
        backend: Backend::Sled,
        nodes: 1,
    }];
    configs.extend(options.nodes.iter().map(|&nodes| Config {
        backend: Backend::Postgres,
        nodes,
    }));
    let mut outcomes = Vec::new();
    for (n, &config) in configs.iter().enumerate() {
        let root = dir.path().join(format!("config-{n}"));
        let postgres = (config.backend == Backend::Postgres).then_some(url.as_str());
        let postmaster = postgres.and(postmaster);
        outcomes.push(measure(
            &options, config, &tessera, &root, postgres, postmaster,
        )?);
    }

    let sled = &outcomes[0];
    println!(
        "\n| configuration | events/s | × sled | batch p50 ms | batch p99 ms | recompute profiles/s | × sled | load average | cores |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|");
    for outcome in &outcomes {
        println!(
            "| {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} | {:.2} | {}–{} | {cores} |",
            outcome.config.label(),
            outcome.events_per_second(),
            outcome.events_per_second() / sled.events_per_second(),
            percentile_ms(&outcome.events.latencies_us, 50.0),
            percentile_ms(&outcome.events.latencies_us, 99.0),
            outcome.profiles_per_second(),
            outcome.profiles_per_second() / sled.profiles_per_second(),
            outcome.load_before,
            outcome.load_after,
        );
    }
    println!(
        "\n| configuration | CPU of the nodes, ms per 1,000 events | CPU of PostgreSQL, ms per 1,000 events | WAL bytes per event | people identified, s | consents, s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for outcome in &outcomes {
        let per_thousand = 1e6 / outcome.events.events_inserted.max(1) as f64;
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.1} | {:.1} |",
            outcome.config.label(),
            outcome.events.cpu.0 * per_thousand,
            outcome.events.cpu.1 * per_thousand,
            outcome.events.wal_bytes.map_or("–".to_owned(), |bytes| {
                format!(
                    "{:.0}",
                    bytes as f64 / outcome.events.events_inserted.max(1) as f64
                )
            }),
            outcome.people.elapsed.as_secs_f64(),
            outcome.consents.elapsed.as_secs_f64(),
        );
    }
    println!(
        "\n(events/s: purchases acknowledged per second; profiles/s: people evaluated per second \
         of a batch recompute, from the request to seeing its result, over {} run(s))",
        options.recomputes
    );

    let mut ok = true;
    let mut fail = |why: String| {
        ok = false;
        eprintln!("FAILED: {why}");
    };
    for outcome in &outcomes {
        let label = outcome.config.label();
        for (phase, run) in [
            ("people", &outcome.people),
            ("consents", &outcome.consents),
            ("events", &outcome.events),
        ] {
            if run.failures > 0 {
                fail(format!(
                    "{label}, {phase}: {} request(s) failed; first: {}",
                    run.failures,
                    run.first_failure.as_deref().unwrap_or("?")
                ));
            }
        }
        if outcome.events.events_inserted != options.events {
            fail(format!(
                "{label}: {} events acknowledged of {} sent",
                outcome.events.events_inserted, options.events
            ));
        }
        if outcome.stored != outcome.events.events_inserted {
            fail(format!(
                "{label}: {} events acknowledged, {} in the store",
                outcome.events.events_inserted, outcome.stored
            ));
        }
        for r in std::iter::once(&outcome.first).chain(&outcome.recomputes) {
            if r.evaluated != options.people || r.members != expected_members {
                fail(format!(
                    "{label}: a recompute evaluated {} people and found {} members; the data \
                     holds {} people, {expected_members} of them members",
                    r.evaluated, r.members, options.people
                ));
            }
        }
    }
    Ok(ok)
}
