//! `tessera catalog` and `tessera campaign`: the strategy catalog and the
//! campaigns of a running server, over its HTTP API (`docs/api.md`,
//! Strategies and campaigns; `docs/strategies.md`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use hyper::http::Method;
use serde_json::{Map, Value, json};

use crate::import::add_params;
use crate::segment::{DestinationArgs, answer, block_on, one_or_all, start};
use crate::token::ClientArgs;

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// List the tenant's campaigns with their status.
    List(ListArgs),
    /// Show one campaign: strategy, segment, holdout, forecast, history.
    Show(NameArgs),
    /// Save a campaign as a draft (replacing a draft of that name).
    Save(Box<SaveArgs>),
    /// Forecast a campaign and replay its strategy over logged decisions;
    /// it becomes `simulated`, ready to run. Without a name: what-if, for a
    /// definition given as `save` takes it, saving nothing.
    Simulate(Box<SimulateArgs>),
    /// Run a simulated or paused campaign.
    Run(NameArgs),
    /// Pause a running campaign (it answers with its fallback).
    Pause(NameArgs),
    /// Complete a campaign.
    Complete(NameArgs),
    /// Evaluate a campaign against its holdout.
    Evaluate(EvaluateArgs),
    /// Strategies ranked for a segment, with the reasons.
    Recommend(RecommendArgs),
    /// Remove a campaign that never ran.
    Delete(NameArgs),
    /// Decide for a running campaign's whole segment and send each
    /// decision through a destination connector (e.g. webhook-out) to a
    /// trusted address of the person. Only members who consent to the
    /// campaign's purpose now are decided for.
    Send(SendArgs),
    /// List a campaign's sends, or show one.
    Sends(SendsArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The campaign's name.
    name: String,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Where the decisions are shown (the strategy's context).
    #[arg(long, default_value = "email")]
    channel: String,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SendsArgs {
    /// The campaign's name.
    name: String,
    /// Show this send.
    id: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The campaign's name.
    name: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// 1 to 64 of a-z, 0-9, `-` and `_`.
    name: String,
    #[command(flatten)]
    spec: SpecArgs,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// A campaign's definition, as `save` takes it and `simulate` without a
/// name tries it.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The strategy plugin (see `tessera catalog`).
    #[arg(long)]
    strategy: String,
    /// The segment whose members it decides for.
    #[arg(long)]
    segment: String,
    /// One strategy parameter, NAME=VALUE (JSON if it parses). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// The share held out as the control group, 0 to 0.5.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
    /// The goal: an event type (with --value, its numeric property), or
    /// `feedback` for conversions reported on the decisions.
    #[arg(long, default_value = "purchase")]
    goal: String,
    /// The goal event's property that adds up to revenue.
    #[arg(long)]
    value: Option<String>,
    /// Days after a person's first decision that count.
    #[arg(long, default_value_t = 7)]
    window_days: u32,
    /// At most this many decisions per person within --cap-days.
    #[arg(long, requires = "cap_days")]
    cap: Option<u32>,
    #[arg(long)]
    cap_days: Option<u32>,
    /// The most decisions served in all.
    #[arg(long)]
    budget: Option<u64>,
    /// The action served when the strategy does not decide.
    #[arg(long)]
    fallback: Option<String>,
    /// The processing purpose (default: the strategy's first granted one).
    #[arg(long)]
    purpose: Option<String>,
    #[arg(long, default_value = "")]
    description: String,
}

impl SpecArgs {
    /// The body of `PUT /v1/campaigns/{name}` (and `POST /v1/simulate`).
    fn body(&self) -> anyhow::Result<Value> {
        let mut params = Map::new();
        add_params(&mut params, &self.param)?;
        let goal = if self.goal == "feedback" {
            json!({"source": "feedback", "window_days": self.window_days})
        } else {
            json!({"event": self.goal, "value": self.value,
                   "window_days": self.window_days})
        };
        let mut body = json!({
            "strategy": self.strategy,
            "segment": self.segment,
            "params": params,
            "holdout": self.holdout,
            "goal": goal,
            "description": self.description,
        });
        if let (Some(max), Some(days)) = (self.cap, self.cap_days) {
            body["frequency_cap"] = json!({"max": max, "days": days});
        }
        for (key, value) in [
            ("budget", self.budget.map(Value::from)),
            ("fallback", self.fallback.clone().map(Value::from)),
            ("purpose", self.purpose.clone().map(Value::from)),
        ] {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        Ok(body)
    }
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The campaign to simulate; without it, the definition the options
    /// give (as `save` takes them) is tried without saving anything.
    #[arg(conflicts_with = "SpecArgs", required_unless_present = "strategy")]
    name: Option<String>,
    #[command(flatten)]
    spec: Option<SpecArgs>,
    /// Replay over this campaign's logged decisions (default: the one on
    /// the same segment that started last).
    #[arg(long)]
    logs_from: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    name: String,
    /// Segments for a breakdown, comma-separated.
    #[arg(long)]
    by: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The segment.
    segment: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera catalog`.
pub fn catalog(args: CatalogArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        answer(&args.client, Method::GET, "/v1/catalog", None, args.json, |a| {
            for strategy in a["strategies"].as_array().into_iter().flatten() {
                let names = |key: &str, field: &str| {
                    strategy[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v[field].as_str().or(v.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "{}@{}  {}\n  actions: {}\n  parameters: {}\n  purposes: {} (granted: {})\n  \
                     campaigns evaluated: {}",
                    strategy["name"].as_str().unwrap_or("?"),
                    strategy["version"].as_str().unwrap_or("?"),
                    strategy["description"].as_str().unwrap_or(""),
                    names("actions", "name"),
                    names("parameters", "name"),
                    names("purposes", ""),
                    names("granted_purposes", ""),
                    strategy["track_record"].as_array().map_or(0, Vec::len),
                );
            }
        })
        .await
    })
}

fn show_campaign(c: &Value) {
    println!(
        "{:<24} {:<10} {} on {} (holdout {}), purpose {}",
        c["name"].as_str().unwrap_or("?"),
        c["status"].as_str().unwrap_or("?"),
        c["strategy"].as_str().unwrap_or("?"),
        c["segment"].as_str().unwrap_or("?"),
        c["holdout"],
        c["purpose"].as_str().unwrap_or("?"),
    );
}

fn show_send(send: &Value) {
    let count = |name: &str| send[name].as_u64().unwrap_or(0);
    let skipped = |name: &str| send["fallback"][name].as_u64().unwrap_or(0);
    println!(
        "{}  {:<9} to {} by {}: {} decided, {} held out, {} sent, {} delivered, {} dead letters; \
         skipped {} without consent, {} capped, {} over budget, {} without an address, {} \
         unconfirmed",
        send["id"].as_str().unwrap_or("?"),
        send["status"].as_str().unwrap_or("?"),
        send["connector"].as_str().unwrap_or("?"),
        send["recipient"].as_str().unwrap_or("?"),
        count("decided"),
        count("control"),
        count("sent"),
        count("delivered"),
        count("dead_letters"),
        skipped("no_consent"),
        skipped("capped"),
        skipped("budget_exhausted"),
        count("without_address"),
        count("unconfirmed"),
    );
    if let Some(error) = send["error"].as_str() {
        println!("  failed: {error}");
    }
}

fn status(name: &str, to: &str) -> (String, Value) {
    (
        format!("/v1/campaigns/{name}/status"),
        json!({ "status": to }),
    )
}

/// `tessera campaign …`.
pub fn run(command: CampaignCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            CampaignCommand::List(args) => {
                answer(
                    &args.client,
                    Method::GET,
                    "/v1/campaigns",
                    None,
                    args.json,
                    |a| {
                        for campaign in a["campaigns"].as_array().into_iter().flatten() {
                            show_campaign(campaign);
                        }
                    },
                )
                .await
            }
            CampaignCommand::Show(args) => {
                let path = format!("/v1/campaigns/{}", args.name);
                answer(&args.client, Method::GET, &path, None, true, |_| {}).await
            }
            CampaignCommand::Save(args) => {
                let body = args.spec.body()?;
                let path = format!("/v1/campaigns/{}", args.name);
                answer(
                    &args.client,
                    Method::PUT,
                    &path,
                    Some(body),
                    args.json,
                    |a| {
                        println!(
                            "saved campaign {} as a draft; simulate it before it runs",
                            a["name"].as_str().unwrap_or("?")
                        );
                    },
                )
                .await
            }
            CampaignCommand::Simulate(args) => {
                let (mut path, body, what_if) = match (&args.name, &args.spec) {
                    (Some(name), _) => (format!("/v1/campaigns/{name}/simulate"), None, false),
                    (None, Some(spec)) => ("/v1/simulate".to_owned(), Some(spec.body()?), true),
                    (None, None) => anyhow::bail!(
                        "name the campaign to simulate, or give --strategy and --segment to try a \
                         definition"
                    ),
                };
                if let Some(source) = &args.logs_from {
                    path.push_str(&format!("?logs_from={source}"));
                }
                answer(&args.client, Method::POST, &path, body, args.json, |a| {
                    println!(
                        "{}forecast: {} of {} members consent; {} to treat, {} held out; at most {} \
                         decisions",
                        if what_if { "what-if, nothing saved: " } else { "" },
                        a["consenting"],
                        a["segment_size"],
                        a["expected_treated"],
                        a["expected_control"],
                        a["max_decisions"]
                    );
                    if let Some(replay) = a.get("off_policy") {
                        let snips = &replay["estimate"]["snips"];
                        println!(
                            "replayed over {} decisions of {}: conversion rate {:.4} (95% interval \
                             {:.4} to {:.4}), against {:.4} for the strategy that made them",
                            replay["rows"],
                            replay["logs_from"].as_str().unwrap_or("?"),
                            snips["value"].as_f64().unwrap_or(f64::NAN),
                            snips["lower"].as_f64().unwrap_or(f64::NAN),
                            snips["upper"].as_f64().unwrap_or(f64::NAN),
                            replay["logged_value"].as_f64().unwrap_or(f64::NAN),
                        );
                    } else if let Some(note) = a["off_policy_note"].as_str() {
                        println!("no replay: {note}");
                    }
                })
                .await
            }
            CampaignCommand::Run(args) => transition(args, "running").await,
            CampaignCommand::Pause(args) => transition(args, "paused").await,
            CampaignCommand::Complete(args) => transition(args, "completed").await,
            CampaignCommand::Evaluate(args) => {
                let mut path = format!("/v1/campaigns/{}/evaluation", args.name);
                if let Some(by) = &args.by {
                    path.push_str(&format!("?by={by}"));
                }
                answer(&args.client, Method::GET, &path, None, args.json, |a| {
                    let report = &a["report"];
                    if report.is_null() {
                        println!(
                            "{} treated, {} held out: too few to compare",
                            a["treatment_subjects"], a["control_subjects"]
                        );
                        return;
                    }
                    let uplift = &report["absolute_uplift"];
                    let pct = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 100.0;
                    println!(
                        "treated {} converted {:.1}%, held out {} {:.1}%: uplift {:+.1} points (95% \
                         interval {:+.1} to {:+.1}); sample ratio {}",
                        report["treatment"]["subjects"],
                        pct(&report["treatment"]["conversion_rate"]),
                        report["control"]["subjects"],
                        pct(&report["control"]["conversion_rate"]),
                        pct(&uplift["value"]),
                        pct(&uplift["lower"]),
                        pct(&uplift["upper"]),
                        if report["sample_ratio"]["mismatch"].as_bool() == Some(true) {
                            "MISMATCH"
                        } else {
                            "as configured"
                        }
                    );
                })
                .await
            }
            CampaignCommand::Recommend(args) => {
                let path = format!("/v1/segments/{}/recommendations", args.segment);
                answer(&args.client, Method::GET, &path, None, args.json, |a| {
                    for r in a["recommendations"].as_array().into_iter().flatten() {
                        println!(
                            "{} ({}, score {:.4})",
                            r["strategy"].as_str().unwrap_or("?"),
                            r["basis"].as_str().unwrap_or("?"),
                            r["score"].as_f64().unwrap_or(0.0)
                        );
                        for reason in r["reasons"].as_array().into_iter().flatten() {
                            println!("  - {}", reason.as_str().unwrap_or(""));
                        }
                    }
                })
                .await
            }
            CampaignCommand::Send(args) => {
                let path = format!("/v1/campaigns/{}/sends", args.name);
                let mut body = args.destination.body()?;
                body["channel"] = json!(args.channel);
                let follow = format!("tessera campaign sends {}", args.name);
                start(&args.client, &path, body, args.json, "send", &follow).await
            }
            CampaignCommand::Sends(args) => {
                let path = format!("/v1/campaigns/{}/sends", args.name);
                one_or_all(
                    &args.client,
                    &path,
                    args.id.as_deref(),
                    args.json,
                    "sends",
                    show_send,
                )
                .await
            }
            CampaignCommand::Delete(args) => {
                let path = format!("/v1/campaigns/{}", args.name);
                answer(&args.client, Method::DELETE, &path, None, args.json, |_| {
                    println!("removed campaign {}", args.name);
                })
                .await
            }
        }
    })
}

async fn transition(args: NameArgs, to: &str) -> anyhow::Result<ExitCode> {
    let (path, body) = status(&args.name, to);
    answer(
        &args.client,
        Method::POST,
        &path,
        Some(body),
        args.json,
        |a| {
            println!(
                "campaign {} is {}",
                a["name"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            );
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: CampaignCommand,
    }

    fn simulate(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        let mut all = vec!["tessera", "simulate", "--token", "t"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            CampaignCommand::Simulate(args) => Ok(*args),
            other => panic!("not simulate: {other:?}"),
        }
    }

    #[test]
    fn simulate_takes_a_campaign_or_a_definition_but_not_both() {
        let named = simulate(&["spring", "--logs-from", "winter"]).unwrap();
        assert_eq!(named.name.as_deref(), Some("spring"));
        assert!(named.spec.is_none(), "{named:?}");
        assert_eq!(named.logs_from.as_deref(), Some("winter"));

        let tried = simulate(&[
            "--strategy",
            "thompson",
            "--segment",
            "big-spenders",
            "--holdout",
            "0.2",
            "--param",
            "success=conversion",
        ])
        .unwrap();
        assert!(tried.name.is_none());
        let body = tried.spec.expect("a definition").body().unwrap();
        assert_eq!(
            body,
            json!({"strategy": "thompson", "segment": "big-spenders",
                   "params": {"success": "conversion"}, "holdout": 0.2,
                   "goal": {"event": "purchase", "value": null, "window_days": 7},
                   "description": ""})
        );

        for wrong in [
            &["spring", "--strategy", "thompson", "--segment", "s"][..],
            &["spring", "--holdout", "0.2"][..],
            &["--strategy", "thompson"][..],
            &[][..],
        ] {
            assert!(simulate(wrong).is_err(), "{wrong:?}");
        }
    }
}
