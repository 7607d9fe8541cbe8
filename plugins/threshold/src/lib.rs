//! `threshold`: subjects whose numeric trait compares to a threshold, e.g.
//! "total_spend >= 500". The reference segment rule; its Python twin in
//! `tests/guests/python/threshold` must behave identically.

use tessera_sdk::prelude::*;

struct Threshold;

/// The one numeric field this rule reads. A rule over a field chosen by
/// parameter would need grants decided per segment; that arrives with the
/// rules engine.
const FIELD: &str = "total_spend";

impl Segment for Threshold {
    fn describe() -> Manifest {
        Manifest::new(
            "threshold",
            "0.1.0",
            "Subjects whose total spend compares to a threshold (>=, >, <=, <, ==).",
        )
        .field(FIELD, ValueKind::Number, FieldClass::Standard)
        .param(ParamSpec::number("threshold", "The value to compare with").required())
        .param(
            ParamSpec::text("op", "The comparison")
                .choices(&[">=", ">", "<=", "<", "=="])
                .default(Value::Text(">=".into())),
        )
        .purpose("marketing")
    }

    fn validate(params: &Params) -> Result<(), Error> {
        let threshold = params.number("threshold")?;
        if !threshold.is_finite() {
            return Err(Error::config(
                "parameter `threshold` must be a finite number",
            ));
        }
        op(params).map(|_| ())
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let threshold = params.number("threshold")?;
        let cmp = op(params)?;
        let spend = batch.field(FIELD)?;
        // Fast path: a dense number column is a plain slice scan.
        if let Some(values) = spend.numbers() {
            return Ok(Memberships {
                member: values.iter().map(|v| cmp(*v, threshold)).collect(),
                scores: Vec::new(),
                tiers: None,
            });
        }
        Ok(Memberships::from_fn(batch.rows(), |row| {
            spend.number(row).is_some_and(|v| cmp(v, threshold))
        }))
    }
}

fn op(params: &Params) -> Result<fn(f64, f64) -> bool, Error> {
    let op = match params.get("op") {
        None => ">=",
        Some(_) => params.text("op")?,
    };
    Ok(match op {
        ">=" => |a, b| a >= b,
        ">" => |a, b| a > b,
        "<=" => |a, b| a <= b,
        "<" => |a, b| a < b,
        "==" => |a, b| a == b,
        other => {
            return Err(Error::config(format!(
                "parameter `op` must be one of >=, >, <=, <, ==; got `{other}`"
            )));
        }
    })
}

tessera_sdk::export_segment!(Threshold);
