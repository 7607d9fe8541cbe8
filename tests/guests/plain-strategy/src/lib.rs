//! Honest: a strategy built against the plain `tessera:plugin/strategy@0.1.0`
//! world, without the SDK, so it does not export `tessera:strategy` (as a
//! component built before the campaign plan existed). It declares two
//! actions and the `score` field, and ranks `high` first for rows whose
//! score is at least 0.5, `low` first otherwise, each with propensity 1
//! for the first and 0 for the second.

// Generated ABI glue takes one argument per flattened WIT value.
#![allow(clippy::too_many_arguments)]
wit_bindgen::generate!({
    path: "../../../wit/v0.1",
    world: "strategy",
    generate_all,
});

use tessera::plugin::strategies::{ActionForecast, RankedAction};
use tessera::plugin::types::{ColumnData, FieldClass, FieldSpec, ValueKind};

/// The contract version, where the host reads it (the SDKs embed the same).
#[used]
#[unsafe(link_section = "tessera:wit-version")]
static WIT_VERSION: [u8; 5] = *b"0.1.0";

struct PlainStrategy;

impl Guest for PlainStrategy {
    fn describe() -> Manifest {
        Manifest {
            name: "plain-strategy".into(),
            version: "0.1.0".into(),
            description: "high or low by score, without a campaign plan".into(),
            parameters: Vec::new(),
            fields: vec![FieldSpec {
                name: "score".into(),
                kind: ValueKind::Number,
                class: FieldClass::Standard,
            }],
            aggregates: Vec::new(),
            purposes: vec!["marketing".into()],
        }
    }

    fn actions() -> Vec<ActionSpec> {
        ["high", "low"]
            .iter()
            .map(|name| ActionSpec {
                name: (*name).into(),
                description: format!("the {name} offer"),
            })
            .collect()
    }

    fn validate(_: Vec<FieldValue>) -> Result<(), Error> {
        Ok(())
    }

    fn decide(_: Vec<FieldValue>, batch: ProfileBatch, _: Context) -> Result<Vec<Decision>, Error> {
        let Some(ColumnData::Number(scores)) = batch.fields.first().map(|c| &c.data) else {
            return Err(Error::InvalidInput("expected the `score` column".into()));
        };
        Ok(scores
            .iter()
            .map(|score| {
                let first = u32::from(*score < 0.5);
                Decision {
                    ranked: vec![
                        RankedAction {
                            action: first,
                            score: 1.0,
                            propensity: 1.0,
                        },
                        RankedAction {
                            action: 1 - first,
                            score: 0.0,
                            propensity: 0.0,
                        },
                    ],
                    explanation: format!("score {score}"),
                }
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

export!(PlainStrategy);
