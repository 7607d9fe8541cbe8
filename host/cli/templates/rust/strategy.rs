//! `{{name}}`: a Tessera strategy. Offers a discount to customers whose
//! lifetime value is below a threshold (to win them back) and nothing to the
//! others, and says why.
//!
//! Decisions rank every action with the probability it was chosen with (its
//! propensity): this rule is deterministic, so the chosen action has 1.0.

use tessera_sdk::prelude::*;

struct Offer;

const FIELD: &str = "lifetime_value";
const DISCOUNT: u32 = 0;
const NO_OFFER: u32 = 1;

impl Strategy for Offer {
    fn describe() -> Manifest {
        Manifest::new(
            "{{name}}",
            "0.1.0",
            "A discount for customers below a lifetime value, nothing for the others",
        )
        .field(FIELD, ValueKind::Number, FieldClass::Standard)
        .param(
            ParamSpec::number("threshold", "Below this lifetime value, offer the discount")
                .default(Value::Number(100.0)),
        )
        .purpose("personalization")
    }

    fn actions() -> Vec<ActionSpec> {
        vec![
            ActionSpec {
                name: "discount".into(),
                description: "10% off the next purchase".into(),
            },
            ActionSpec {
                name: "no_offer".into(),
                description: "No offer".into(),
            },
        ]
    }

    fn decide(params: &Params, batch: &Batch, _context: &Context) -> Result<Vec<Decision>, Error> {
        let threshold = params.number("threshold")?;
        let value = batch.field(FIELD)?;
        Ok((0..batch.rows())
            .map(|row| {
                let low = value.number(row).is_none_or(|v| v < threshold);
                let (first, second) = if low {
                    (DISCOUNT, NO_OFFER)
                } else {
                    (NO_OFFER, DISCOUNT)
                };
                Decision {
                    ranked: vec![
                        RankedAction::new(first, 1.0, 1.0),
                        RankedAction::new(second, 0.0, 0.0),
                    ],
                    explanation: if low {
                        format!("lifetime value below {threshold} (or unknown)")
                    } else {
                        format!("lifetime value at least {threshold}")
                    },
                }
            })
            .collect())
    }
}

tessera_sdk::export_strategy!(Offer);
