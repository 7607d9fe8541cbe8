//! A `tessera serve` child process on 127.0.0.1 for the tests that talk to
//! the real binary over HTTP (`segment_client.rs`, `doc_examples.rs`).
#![allow(dead_code)]

pub mod browser;
pub mod cluster;

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tessera_privacy::MasterKey;
use tessera_vault::Vault;

/// The `tessera` binary with the deployment in `dir` and nothing from the
/// environment.
pub fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_CONFIG")
        .env_remove("TESSERA_LISTEN")
        .env_remove("TESSERA_SERVER")
        .env_remove("TESSERA_TOKEN")
        // Only problems on the test's output, not a line per request.
        .env("TESSERA_LOG", "warn")
        .env("TESSERA_DATA_DIR", dir.join("data"))
        .env("TESSERA_KEY_DIR", dir.join("keys"))
        .env("TESSERA_MASTER_KEY_FILE", dir.join("master.key"));
    command
}

/// `tessera keys init` in `dir`.
pub fn init_keys(dir: &Path) {
    let out = tessera(dir)
        .args(["keys", "init", "--key-file"])
        .arg(dir.join("master.key"))
        .output()
        .expect("tessera runs");
    assert!(
        out.status.success(),
        "tessera keys init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens the deployment's vault (only while no server holds it).
pub fn open_vault(dir: &Path) -> Vault {
    Vault::open(
        dir.join("data"),
        dir.join("keys"),
        MasterKey::from_file(dir.join("master.key")).expect("master key"),
    )
    .expect("open the vault")
}

/// A running `tessera serve --init --tenant T --listen 127.0.0.1:0`.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// `host:port`.
    pub address: String,
    /// `http://host:port`.
    pub url: String,
    /// The operator token `--init` printed (None if the tenant had one).
    pub operator: Option<String>,
    pub dir: PathBuf,
    /// What the server printed on standard output before it listened.
    pub startup: Vec<String>,
}

impl Server {
    /// Starts the server on the deployment in `dir` (keys initialised) and
    /// waits until it listens.
    pub fn start(dir: &Path, tenant: &str) -> Self {
        Self::start_with(dir, tenant, &[])
    }

    /// [`Server::start`] with extra environment variables (settings).
    pub fn start_with(dir: &Path, tenant: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(dir, tenant, env, &[])
    }

    /// [`Server::start_with`] with extra flags for `tessera serve`.
    pub fn start_with_args(dir: &Path, tenant: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        let mut child = tessera(dir)
            .envs(env.iter().copied())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--init",
                "--tenant",
                tenant,
            ])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tessera serve starts");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut operator = None;
        let mut seen = Vec::new();
        let address = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("tessera serve did not start; it printed {seen:?}"));
            if line.trim().starts_with("tsk_") {
                operator = Some(line.trim().to_owned());
            }
            if let Some(address) = line.split("listening on http://").nth(1) {
                break address.trim().to_owned();
            }
            seen.push(line);
        };
        Self {
            child,
            lines,
            url: format!("http://{address}"),
            address,
            operator,
            dir: dir.to_owned(),
            startup: seen,
        }
    }

    /// One HTTP/1.1 request on its own connection: (status, JSON body or the
    /// text as a JSON string).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body.as_bytes()).expect("write");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read the answer");
        let text = String::from_utf8_lossy(&bytes);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        (status, value)
    }

    /// A new token of `role`, created with the operator token.
    pub fn create_token(&self, operator: &str, role: &str, name: &str) -> String {
        let body = serde_json::json!({ "role": role, "name": name }).to_string();
        let (status, answer) = self.call("POST", "/v1/tokens", Some(operator), Some(&body));
        assert_eq!(status, 201, "creating a {role} token: {answer}");
        answer["token"].as_str().expect("a token").to_owned()
    }

    /// The person with member id `member_id` consents to `purpose`, as
    /// they would through the portal: looked up with the operator token, a
    /// subject token issued with the portal token, then `PUT
    /// /v1/me/consents/{purpose}` with it.
    pub fn consent(&self, operator: &str, portal: &str, member_id: &str, purpose: &str) {
        let found = self.ok_call(
            "POST",
            "/v1/subjects/lookup",
            operator,
            serde_json::json!({"kind": "member_id", "value": member_id}),
        );
        let subject = found["subject"].as_str().expect("a subject").to_owned();
        let token = self.ok_call(
            "POST",
            "/v1/subject-tokens",
            portal,
            serde_json::json!({ "subject": subject }),
        )["token"]
            .as_str()
            .expect("a subject token")
            .to_owned();
        self.ok_call(
            "PUT",
            &format!("/v1/me/consents/{purpose}"),
            &token,
            serde_json::json!({"granted": true}),
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the process `signal` (`STOP`, `CONT`, `KILL`, …) with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    /// SIGKILL, and waits for the process to end: it stops at once, with
    /// no chance to flush, finish requests or release anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then the exit status within 60 s (the server flushes the
    /// store before it exits).
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let _: Vec<String> = self.lines.try_iter().collect();
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("tessera serve did not stop within 60 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Its standard output, after asserting that the command succeeded.
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

impl Server {
    /// `tessera ARGS` as a client of this server, with `token`.
    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        tessera(&self.dir)
            .args(args)
            .env("TESSERA_SERVER", &self.url)
            .env("TESSERA_TOKEN", token)
            .output()
            .expect("tessera runs")
    }

    /// A call that must succeed (2xx): its JSON answer.
    pub fn ok_call(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(token), Some(&body.to_string()));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }
}

/// A partner's publisher key pair, made in `publisher/` of the server's
/// directory and trusted by the server as `name`: the private key's path.
pub fn trusted_publisher(server: &Server, operator: &str, name: &str) -> PathBuf {
    let keys = server.dir.join("publisher");
    ok(&tessera(&server.dir)
        .args(["keys", "publisher", "new", "--out", p(&keys)])
        .output()
        .expect("tessera runs"));
    let public = keys.join("publisher.pub");
    ok(&server.cli(
        operator,
        &["keys", "publisher", "trust", p(&public), "--name", name],
    ));
    keys.join("publisher.key")
}

/// `tessera plugin test COMPONENT --fixtures FIXTURES`, compiled components
/// cached in `cache`: what it printed, which shows the view the plugin gets
/// under the grants its bundle asks for.
pub fn plugin_test(dir: &Path, component: &Path, fixtures: &Path, cache: &Path) -> String {
    let tested = ok(&tessera(dir)
        .args(["plugin", "test", p(component), "--fixtures", p(fixtures)])
        .args(["--cache-dir", p(cache)])
        .output()
        .expect("tessera runs"));
    assert!(tested.contains("view        under the grants"), "{tested}");
    tested
}

/// The partner's bundle of `component` as plugin `name` with its own
/// `bundle.toml`, signed with `key`, installed through the server and
/// approved by the operator: it ends active.
pub fn install_bundle(
    server: &Server,
    operator: &str,
    key: &Path,
    name: &str,
    component: &Path,
    manifest: &Path,
) {
    let root = &server.dir;
    let src = root.join(format!("bundle-{name}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(component, src.join(format!("{name}.wasm"))).unwrap();
    std::fs::copy(manifest, src.join("bundle.toml")).unwrap();
    let bundle = root.join(format!("{name}.tsb"));
    ok(&tessera(root)
        .args(["bundle", "build", p(&src), "--out", p(&bundle)])
        .output()
        .expect("tessera runs"));
    ok(&tessera(root)
        .args(["bundle", "sign", p(&bundle), "--key", p(key)])
        .output()
        .expect("tessera runs"));
    let installed = ok(&server.cli(operator, &["plugin", "install", p(&bundle)]));
    assert!(installed.contains("pending approval"), "{installed}");
    let approved = ok(&server.cli(operator, &["plugin", "approve", name]));
    assert!(approved.contains("granted"), "{approved}");
    let shown = ok(&server.cli(operator, &["plugin", "show", name]));
    assert!(shown.contains("active"), "{name}: {shown}");
}
