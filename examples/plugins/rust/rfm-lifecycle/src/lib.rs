//! `rfm-lifecycle`: a weighted RFM score and the lifecycle tier of each
//! customer, from their purchases.
//!
//! Unlike the first-party `rfm` plugin (quantile scores over the batch,
//! the usual RFM grid), the score is absolute, so a customer's score does not
//! depend on who else is in the batch: recency falls linearly from 1 (bought
//! today) to 0 (`recency_days` ago or more), frequency is the purchases of
//! the window against `frequent_purchases`, monetary the window's spend
//! against `high_spend` (both capped at 1), and the score is their average
//! weighted by `weight_recency`, `weight_frequency` and `weight_monetary`, out
//! of 100. The tier says where the customer is in their life with the shop:
//!
//! - `never`: no purchase at all;
//! - `lapsed`: no purchase in the window;
//! - `new`: first purchase within `new_days`;
//! - `slipping`: a repeat buyer (two or more purchases in the window) whose
//!   last purchase is older than `slipping_days`: the customers a win-back
//!   campaign is for;
//! - `champion`: a score of `champion_score` or more;
//! - `steady`: the others who bought in the window.
//!
//! A segment of this plugin is one tier, or (`tier = ""`) everyone who
//! bought in the window; every row also carries its score and tier. The
//! window is a parameter, so the columns depend on the parameters: the
//! plugin plans them (`Segment::plan`), and the host aggregates the window
//! it asks for.

use tessera_sdk::prelude::*;

struct Lifecycle;

const DAY_MS: i64 = 86_400_000;
/// The event type of a purchase and its amount property.
const PURCHASE: &str = "purchase";
const AMOUNT: &str = "amount";

/// The tiers, in the order of the tier column's dictionary.
pub const TIERS: [&str; 6] = ["champion", "new", "slipping", "steady", "lapsed", "never"];
const CHAMPION: usize = 0;
const NEW: usize = 1;
const SLIPPING: usize = 2;
const STEADY: usize = 3;
const LAPSED: usize = 4;
const NEVER: usize = 5;

impl Segment for Lifecycle {
    fn describe() -> Manifest {
        let defaults = Settings::default();
        let weight = |name: &str, what: &str, default: f64| {
            ParamSpec::number(name, what)
                .range(0.0, 100.0)
                .default(Value::Number(default))
        };
        let mut manifest = Manifest::new(
            "rfm-lifecycle",
            "1.0.0",
            "A weighted RFM score (0-100) and lifecycle tiers: champion, new, slipping, steady, \
             lapsed, never",
        );
        // The columns of the default window, shown to the operator; `plan`
        // asks for the window of each call's parameters.
        manifest.aggregates = columns(defaults.window_days).aggregates;
        manifest
        .param(
            ParamSpec::text(
                "tier",
                "The tier whose customers are members; empty: everyone who bought in the window",
            )
            .choices(&["", "champion", "new", "slipping", "steady", "lapsed", "never"])
            .default(Value::Text(String::new())),
        )
        .param(
            ParamSpec::integer(
                "window_days",
                "Frequency and spend count the purchases of this many days",
            )
            .range(7.0, 3650.0)
            .default(Value::Integer(defaults.window_days.into())),
        )
        .param(weight(
            "weight_recency",
            "Weight of recency in the score",
            defaults.weights[0],
        ))
        .param(weight(
            "weight_frequency",
            "Weight of frequency in the score",
            defaults.weights[1],
        ))
        .param(weight(
            "weight_monetary",
            "Weight of spend in the score",
            defaults.weights[2],
        ))
        .param(
            ParamSpec::number(
                "recency_days",
                "Days since the last purchase at which recency reaches 0",
            )
            .range(1.0, 3650.0)
            .default(Value::Number(defaults.recency_days)),
        )
        .param(
            ParamSpec::number(
                "frequent_purchases",
                "Purchases in the window that count as fully frequent",
            )
            .range(1.0, 10_000.0)
            .default(Value::Number(defaults.frequent_purchases)),
        )
        .param(
            ParamSpec::number("high_spend", "Spend in the window that counts as fully valuable")
                .range(0.01, 1e12)
                .default(Value::Number(defaults.high_spend)),
        )
        .param(
            ParamSpec::integer(
                "new_days",
                "A first purchase within this many days makes a customer new",
            )
            .range(0.0, 3650.0)
            .default(Value::Integer(defaults.new_days.into())),
        )
        .param(
            ParamSpec::integer(
                "slipping_days",
                "A repeat buyer whose last purchase is older than this is slipping",
            )
            .range(1.0, 3650.0)
            .default(Value::Integer(defaults.slipping_days.into())),
        )
        .param(
            ParamSpec::number("champion_score", "The smallest score of a champion")
                .range(0.0, 100.0)
                .default(Value::Number(defaults.champion_score)),
        )
        .purpose("analytics")
        .purpose("personalization")
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Settings::of(params).map(|_| ())
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        Ok(columns(Settings::of(params)?.window_days))
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let settings = Settings::of(params)?;
        let purchases = batch.aggregate("purchases")?;
        let spend = batch.aggregate("spend")?;
        let first = batch.aggregate("first_purchase_at")?;
        let last = batch.aggregate("last_purchase_at")?;
        let now = batch.now();
        let days_since =
            |at: Option<i64>| at.map(|at| now.saturating_sub(at).max(0) as f64 / DAY_MS as f64);
        let rows = batch.rows();
        let mut member = Vec::with_capacity(rows);
        let mut scores = Vec::with_capacity(rows);
        let mut codes = Vec::with_capacity(rows);
        for row in 0..rows {
            let customer = Customer {
                purchases: purchases.number(row).unwrap_or(0.0),
                spend: spend.number(row).unwrap_or(0.0),
                first_days: days_since(first.integer(row)),
                last_days: days_since(last.integer(row)),
            };
            let (score, tier) = settings.classify(&customer);
            member.push(u8::from(settings.is_member(tier)));
            scores.push(score);
            codes.push(tier as u32);
        }
        Ok(Memberships {
            member,
            scores,
            tiers: Some(tessera_sdk::TextColumn {
                dictionary: TIERS.iter().map(|t| (*t).to_owned()).collect(),
                codes,
            }),
        })
    }
}

/// The four aggregates the rule reads, windowed by `window_days` where the
/// window matters: frequency and spend; first and last purchase are all-time.
fn columns(window_days: u32) -> Needs {
    Needs::new()
        .aggregate(
            "purchases",
            PURCHASE,
            AggregateFn::Count,
            None,
            Some(window_days),
        )
        .aggregate(
            "spend",
            PURCHASE,
            AggregateFn::Sum,
            Some(AMOUNT),
            Some(window_days),
        )
        .aggregate(
            "first_purchase_at",
            PURCHASE,
            AggregateFn::FirstAt,
            None,
            None,
        )
        .aggregate(
            "last_purchase_at",
            PURCHASE,
            AggregateFn::LastAt,
            None,
            None,
        )
}

/// What the rule knows of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    /// Purchases in the window.
    pub purchases: f64,
    /// Spend in the window.
    pub spend: f64,
    /// Days since the first purchase ever (`None`: never bought).
    pub first_days: Option<f64>,
    /// Days since the last purchase ever.
    pub last_days: Option<f64>,
}

/// The parameters of a call, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The member tier; `None`: every customer who bought in the window.
    pub tier: Option<usize>,
    pub window_days: u32,
    /// Recency, frequency, monetary.
    pub weights: [f64; 3],
    pub recency_days: f64,
    pub frequent_purchases: f64,
    pub high_spend: f64,
    pub new_days: u32,
    pub slipping_days: u32,
    pub champion_score: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tier: None,
            window_days: 365,
            weights: [0.5, 0.3, 0.2],
            recency_days: 180.0,
            frequent_purchases: 6.0,
            high_spend: 1000.0,
            new_days: 30,
            slipping_days: 60,
            champion_score: 70.0,
        }
    }
}

impl Settings {
    /// Reads and checks the parameters (the host has filled in defaults).
    pub fn of(params: &Params) -> Result<Self, Error> {
        let tier = params.text("tier")?;
        let tier = match tier {
            "" => None,
            name => Some(TIERS.iter().position(|t| *t == name).ok_or_else(|| {
                Error::config(format!(
                    "parameter `tier`: `{name}` is not a tier (champion, new, slipping, steady, \
                     lapsed, never, or empty for every buyer)"
                ))
            })?),
        };
        let days = |name: &str, min: i64| -> Result<u32, Error> {
            let value = params.integer(name)?;
            u32::try_from(value)
                .ok()
                .filter(|d| i64::from(*d) >= min && *d <= 3650)
                .ok_or_else(|| {
                    Error::config(format!(
                        "parameter `{name}` must be {min} to 3650 days, not {value}"
                    ))
                })
        };
        let positive = |name: &str| -> Result<f64, Error> {
            let value = params.number(name)?;
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(Error::config(format!(
                    "parameter `{name}` must be a positive number, not {value}"
                )))
            }
        };
        let mut weights = [0.0; 3];
        for (weight, name) in
            weights
                .iter_mut()
                .zip(["weight_recency", "weight_frequency", "weight_monetary"])
        {
            *weight = params.number(name)?;
            if !weight.is_finite() || *weight < 0.0 {
                return Err(Error::config(format!(
                    "parameter `{name}` must be a number of 0 or more, not {weight}"
                )));
            }
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err(Error::config(
                "the weights `weight_recency`, `weight_frequency` and `weight_monetary` are all \
                 0: at least one must be positive",
            ));
        }
        let champion_score = params.number("champion_score")?;
        if !(0.0..=100.0).contains(&champion_score) {
            return Err(Error::config(format!(
                "parameter `champion_score` must be 0 to 100, not {champion_score}"
            )));
        }
        Ok(Settings {
            tier,
            window_days: days("window_days", 1)?,
            weights,
            recency_days: positive("recency_days")?,
            frequent_purchases: positive("frequent_purchases")?,
            high_spend: positive("high_spend")?,
            new_days: days("new_days", 0)?,
            slipping_days: days("slipping_days", 1)?,
            champion_score,
        })
    }

    /// The customer's score (0 to 100, two decimals) and tier.
    pub fn classify(&self, c: &Customer) -> (f64, usize) {
        let Some(last_days) = c.last_days else {
            return (0.0, NEVER);
        };
        let recency = (1.0 - last_days / self.recency_days).clamp(0.0, 1.0);
        let frequency = (c.purchases / self.frequent_purchases).clamp(0.0, 1.0);
        let monetary = (c.spend / self.high_spend).clamp(0.0, 1.0);
        let [wr, wf, wm] = self.weights;
        let score = 100.0 * (wr * recency + wf * frequency + wm * monetary) / (wr + wf + wm);
        let score = (score * 100.0).round() / 100.0;
        let tier = if c.purchases < 1.0 {
            LAPSED
        } else if c.first_days.is_some_and(|d| d <= f64::from(self.new_days)) {
            NEW
        } else if c.purchases >= 2.0 && last_days > f64::from(self.slipping_days) {
            SLIPPING
        } else if score >= self.champion_score {
            CHAMPION
        } else {
            STEADY
        };
        (score, tier)
    }

    /// Whether a customer of `tier` is a member.
    pub fn is_member(&self, tier: usize) -> bool {
        match self.tier {
            Some(wanted) => tier == wanted,
            None => tier != LAPSED && tier != NEVER,
        }
    }
}

tessera_sdk::export_segment!(Lifecycle);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Column, ColumnData, FieldValue, ProfileBatch};

    /// The manifest's defaults with `overrides`, as the host would send them.
    fn params(overrides: &[(&str, Value)]) -> Params {
        let values = Lifecycle::describe()
            .parameters
            .into_iter()
            .map(|spec| {
                let value = overrides
                    .iter()
                    .find(|(name, _)| *name == spec.name)
                    .map(|(_, v)| v.clone())
                    .or(spec.default)
                    .expect("every parameter has a default");
                FieldValue {
                    name: spec.name,
                    value,
                }
            })
            .collect();
        Params::new(values)
    }

    fn customer(purchases: f64, spend: f64, first: f64, last: f64) -> Customer {
        Customer {
            purchases,
            spend,
            first_days: Some(first),
            last_days: Some(last),
        }
    }

    #[test]
    fn the_score_weighs_recency_frequency_and_spend() {
        let s = Settings::default();
        // Bought today, 6 times, 1000 spent: every part is 1.
        assert_eq!(s.classify(&customer(6.0, 1000.0, 300.0, 0.0)).0, 100.0);
        // Recency half gone (90 of 180 days), 3 of 6 purchases, 200 of 1000:
        // (0.5 * 0.5 + 0.3 * 0.5 + 0.2 * 0.2) / 1.0 = 0.44.
        assert_eq!(s.classify(&customer(3.0, 200.0, 300.0, 90.0)).0, 44.0);
        // Only spend counts when only its weight is set.
        let spend_only = Settings {
            weights: [0.0, 0.0, 1.0],
            ..Settings::default()
        };
        assert_eq!(spend_only.classify(&customer(1.0, 250.0, 9.0, 9.0)).0, 25.0);
    }

    #[test]
    fn tiers_follow_the_customer_lifecycle() {
        let s = Settings::default();
        let tier = |c: Customer| TIERS[s.classify(&c).1];
        assert_eq!(tier(customer(6.0, 1500.0, 400.0, 2.0)), "champion");
        assert_eq!(tier(customer(1.0, 40.0, 10.0, 10.0)), "new");
        // A champion's spend, but the last purchase was 100 days ago.
        assert_eq!(tier(customer(6.0, 1500.0, 400.0, 100.0)), "slipping");
        // One purchase long ago is not a repeat buyer slipping away.
        assert_eq!(tier(customer(1.0, 40.0, 100.0, 100.0)), "steady");
        assert_eq!(tier(customer(0.0, 0.0, 800.0, 500.0)), "lapsed");
        let never = Customer {
            purchases: 0.0,
            spend: 0.0,
            first_days: None,
            last_days: None,
        };
        assert_eq!(s.classify(&never), (0.0, NEVER));
        assert!(s.is_member(STEADY) && !s.is_member(LAPSED) && !s.is_member(NEVER));
    }

    #[test]
    fn the_plan_follows_the_window_parameter() {
        let planned = Lifecycle::plan(&params(&[("window_days", Value::Integer(90))])).unwrap();
        let windows: Vec<(&str, Option<u32>)> = planned
            .aggregates
            .iter()
            .map(|a| (a.name.as_str(), a.window_days))
            .collect();
        assert_eq!(
            windows,
            [
                ("purchases", Some(90)),
                ("spend", Some(90)),
                ("first_purchase_at", None),
                ("last_purchase_at", None)
            ]
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_their_name() {
        let zero = Value::Number(0.0);
        let all_zero = params(&[
            ("weight_recency", zero.clone()),
            ("weight_frequency", zero.clone()),
            ("weight_monetary", zero),
        ]);
        let Err(Error::InvalidConfig(message)) = Lifecycle::validate(&all_zero) else {
            panic!("zero weights were accepted");
        };
        assert!(message.contains("weight_recency"), "{message}");
        let Err(Error::InvalidConfig(message)) =
            Lifecycle::validate(&params(&[("tier", Value::Text("vip".into()))]))
        else {
            panic!("an unknown tier was accepted");
        };
        assert!(message.contains("`vip` is not a tier"), "{message}");
        assert!(Lifecycle::validate(&params(&[])).is_ok());
    }

    #[test]
    fn evaluate_reads_the_planned_columns_of_a_batch() {
        let now = 1_800_000_000_000;
        let day = |d: i64| now - d * DAY_MS;
        let column = |data: ColumnData, present: Vec<u8>| Column { data, present };
        // A slipping repeat buyer, a new customer, someone who never bought.
        let batch = ProfileBatch {
            rows: 3,
            keys: vec![1, 2, 3],
            fields: Vec::new(),
            aggregates: vec![
                column(ColumnData::Integer(vec![4, 1, 0]), Vec::new()),
                column(ColumnData::Number(vec![480.0, 35.0, 0.0]), Vec::new()),
                column(
                    ColumnData::Timestamp(vec![day(300), day(5), 0]),
                    vec![1, 1, 0],
                ),
                column(
                    ColumnData::Timestamp(vec![day(75), day(5), 0]),
                    vec![1, 1, 0],
                ),
            ],
            now,
        };
        let params = params(&[("tier", Value::Text("slipping".into()))]);
        let batch = Batch::planned(batch, &Lifecycle::plan(&params).unwrap());
        let out = Lifecycle::evaluate(&params, &batch).unwrap();
        assert_eq!(out.member, [1, 0, 0]);
        let tiers = out.tiers.unwrap();
        let names: Vec<&str> = tiers
            .codes
            .iter()
            .map(|c| tiers.dictionary[*c as usize].as_str())
            .collect();
        assert_eq!(names, ["slipping", "new", "never"]);
        assert_eq!(out.scores[2], 0.0);
    }

    #[test]
    fn timestamps_at_the_ends_of_time_do_not_break_the_arithmetic() {
        let column = |data: ColumnData| Column {
            data,
            present: Vec::new(),
        };
        let batch = ProfileBatch {
            rows: 2,
            keys: vec![1, 2],
            fields: Vec::new(),
            aggregates: vec![
                column(ColumnData::Integer(vec![1, 1])),
                column(ColumnData::Number(vec![10.0, 10.0])),
                column(ColumnData::Timestamp(vec![i64::MIN, i64::MAX])),
                column(ColumnData::Timestamp(vec![i64::MIN, i64::MAX])),
            ],
            now: 1_800_000_000_000,
        };
        let params = params(&[]);
        let batch = Batch::planned(batch, &Lifecycle::plan(&params).unwrap());
        let out = Lifecycle::evaluate(&params, &batch).unwrap();
        assert!(out.scores.iter().all(|s| s.is_finite()), "{:?}", out.scores);
        // Long ago: one purchase, not new; "in the future": just bought.
        assert_eq!(out.tiers.unwrap().codes, [STEADY as u32, NEW as u32]);
    }
}
