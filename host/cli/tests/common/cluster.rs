//! Several `tessera serve` nodes on one PostgreSQL schema: the test
//! server's URL, a schema dropped when the test ends, nodes that share a
//! master key, and waiting for what a cluster does within a bound.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Server, init_keys};

/// The PostgreSQL test server's URL; `None` only when
/// TESSERA_SKIP_POSTGRES=1 (then `what` was not tested, said on stderr).
pub fn postgres_url(what: &str) -> Option<String> {
    match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("TESSERA_SKIP_POSTGRES").as_deref() == Ok("1") => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED: {what} was not tested (TESSERA_SKIP_POSTGRES=1)\n"
            );
            None
        }
        _ => panic!(
            "TESSERA_TEST_POSTGRES_URL is not set: start a throwaway PostgreSQL with \
             `export TESSERA_TEST_POSTGRES_URL=$(.ci/postgres start /tmp/tessera-pg)`, \
             or set TESSERA_SKIP_POSTGRES=1 to skip this test"
        ),
    }
}

/// Drops the test's schema, with everything in it, when the test ends.
pub struct DropSchema(pub String, pub String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
}

/// `count` deployment directories that share one master key (each keeps
/// its own key directory, for its node name, and its compiled plugins).
pub fn node_dirs(count: usize) -> Vec<tempfile::TempDir> {
    let dirs: Vec<tempfile::TempDir> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
    init_keys(dirs[0].path());
    for dir in &dirs[1..] {
        std::fs::copy(
            dirs[0].path().join("master.key"),
            dir.path().join("master.key"),
        )
        .unwrap();
    }
    dirs
}

/// Starts a node on `dir` sharing the PostgreSQL schema `schema` at `pg`
/// (records and subject keys), with `extra` settings.
pub fn start_node(
    dir: &Path,
    tenant: &str,
    pg: &str,
    schema: &str,
    extra: &[(&str, &str)],
) -> Server {
    let cache = dir.join("compiled");
    let mut env = vec![
        ("TESSERA_STORAGE_BACKEND", "postgres"),
        ("TESSERA_STORAGE_URL", pg),
        ("TESSERA_STORAGE_SCHEMA", schema),
        ("TESSERA_CACHE_DIR", cache.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    Server::start_with(dir, tenant, &env)
}

/// The node name a node on `dir` took (`<key dir>/node-id`).
pub fn node_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("keys/node-id"))
        .expect("the node wrote its name")
        .trim()
        .to_owned()
}

/// Calls `attempt` until it returns `Ok`, for at most `bound`; panics with
/// `what` and the last answer otherwise.
pub fn within<T>(bound: Duration, what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) if start.elapsed() > bound => {
                panic!("{what}: not so within {bound:?}; last answer: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
