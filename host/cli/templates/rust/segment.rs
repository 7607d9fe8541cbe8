//! `{{name}}`: a Tessera segment rule. Subjects whose lifetime value is at
//! least a threshold are members.
//!
//! The host hands `evaluate` a batch of profile views: one column per field
//! declared in `describe` (and granted by the operator), only for subjects who
//! consented to the declared purpose. Keys are pseudonymous.

use tessera_sdk::prelude::*;

struct Rule;

const FIELD: &str = "lifetime_value";

impl Segment for Rule {
    fn describe() -> Manifest {
        Manifest::new(
            "{{name}}",
            "0.1.0",
            "Subjects whose lifetime value is at least a threshold",
        )
        .field(FIELD, ValueKind::Number, FieldClass::Standard)
        .param(
            ParamSpec::number("threshold", "The smallest lifetime value of a member")
                .default(Value::Number(500.0)),
        )
        .purpose("analytics")
    }

    fn validate(params: &Params) -> Result<(), Error> {
        if !params.number("threshold")?.is_finite() {
            return Err(Error::config("parameter `threshold` must be a finite number"));
        }
        Ok(())
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let threshold = params.number("threshold")?;
        let value = batch.field(FIELD)?;
        Ok(Memberships::from_fn(batch.rows(), |row| {
            value.number(row).is_some_and(|v| v >= threshold)
        }))
    }
}

tessera_sdk::export_segment!(Rule);
