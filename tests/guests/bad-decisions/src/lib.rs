//! Hostile: a strategy whose decisions break the contract (a propensity
//! above 1 and an action index that does not exist).
use tessera_sdk::prelude::*;

struct BadDecisions;

impl Strategy for BadDecisions {
    fn describe() -> Manifest {
        Manifest::new(
            "bad-decisions",
            "0.1.0",
            "hostile: returns invalid decisions",
        )
        .param(
            ParamSpec::text("flaw", "which flaw")
                .choices(&["propensity", "action"])
                .required(),
        )
    }
    fn actions() -> Vec<ActionSpec> {
        vec![ActionSpec {
            name: "only".into(),
            description: "the only action".into(),
        }]
    }
    fn decide(params: &Params, batch: &Batch, _: &Context) -> Result<Vec<Decision>, Error> {
        let ranked = match params.text("flaw")? {
            "propensity" => RankedAction::new(0, 1.0, 1.5),
            _ => RankedAction::new(7, 1.0, 0.5),
        };
        Ok((0..batch.rows())
            .map(|_| Decision {
                ranked: vec![ranked],
                explanation: String::new(),
            })
            .collect())
    }
}

tessera_sdk::export_strategy!(BadDecisions);
