//! Honest (unless told otherwise): a strategy whose actions and columns are
//! wholly parameter-driven. Its actions are the `offers` parameter (its
//! plain-world actions one `fallback` offer); it plans the number trait
//! `feature` and the membership of the segment `segment`, in that order,
//! and ranks the offers in order for every row, the first with propensity
//! 1, its explanation naming the feature's value and the membership.
//!
//! `flaw` breaks the answers on purpose: `duplicate-offer` lists the first
//! offer twice, `no-offers` lists none, `bad-plan` plans a sum without a
//! property, `trap` panics in both `actions` and `plan`, `out-of-range`
//! decides the offer one past the last.
use tessera_sdk::prelude::*;

struct CampaignProbe;

fn offers(params: &Params) -> Result<Vec<ActionSpec>, Error> {
    let names = match params.get("offers") {
        None => return Ok(CampaignProbe::actions()),
        Some(_) => params.text_list("offers")?,
    };
    Ok(names
        .iter()
        .map(|name| ActionSpec {
            name: name.clone(),
            description: format!("offer {name}"),
        })
        .collect())
}

fn flaw(params: &Params) -> Result<&str, Error> {
    match params.get("flaw") {
        None => Ok("none"),
        Some(_) => params.text("flaw"),
    }
}

impl Strategy for CampaignProbe {
    fn describe() -> Manifest {
        Manifest::new(
            "campaign-probe",
            "0.1.0",
            "offers and columns taken from its parameters",
        )
        .param(ParamSpec::text_list(
            "offers",
            "the offers to rank, in order",
        ))
        .param(ParamSpec::text("feature", "a number trait to read").required())
        .param(ParamSpec::text("segment", "a segment whose membership to read").required())
        .param(
            ParamSpec::text("flaw", "how to break the answers")
                .choices(&[
                    "none",
                    "duplicate-offer",
                    "no-offers",
                    "bad-plan",
                    "trap",
                    "out-of-range",
                ])
                .default(Value::Text("none".into())),
        )
        .purpose("marketing")
    }

    fn actions() -> Vec<ActionSpec> {
        vec![ActionSpec {
            name: "fallback".into(),
            description: "the offer without parameters".into(),
        }]
    }

    fn actions_for(params: &Params) -> Result<Vec<ActionSpec>, Error> {
        let mut offers = offers(params)?;
        match flaw(params)? {
            "duplicate-offer" => offers.push(offers[0].clone()),
            "no-offers" => offers.clear(),
            "trap" => panic!("actions that trap"),
            _ => {}
        }
        Ok(offers)
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        let needs = Needs::new()
            .field(
                params.text("feature")?,
                ValueKind::Number,
                FieldClass::Standard,
            )
            .segment(params.text("segment")?);
        Ok(match flaw(params)? {
            "bad-plan" => needs.aggregate("spend", "purchase", AggregateFn::Sum, None, None),
            "trap" => panic!("a plan that traps"),
            _ => needs,
        })
    }

    fn decide(params: &Params, batch: &Batch, _: &Context) -> Result<Vec<Decision>, Error> {
        let offers = offers(params)?.len() as u32;
        let feature = batch.field(params.text("feature")?)?;
        let member = batch.segment(params.text("segment")?)?;
        let shift = u32::from(flaw(params)? == "out-of-range");
        Ok((0..batch.rows())
            .map(|row| Decision {
                ranked: (0..offers)
                    .map(|a| {
                        RankedAction::new(
                            a + shift,
                            f64::from(offers - a),
                            f64::from(u8::from(a == 0)),
                        )
                    })
                    .collect(),
                explanation: format!(
                    "feature {:?}, member {:?}",
                    feature.number(row),
                    member.boolean(row)
                ),
            })
            .collect())
    }
}

tessera_sdk::export_strategy!(CampaignProbe);
