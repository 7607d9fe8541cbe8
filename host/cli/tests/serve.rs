//! `tessera serve` and `tessera token` as an operator runs them: first start
//! with `--init`, tokens over HTTP, SIGTERM, restart.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::cluster;

/// The binary with the deployment in `dir` and nothing from the environment.
fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_CONFIG")
        .env_remove("TESSERA_LISTEN")
        .env_remove("TESSERA_SERVER")
        .env_remove("TESSERA_TOKEN")
        .env("TESSERA_DATA_DIR", dir.join("data"))
        .env("TESSERA_KEY_DIR", dir.join("keys"))
        .env("TESSERA_MASTER_KEY_FILE", dir.join("master.key"));
    command
}

/// A running server and the lines it printed.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = tessera(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tessera serve starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines up to and including the first that contains `needle`.
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; got {seen:?}"),
            }
        }
    }

    /// SIGTERM, then the exit status within 30 s.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.lines.try_iter().collect();
                return (status, rest);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("tessera serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    tessera(dir).args(args).output().expect("tessera runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn serve_init_prints_a_token_once_and_token_commands_use_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "keys",
            "init",
            "--key-file",
            dir.path().join("master.key").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = Server::start(dir.path(), &["--init", "--tenant", "acme"]);
    let lines = server.until("listening on ");
    let at = lines
        .iter()
        .position(|l| l.contains("shown once"))
        .unwrap_or_else(|| panic!("no token printed: {lines:?}"));
    assert!(
        lines.iter().any(|l| l.contains("created tenant acme")),
        "{lines:?}"
    );
    let operator = lines[at + 1].trim().to_owned();
    assert!(operator.starts_with("tsk_"), "{operator}");
    // The plugin runtime runs, with the first-party plugins of the tenant.
    let plugins = lines
        .iter()
        .find(|l| l.contains("installed for tenant acme"))
        .unwrap_or_else(|| panic!("no plugins installed: {lines:?}"));
    for name in ["ndjson@", "csv@", "threshold@", "epsilon-greedy@"] {
        assert!(plugins.contains(name), "{plugins}");
    }
    let url = lines
        .last()
        .unwrap()
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    // Transparent huge pages are off for the server (their page faults
    // stall it; docs/BENCHMARKS.md, section 9).
    #[cfg(target_os = "linux")]
    {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let thp = status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .unwrap_or_else(|| panic!("no THP_enabled line: {status}"));
        assert_eq!(thp.trim(), "0", "transparent huge pages are on");
    }
    let client = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--token", &operator]);
        run(dir.path(), &all)
    };

    let created = client(&["token", "create", "--role", "ingest", "--name", "website"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let ingest = text(&created.stdout).trim().to_owned();
    assert!(ingest.starts_with("tsk_"), "{ingest}");
    let id = text(&created.stderr)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();

    let listed = client(&["token", "list"]);
    let listing = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        listing.contains(&id) && listing.contains("website") && listing.contains("bootstrap"),
        "{listing}"
    );
    assert!(
        !listing.contains("tsk_"),
        "no secrets in a listing: {listing}"
    );

    // An ingest token may not manage tokens: the server's 403 becomes exit 1.
    let mut all = vec!["token", "list", "--server", &url, "--token", &ingest];
    let refused = run(dir.path(), &all);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("forbidden"),
        "{}",
        text(&refused.stderr)
    );

    let revoked = client(&["token", "revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    all[5] = &operator;
    let listing = text(&run(dir.path(), &all).stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{listing}"
    );

    let (status, rest) = server.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(rest.iter().any(|l| l.contains("store flushed")), "{rest:?}");

    // Restarted with --init: the tenant and its operator token exist, so
    // no token is printed again.
    let server = Server::start(dir.path(), &["--init", "--tenant", "acme"]);
    let lines = server.until("listening on ");
    assert!(lines.iter().all(|l| !l.contains("tsk_")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("already has an active operator token")),
        "{lines:?}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn serve_refuses_a_missing_deployment_and_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "[limits]\nmax_batch_messages = 0\n").unwrap();
    let out = run(dir.path(), &["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_batch_messages"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &[
            "token",
            "list",
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out.stderr)
    );
}

/// Sends a request's head and the first half of its body on a fresh
/// connection, and returns the stream and the rest of the body.
fn half_sent(url: &str, token: &str, body: &str) -> (std::net::TcpStream, String) {
    use std::io::Write as _;
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    (stream, rest.to_owned())
}

#[test]
fn sigterm_lets_requests_in_flight_finish_and_what_they_acknowledged_is_on_disk() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let out = run(
        dir.path(),
        &["keys", "init", "--key-file", key_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Server::start(dir.path(), &["--init", "--tenant", "acme"]);
    let lines = server.until("listening on ");
    let at = lines.iter().position(|l| l.contains("shown once")).unwrap();
    let token = lines[at + 1].trim().to_owned();
    let url = lines
        .last()
        .unwrap()
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();

    // Two requests in flight: heads and half their bodies sent.
    let batch = |who: &str, n: usize| {
        let messages: Vec<_> = (0..n)
            .map(|i| {
                serde_json::json!({"type": "track", "userId": who, "event": "In Flight",
                                   "messageId": format!("{who}-{i}")})
            })
            .collect();
        serde_json::json!({ "batch": messages }).to_string()
    };
    let in_flight: Vec<_> = [("first", 40), ("second", 60)]
        .into_iter()
        .map(|(who, n)| half_sent(&url, &token, &batch(who, n)))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // SIGTERM now; the server must not exit before answering them.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    for (mut stream, rest) in in_flight {
        stream.write_all(rest.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"success\":true"), "{answer}");
    }
    let (status, rest) = server.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    // Nothing new is accepted once it stopped.
    assert!(std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err());

    // Every acknowledged event is on disk: reopen the data directory.
    let vault = tessera_vault::Vault::open(
        dir.path().join("data"),
        dir.path().join("keys"),
        tessera_privacy::MasterKey::from_file(&key_file).unwrap(),
    )
    .unwrap();
    let (people, _) = vault.people("acme", None, 10).unwrap();
    let mut counts: Vec<u64> = people
        .iter()
        .map(|p| p.aggregates.values().map(|a| a.count).sum())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [40, 60]);
}

/// A JSON request with a bearer token: (status, body).
fn call(url: &str, token: &str, path: &str, body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{url}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

#[test]
fn serve_keeps_everything_in_postgres_when_storage_says_so() {
    let Some(pg) = cluster::postgres_url("tessera serve on PostgreSQL") else {
        return;
    };
    let schema = format!("tessera_serve_test_{}", std::process::id());
    let _drop = cluster::DropSchema(pg.clone(), schema.clone());
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let out = run(
        dir.path(),
        &["keys", "init", "--key-file", key_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = |extra: &[&str]| {
        let mut child = tessera(dir.path())
            .env("TESSERA_STORAGE_BACKEND", "postgres")
            .env("TESSERA_STORAGE_URL", &pg)
            .env("TESSERA_STORAGE_SCHEMA", &schema)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tessera serve starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server { child, lines };
        let lines = server.until("listening on ");
        let url = lines
            .last()
            .unwrap()
            .split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned();
        (server, lines, url)
    };

    let (server, lines, url) = start(&["--init", "--tenant", "acme"]);
    assert!(
        lines.iter().any(|l| l.contains("storage: PostgreSQL")
            && l.contains(&schema)
            && l.contains("sslmode=prefer")),
        "{lines:?}"
    );
    let at = lines
        .iter()
        .position(|l| l.contains("shown once"))
        .expect("a token");
    let operator = lines[at + 1].trim().to_owned();
    let (status, body) = call(
        &url,
        &operator,
        "/v1/identify",
        r#"{"userId":"pg-person","traits":{"city":"Hangzhou"},"messageId":"pg-1"}"#,
    );
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, rest) = server.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing was written to the data directory"
    );

    // Restarted on the same database: the token and the person are there.
    let (server, _, url) = start(&[]);
    let (status, body) = call(
        &url,
        &operator,
        "/v1/subjects/lookup",
        r#"{"kind":"member_id","value":"pg-person"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"subject\""), "{body}");
    // The pool's series: the default size, and the connections opened so
    // far (the change poll may hold one at the moment of the scrape).
    let metrics = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("tessera_db_pool_max_connections 16\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_db_pool_timeouts_total 0\n"),
        "{metrics}"
    );
    let count = |state: &str| -> u32 {
        let prefix = format!("tessera_db_pool_connections{{state=\"{state}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {state} count: {metrics}"))
    };
    assert!(
        (1..=16).contains(&(count("busy") + count("idle"))),
        "{metrics}"
    );
    // The shared keys' change poll: the one at start at least, none failed.
    assert!(
        metrics.contains("tessera_change_polls_total{outcome=\"failed\"} 0\n"),
        "{metrics}"
    );
    let polls: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tessera_change_polls_total{outcome=\"ok\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no poll count: {metrics}"));
    assert!(polls >= 1, "{metrics}");
    assert!(
        metrics.contains("\ntessera_change_poll_last_success_timestamp_seconds "),
        "{metrics}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());

    let store = tessera_store_postgres::PgStore::open_with(
        &tessera_store_postgres::PgOptions::new(&pg).schema(&schema),
    )
    .unwrap();
    use tessera_store::Store;
    let tenants: Vec<String> = store.tenants().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(tenants, ["acme"]);
    assert_eq!(store.subjects("acme", None, 10).unwrap().len(), 1);
}
