//! `tessera import FILE`: imports a file into a running server through one
//! of the tenant's connectors (`POST /v1/imports`, then the file streamed
//! to `PUT /v1/imports/{id}/data`), with a progress bar (bytes, rows/s,
//! ETA) and the quality report at the end. Importing the same file again
//! adds nothing: records carry source ids.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::http::{Method, Request, StatusCode, header};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::token::{ClientArgs, call, connect, failed, split_server};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import (CSV, NDJSON, JSON, in the connector's format).
    file: PathBuf,
    /// The tenant's connector plugin that parses it (`csv`, `ndjson`, …).
    #[arg(long)]
    connector: String,
    /// The connector's `mapping` parameter, from a TOML or JSON file (the
    /// CSV connector's column mapping; docs/connectors.md).
    #[arg(long, value_name = "FILE.toml|FILE.json")]
    mapping: Option<PathBuf>,
    /// More parameters, from a JSON object file (e.g. `encoding`,
    /// `delimiter`, `has_header`).
    #[arg(long, value_name = "FILE.json")]
    params: Option<PathBuf>,
    /// One parameter, NAME=VALUE; the value is read as JSON if it is JSON
    /// (true, 42, "x"), else as text. Repeatable; wins over --params.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// How the file is cut into chunks: csv, lines (NDJSON) or whole (one
    /// JSON document). Default: from the extension (.csv/.tsv → csv,
    /// .ndjson/.jsonl → lines, .json → whole).
    #[arg(long, value_parser = ["csv", "lines", "whole"])]
    chunking: Option<String>,
    /// The name the import records as its source (default: the file name).
    #[arg(long)]
    source: Option<String>,
    /// The channel of the file's events: online or offline (default: from
    /// the identities of each record).
    #[arg(long, value_parser = ["online", "offline"])]
    channel: Option<String>,
    /// Print the import as JSON (the API's answer) instead of a summary.
    #[arg(long)]
    json: bool,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let body = spec(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(import(args, body))
}

/// Adds `--param NAME=VALUE` pairs to `params`: the value is read as JSON
/// if it is a JSON scalar (true, 42, "x"), else as text.
pub(crate) fn add_params(params: &mut Map<String, Value>, pairs: &[String]) -> anyhow::Result<()> {
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--param {pair:?}: expected NAME=VALUE");
        };
        if name.is_empty() {
            bail!("--param {pair:?}: the name is empty");
        }
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| Value::String(value.to_owned()));
        params.insert(name.to_owned(), value);
    }
    Ok(())
}

/// The `POST /v1/imports` body.
fn spec(args: &ImportArgs) -> anyhow::Result<Value> {
    let mut params = match &args.params {
        Some(path) => match read_structured(path)? {
            Value::Object(map) => map,
            _ => bail!("--params {}: must hold an object", path.display()),
        },
        None => Map::new(),
    };
    if let Some(path) = &args.mapping {
        params.insert("mapping".into(), read_structured(path)?);
    }
    add_params(&mut params, &args.param)?;
    let chunking = match &args.chunking {
        Some(chunking) => chunking.clone(),
        None => chunking_for(&args.file)?.to_owned(),
    };
    let source = args.source.clone().unwrap_or_else(|| {
        args.file
            .file_name()
            .map_or_else(|| "upload".into(), |n| n.to_string_lossy().into_owned())
    });
    let mut body = json!({
        "connector": args.connector,
        "params": params,
        "chunking": chunking,
        "source": source,
    });
    if let Some(channel) = &args.channel {
        body["channel"] = json!(channel);
    }
    Ok(body)
}

pub(crate) fn chunking_for(file: &Path) -> anyhow::Result<&'static str> {
    let extension = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match extension.as_str() {
        "csv" | "tsv" => "csv",
        "ndjson" | "jsonl" => "lines",
        "json" => "whole",
        _ => bail!(
            "{}: cannot tell the chunking from the extension; pass --chunking csv, lines or whole",
            file.display()
        ),
    })
}

/// A TOML or JSON file (by extension) as JSON.
fn read_structured(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if toml {
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        serde_json::to_value(table).with_context(|| format!("{} as JSON", path.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
    }
}

async fn import(args: ImportArgs, spec: Value) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let (status, created) = call(&args.client, Method::POST, "/v1/imports", Some(spec)).await?;
    if status != StatusCode::CREATED {
        return failed(status, &created);
    }
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(size)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let upload = upload(&args, &id, size, bar.clone());
    let follow = follow(&args.client, &id, &bar, started);
    tokio::pin!(upload);
    let answer = tokio::select! {
        answer = &mut upload => answer,
        () = follow => upload.await,
    };
    bar.finish_and_clear();
    let (status, view) = answer?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    }
    if status != StatusCode::OK {
        return failed(status, &view);
    }
    if !args.json {
        print_report(&view, started.elapsed());
    }
    Ok(if view["status"] == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Polls the import while it runs and shows rows read and rows/s next to
/// the bar; never ends by itself.
async fn follow(client: &ClientArgs, id: &str, bar: &ProgressBar, started: Instant) {
    let path = format!("/v1/imports/{id}");
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok((StatusCode::OK, view)) = call(client, Method::GET, &path, None).await
            && let Some(rows) = view["progress"]["rows_read"].as_u64()
        {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{rows} rows, {:.0} rows/s, {} rejected",
                rows as f64 / seconds,
                view["progress"]["rejected"].as_u64().unwrap_or(0)
            ));
        }
    }
}

/// A request body that streams the file in pieces read on a blocking
/// thread, advancing the bar as they are read.
struct FileBody {
    pieces: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    size: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.pieces
            .poll_recv(cx)
            .map(|piece| piece.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
}

async fn upload(
    args: &ImportArgs,
    id: &str,
    size: u64,
    bar: ProgressBar,
) -> anyhow::Result<(StatusCode, Value)> {
    let endpoint = split_server(&args.client.server)?;
    let (authority, prefix) = (&endpoint.authority, &endpoint.prefix);
    let (sender, pieces) = tokio::sync::mpsc::channel(4);
    let path = args.file.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        };
        let mut sent = 0u64;
        loop {
            let mut buffer = vec![0u8; 256 * 1024];
            match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    buffer.truncate(n);
                    sent += n as u64;
                    if sent > size {
                        let _ = sender.blocking_send(Err(std::io::Error::other(
                            "the file grew while it was being imported",
                        )));
                        return;
                    }
                    bar.inc(n as u64);
                    if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                        return; // the server answered before the end
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    let stream = connect(&args.client, &endpoint).await?;
    let (mut request_sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("HTTP handshake failed")?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("{prefix}/v1/imports/{id}/data"))
        .header(header::HOST, authority)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", args.client.token.trim()),
        )
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .body(FileBody { pieces, size })?;
    let response = request_sender
        .send_request(request)
        .await
        .context("the upload failed")?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .context("reading the answer failed")?
        .to_bytes();
    reader.abort();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn print_report(view: &Value, elapsed: Duration) {
    let r = &view["report"];
    let n = |key: &str| r[key].as_u64().unwrap_or(0);
    let seconds = elapsed.as_secs_f64().max(0.001);
    println!(
        "import {} {}: {} ({} via {})",
        view["id"].as_str().unwrap_or("?"),
        view["status"].as_str().unwrap_or("?"),
        view["source"].as_str().unwrap_or("?"),
        view["chunking"].as_str().unwrap_or("?"),
        view["connector"].as_str().unwrap_or("?"),
    );
    println!(
        "  rows read        {:>10}  ({:.0} rows/s, {} bytes in {} chunks, {} failed)",
        n("rows_read"),
        n("rows_read") as f64 / seconds,
        n("bytes"),
        n("chunks"),
        n("chunks_failed")
    );
    println!(
        "  records          {:>10}  ({} events, {} trait updates, {} identity links)",
        n("records"),
        n("events"),
        n("trait_updates"),
        n("identity_links")
    );
    println!("  stored           {:>10}", n("accepted"));
    let rejected: u64 = r["rejected"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    println!("  rejected         {rejected:>10}");
    for (code, count) in r["rejected"].as_object().into_iter().flatten() {
        println!("    {code:<28} {}", count.as_u64().unwrap_or(0));
    }
    println!(
        "  events stored    {:>10}  ({} duplicates, {} past retention)",
        n("events_inserted"),
        n("duplicates"),
        n("expired")
    );
    println!(
        "  people           {:>10} new, {} matched, {} merged",
        n("subjects_new"),
        n("subjects_matched"),
        n("identities_merged")
    );
    println!("  dead letters     {:>10}", n("dead_letters"));
    for example in r["examples"].as_array().into_iter().flatten().take(5) {
        println!(
            "    row {}: {}",
            example["row"]
                .as_u64()
                .map_or_else(|| "-".into(), |row| row.to_string()),
            example["reason"].as_str().unwrap_or("?")
        );
    }
    if let Some(error) = view["error"].as_str() {
        println!("  error: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::chunking_for;
    use std::path::Path;

    #[test]
    fn chunking_follows_the_extension() {
        assert_eq!(chunking_for(Path::new("a/stores.CSV")).unwrap(), "csv");
        assert_eq!(chunking_for(Path::new("web.ndjson")).unwrap(), "lines");
        assert_eq!(chunking_for(Path::new("web.jsonl")).unwrap(), "lines");
        assert_eq!(chunking_for(Path::new("export.json")).unwrap(), "whole");
        let error = chunking_for(Path::new("data.bin")).unwrap_err().to_string();
        assert!(error.contains("--chunking"), "{error}");
    }
}
