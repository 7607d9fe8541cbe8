//! `rfm`: recency, frequency and monetary scores of each customer's
//! purchases within a window, by quantile, and the named RFM tier they
//! fall in (champions, loyal, at risk, …). A segment of this plugin is one
//! tier (`tier = "champions"`), or every scored customer.
//!
//! Scores are quantile-based: the cut points between score 1, 2, …,
//! `scores` are the quantiles of the scored customers' recency, frequency
//! and monetary value. The host evaluates a segment a page of about a
//! thousand people at a time, ordered by subject id (random), so each full
//! page is a random sample of the tenant's customers and its quantiles
//! estimate the population's; the plugin keeps the cut points of the last
//! full page in its state, and scores small batches (a streaming update of
//! one person) with them.

use tessera_sdk::prelude::*;
use tessera_sdk::{EventQuery, state};

struct Rfm;

const DAY_MS: i64 = 86_400_000;
/// The query's name in the plan and the batch.
const QUERY: &str = "rfm";
/// Fewer scored customers than this in a batch: score with the stored cut
/// points (a streaming update), not the batch's own.
const MIN_SAMPLE: usize = 200;

/// The named tiers, on recency and frequency scores scaled to 1..=5.
pub const TIERS: [&str; 7] = [
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "at_risk",
    "hibernating",
    "needs_attention",
];

impl Segment for Rfm {
    fn describe() -> Manifest {
        Manifest::new(
            "rfm",
            "0.1.0",
            "Recency, frequency and monetary scores by quantile, and named RFM tiers \
             (champions, loyal, potential_loyalists, new, at_risk, hibernating, needs_attention).",
        )
        .param(
            ParamSpec::text("event", "The purchase event type")
                .default(Value::Text("purchase".into())),
        )
        .param(
            ParamSpec::text("amount", "The event's numeric property that is spend")
                .default(Value::Text("amount".into())),
        )
        .param(
            ParamSpec::integer("window_days", "Only purchases of this many days before now")
                .range(1.0, 3_650.0)
                .default(Value::Integer(365)),
        )
        .param(
            ParamSpec::integer(
                "scores",
                "The number of score levels (quantiles) per dimension",
            )
            .range(2.0, 9.0)
            .default(Value::Integer(5)),
        )
        .param(
            ParamSpec::text(
                "tier",
                "The tier whose customers are members; empty: every scored customer",
            )
            .choices(&[
                "",
                "champions",
                "loyal",
                "potential_loyalists",
                "new",
                "at_risk",
                "hibernating",
                "needs_attention",
            ])
            .default(Value::Text(String::new())),
        )
        .purpose("email_marketing")
        .purpose("personalization")
        .purpose("analytics")
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Settings::of(params).map(|_| ())
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        let s = Settings::of(params)?;
        Ok(Needs::new().query(EventQuery {
            name: QUERY.into(),
            event_type: s.event,
            filter: None,
            window_ms: Some(s.window_days * DAY_MS),
            sums: vec![s.amount],
        }))
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let s = Settings::of(params)?;
        let query = batch.query(QUERY)?;
        let now = batch.now();
        let rows = batch.rows();
        let mut values = Vec::with_capacity(rows);
        for row in 0..rows {
            let count = query.count(row);
            values.push((count > 0).then(|| {
                Customer {
                    recency_days: query
                        .last(row)
                        .map_or(f64::MAX, |last| (now - last) as f64 / DAY_MS as f64),
                    frequency: count as f64,
                    monetary: query.sum(&s.amount, row),
                }
            }));
        }
        let scored: Vec<&Customer> = values.iter().flatten().collect();
        let key = format!(
            "cuts:{}:{}:{}:{}",
            s.event, s.amount, s.window_days, s.scores
        );
        let cuts = if scored.len() >= MIN_SAMPLE {
            let cuts = Cuts::of(&scored, s.scores);
            state::put(&key, &cuts.to_bytes())?;
            cuts
        } else {
            match state::get(&key).and_then(|bytes| Cuts::from_bytes(&bytes, s.scores)) {
                Some(cuts) => cuts,
                None => Cuts::of(&scored, s.scores),
            }
        };
        let mut member = Vec::with_capacity(rows);
        let mut scores = Vec::with_capacity(rows);
        let mut codes = Vec::with_capacity(rows);
        for value in &values {
            match value {
                Some(customer) => {
                    let (r, f, m) = cuts.score(customer);
                    let tier = tier(r, f, s.scores);
                    member.push(u8::from(s.tier.as_deref().is_none_or(|t| t == TIERS[tier])));
                    scores.push(f64::from(r * 100 + f * 10 + m));
                    codes.push(tier as u32);
                }
                None => {
                    member.push(0);
                    scores.push(0.0);
                    codes.push(TIERS.len() as u32);
                }
            }
        }
        let mut dictionary: Vec<String> = TIERS.iter().map(|t| (*t).to_owned()).collect();
        dictionary.push("unscored".into());
        Ok(Memberships {
            member,
            scores,
            tiers: Some(tessera_sdk::TextColumn { dictionary, codes }),
        })
    }
}

struct Settings {
    event: String,
    amount: String,
    window_days: i64,
    scores: u32,
    tier: Option<String>,
}

impl Settings {
    fn of(params: &Params) -> Result<Self, Error> {
        let tier = params.text("tier")?;
        Ok(Settings {
            event: params.text("event")?.to_owned(),
            amount: params.text("amount")?.to_owned(),
            window_days: params.integer("window_days")?,
            scores: u32::try_from(params.integer("scores")?)
                .map_err(|_| Error::config("`scores` is 2 to 9"))?,
            tier: (!tier.is_empty()).then(|| tier.to_owned()),
        })
    }
}

/// One scored customer.
pub struct Customer {
    pub recency_days: f64,
    pub frequency: f64,
    pub monetary: f64,
}

/// The cut points between scores, per dimension (ascending, `scores - 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cuts {
    recency: Vec<f64>,
    frequency: Vec<f64>,
    monetary: Vec<f64>,
}

impl Cuts {
    /// The quantiles of `customers` that cut them into `scores` levels.
    pub fn of(customers: &[&Customer], scores: u32) -> Cuts {
        let cut = |mut values: Vec<f64>| -> Vec<f64> {
            values.sort_by(f64::total_cmp);
            (1..scores)
                .map(|i| {
                    if values.is_empty() {
                        0.0
                    } else {
                        let at = (values.len() * i as usize) / scores as usize;
                        values[at.min(values.len() - 1)]
                    }
                })
                .collect()
        };
        Cuts {
            recency: cut(customers.iter().map(|c| c.recency_days).collect()),
            frequency: cut(customers.iter().map(|c| c.frequency).collect()),
            monetary: cut(customers.iter().map(|c| c.monetary).collect()),
        }
    }

    /// Recency, frequency and monetary scores, 1 (worst) to `scores` (best):
    /// the more recent, frequent and spending, the higher.
    pub fn score(&self, c: &Customer) -> (u32, u32, u32) {
        let level = |cuts: &[f64], v: f64| cuts.iter().filter(|cut| v >= **cut).count() as u32;
        let top = self.recency.len() as u32 + 1;
        // Fewer days since the last purchase is better.
        let recency = top - level(&self.recency, c.recency_days).min(top - 1);
        (
            recency,
            level(&self.frequency, c.frequency) + 1,
            level(&self.monetary, c.monetary) + 1,
        )
    }

    fn to_bytes(&self) -> Vec<u8> {
        [&self.recency, &self.frequency, &self.monetary]
            .iter()
            .flat_map(|v| v.iter())
            .flat_map(|f| f.to_le_bytes())
            .collect()
    }

    fn from_bytes(bytes: &[u8], scores: u32) -> Option<Cuts> {
        let n = scores as usize - 1;
        if bytes.len() != 3 * n * 8 {
            return None;
        }
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Some(Cuts {
            recency: values[..n].to_vec(),
            frequency: values[n..2 * n].to_vec(),
            monetary: values[2 * n..].to_vec(),
        })
    }
}

/// The named tier of recency and frequency scores out of `scores` (the
/// usual RFM grid, on scores scaled to 1..=5).
pub fn tier(r: u32, f: u32, scores: u32) -> usize {
    let five = |s: u32| (s * 5).div_ceil(scores).clamp(1, 5);
    let (r, f) = (five(r), five(f));
    match (r, f) {
        (4..=5, 4..=5) => 0, // champions
        (3..=5, 3..=5) => 1, // loyal
        (4..=5, 2) => 2,     // potential loyalists
        (4..=5, 1) => 3,     // new
        (1..=2, 3..=5) => 4, // at risk
        (1..=2, 1..=2) => 5, // hibernating
        _ => 6,              // needs attention
    }
}

tessera_sdk::export_segment!(Rfm);

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(recency_days: f64, frequency: f64, monetary: f64) -> Customer {
        Customer {
            recency_days,
            frequency,
            monetary,
        }
    }

    #[test]
    fn quantile_cuts_spread_customers_over_the_scores() {
        let customers: Vec<Customer> = (0..100)
            .map(|i| customer(f64::from(i), f64::from(i % 10 + 1), f64::from(i * 10)))
            .collect();
        let refs: Vec<&Customer> = customers.iter().collect();
        let cuts = Cuts::of(&refs, 5);
        let mut per_score = [0; 5];
        for c in &customers {
            per_score[cuts.score(c).2 as usize - 1] += 1;
        }
        assert_eq!(per_score, [20, 20, 20, 20, 20], "monetary quintiles");
        // The most recent customer gets the best recency score.
        assert_eq!(cuts.score(&customers[0]).0, 5);
        assert_eq!(cuts.score(&customers[99]).0, 1);
        let bytes = cuts.to_bytes();
        assert_eq!(Cuts::from_bytes(&bytes, 5), Some(cuts));
        assert_eq!(Cuts::from_bytes(&bytes, 4), None);
    }

    #[test]
    fn tiers_follow_the_rfm_grid() {
        assert_eq!(TIERS[tier(5, 5, 5)], "champions");
        assert_eq!(TIERS[tier(3, 4, 5)], "loyal");
        assert_eq!(TIERS[tier(5, 2, 5)], "potential_loyalists");
        assert_eq!(TIERS[tier(5, 1, 5)], "new");
        assert_eq!(TIERS[tier(1, 5, 5)], "at_risk");
        assert_eq!(TIERS[tier(2, 1, 5)], "hibernating");
        assert_eq!(TIERS[tier(3, 2, 5)], "needs_attention");
        // Three levels scale to the same grid.
        assert_eq!(TIERS[tier(3, 3, 3)], "champions");
        assert_eq!(TIERS[tier(1, 1, 3)], "hibernating");
    }
}
