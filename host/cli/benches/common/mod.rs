//! What the loopback benchmarks share: the real server as a child process,
//! a keep-alive HTTP/1.1 connection, and latency percentiles.

// Each bench binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::{Method, Request, StatusCode, header};

/// A bench's command line: options that take a number, options that take
/// a word or a list (always `--server PATH`: another `tessera` build to
/// serve, to compare two).
#[derive(Debug, Default)]
pub struct Flags {
    numbers: BTreeMap<String, f64>,
    texts: BTreeMap<String, String>,
}

impl Flags {
    /// Reads the command line; `numeric` names the options that take a
    /// number, `text` those that take any other value. Anything else is
    /// passed over: `cargo bench` adds `--bench`, and a name filter means
    /// nothing to these benches.
    pub fn parse(numeric: &[&str], text: &[&str]) -> Result<Self, String> {
        let mut flags = Flags::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--server" || text.contains(&arg.as_str()) {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                flags.texts.insert(arg, value);
            } else if numeric.contains(&arg.as_str()) {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                let number = value
                    .parse::<f64>()
                    .map_err(|_| format!("{arg} {value}: not a number"))?;
                flags.numbers.insert(arg, number);
            }
        }
        Ok(flags)
    }

    /// The value given for the option `name`, if any.
    pub fn text(&self, name: &str) -> Option<String> {
        self.texts.get(name).cloned()
    }

    /// The value given for `name` (else `default`), which must lie in
    /// `range`.
    pub fn number(
        &self,
        name: &str,
        default: f64,
        range: RangeInclusive<f64>,
    ) -> Result<f64, String> {
        let value = self.numbers.get(name).copied().unwrap_or(default);
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{name} must be {} to {}",
                range.start(),
                range.end()
            ))
        }
    }
}

/// The master key file of the deployment in `dir`, created with
/// `tessera keys init` if it does not exist yet.
pub fn master_key_file(dir: &Path, tessera: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_file = dir.join("master.key");
    if key_file.exists() {
        return Ok(key_file);
    }
    let keys = Command::new(tessera)
        .args(["keys", "init", "--key-file"])
        .arg(&key_file)
        .output()
        .map_err(|e| format!("cannot run {tessera}: {e}"))?;
    if !keys.status.success() {
        return Err(format!(
            "tessera keys init failed: {}",
            String::from_utf8_lossy(&keys.stderr)
        ));
    }
    Ok(key_file)
}

/// The server as a child process: `tessera serve --init --tenant TENANT`
/// on the deployment in `dir` (data in `dir/data`, subject keys in
/// `dir/keys`, the master key in `dir/master.key`), on a free loopback
/// port, with the rate limit off.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub address: String,
    /// The operator token `--init` printed.
    pub operator: String,
}

impl Server {
    /// `settings`: more settings for its environment.
    pub fn start(
        dir: &Path,
        tessera: &str,
        tenant: &str,
        settings: &[(&str, String)],
    ) -> Result<Self, String> {
        let (mut server, operator) = Self::launch(dir, tessera, tenant, settings)?;
        server.operator = operator.ok_or("tessera serve did not print its token")?;
        Ok(server)
    }

    /// Another node of a deployment whose records are in a shared database
    /// (`settings` name it): it finds the tenant `start` made on the first
    /// node and prints no token, so `operator` is the first node's, which
    /// holds on every node. `dir` must hold the first node's master key.
    pub fn join(
        dir: &Path,
        tessera: &str,
        tenant: &str,
        settings: &[(&str, String)],
        operator: &str,
    ) -> Result<Self, String> {
        let (mut server, printed) = Self::launch(dir, tessera, tenant, settings)?;
        if printed.is_some() {
            return Err(format!(
                "the node in {} made tenant {tenant} again instead of finding it",
                dir.display()
            ));
        }
        server.operator = operator.to_owned();
        Ok(server)
    }

    /// Starts the child and reads its address and, if it made the tenant,
    /// the operator token it printed.
    fn launch(
        dir: &Path,
        tessera: &str,
        tenant: &str,
        settings: &[(&str, String)],
    ) -> Result<(Self, Option<String>), String> {
        let key_file = master_key_file(dir, tessera)?;
        let mut child = Command::new(tessera)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--init",
                "--tenant",
                tenant,
            ])
            .env_remove("TESSERA_CONFIG")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_LOG")
            .env("TESSERA_DATA_DIR", dir.join("data"))
            .env("TESSERA_KEY_DIR", dir.join("keys"))
            .env("TESSERA_MASTER_KEY_FILE", &key_file)
            // The default of 200 requests a second per tenant would be
            // the bottleneck.
            .env("TESSERA_RATE_LIMIT_RPS", "0")
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            // Its log (one line per request at the default level), as a
            // deployment would keep it.
            .stderr(
                std::fs::File::create(dir.join("server.log"))
                    .map_err(|e| format!("cannot create the server log: {e}"))?,
            )
            .spawn()
            .map_err(|e| format!("cannot start tessera serve: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut operator = None;
        let mut address = None;
        while let Some(Ok(line)) = lines.next() {
            if line.trim().starts_with("tsk_") {
                operator = Some(line.trim().to_owned());
            }
            if let Some(url) = line.split("listening on http://").nth(1) {
                address = Some(url.trim().to_owned());
                break;
            }
        }
        // The rest of its output is not needed; keep the pipe drained.
        std::thread::spawn(move || for _ in lines {});
        let mut server = Self {
            child,
            address: String::new(),
            operator: String::new(),
        };
        match address {
            Some(address) => {
                server.address = address;
                Ok((server, operator))
            }
            None => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                let last: Vec<&str> = log.lines().rev().take(5).collect();
                Err(format!(
                    "tessera serve did not print its address; the end of its log:\n{}",
                    last.into_iter().rev().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }

    /// The server's resident set size now, in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    }

    /// The CPU time the server has used so far, user and system, in
    /// seconds (Linux).
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }

    /// The server's open file descriptors now (Linux).
    pub fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .ok()
            .map(|entries| entries.count())
    }

    /// SIGTERM, then waits up to 60 s for a clean exit.
    pub fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("tessera serve exited with {status}"))
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("tessera serve did not stop within 60 s of SIGTERM".into())
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

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub host: String,
}

impl Connection {
    pub async fn open(address: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: address.to_owned(),
        })
    }

    /// Replaces the connection if the server closed it (after an error).
    pub async fn reopen_if_closed(&mut self) -> Result<(), String> {
        if self.sender.is_closed() {
            *self = Self::open(&self.host).await?;
        }
        Ok(())
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// The CPU time process `pid` has used so far, user and system, in seconds
/// (Linux: `/proc/PID/stat`, in ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = proc_stat(pid)?;
    Some((stat.utime + stat.stime) as f64 / 100.0)
}

/// What `/proc/PID/stat` says of a process (Linux).
#[derive(Debug)]
pub struct ProcStat {
    pub parent: u32,
    /// CPU ticks (1/100 s) in user and system mode.
    pub utime: u64,
    pub stime: u64,
    /// CPU ticks of its children that ended and were waited for.
    pub children: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from the
    // third: the parent is the 4th, utime to cstime the 14th to 17th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ProcStat {
        parent: u32::try_from(number(1)?).ok()?,
        utime: number(11)?,
        stime: number(12)?,
        children: number(13)? + number(14)?,
    })
}

/// A bench's exit: success if `run` passed, else failure (with why, if it
/// could not finish).
pub fn exit_code(run: Result<bool, String>, bench: &str) -> ExitCode {
    match run {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{bench} failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted latencies in µs, in ms.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1_000.0
}

/// The largest of sorted latencies in µs, in ms.
pub fn max_ms(sorted_us: &[u32]) -> f64 {
    sorted_us
        .last()
        .map_or(f64::NAN, |&us| f64::from(us) / 1_000.0)
}

/// A latency as µs, saturated to fit a `u32`.
pub fn micros(latency: Duration) -> u32 {
    latency.as_micros().min(u128::from(u32::MAX)) as u32
}
