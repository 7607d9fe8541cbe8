//! `tessera plugin install|list|show|approve|upgrade|rollback|remove|
//! quarantine|release` and `tessera keys publisher trust|trusted|distrust`:
//! HTTP clients of a running server (`--server`, `--token`, an operator
//! token of the tenant).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::body::Bytes;
use hyper::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::token::{ClientArgs, call, call_with, failed};

/// Installing compiles each component on the server: allow it time.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The bundle file (`tessera bundle build`, then `sign`).
    bundle: PathBuf,
    /// Accept an unsigned bundle: only a server started with
    /// --allow-unsigned-bundles (development) takes it, and its status says so.
    #[arg(long)]
    allow_unsigned: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The installed plugin's name.
    name: String,
    /// A bundle holding a new version of it.
    bundle: PathBuf,
    /// Accept an unsigned bundle (development servers only).
    #[arg(long)]
    allow_unsigned: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The plugin's name.
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Approving grants what the pending version asked for; each option below
/// replaces one category of the request by a part of it (an empty value
/// grants none of that category). Categories not given are granted as asked.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The plugin's name.
    name: String,
    /// Trait names to grant, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    traits: Option<Vec<String>>,
    /// Event types to grant, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    events: Option<Vec<String>>,
    /// PII classes to grant (email, phone, name, …), comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pii: Option<Vec<String>>,
    /// Purposes to grant, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    purposes: Option<Vec<String>>,
    /// Outbound hosts to grant (connectors), comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    hosts: Option<Vec<String>>,
    /// State quota to grant, in bytes.
    #[arg(long)]
    state_quota: Option<u64>,
    /// Approve only if the pending bundle still has this digest (as
    /// `install`, `upgrade` and `show` print it): never a version uploaded
    /// after the one reviewed.
    #[arg(long, value_name = "HEX")]
    digest: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// The plugin's name.
    name: String,
    /// Why (kept in the audit trail and shown in the status).
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The public key file (`publisher.pub`) or the key text itself.
    key: String,
    /// Who the publisher is, as operators should see it.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DistrustArgs {
    /// The key id (`tessera keys publisher trusted` lists them).
    key_id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// The server-side publisher commands of `tessera keys publisher`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a publisher key for the tenant of --token: bundles it signs install.
    Trust(TrustArgs),
    /// List the tenant's trusted publisher keys.
    Trusted(ClientArgs),
    /// Stop trusting a key; plugins already installed from it keep running.
    Distrust(DistrustArgs),
}

/// The lifecycle commands of `tessera plugin`.
#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Install a signed bundle; each plugin waits for approval, and its request is shown.
    Install(InstallArgs),
    /// List the tenant's plugins: version, status, signature, grants, cost so far.
    List(ClientArgs),
    /// Show one plugin: what it asked for, what it was granted, a pending diff, its versions.
    Show(NameArgs),
    /// Approve the pending version with all it asked for, or a part (see the options).
    Approve(ApproveArgs),
    /// Upload a new version: live at once if it asks for no more, else pending with its diff.
    Upgrade(UpgradeArgs),
    /// Go back to the previously approved version, with its grant.
    Rollback(NameArgs),
    /// Remove a plugin and delete its state (its audit trail is kept).
    Remove(NameArgs),
    /// Refuse a plugin's calls until it is released.
    Quarantine(QuarantineArgs),
    /// Lift a quarantine.
    Release(NameArgs),
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    work: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// Path segment for a plugin name or key id (they are plain words; anything
/// else is refused by the server, but must not change the path).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn run(command: LifecycleCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            LifecycleCommand::Install(args) => {
                let bytes = read_bundle(&args.bundle)?;
                let path = format!("/v1/plugins?allow_unsigned={}", args.allow_unsigned);
                let (status, answer) = call_with(
                    &args.client,
                    Method::POST,
                    &path,
                    Some((bytes, "application/octet-stream")),
                    BUNDLE_TIMEOUT,
                )
                .await?;
                if status != StatusCode::CREATED {
                    return failed(status, &answer);
                }
                for plugin in answer["plugins"].as_array().into_iter().flatten() {
                    println!(
                        "installed {} {} ({}), pending approval",
                        plugin["name"].as_str().unwrap_or("?"),
                        plugin["version"].as_str().unwrap_or("?"),
                        plugin["kind"].as_str().unwrap_or("?"),
                    );
                    print_pending(plugin);
                    println!(
                        "  approve all of it:  tessera plugin approve {} --digest {}",
                        plugin["name"].as_str().unwrap_or("?"),
                        plugin["pending"]["bundle_digest"].as_str().unwrap_or("?")
                    );
                    println!(
                        "  or a part, e.g.:    tessera plugin approve {} --traits country",
                        plugin["name"].as_str().unwrap_or("?")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::List(client) => {
                let (status, answer) = call(&client, Method::GET, "/v1/plugins", None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "{:<20}  {:<9}  {:<9}  {:<11}  {:<21}  {:>8}  {:>12}  GRANTED",
                    "NAME", "VERSION", "KIND", "STATUS", "SIGNATURE", "CALLS", "FUEL"
                );
                for p in answer["plugins"].as_array().into_iter().flatten() {
                    let mut status = p["status"].as_str().unwrap_or("?").to_owned();
                    if p["pending"].is_object() && status != "pending" {
                        status.push('+');
                    }
                    println!(
                        "{:<20}  {:<9}  {:<9}  {:<11}  {:<21}  {:>8}  {:>12}  {}",
                        p["name"].as_str().unwrap_or("?"),
                        p["version"].as_str().unwrap_or("?"),
                        p["kind"].as_str().unwrap_or("?"),
                        status,
                        p["signature"].as_str().unwrap_or("?"),
                        p["usage"]["calls"].as_u64().unwrap_or(0),
                        p["usage"]["fuel"].as_u64().unwrap_or(0),
                        permissions_line(&p["granted"]),
                    );
                }
                println!(
                    "(status `active+`: an upgrade waits for approval; see `tessera plugin show NAME`)"
                );
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Show(args) => {
                let path = format!("/v1/plugins/{}", segment(&args.name));
                let (status, answer) = call(&args.client, Method::GET, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                print_plugin(&answer);
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Approve(args) => {
                let path = format!("/v1/plugins/{}", segment(&args.name));
                let (status, current) = call(&args.client, Method::GET, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &current);
                }
                let Some(requested) = current["pending"]["requested"].as_object() else {
                    eprintln!(
                        "error: plugin {} has nothing waiting for approval",
                        args.name
                    );
                    return Ok(ExitCode::from(1));
                };
                let grant = grant_from(requested, &args);
                // Approve the version reviewed, or at least the one just read.
                let digest = match &args.digest {
                    Some(digest) => json!(digest),
                    None => current["pending"]["bundle_digest"].clone(),
                };
                let (status, answer) = call(
                    &args.client,
                    Method::POST,
                    &format!("{path}/approve"),
                    Some(json!({ "grant": grant, "bundle_digest": digest })),
                )
                .await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "approved {} {}: granted {}",
                    args.name,
                    answer["version"].as_str().unwrap_or("?"),
                    permissions_line(&answer["granted"])
                );
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Upgrade(args) => {
                let bytes = read_bundle(&args.bundle)?;
                let path = format!(
                    "/v1/plugins/{}/upgrade?allow_unsigned={}",
                    segment(&args.name),
                    args.allow_unsigned
                );
                let (status, answer) = call_with(
                    &args.client,
                    Method::POST,
                    &path,
                    Some((bytes, "application/octet-stream")),
                    BUNDLE_TIMEOUT,
                )
                .await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                if answer["pending"].is_object() {
                    println!(
                        "{} {} asks for more than {} {} was granted: pending approval",
                        args.name,
                        answer["pending"]["version"].as_str().unwrap_or("?"),
                        args.name,
                        answer["version"].as_str().unwrap_or("?"),
                    );
                    print_pending(&answer);
                } else {
                    println!(
                        "{} {} is live (it asks for no more than was granted)",
                        args.name,
                        answer["version"].as_str().unwrap_or("?")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Rollback(args) => {
                let path = format!("/v1/plugins/{}/rollback", segment(&args.name));
                let (status, answer) = call(&args.client, Method::POST, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "rolled {} back to {} (bundle {}), granted {}",
                    args.name,
                    answer["version"].as_str().unwrap_or("?"),
                    answer["bundle_version"].as_str().unwrap_or("?"),
                    permissions_line(&answer["granted"])
                );
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Remove(args) => {
                let path = format!("/v1/plugins/{}", segment(&args.name));
                let (status, answer) = call(&args.client, Method::DELETE, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "removed {}; {} state entries deleted; its audit trail is kept",
                    args.name,
                    answer["state_entries_deleted"].as_u64().unwrap_or(0)
                );
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Quarantine(args) => {
                let path = format!("/v1/plugins/{}/quarantine", segment(&args.name));
                let body = json!({ "reason": args.reason });
                let (status, answer) = call(&args.client, Method::POST, &path, Some(body)).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!(
                    "quarantined {}: its calls are refused until released",
                    args.name
                );
                Ok(ExitCode::SUCCESS)
            }
            LifecycleCommand::Release(args) => {
                let path = format!("/v1/plugins/{}/release", segment(&args.name));
                let (status, answer) = call(&args.client, Method::POST, &path, None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!("released {}", args.name);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub fn trust(command: TrustCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            TrustCommand::Trust(args) => {
                let key = match std::fs::read_to_string(&args.key) {
                    Ok(text) => text.trim().to_owned(),
                    Err(_) => args.key.trim().to_owned(),
                };
                let body = json!({ "public_key": key, "name": args.name });
                let (status, answer) =
                    call(&args.client, Method::POST, "/v1/publishers", Some(body)).await?;
                if status != StatusCode::CREATED {
                    return failed(status, &answer);
                }
                println!(
                    "trusted publisher key {} ({})",
                    answer["key_id"].as_str().unwrap_or("?"),
                    answer["name"].as_str().unwrap_or("?")
                );
                Ok(ExitCode::SUCCESS)
            }
            TrustCommand::Trusted(client) => {
                let (status, answer) = call(&client, Method::GET, "/v1/publishers", None).await?;
                if status != StatusCode::OK {
                    return failed(status, &answer);
                }
                println!("{:<18}  {:<20}  NAME", "KEY ID", "ADDED");
                for p in answer["publishers"].as_array().into_iter().flatten() {
                    println!(
                        "{:<18}  {:<20}  {}",
                        p["key_id"].as_str().unwrap_or("?"),
                        crate::data::rfc3339(p["added_at_ms"].as_i64().unwrap_or(0)),
                        p["name"].as_str().unwrap_or("?")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            TrustCommand::Distrust(args) => {
                let path = format!("/v1/publishers/{}", segment(&args.key_id));
                let (status, answer) = call(&args.client, Method::DELETE, &path, None).await?;
                if status != StatusCode::NO_CONTENT {
                    return failed(status, &answer);
                }
                println!("publisher key {} is no longer trusted", args.key_id);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn read_bundle(path: &PathBuf) -> anyhow::Result<Bytes> {
    std::fs::read(path)
        .map(Bytes::from)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// The grant: the request, with each category given on the command line
/// replaced by that part of it.
fn grant_from(requested: &Map<String, Value>, args: &ApproveArgs) -> Value {
    let mut grant = requested.clone();
    let lists = [
        ("traits", &args.traits),
        ("events", &args.events),
        ("pii", &args.pii),
        ("purposes", &args.purposes),
        ("outbound_hosts", &args.hosts),
    ];
    for (key, given) in lists {
        if let Some(items) = given {
            let items: Vec<&str> = items
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            grant.insert(key.into(), json!(items));
        }
    }
    if let Some(quota) = args.state_quota {
        grant.insert("state_quota".into(), json!(quota));
    }
    Value::Object(grant)
}

/// `traits a,b; pii email; purposes x; state 64 KiB`, or `nothing`.
fn permissions_line(p: &Value) -> String {
    if !p.is_object() {
        return "-".into();
    }
    let mut parts = Vec::new();
    for (key, label) in [
        ("traits", "traits"),
        ("events", "events"),
        ("pii", "pii"),
        ("purposes", "purposes"),
        ("outbound_hosts", "hosts"),
    ] {
        let items: Vec<&str> = p[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !items.is_empty() {
            parts.push(format!("{label} {}", items.join(",")));
        }
    }
    if let Some(quota) = p["state_quota"].as_u64().filter(|q| *q > 0) {
        parts.push(format!("state {}", crate::report::bytes(quota)));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join("; ")
    }
}

fn print_pending(plugin: &Value) {
    let pending = &plugin["pending"];
    if !pending.is_object() {
        return;
    }
    println!(
        "  bundle {} {} by {} ({})",
        pending["bundle_version"].as_str().unwrap_or("?"),
        pending["bundle_digest"].as_str().unwrap_or("?"),
        pending["publisher"].as_str().unwrap_or("?"),
        match pending["signature"].as_str() {
            Some("verified") => format!(
                "signed by trusted key {}",
                pending["key_id"].as_str().unwrap_or("?")
            ),
            _ => "UNSIGNED: development only".into(),
        }
    );
    println!("  asks for: {}", permissions_line(&pending["requested"]));
    let diff = &pending["diff"];
    for (key, label) in [
        ("traits", "traits"),
        ("events", "event types"),
        ("pii", "PII classes"),
        ("purposes", "purposes"),
        ("outbound_hosts", "outbound hosts"),
    ] {
        let list = |which: &str| -> Vec<&str> {
            diff[key][which]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect()
        };
        let (added, removed) = (list("added"), list("removed"));
        if !added.is_empty() {
            println!("    + {label}: {}", added.join(", "));
        }
        if !removed.is_empty() {
            println!("    - {label}: {}", removed.join(", "));
        }
    }
    if let Some([from, to]) = diff["state_quota"]
        .as_array()
        .and_then(|a| Some([a.first()?.as_u64()?, a.get(1)?.as_u64()?]))
    {
        println!(
            "    {} state quota: {} → {}",
            if to > from { "+" } else { "-" },
            crate::report::bytes(from),
            crate::report::bytes(to)
        );
    }
    for limit in diff["limits"].as_array().into_iter().flatten() {
        println!(
            "    limit {}: {} → {}",
            limit["name"].as_str().unwrap_or("?"),
            limit["from"],
            limit["to"]
        );
    }
}

fn print_plugin(p: &Value) {
    println!(
        "{} {} ({}), {}",
        p["name"].as_str().unwrap_or("?"),
        p["version"].as_str().unwrap_or("?"),
        p["kind"].as_str().unwrap_or("?"),
        p["status"].as_str().unwrap_or("?")
    );
    if p["development"] == true {
        println!("  UNSIGNED BUNDLE accepted in development mode");
    }
    if let Some(publisher) = p["publisher"].as_str() {
        println!(
            "  publisher {publisher}, bundle {}, key {}",
            p["bundle_version"].as_str().unwrap_or("?"),
            p["key_id"].as_str().unwrap_or("none")
        );
    }
    println!(
        "  installation {}",
        p["installation"].as_str().unwrap_or("?")
    );
    println!("  asked for: {}", permissions_line(&p["requested"]));
    println!("  granted:   {}", permissions_line(&p["granted"]));
    if let Some(q) = p["quarantine"].as_object() {
        println!(
            "  quarantined by {}: {}",
            q.get("by").and_then(Value::as_str).unwrap_or("?"),
            q.get("reason").and_then(Value::as_str).unwrap_or("?")
        );
    }
    if let Some(error) = p["load_error"].as_str() {
        println!("  not loaded: {error}");
    }
    if p["usage"].is_object() {
        println!(
            "  cost so far: {} calls, {} fuel, {} ms, {} traps",
            p["usage"]["calls"], p["usage"]["fuel"], p["usage"]["wall_ms"], p["usage"]["traps"]
        );
    }
    if p["pending"].is_object() {
        println!(
            "  pending: {} (approve with `tessera plugin approve {}`)",
            p["pending"]["version"].as_str().unwrap_or("?"),
            p["name"].as_str().unwrap_or("?")
        );
        print_pending(p);
    }
    println!("  versions:");
    for v in p["versions"].as_array().into_iter().flatten() {
        println!(
            "    {} (bundle {}){}{}",
            v["version"].as_str().unwrap_or("?"),
            v["bundle_version"].as_str().unwrap_or("?"),
            if v["active"] == true { " running" } else { "" },
            if v["pending"] == true { " pending" } else { "" },
        );
    }
}
