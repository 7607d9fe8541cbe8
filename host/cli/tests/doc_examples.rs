//! Runs the shell examples of `docs/api.md`, and the worked example of
//! `docs/plugins.md`, against a real `tessera serve`.
//!
//! # The convention
//!
//! - Every fenced block whose info string starts with `sh` is an example and
//!   is run, in document order, each block by its own
//!   `bash -euo pipefail`. Blocks of other languages (`json`, `toml`, plain
//!   output) are not run; `bash`, `shell` and `console` blocks are refused,
//!   so that an example cannot escape the test by its spelling.
//! - Words after `sh` in the info string (any other word fails the test):
//!   - `no-run`: shown, not run (e.g. starting the server itself);
//!   - `expect=NNN`: the block demonstrates an error: at least one of its
//!     requests must answer status NNN, and NNN does not fail the block.
//! - The examples address the server as `$TESSERA_URL` and use these
//!   variables, which the test sets: `OPERATOR` (and `TOKEN`, the same
//!   operator token), `WRITE_KEY` (an `ingest` token), `MARKETER`, `ANALYST`,
//!   `PORTAL` (a token of that role), `SUBJECT` (the id of a person the
//!   tenant knows: member id `u-1`, email `ann@example.com`, with the linked
//!   app `fitness-sync`) and `CODES_FILE` (where the server's development
//!   code sender writes one-time login codes). The tenant is `acme`; it also
//!   knows member id `u-2` (email `bo@example.com`).
//! - A variable a block assigns at the start of a line (`NAME=…`, or
//!   `export NAME=…`, upper case) is kept for the blocks after it, as in
//!   one terminal.
//! - `curl` is a shell function that adds `--silent --show-error`, prints
//!   the body, and fails the block (exit 22) when the answer is 400 or more
//!   (except the block's `expect` status): `--fail-with-body` semantics. So
//!   the examples do not need `-f`, and must not use `-o` or `-w`
//!   themselves. `jq` may be used to pick values out of answers; `tessera`
//!   is the binary under test.
//! - Within a block, `#` comments show what a call answers; they are not
//!   checked.
//!
//! The test fails if the page has fewer than [`MIN_EXAMPLES`] runnable
//! blocks, so that losing the examples (or their fences) is noticed.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, init_keys, open_vault};
use tessera_vault::{Actor, IdentityKind, Incoming, LinkedApp, TenantSettings};

const TENANT: &str = "acme";
/// docs/api.md has at least this many runnable blocks.
const MIN_EXAMPLES: usize = 8;
/// A block that takes longer is killed and fails.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// One fenced `sh` block.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    /// 1-based line of the opening fence.
    line: usize,
    run: bool,
    expect: Option<u16>,
    code: String,
}

/// The `sh` blocks of a Markdown text, or why the text breaks the convention.
fn examples(markdown: &str) -> Result<Vec<Example>, String> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or("");
        let mut body = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.trim() == "```" {
                closed = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        if !closed {
            return Err(format!("line {}: the block is not closed", index + 1));
        }
        match language {
            "sh" => {}
            "bash" | "shell" | "console" | "zsh" => {
                return Err(format!(
                    "line {}: write shell examples as ```sh (run by the test) or ```sh no-run",
                    index + 1
                ));
            }
            _ => continue,
        }
        let mut example = Example {
            line: index + 1,
            run: true,
            expect: None,
            code: body,
        };
        for word in words {
            if word == "no-run" {
                example.run = false;
            } else if let Some(status) = word.strip_prefix("expect=") {
                example.expect = Some(
                    status
                        .parse()
                        .ok()
                        .filter(|s| (400..600).contains(s))
                        .ok_or_else(|| {
                            format!("line {}: expect={status} is not an error status", index + 1)
                        })?,
                );
            } else {
                return Err(format!(
                    "line {}: unknown word {word:?} after ```sh (no-run, expect=NNN)",
                    index + 1
                ));
            }
        }
        found.push(example);
    }
    Ok(found)
}

/// The upper-case variables a block assigns at the start of a line.
fn assigned(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        let words: Vec<&str> = match line.strip_prefix("export ") {
            Some(rest) => rest.split_whitespace().collect(),
            None => line.split_whitespace().take(1).collect(),
        };
        for word in words {
            let Some((name, _)) = word.split_once('=') else {
                continue;
            };
            let valid = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if valid && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Defines `curl` for the examples (see the module documentation).
const PRELUDE: &str = r#"
curl() {
  local status
  status=$(command curl --silent --show-error --max-time 30 \
    --output "$TESSERA_DOC_DIR/body" --write-out '%{http_code}' "$@") || return
  cat "$TESSERA_DOC_DIR/body"; echo
  printf '%s\n' "$status" >> "$TESSERA_DOC_DIR/statuses"
  if [ "$status" -ge 400 ] && [ "$status" != "${TESSERA_DOC_EXPECT:-}" ]; then
    echo "curl: the server answered HTTP $status" >&2
    return 22
  fi
}
"#;

/// What running one block did.
#[derive(Debug)]
struct Ran {
    success: bool,
    statuses: Vec<u16>,
    output: String,
}

/// The harness: where the state between blocks is kept, and the variables.
struct Harness {
    work: PathBuf,
    env: Vec<(String, String)>,
    path: String,
    /// The page the examples come from, for messages.
    page: &'static str,
    /// A block that takes longer is killed and fails.
    timeout: Duration,
}

impl Harness {
    fn new(work: &Path, env: Vec<(String, String)>) -> Self {
        std::fs::write(work.join("state"), "").unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_tessera"))
            .parent()
            .unwrap()
            .to_owned();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            work: work.to_owned(),
            env,
            path,
            page: "docs/api.md",
            timeout: BLOCK_TIMEOUT,
        }
    }

    fn run(&self, example: &Example) -> Ran {
        let statuses = self.work.join("statuses");
        std::fs::write(&statuses, "").unwrap();
        let keep = assigned(&example.code);
        let mut script = format!("{PRELUDE}\nsource \"$TESSERA_DOC_DIR/state\"\n");
        script.push_str(&example.code);
        if !keep.is_empty() {
            script.push_str(&format!(
                "\ndeclare -p {} >> \"$TESSERA_DOC_DIR/state\"\n",
                keep.join(" ")
            ));
        }
        let mut command = Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&self.work)
            .env("PATH", &self.path)
            .env("TESSERA_DOC_DIR", &self.work)
            .env(
                "TESSERA_DOC_EXPECT",
                example.expect.map(|s| s.to_string()).unwrap_or_default(),
            )
            .env_remove("TESSERA_SERVER")
            .env_remove("TESSERA_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("bash runs");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = format!(
            "--- stdout\n{}--- stderr\n{}",
            out.join().unwrap(),
            err.join().unwrap()
        );
        let statuses = std::fs::read_to_string(&statuses)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        Ran {
            success: status.is_some_and(|s| s.success()),
            statuses,
            output: if status.is_none() {
                format!("killed after {:?}\n{output}", self.timeout)
            } else {
                output
            },
        }
    }

    /// Runs `example`; the reason it failed, if it did.
    fn check(&self, example: &Example) -> Result<Ran, String> {
        let ran = self.run(example);
        let at = format!("{} line {}", self.page, example.line);
        if !ran.success {
            return Err(format!(
                "{at}: the example failed\n{}\n{}",
                example.code, ran.output
            ));
        }
        if let Some(expect) = example.expect
            && !ran.statuses.contains(&expect)
        {
            return Err(format!(
                "{at}: expect={expect}, but the requests answered {:?}\n{}\n{}",
                ran.statuses, example.code, ran.output
            ));
        }
        Ok(ran)
    }
}

/// A deployment with tenant `acme`, two people (member ids `u-1` and
/// `u-2`) and a running server with the development code sender; the
/// harness with its variables.
fn deployment(dir: &Path) -> (Server, Harness) {
    init_keys(dir);
    // The people exist before the server starts, with what the examples
    // read and revoke (a linked app is granted by the tenant's own systems,
    // not over the API).
    let subject = {
        let vault = open_vault(dir);
        let actor = Actor::new("operator", "doc-examples");
        vault
            .create_tenant(TENANT, TenantSettings::default(), &actor)
            .expect("create the tenant");
        let mut subjects = Vec::new();
        for (member, email) in [("u-1", "ann@example.com"), ("u-2", "bo@example.com")] {
            let record = Incoming {
                identities: vec![
                    (IdentityKind::MemberId, member.into()),
                    (IdentityKind::Email, email.into()),
                ],
                ..Incoming::default()
            };
            subjects.push(
                vault
                    .ingest(TENANT, &record, &actor)
                    .expect("ingest")
                    .subject
                    .expect("a subject"),
            );
        }
        let app = LinkedApp {
            app: "fitness-sync".into(),
            name: "Fitness Sync".into(),
            scopes: vec!["purchases:read".into()],
            granted_at_ms: 0,
        };
        vault
            .link_app(TENANT, &subjects[0], &app, &actor)
            .expect("link an app");
        subjects.swap_remove(0)
    };
    let codes = dir.join("login-codes.jsonl");
    let server = Server::start_with(
        dir,
        TENANT,
        &[
            ("TESSERA_SUBJECT_LOGIN_SENDER", "file"),
            ("TESSERA_SUBJECT_LOGIN_FILE", codes.to_str().expect("utf-8")),
        ],
    );
    let operator = server.operator.clone().expect("an operator token");
    let mut env = vec![
        ("TESSERA_URL".to_owned(), server.url.clone()),
        ("OPERATOR".to_owned(), operator.clone()),
        ("TOKEN".to_owned(), operator.clone()),
        ("SUBJECT".to_owned(), subject),
        ("CODES_FILE".to_owned(), codes.display().to_string()),
    ];
    for (name, role) in [
        ("WRITE_KEY", "ingest"),
        ("MARKETER", "marketer"),
        ("ANALYST", "analyst"),
        ("PORTAL", "portal"),
    ] {
        env.push((
            name.to_owned(),
            server.create_token(&operator, role, &format!("docs {role}")),
        ));
    }
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let harness = Harness::new(&work, env);
    (server, harness)
}

fn api_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    std::fs::read_to_string(path).expect("docs/api.md")
}

#[test]
fn the_curl_examples_of_docs_api_md_run_against_a_real_server() {
    let all = examples(&api_md()).unwrap_or_else(|error| panic!("docs/api.md: {error}"));
    let runnable: Vec<&Example> = all.iter().filter(|e| e.run).collect();
    assert!(
        runnable.len() >= MIN_EXAMPLES,
        "docs/api.md has {} runnable ```sh blocks; at least {MIN_EXAMPLES} are expected",
        runnable.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let (server, harness) = deployment(dir.path());
    let mut failures = Vec::new();
    let mut requests = 0;
    for example in &runnable {
        match harness.check(example) {
            Ok(ran) => requests += ran.statuses.len(),
            Err(failure) => failures.push(failure),
        }
    }
    let status = server.stop();
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n\n{}",
        failures.len(),
        runnable.len(),
        failures.join("\n\n")
    );
    assert!(status.success(), "{status:?}");
    assert!(
        requests >= runnable.len(),
        "the examples made only {requests} requests"
    );
}

/// docs/plugins.md has at least this many runnable blocks (its worked example).
const MIN_PLUGIN_EXAMPLES: usize = 4;

/// The worked example of docs/plugins.md: a partner creates, builds, tests
/// and signs a plugin; the operator trusts the key, installs the bundle and
/// approves it, all against a real server. The blocks build a Rust project,
/// so they get more time, and share one target directory across runs.
#[test]
fn the_worked_example_of_docs_plugins_md_runs_against_a_real_server() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plugins.md");
    let page = std::fs::read_to_string(path).expect("docs/plugins.md");
    let all = examples(&page).unwrap_or_else(|error| panic!("docs/plugins.md: {error}"));
    let runnable: Vec<&Example> = all.iter().filter(|e| e.run).collect();
    assert!(
        runnable.len() >= MIN_PLUGIN_EXAMPLES,
        "docs/plugins.md has {} runnable ```sh blocks; at least {MIN_PLUGIN_EXAMPLES} are expected",
        runnable.len()
    );
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let server = Server::start(dir.path(), TENANT);
    let operator = server.operator.clone().expect("an operator token");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-projects");
    let env = vec![
        ("TESSERA_SERVER".to_owned(), server.url.clone()),
        ("TESSERA_TOKEN".to_owned(), operator.clone()),
        ("TESSERA_URL".to_owned(), server.url.clone()),
        ("OPERATOR".to_owned(), operator),
        ("CARGO_TARGET_DIR".to_owned(), target.display().to_string()),
    ];
    let harness = Harness {
        page: "docs/plugins.md",
        timeout: Duration::from_secs(600),
        ..Harness::new(&work, env)
    };
    let failures: Vec<String> = runnable
        .iter()
        .filter_map(|example| harness.check(example).err())
        .collect();
    assert!(server.stop().success());
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n\n{}",
        failures.len(),
        runnable.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_harness_notices_failing_examples_and_broken_conventions() {
    let page = "text\n\n```sh\ncurl \"$TESSERA_URL/healthz\"\nX=1\n```\n\n\
                ```json\n{}\n```\n\n```sh no-run\ntessera serve\n```\n\n\
                ```sh expect=401\ncurl \"$TESSERA_URL/v1/tokens\"\n```\n\n\
                ```sh\ncurl \"$TESSERA_URL/v1/tokens\"\n```\n\n\
                ```sh expect=403\ncurl \"$TESSERA_URL/healthz\"\n```\n\n\
                ```sh\ntest \"$X\" = 1\n```\n";
    let found = examples(page).unwrap();
    assert_eq!(found.len(), 6);
    assert_eq!((found[0].line, found[0].run), (3, true));
    assert!(!found[1].run);
    assert_eq!(found[2].expect, Some(401));
    assert_eq!(assigned(&found[0].code), ["X"]);
    assert_eq!(
        assigned("export A=1 B=$(x)\n  C=2 cmd\nlower=1\necho D=1\n"),
        ["A", "B", "C"]
    );
    for broken in [
        "```bash\ncurl x\n```\n",
        "```sh expect=200\ncurl x\n```\n",
        "```sh maybe\ncurl x\n```\n",
        "```sh\ncurl x\n",
    ] {
        assert!(examples(broken).is_err(), "{broken}");
    }

    let dir = tempfile::tempdir().unwrap();
    let (server, harness) = deployment(dir.path());
    // Success; an expected 401; an unexpected 401; an expect that did not
    // happen; and a variable kept from the first block.
    assert!(harness.check(&found[0]).is_ok());
    let ran = harness.check(&found[2]).expect("the expected 401");
    assert_eq!(ran.statuses, [401]);
    let error = harness.check(&found[3]).unwrap_err();
    assert!(error.contains("HTTP 401"), "{error}");
    let error = harness.check(&found[4]).unwrap_err();
    assert!(error.contains("expect=403"), "{error}");
    assert!(harness.check(&found[5]).is_ok(), "X was kept");
    assert!(server.stop().success());
}
