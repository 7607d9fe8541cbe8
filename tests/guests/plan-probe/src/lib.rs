//! Honest (unless told otherwise): a segment whose columns are wholly
//! parameter-driven. Its manifest declares no field and no aggregate; for
//! each set of parameters it plans the `last` time and the `count` of the
//! event type `event` (within `window` days, if given), in that order, and
//! the trait `trait` if given. A row is a member when its count is at least
//! `at-least`; its score is the count (-1 when missing) and, with a
//! `trait`, its tier the trait's value (empty when missing).
//!
//! `plan` breaks the plan on purpose: `duplicate` names `count` twice,
//! `sum-without-property` asks for a sum of nothing, `trap` panics.
use tessera_sdk::TextColumn;
use tessera_sdk::prelude::*;

struct PlanProbe;

fn window(params: &Params) -> Result<Option<u32>, Error> {
    match params.get("window") {
        None => Ok(None),
        Some(_) => u32::try_from(params.integer("window")?)
            .map(Some)
            .map_err(|_| Error::config("parameter `window` must be a number of days")),
    }
}

fn trait_name(params: &Params) -> Result<Option<&str>, Error> {
    match params.get("trait") {
        None => Ok(None),
        Some(_) => params.text("trait").map(Some),
    }
}

impl Segment for PlanProbe {
    fn describe() -> Manifest {
        Manifest::new(
            "plan-probe",
            "0.1.0",
            "subjects with at least N events of a type, planned from its parameters",
        )
        .param(ParamSpec::text("event", "the event type to count").required())
        .param(
            ParamSpec::integer("window", "only events of the last this many days")
                .range(1.0, 3650.0),
        )
        .param(
            ParamSpec::integer("at-least", "the smallest count of a member")
                .range(0.0, 1_000_000.0)
                .default(Value::Integer(1)),
        )
        .param(ParamSpec::text(
            "trait",
            "a trait whose value becomes the tier",
        ))
        .param(
            ParamSpec::text("plan", "how to plan")
                .choices(&["honest", "duplicate", "sum-without-property", "trap"])
                .default(Value::Text("honest".into())),
        )
        .purpose("analytics")
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        let event = params.text("event")?;
        let window = window(params)?;
        let mut needs = Needs::new()
            .aggregate("last", event, AggregateFn::LastAt, None, window)
            .aggregate("count", event, AggregateFn::Count, None, window);
        if let Some(name) = trait_name(params)? {
            needs = needs.field(name, ValueKind::Text, FieldClass::Standard);
        }
        Ok(match params.text("plan")? {
            "duplicate" => needs.aggregate("count", event, AggregateFn::Count, None, None),
            "sum-without-property" => needs.aggregate("spend", event, AggregateFn::Sum, None, None),
            "trap" => panic!("a plan that traps"),
            _ => needs,
        })
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let at_least = params.integer("at-least")?;
        // By name: `count` is the second aggregate column of the plan.
        let count = batch.aggregate("count")?;
        batch.aggregate("last")?;
        let rows = batch.rows();
        let member = (0..rows)
            .map(|row| u8::from(count.integer(row).is_some_and(|n| n >= at_least)))
            .collect();
        let scores = (0..rows)
            .map(|row| count.integer(row).map_or(-1.0, |n| n as f64))
            .collect();
        let tiers = match trait_name(params)? {
            None => None,
            Some(name) => {
                let column = batch.field(name)?;
                let mut dictionary: Vec<String> = Vec::new();
                let codes = (0..rows)
                    .map(|row| {
                        let text = column.text(row).unwrap_or("");
                        let code = match dictionary.iter().position(|d| d == text) {
                            Some(code) => code,
                            None => {
                                dictionary.push(text.to_owned());
                                dictionary.len() - 1
                            }
                        };
                        code as u32
                    })
                    .collect();
                Some(TextColumn { dictionary, codes })
            }
        };
        Ok(Memberships {
            member,
            scores,
            tiers,
        })
    }
}

tessera_sdk::export_segment!(PlanProbe);
