//! `tessera segment` and `tessera profile`: segments and customer profiles
//! of a running server, over its HTTP API (`docs/api.md`, Segments).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::http::Method;
use serde_json::{Map, Value, json};

use crate::import::add_params;
use crate::token::{ClientArgs, call, failed};

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// List the tenant's segments with their size.
    List(ListArgs),
    /// Show one segment: its plugin, parameters, size and last recompute.
    Show(NameArgs),
    /// Save a segment (replacing one of that name); its recompute starts
    /// at once. The rule, parameters and purpose are checked first.
    Save(SaveArgs),
    /// Count the members a segment would have now, without saving it.
    Preview(SpecArgs),
    /// Recompute a segment over everyone now.
    Recompute(NameArgs),
    /// List a segment's members, a page at a time.
    Members(MembersArgs),
    /// Remove a segment; its members leave it.
    Delete(NameArgs),
    /// Send a segment's members to a destination connector (e.g.
    /// webhook-out), addressed by one of their identities. Only members who
    /// consent to the segment's purpose now are sent.
    Export(ExportArgs),
    /// List a segment's exports, or show one with --id.
    Exports(ExportsArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The segment's name.
    name: String,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Where people are sent (a segment exported, a campaign sent), and to
/// which address of theirs.
#[derive(Debug, Args)]
pub struct DestinationArgs {
    /// The destination connector (e.g. webhook-out), granted the purpose
    /// and the address's PII class.
    #[arg(long)]
    connector: String,
    /// The identity people are addressed by: email, phone, member_id,
    /// device_id or external:NAMESPACE.
    #[arg(long)]
    recipient: String,
    /// One connector parameter, NAME=VALUE (e.g. url=https://…). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    param: Vec<String>,
}

impl DestinationArgs {
    /// The request body: `connector`, `recipient` and `params`.
    pub fn body(&self) -> anyhow::Result<Value> {
        let mut params = Map::new();
        add_params(&mut params, &self.param)?;
        Ok(json!({
            "connector": self.connector,
            "recipient": self.recipient,
            "params": params,
        }))
    }
}

#[derive(Debug, Args)]
pub struct ExportsArgs {
    /// The segment's name.
    name: String,
    /// Show this export.
    #[arg(long)]
    id: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The segment's name.
    name: String,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// What a segment is made of.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// A rule of Tessera's rules language (docs/rules.md), for the `rules`
    /// plugin: the same as `--plugin rules --param rule=RULE`.
    #[arg(long, conflicts_with = "plugin")]
    rule: Option<String>,
    /// The segment plugin (e.g. threshold, rfm, rules).
    #[arg(long)]
    plugin: Option<String>,
    /// One parameter, NAME=VALUE; the value is read as JSON if it is JSON
    /// (true, 42, "x"), else as text. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// The processing purpose (default: the plugin's first granted one).
    #[arg(long)]
    purpose: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// 1 to 64 of a-z, 0-9, `-` and `_`.
    name: String,
    /// What the segment is for, in words.
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    spec: SpecArgs,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    name: String,
    /// The most to list (1 to 1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Continue after this subject id (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The subject id.
    subject: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// The body of `PUT /v1/segments/{name}` and `POST /v1/segments/preview`.
fn body(spec: &SpecArgs, description: &str) -> anyhow::Result<Value> {
    let mut params = Map::new();
    add_params(&mut params, &spec.param)?;
    let plugin = match (&spec.rule, &spec.plugin) {
        (Some(rule), _) => {
            params.insert("rule".into(), Value::String(rule.clone()));
            "rules".to_owned()
        }
        (None, Some(plugin)) => plugin.clone(),
        (None, None) => anyhow::bail!("name the segment's --plugin, or give a --rule"),
    };
    let mut body = json!({"plugin": plugin, "params": params, "description": description});
    if let Some(purpose) = &spec.purpose {
        body["purpose"] = json!(purpose);
    }
    Ok(body)
}

pub(crate) fn block_on(
    work: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// One call; the answer printed as JSON or by `show`, or the error.
pub(crate) async fn answer(
    client: &ClientArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
    json: bool,
    show: impl FnOnce(&Value),
) -> anyhow::Result<ExitCode> {
    let (status, answer) = call(client, method, path, body).await?;
    if !status.is_success() {
        if let Some(problems) = answer["error"]["details"]["problems"].as_array() {
            for problem in problems {
                eprintln!("{}", problem["message"].as_str().unwrap_or_default());
            }
        }
        return failed(status, &answer);
    }
    if json && !answer.is_null() {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        show(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

fn show_export(export: &Value) {
    let count = |name: &str| export[name].as_u64().unwrap_or(0);
    println!(
        "{}  {:<9} to {} by {}: {} sent, {} delivered, {} dead letters; skipped {} without \
         consent, {} without an address, {} unconfirmed",
        export["id"].as_str().unwrap_or("?"),
        export["status"].as_str().unwrap_or("?"),
        export["connector"].as_str().unwrap_or("?"),
        export["recipient"].as_str().unwrap_or("?"),
        count("sent"),
        count("delivered"),
        count("dead_letters"),
        count("without_consent"),
        count("without_address"),
        count("unconfirmed"),
    );
}

fn show_segment(segment: &Value) {
    println!(
        "{:<24} {:>8} members  {:<10} {}",
        segment["name"].as_str().unwrap_or("?"),
        segment["members"].as_u64().unwrap_or(0),
        segment["plugin"].as_str().unwrap_or("?"),
        segment["params"]
            .as_object()
            .map(|params| params
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    );
}

pub fn run(command: SegmentCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            SegmentCommand::List(args) => {
                answer(
                    &args.client,
                    Method::GET,
                    "/v1/segments",
                    None,
                    args.json,
                    |a| {
                        for segment in a["segments"].as_array().into_iter().flatten() {
                            show_segment(segment);
                        }
                    },
                )
                .await
            }
            SegmentCommand::Show(args) => {
                let path = format!("/v1/segments/{}", args.name);
                answer(&args.client, Method::GET, &path, None, true, |_| {}).await
            }
            SegmentCommand::Save(args) => {
                let path = format!("/v1/segments/{}", args.name);
                let body = body(&args.spec, &args.description)?;
                answer(
                    &args.spec.client,
                    Method::PUT,
                    &path,
                    Some(body),
                    args.spec.json,
                    |a| {
                        println!(
                            "saved segment {} (purpose {}); its recompute has started",
                            a["name"].as_str().unwrap_or("?"),
                            a["purpose"].as_str().unwrap_or("?")
                        );
                    },
                )
                .await
            }
            SegmentCommand::Preview(args) => {
                let body = body(&args, "")?;
                let path = "/v1/segments/preview";
                answer(
                    &args.client,
                    Method::POST,
                    path,
                    Some(body),
                    args.json,
                    |a| {
                        println!(
                            "{} of {} people who consent to {} would be members",
                            a["members"].as_u64().unwrap_or(0),
                            a["evaluated"].as_u64().unwrap_or(0),
                            a["purpose"].as_str().unwrap_or("?")
                        );
                    },
                )
                .await
            }
            SegmentCommand::Recompute(args) => {
                let path = format!("/v1/segments/{}/recompute", args.name);
                answer(&args.client, Method::POST, &path, None, args.json, |_| {
                    println!("recompute of {} started", args.name);
                })
                .await
            }
            SegmentCommand::Members(args) => {
                let mut path = format!("/v1/segments/{}/members?limit={}", args.name, args.limit);
                if let Some(after) = &args.after {
                    path.push_str(&format!("&after={after}"));
                }
                answer(&args.client, Method::GET, &path, None, args.json, |a| {
                    for member in a["members"].as_array().into_iter().flatten() {
                        println!(
                            "{}  since {}",
                            member["subject"].as_str().unwrap_or("?"),
                            crate::data::rfc3339(member["entered_at_ms"].as_i64().unwrap_or(0))
                        );
                    }
                    if let Some(next) = a["next"].as_str() {
                        eprintln!("more: --after {next}");
                    }
                })
                .await
            }
            SegmentCommand::Delete(args) => {
                let path = format!("/v1/segments/{}", args.name);
                answer(&args.client, Method::DELETE, &path, None, args.json, |_| {
                    println!("removed segment {}; its members left it", args.name);
                })
                .await
            }
            SegmentCommand::Export(args) => {
                let path = format!("/v1/segments/{}/exports", args.name);
                let body = args.destination.body()?;
                let follow = format!("tessera segment exports {} --id", args.name);
                start(&args.client, &path, body, args.json, "export", &follow).await
            }
            SegmentCommand::Exports(args) => {
                let path = format!("/v1/segments/{}/exports", args.name);
                one_or_all(
                    &args.client,
                    &path,
                    args.id.as_deref(),
                    args.json,
                    "exports",
                    show_export,
                )
                .await
            }
        }
    })
}

/// Starts work the server does in the background (an export, a send) and
/// says how to follow it: `follow` and the id of the record it answers.
pub(crate) async fn start(
    client: &ClientArgs,
    path: &str,
    body: Value,
    json: bool,
    what: &str,
    follow: &str,
) -> anyhow::Result<ExitCode> {
    answer(client, Method::POST, path, Some(body), json, |a| {
        let id = a["id"].as_str().unwrap_or("?");
        println!("{what} {id} started; see it with: {follow} {id}");
    })
    .await
}

/// Shows the record `id` under `path`, or (`None`) every record the list
/// at `path` holds under `key`.
pub(crate) async fn one_or_all(
    client: &ClientArgs,
    path: &str,
    id: Option<&str>,
    json: bool,
    key: &str,
    show: fn(&Value),
) -> anyhow::Result<ExitCode> {
    match id {
        Some(id) => {
            answer(
                client,
                Method::GET,
                &format!("{path}/{id}"),
                None,
                json,
                show,
            )
            .await
        }
        None => {
            answer(client, Method::GET, path, None, json, |a| {
                a[key].as_array().into_iter().flatten().for_each(show);
            })
            .await
        }
    }
}

/// `tessera profile SUBJECT`: the profile as the token's role may see it.
pub fn profile(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let path = format!("/v1/profiles/{}", args.subject);
        answer(&args.client, Method::GET, &path, None, true, |_| {}).await
    })
}
