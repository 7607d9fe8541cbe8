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
        // Whom a spend threshold is for: the default purposes of a tenant.
        .purpose("email_marketing")
        .purpose("personalization")
        .purpose("analytics")
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
        let op = op(params)?;
        let spend = batch.field(FIELD)?;
        let member = match spend.numbers() {
            // Fast path: a dense number column is one tight loop per operator,
            // with the comparison inlined (and vectorised) rather than called.
            Some(values) => match op {
                Op::Ge => scan(values, |v| v >= threshold),
                Op::Gt => scan(values, |v| v > threshold),
                Op::Le => scan(values, |v| v <= threshold),
                Op::Lt => scan(values, |v| v < threshold),
                Op::Eq => scan(values, |v| v == threshold),
            },
            None => (0..batch.rows())
                .map(|row| u8::from(spend.number(row).is_some_and(|v| op.holds(v, threshold))))
                .collect(),
        };
        Ok(Memberships {
            member,
            scores: Vec::new(),
            tiers: None,
        })
    }
}

fn scan(values: &[f64], keep: impl Fn(f64) -> bool) -> Vec<u8> {
    values.iter().map(|v| u8::from(keep(*v))).collect()
}

#[derive(Clone, Copy)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Ge => a >= b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            Op::Lt => a < b,
            Op::Eq => a == b,
        }
    }
}

fn op(params: &Params) -> Result<Op, Error> {
    let op = match params.get("op") {
        None => ">=",
        Some(_) => params.text("op")?,
    };
    Ok(match op {
        ">=" => Op::Ge,
        ">" => Op::Gt,
        "<=" => Op::Le,
        "<" => Op::Lt,
        "==" => Op::Eq,
        other => {
            return Err(Error::config(format!(
                "parameter `op` must be one of >=, >, <=, <, ==; got `{other}`"
            )));
        }
    })
}

tessera_sdk::export_segment!(Threshold);
