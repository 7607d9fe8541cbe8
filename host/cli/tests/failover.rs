//! A node killed with SIGKILL in the middle of an import and of a segment
//! recompute, out of three `tessera serve` nodes sharing one PostgreSQL
//! schema, while events keep coming through all three:
//!
//! - every event a node acknowledged is stored exactly once (the client
//!   sends what the dead node did not acknowledge to another node, with the
//!   same `messageId`);
//! - the recompute completes on the survivors: the shard the dead node held
//!   is taken over when its lease runs out;
//! - the import it was reading is marked failed by a survivor, naming the
//!   node, and importing the file again through another node adds exactly
//!   what is missing;
//! - the segment's members are those of a single node on sled given the
//!   same data.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres start DIR` prints one);
//! `TESSERA_SKIP_POSTGRES=1` skips it and says so on stderr.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Server;
use common::cluster::{self, DropSchema};
use serde_json::{Value, json};

const TENANT: &str = "acme";
/// People in the data; user `u-NNNN` bought `N % 4` times online.
const PEOPLE: usize = 600;
/// The first people also have a store purchase in the imported file.
const IMPORTED: usize = 300;
/// The segment under test: a windowed aggregate over online and store
/// purchases, for people who consent to personalization.
const RULE: &str = "count(purchase, last 90 days) >= 2";
/// Short leases, frequent background rounds: a dead node's work is taken
/// over within seconds.
const LEASE_MS: &str = "1500";
const BOUND: Duration = Duration::from_secs(90);

/// Settings every server of the test gets: no rate limits in the way of
/// hundreds of consents given in a few seconds.
const UNLIMITED: [(&str, &str); 4] = [
    ("TESSERA_RATE_LIMIT_RPS", "100000"),
    ("TESSERA_RATE_LIMIT_BURST", "100000"),
    ("TESSERA_JOBS_INTERVAL_S", "1"),
    ("TESSERA_JOBS_LEASE_MS", LEASE_MS),
];

fn user(i: usize) -> String {
    format!("u-{i:04}")
}

/// The online data: identify and purchases, in batches of 20 messages.
fn online_batches() -> Vec<Value> {
    let mut messages = Vec::new();
    for i in 0..PEOPLE {
        messages.push(json!({
            "type": "identify", "userId": user(i), "messageId": format!("id-{i}"),
            "traits": {},
        }));
        for k in 0..i % 4 {
            messages.push(json!({
                "type": "track", "userId": user(i), "event": "purchase",
                "messageId": format!("buy-{i}-{k}"), "properties": {"amount": 10.0},
            }));
        }
    }
    messages.chunks(20).map(|c| json!({ "batch": c })).collect()
}

/// The store purchases: one row per imported person, each padded so that
/// the file spans more than one import chunk (1 MiB).
fn store_file() -> (String, Value) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let pad = "x".repeat(4_000);
    let mut file = String::from("receipt,member_no,at,amount,note\n");
    for i in 0..IMPORTED {
        file.push_str(&format!(
            "r-{i},{},{},25.5,{pad}\n",
            user(i),
            now_ms - 86_400_000
        ));
    }
    let spec = json!({
        "connector": "csv",
        "chunking": "csv",
        "source": "store-purchases.csv",
        "params": {"mapping": {
            "source": "pos-test",
            "identities": {"member_no": "member_id"},
            "event": {
                "type": "purchase",
                "time": {"column": "at", "format": "epoch_ms"},
                "properties": {"amount": "number"}
            },
            "source_id": {"column": "receipt"}
        }},
    });
    (file, spec)
}

/// Sends `batch` to the nodes in turn from `first`, past any that does not
/// answer 200 (a dead node refuses the connection): the events of a batch
/// are stored once however many nodes saw it. Returns the events the
/// acknowledging node inserted.
fn send_batch(nodes: &[&Server], first: usize, token: &str, batch: &Value) -> u64 {
    let text = batch.to_string();
    for attempt in 0..nodes.len() * 20 {
        let node = nodes[(first + attempt) % nodes.len()];
        if let Some(answer) = raw_post(&node.address, "/v1/batch", token, &text) {
            assert!(
                answer["errors"].as_array().is_some_and(Vec::is_empty),
                "{answer}"
            );
            return answer["events_inserted"].as_u64().expect("a count");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no node acknowledged a batch");
}

/// The people who consent to personalization: four in five.
fn consents(i: usize) -> bool {
    !i.is_multiple_of(5)
}

/// Gives consent to personalization for every consenting person, through
/// the nodes in turn.
fn give_consents(nodes: &[&Server], operator: &str) {
    let portal = nodes[0].create_token(operator, "portal", "consents");
    for i in (0..PEOPLE).filter(|i| consents(*i)) {
        nodes[i % nodes.len()].consent(operator, &portal, &user(i), "personalization");
    }
}

/// Saves the segment `buyers`; its first recompute starts at once.
fn save_segment(node: &Server, operator: &str) {
    node.ok_call(
        "PUT",
        "/v1/segments/buyers",
        operator,
        json!({"plugin": "rules", "params": {"rule": RULE}, "purpose": "personalization"}),
    );
}

/// The segment's last recompute, once one that started at or after
/// `since_ms` has finished.
fn recomputed_since(node: &Server, operator: &str, since_ms: i64) -> Value {
    cluster::within(BOUND, "the recompute finishes", || {
        let (status, segment) = node.call("GET", "/v1/segments/buyers", Some(operator), None);
        let last = &segment["last_recompute"];
        match last["started_at_ms"].as_i64() {
            Some(started) if status == 200 && started >= since_ms => Ok(last.clone()),
            _ => Err(format!("{status} {segment}")),
        }
    })
}

/// The segment's members, as user ids.
fn members(node: &Server, operator: &str) -> BTreeSet<String> {
    let mut subjects = BTreeSet::new();
    let mut after = String::new();
    loop {
        let query = if after.is_empty() {
            "/v1/segments/buyers/members?limit=1000".to_owned()
        } else {
            format!("/v1/segments/buyers/members?limit=1000&after={after}")
        };
        let page = node.ok_call("GET", &query, operator, Value::Null);
        let listed = page["members"].as_array().expect("members");
        for member in listed {
            subjects.insert(member["subject"].as_str().expect("a subject").to_owned());
        }
        match page["next"].as_str() {
            Some(next) if !listed.is_empty() => after = next.to_owned(),
            _ => break,
        }
    }
    (0..PEOPLE)
        .map(user)
        .filter(|u| {
            let found = node.ok_call(
                "POST",
                "/v1/subjects/lookup",
                operator,
                json!({"kind": "member_id", "value": u}),
            );
            subjects.contains(found["subject"].as_str().expect("a subject"))
        })
        .collect()
}

/// The members a single node on sled ends with, given the same data.
fn single_node_members() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    common::init_keys(dir.path());
    let server = Server::start_with(dir.path(), TENANT, &UNLIMITED);
    let operator = server.operator.clone().expect("an operator token");
    for batch in online_batches() {
        send_batch(&[&server], 0, &operator, &batch);
    }
    give_consents(&[&server], &operator);
    let (file, spec) = store_file();
    let import = server.ok_call("POST", "/v1/imports", &operator, spec);
    let id = import["id"].as_str().expect("an import id");
    let (status, done) = put_data(&server, &operator, id, file.as_bytes());
    assert_eq!(status, 200, "{done}");
    let since = now_ms();
    save_segment(&server, &operator);
    recomputed_since(&server, &operator, since);
    members(&server, &operator)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `PUT /v1/imports/{id}/data` with the whole of `data`.
fn put_data(node: &Server, token: &str, id: &str, data: &[u8]) -> (u16, Value) {
    let mut upload = start_upload(node, token, id, data.len());
    upload.write_all(data).expect("upload");
    read_answer(upload)
}

/// Opens `PUT /v1/imports/{id}/data` of `length` bytes and sends its head:
/// the body follows on the returned stream.
fn start_upload(node: &Server, token: &str, id: &str, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(&node.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "PUT /v1/imports/{id}/data HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n\
         Content-Length: {length}\r\n\r\n",
        node.address
    )
    .expect("write the head");
    stream
}

fn read_answer(mut stream: TcpStream) -> (u16, Value) {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).expect("read the answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Whether node `worker` holds the lease of a recompute shard not yet done.
fn holds_a_shard(pg: &str, schema: &str, worker: &str) -> bool {
    let mut client = postgres::Client::connect(pg, postgres::NoTls).expect("connect");
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.jobs \
                 WHERE kind = convert_to('segments.recompute-shard', 'UTF8') \
                 AND lease_worker = convert_to($1, 'UTF8')"
            ),
            &[&worker],
        )
        .expect("query the jobs");
    row.get::<_, i64>(0) > 0
}

#[test]
fn a_node_killed_mid_import_and_mid_recompute_loses_no_acknowledged_event() {
    let Some(pg) = cluster::postgres_url("a node killed in the middle of a recompute") else {
        return;
    };
    let schema = format!("tessera_failover_{}", std::process::id());
    let _drop = DropSchema(pg.clone(), schema.clone());
    let dirs = cluster::node_dirs(3);
    let mut settings = UNLIMITED.to_vec();
    settings.push(("TESSERA_STORAGE_POLL_MS", "200"));
    let nodes: Vec<Server> = dirs
        .iter()
        .map(|dir| cluster::start_node(dir.path(), TENANT, &pg, &schema, &settings))
        .collect();
    let operator = nodes[0].operator.clone().expect("an operator token");
    let victim_id = cluster::node_id(dirs[1].path());
    let all: Vec<&Server> = nodes.iter().collect();

    // ---- the data, spread over the nodes; some batches sent twice
    let ingest = nodes[0].create_token(&operator, "ingest", "ingest");
    let batches = online_batches();
    let mut inserted = 0;
    for (b, batch) in batches.iter().enumerate() {
        inserted += send_batch(&all, b, &ingest, batch);
        if b % 5 == 0 {
            assert_eq!(
                send_batch(&all, b + 1, &ingest, batch),
                0,
                "a batch sent again through another node adds nothing"
            );
        }
    }
    let purchases: u64 = (0..PEOPLE).map(|i| (i % 4) as u64).sum();
    assert_eq!(inserted, purchases);
    give_consents(&all, &operator);
    let since = now_ms();
    save_segment(&nodes[0], &operator);
    let first = recomputed_since(&nodes[0], &operator, since);
    assert!(first["evaluated"].as_u64() > Some(0), "{first}");

    // ---- page views keep coming through all three nodes throughout
    let viewers = 30;
    let acknowledged: Arc<Mutex<BTreeMap<usize, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let views = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        let nodes: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.address.clone(), n.url.clone()))
            .collect();
        let ingest = ingest.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && n < 5_000 {
                let person = n % viewers;
                let batch = json!({"batch": [{
                    "type": "track", "userId": user(person), "event": "page_view",
                    "messageId": format!("view-{n}"),
                }]});
                let text = batch.to_string();
                // Through the nodes in turn; past a dead one to the next.
                let mut sent = false;
                for attempt in 0..60 {
                    let (address, _) = &nodes[(n + attempt) % nodes.len()];
                    if let Some(answer) = raw_post(address, "/v1/batch", &ingest, &text) {
                        // Inserted now, or by a node that died before it
                        // answered (then this is a duplicate).
                        let stored = answer["events_inserted"].as_u64().unwrap_or(0)
                            + answer["duplicates"].as_u64().unwrap_or(0);
                        assert_eq!(stored, 1, "view {n}: {answer}");
                        *acknowledged.lock().unwrap().entry(person).or_default() += 1;
                        sent = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                assert!(sent, "no node acknowledged view {n}");
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // ---- an import on the victim: its first chunk stored, the rest not sent
    let (file, spec) = store_file();
    let import = nodes[1].ok_call("POST", "/v1/imports", &operator, spec.clone());
    let import_id = import["id"].as_str().expect("an import id").to_owned();
    let mut upload = start_upload(&nodes[1], &operator, &import_id, file.len());
    let cut = file[..(1 << 20) + 20_000].rfind('\n').unwrap() + 1;
    upload
        .write_all(&file.as_bytes()[..cut])
        .expect("the first part");
    let stored_before = cluster::within(BOUND, "the import's first chunk is stored", || {
        let record = nodes[0].ok_call(
            "GET",
            &format!("/v1/imports/{import_id}"),
            &operator,
            Value::Null,
        );
        match record["report"]["events_inserted"].as_u64() {
            Some(n) if n > 0 && record["status"] == "running" => Ok(n),
            _ => Err(record.to_string()),
        }
    });
    // Its people's streaming updates run on the victim: let them.
    std::thread::sleep(Duration::from_secs(1));

    // ---- a recompute started on the victim, which dies holding a shard
    let run_since = now_ms();
    let (status, answer) = nodes[1].call(
        "POST",
        "/v1/segments/buyers/recompute",
        Some(&operator),
        None,
    );
    assert_eq!(status, 202, "{answer}");
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(
            Instant::now() < deadline,
            "node {victim_id} was never caught holding a shard"
        );
        if holds_a_shard(&pg, &schema, &victim_id) {
            nodes[1].signal("STOP");
            // Frozen: what it holds now, it holds when it dies.
            if holds_a_shard(&pg, &schema, &victim_id) {
                break;
            }
            nodes[1].signal("CONT");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut nodes = nodes;
    let victim = nodes.remove(1);
    victim.kill();
    drop(upload);
    let survivors: Vec<&Server> = nodes.iter().collect();

    // ---- the survivors finish the recompute, taking the dead node's shard
    let run = recomputed_since(survivors[0], &operator, run_since);
    assert!(
        !holds_a_shard(&pg, &schema, &victim_id),
        "the dead node's shard was taken over and done"
    );
    assert_eq!(
        run["evaluated"].as_u64(),
        first["evaluated"].as_u64(),
        "every consenting person evaluated once in the run: {run}"
    );

    // ---- the victim's import is marked failed by a survivor
    let failed = cluster::within(BOUND, "the dead node's import is marked failed", || {
        let record = survivors[1].ok_call(
            "GET",
            &format!("/v1/imports/{import_id}"),
            &operator,
            Value::Null,
        );
        if record["status"] == "failed" {
            Ok(record)
        } else {
            Err(record.to_string())
        }
    });
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&victim_id) && error.contains("adds only what is missing"),
        "{failed}"
    );

    // ---- importing the file again through a survivor adds what is missing
    let again = survivors[1].ok_call("POST", "/v1/imports", &operator, spec);
    let again_id = again["id"].as_str().expect("an import id");
    let (status, report) = put_data(survivors[1], &operator, again_id, file.as_bytes());
    assert_eq!(status, 200, "{report}");
    let report = &report["report"];
    assert_eq!(
        report["events_inserted"].as_u64().unwrap() + report["duplicates"].as_u64().unwrap(),
        IMPORTED as u64,
        "{report}"
    );
    assert_eq!(
        report["duplicates"].as_u64(),
        Some(stored_before),
        "what the dead node stored is not stored again: {report}"
    );

    // ---- every acknowledged page view is stored once
    stop.store(true, Ordering::Relaxed);
    views.join().expect("the page views");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), viewers);
    for (person, count) in &acknowledged {
        let found = survivors[0].ok_call(
            "POST",
            "/v1/subjects/lookup",
            &operator,
            json!({"kind": "member_id", "value": user(*person)}),
        );
        let profile = survivors[0].ok_call(
            "GET",
            &format!("/v1/profiles/{}", found["subject"].as_str().unwrap()),
            &operator,
            Value::Null,
        );
        assert_eq!(
            profile["aggregates"]["page_view"]["count"].as_u64(),
            Some(*count),
            "{}: every acknowledged page view once",
            user(*person)
        );
    }

    // ---- the members are a single node's on the same data
    let expected = single_node_members();
    assert!(
        expected.len() > PEOPLE / 10 && expected.len() < PEOPLE,
        "a segment that tells people apart: {} members",
        expected.len()
    );
    // The interrupted run and the streaming updates of the second import
    // (on the node that took it) reach the same members; no recompute
    // after them.
    cluster::within(BOUND, "the members are a single node's", || {
        let got = members(survivors[1], &operator);
        let differ: Vec<&String> = got.symmetric_difference(&expected).collect();
        if differ.is_empty() {
            Ok(())
        } else {
            Err(format!("{} differ: {differ:?}", differ.len()))
        }
    });
}

/// `POST` of `body` on its own connection; `None` if the node did not
/// answer 200 (refused, cut off, or an error).
fn raw_post(address: &str, path: &str, token: &str, body: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()
}
