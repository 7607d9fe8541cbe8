//! Honest unless told otherwise: a planned strategy built without the SDK
//! that imports `tessera:plan/segment-plan`'s `plan`, as componentize-js and
//! componentize-py components do (they import every function of an
//! imported interface). The host links that import as a stub that traps.
//! It offers the `offers` parameter's actions and plans the number trait
//! `score`; `decide` ranks the first offer first with propensity 1 and
//! names the row's score. With `call-host-plan` set, `decide` calls the
//! imported `plan` first, which no host serves.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]
wit_bindgen::generate!({
    path: ["../../../wit/v0.1", "../../../wit/plan/v0.1", "../../../wit/strategy/v0.1"],
    world: "tessera:strategy/planned-strategy@0.1.0",
    generate_all,
});

use exports::tessera::strategy::campaign_plan;
use tessera::plan::segment_plan::{self, Needs};
use tessera::plugin::strategies::{ActionForecast, RankedAction};
use tessera::plugin::types::{ColumnData, FieldClass, FieldSpec, ParamSpec, Value, ValueKind};

/// The contract version, where the host reads it (the SDKs embed the same).
#[used]
#[unsafe(link_section = "tessera:wit-version")]
static WIT_VERSION: [u8; 5] = *b"0.1.0";

struct PlanImport;

fn param<'a>(params: &'a [FieldValue], name: &str) -> Option<&'a Value> {
    params.iter().find(|p| p.name == name).map(|p| &p.value)
}

fn offers(params: &[FieldValue]) -> Vec<ActionSpec> {
    let names = match param(params, "offers") {
        Some(Value::TextList(names)) => names.clone(),
        _ => vec!["fallback".into()],
    };
    names
        .into_iter()
        .map(|name| ActionSpec {
            description: format!("offer {name}"),
            name,
        })
        .collect()
}

fn score() -> FieldSpec {
    FieldSpec {
        name: "score".into(),
        kind: ValueKind::Number,
        class: FieldClass::Standard,
    }
}

fn spec(name: &str, kind: ValueKind, description: &str, default: Option<Value>) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        kind,
        description: description.into(),
        required: false,
        default,
        min: None,
        max: None,
        choices: Vec::new(),
    }
}

impl Guest for PlanImport {
    fn describe() -> Manifest {
        Manifest {
            name: "plan-import".into(),
            version: "0.1.0".into(),
            description: "a planned strategy that imports segment-plan.plan".into(),
            parameters: vec![
                spec("offers", ValueKind::TextList, "the offers to rank", None),
                spec(
                    "call-host-plan",
                    ValueKind::Boolean,
                    "call the imported segment-plan.plan in decide",
                    Some(Value::Boolean(false)),
                ),
            ],
            fields: Vec::new(),
            aggregates: Vec::new(),
            purposes: vec!["marketing".into()],
        }
    }

    fn actions() -> Vec<ActionSpec> {
        offers(&[])
    }

    fn validate(_: Vec<FieldValue>) -> Result<(), Error> {
        Ok(())
    }

    fn decide(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
        _: Context,
    ) -> Result<Vec<Decision>, Error> {
        if matches!(param(&params, "call-host-plan"), Some(Value::Boolean(true))) {
            segment_plan::plan(&params)?;
        }
        let Some(ColumnData::Number(scores)) = batch.fields.first().map(|c| &c.data) else {
            return Err(Error::InvalidInput(
                "expected the planned `score` column".into(),
            ));
        };
        Ok(scores
            .iter()
            .map(|score| Decision {
                ranked: vec![RankedAction {
                    action: 0,
                    score: 1.0,
                    propensity: 1.0,
                }],
                explanation: format!("score {score}"),
            })
            .collect())
    }

    fn observe(_: Vec<FieldValue>, _: FeedbackBatch) -> Result<(), Error> {
        Ok(())
    }

    fn simulate(_: Vec<FieldValue>, _: ProfileBatch, _: Context) -> Result<Forecast, Error> {
        Ok(Forecast {
            actions: vec![ActionForecast {
                action: 0,
                share: 1.0,
                expected_reward: 0.0,
            }],
            expected_reward: 0.0,
            notes: String::new(),
        })
    }
}

impl campaign_plan::Guest for PlanImport {
    fn actions(params: Vec<FieldValue>) -> Result<Vec<ActionSpec>, Error> {
        Ok(offers(&params))
    }

    fn plan(_: Vec<FieldValue>) -> Result<Needs, Error> {
        Ok(Needs {
            fields: vec![score()],
            aggregates: Vec::new(),
            queries: Vec::new(),
            segments: Vec::new(),
        })
    }
}

export!(PlanImport);
