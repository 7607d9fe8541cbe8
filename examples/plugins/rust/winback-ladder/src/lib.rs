//! `winback-ladder`: a win-back discount ladder for customers who stopped
//! buying, that learns which rung converts.
//!
//! The rungs are a reminder (no discount), 10% off and 20% off. The longer a
//! customer has been away, the deeper the rungs open to them: a reminder
//! after `reminder_after_days` since their last purchase, 10% after
//! `ten_after_days`, 20% after `twenty_after_days`; customers who bought
//! more recently (or never) get `no_offer`. Among the open rungs the plugin
//! picks the one with the best expected margin per send,
//!
//! ```text
//! conversion rate of the rung × their average order × (margin − discount)
//! ```
//!
//! so a deeper discount has to convert enough better to pay for itself. The
//! conversion rates start from priors (3%, 6%, 10%, worth `prior_sends`
//! sends) and are learnt in `observe` from the campaign's feedback
//! (impressions are sends, conversions are successes), kept in plugin state.
//!
//! With probability `epsilon` it explores: a rung drawn uniformly among the
//! open ones, so every open rung keeps being tried and the logged
//! propensities are the true probabilities of each choice (what off-policy
//! evaluation divides by). Draws come from the row key and the decision
//! time, never from a random source, so a decision can be replayed.
//! `simulate` forecasts from the same probabilities: each rung's expected
//! share of the batch and margin per subject.

use tessera_sdk::prelude::*;
use tessera_sdk::state;

struct WinbackLadder;

const DAY_MS: f64 = 86_400_000.0;
/// Where the learnt counts live in plugin state.
const STATE_KEY: &str = "ladder";

/// The actions, by index: `no_offer`, then the rungs.
pub const ACTIONS: [(&str, &str); 4] = [
    ("no_offer", "No win-back message"),
    ("reminder", "A we-miss-you reminder, no discount"),
    ("ten_percent", "10% off the next order"),
    ("twenty_percent", "20% off the next order"),
];
const NO_OFFER: usize = 0;
/// The rungs' discounts and prior conversion rates, by rung (action - 1).
const DISCOUNTS: [f64; 3] = [0.0, 0.10, 0.20];
const PRIOR_RATES: [f64; 3] = [0.03, 0.06, 0.10];

impl Strategy for WinbackLadder {
    fn describe() -> Manifest {
        let d = Settings::default();
        let days = |name: &str, what: &str, default: u32| {
            ParamSpec::integer(name, what)
                .range(1.0, 3650.0)
                .default(Value::Integer(default.into()))
        };
        Manifest::new(
            "winback-ladder",
            "1.0.0",
            "A win-back ladder (reminder, 10% off, 20% off) by days since the last purchase, \
             learning each rung's conversion",
        )
        .aggregate(
            "last_purchase_at",
            "purchase",
            AggregateFn::LastAt,
            None,
            None,
        )
        .aggregate("orders", "purchase", AggregateFn::Count, None, None)
        .aggregate("spend", "purchase", AggregateFn::Sum, Some("amount"), None)
        .param(days(
            "reminder_after_days",
            "Days since the last purchase after which the reminder opens",
            d.opens_after[0],
        ))
        .param(days(
            "ten_after_days",
            "Days since the last purchase after which 10% off opens",
            d.opens_after[1],
        ))
        .param(days(
            "twenty_after_days",
            "Days since the last purchase after which 20% off opens",
            d.opens_after[2],
        ))
        .param(
            ParamSpec::number("margin", "Gross margin of an order, before any discount")
                .range(0.0, 1.0)
                .default(Value::Number(d.margin)),
        )
        .param(
            ParamSpec::number("epsilon", "Share of decisions that explore an open rung")
                .range(0.0, 1.0)
                .default(Value::Number(d.epsilon)),
        )
        .param(
            ParamSpec::number(
                "prior_sends",
                "How many sends the prior conversion rates are worth",
            )
            .range(0.0, 1e6)
            .default(Value::Number(d.prior_sends)),
        )
        .param(
            ParamSpec::number(
                "default_order_value",
                "The order value of a customer whose purchases have no amount",
            )
            .range(0.01, 1e9)
            .default(Value::Number(d.default_order_value)),
        )
        .purpose("personalization")
    }

    fn actions() -> Vec<ActionSpec> {
        ACTIONS
            .iter()
            .map(|(name, description)| ActionSpec {
                name: (*name).into(),
                description: (*description).into(),
            })
            .collect()
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Settings::of(params).map(|_| ())
    }

    fn decide(params: &Params, batch: &Batch, context: &Context) -> Result<Vec<Decision>, Error> {
        let ladder = Ladder::new(Settings::of(params)?, Stats::load());
        ladder.decide(batch, context.at)
    }

    fn observe(params: &Params, feedback: &[Feedback], _profiles: &Batch) -> Result<(), Error> {
        Settings::of(params)?;
        let mut stats = Stats::load();
        if stats.learn(feedback) {
            state::put(STATE_KEY, &stats.to_bytes())?;
        }
        Ok(())
    }

    fn simulate(params: &Params, batch: &Batch, _context: &Context) -> Result<Forecast, Error> {
        let ladder = Ladder::new(Settings::of(params)?, Stats::load());
        ladder.forecast(batch)
    }
}

/// The parameters of a call, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Days after which each rung opens, increasing.
    pub opens_after: [u32; 3],
    pub margin: f64,
    pub epsilon: f64,
    pub prior_sends: f64,
    pub default_order_value: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            opens_after: [30, 90, 180],
            margin: 0.4,
            epsilon: 0.1,
            prior_sends: 50.0,
            default_order_value: 50.0,
        }
    }
}

impl Settings {
    pub fn of(params: &Params) -> Result<Self, Error> {
        let mut opens_after = [0; 3];
        let names = ["reminder_after_days", "ten_after_days", "twenty_after_days"];
        for (days, name) in opens_after.iter_mut().zip(names) {
            let value = params.integer(name)?;
            *days = u32::try_from(value)
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    Error::config(format!("parameter `{name}` must be 1 to 3650, not {value}"))
                })?;
        }
        if !(opens_after[0] < opens_after[1] && opens_after[1] < opens_after[2]) {
            return Err(Error::config(format!(
                "the rungs must open in order: reminder_after_days ({}) < ten_after_days ({}) < \
                 twenty_after_days ({})",
                opens_after[0], opens_after[1], opens_after[2]
            )));
        }
        let within = |name: &str, min: f64, max: f64| -> Result<f64, Error> {
            let value = params.number(name)?;
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(Error::config(format!(
                    "parameter `{name}` must be {min} to {max}, not {value}"
                )))
            }
        };
        let default_order_value = within("default_order_value", 0.01, 1e9)?;
        Ok(Settings {
            opens_after,
            margin: within("margin", 0.0, 1.0)?,
            epsilon: within("epsilon", 0.0, 1.0)?,
            prior_sends: within("prior_sends", 0.0, 1e6)?,
            default_order_value,
        })
    }
}

/// What was learnt: sends and conversions per rung.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub sends: [f64; 3],
    pub conversions: [f64; 3],
}

impl Stats {
    /// The counts in plugin state; none yet (or unreadable) is a fresh start.
    fn load() -> Stats {
        state::get(STATE_KEY)
            .and_then(|bytes| Stats::from_bytes(&bytes))
            .unwrap_or_default()
    }

    /// Counts impressions and conversions of the rungs; whether any counted.
    pub fn learn(&mut self, feedback: &[Feedback]) -> bool {
        let mut changed = false;
        for item in feedback {
            let Some(rung) = (item.action as usize).checked_sub(1).filter(|r| *r < 3) else {
                continue;
            };
            match item.kind {
                FeedbackKind::Impression => self.sends[rung] += 1.0,
                FeedbackKind::Conversion => self.conversions[rung] += 1.0,
                FeedbackKind::Click | FeedbackKind::Revenue => continue,
            }
            changed = true;
        }
        changed
    }

    /// The rung's conversion rate: its prior, worth `prior_sends` sends,
    /// updated by what was observed (never above one conversion per send).
    pub fn rate(&self, rung: usize, prior_sends: f64) -> f64 {
        let conversions = self.conversions[rung];
        let sends = self.sends[rung].max(conversions);
        let trials = sends + prior_sends;
        if trials <= 0.0 {
            return PRIOR_RATES[rung];
        }
        (conversions + prior_sends * PRIOR_RATES[rung]) / trials
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.sends
            .iter()
            .chain(&self.conversions)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Stats> {
        if bytes.len() != 6 * 8 {
            return None;
        }
        let mut values = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")));
        let mut next = || values.next().filter(|v| v.is_finite() && *v >= 0.0);
        Some(Stats {
            sends: [next()?, next()?, next()?],
            conversions: [next()?, next()?, next()?],
        })
    }
}

/// The policy: settings and what was learnt.
pub struct Ladder {
    settings: Settings,
    rates: [f64; 3],
}

/// One row's policy: the probability and expected margin of each action.
struct RowPolicy {
    probabilities: [f64; 4],
    margins: [f64; 4],
    why: String,
}

impl Ladder {
    pub fn new(settings: Settings, stats: Stats) -> Self {
        let rates = [0, 1, 2].map(|rung| stats.rate(rung, settings.prior_sends));
        Ladder { settings, rates }
    }

    /// The policy for someone whose last purchase was `days` ago (`None`:
    /// never) and whose average order is `order_value`.
    fn row(&self, days: Option<f64>, order_value: f64) -> RowPolicy {
        let mut probabilities = [0.0; 4];
        let mut margins = [0.0; 4];
        let open = days.map_or(0, |d| {
            self.settings
                .opens_after
                .iter()
                .filter(|after| d >= f64::from(**after))
                .count()
        });
        if open == 0 {
            probabilities[NO_OFFER] = 1.0;
            let why = match days {
                None => "never bought: nothing to win back".to_owned(),
                Some(d) => format!(
                    "bought {d:.0} days ago, within {} days: not lapsed",
                    self.settings.opens_after[0]
                ),
            };
            return RowPolicy {
                probabilities,
                margins,
                why,
            };
        }
        for rung in 0..open {
            margins[rung + 1] =
                self.rates[rung] * order_value * (self.settings.margin - DISCOUNTS[rung]);
        }
        // The best open rung; on a tie the cheaper one.
        let best = (0..open).fold(0, |best, rung| {
            if margins[rung + 1] > margins[best + 1] {
                rung
            } else {
                best
            }
        });
        let epsilon = self.settings.epsilon;
        for rung in 0..open {
            probabilities[rung + 1] = epsilon / open as f64;
        }
        probabilities[best + 1] += 1.0 - epsilon;
        let why = format!(
            "lapsed {:.0} days, {open} rung(s) open; best {}: {:.1}% conversion x {:.2} order x \
             {:.0}% margin after discount = {:.2} per send",
            days.unwrap_or(0.0),
            ACTIONS[best + 1].0,
            100.0 * self.rates[best],
            order_value,
            100.0 * (self.settings.margin - DISCOUNTS[best]),
            margins[best + 1],
        );
        RowPolicy {
            probabilities,
            margins,
            why,
        }
    }

    /// Each row's days since the last purchase and average order value.
    fn rows<'a>(
        &'a self,
        batch: &'a Batch,
    ) -> Result<impl Iterator<Item = (usize, RowPolicy)> + 'a, Error> {
        let last = batch.aggregate("last_purchase_at")?;
        let orders = batch.aggregate("orders")?;
        let spend = batch.aggregate("spend")?;
        let now = batch.now();
        Ok((0..batch.rows()).map(move |row| {
            let days = last
                .integer(row)
                .map(|at| now.saturating_sub(at).max(0) as f64 / DAY_MS);
            let orders = orders.number(row).unwrap_or(0.0);
            let spend = spend.number(row).unwrap_or(0.0);
            let order_value = if orders >= 1.0 && spend > 0.0 {
                spend / orders
            } else {
                self.settings.default_order_value
            };
            (row, self.row(days, order_value))
        }))
    }

    pub fn decide(&self, batch: &Batch, at: i64) -> Result<Vec<Decision>, Error> {
        let keys = batch.keys();
        self.rows(batch)?
            .map(|(row, policy)| {
                let draw = uniform(keys.get(row).copied().unwrap_or(0), at);
                // The first action whose cumulative probability passes the draw.
                let mut cumulative = 0.0;
                let mut chosen = NO_OFFER;
                for (action, p) in policy.probabilities.iter().enumerate() {
                    if *p <= 0.0 {
                        continue;
                    }
                    chosen = action;
                    cumulative += p;
                    if draw < cumulative {
                        break;
                    }
                }
                let mut others: Vec<usize> = (0..ACTIONS.len()).filter(|a| *a != chosen).collect();
                others.sort_by(|a, b| policy.margins[*b].total_cmp(&policy.margins[*a]));
                let ranked = std::iter::once(chosen)
                    .chain(others)
                    .map(|a| {
                        RankedAction::new(a as u32, policy.margins[a], policy.probabilities[a])
                    })
                    .collect();
                let best = policy.probabilities.iter().copied().fold(0.0, f64::max);
                let explored = policy.probabilities[chosen] < best;
                Ok(Decision {
                    ranked,
                    explanation: if explored {
                        format!("{}; exploring {}", policy.why, ACTIONS[chosen].0)
                    } else {
                        policy.why
                    },
                })
            })
            .collect()
    }

    pub fn forecast(&self, batch: &Batch) -> Result<Forecast, Error> {
        let mut shares = [0.0; 4];
        let mut margins = [0.0; 4];
        for (_, policy) in self.rows(batch)? {
            for action in 0..ACTIONS.len() {
                shares[action] += policy.probabilities[action];
                margins[action] += policy.probabilities[action] * policy.margins[action];
            }
        }
        let rows = batch.rows().max(1) as f64;
        let total: f64 = margins.iter().sum::<f64>() / rows;
        let notes = format!(
            "expected margin per subject {total:.4}; conversion estimates: reminder {:.1}%, \
             ten_percent {:.1}%, twenty_percent {:.1}%",
            100.0 * self.rates[0],
            100.0 * self.rates[1],
            100.0 * self.rates[2],
        );
        Ok(Forecast {
            actions: (0..ACTIONS.len())
                .map(|action| ActionForecast {
                    action: action as u32,
                    share: (shares[action] / rows).clamp(0.0, 1.0),
                    expected_reward: if shares[action] > 0.0 {
                        margins[action] / shares[action]
                    } else {
                        0.0
                    },
                })
                .collect(),
            expected_reward: total,
            notes,
        })
    }
}

/// A uniform draw in [0, 1) from the row key and the decision time
/// (splitmix64).
fn uniform(key: u64, at: i64) -> f64 {
    let mut z = key ^ (at as u64).rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

tessera_sdk::export_strategy!(WinbackLadder);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Column, ColumnData, FieldValue, ProfileBatch};

    const NOW: i64 = 1_800_000_000_000;

    fn params(overrides: &[(&str, Value)]) -> Params {
        let values = WinbackLadder::describe()
            .parameters
            .into_iter()
            .map(|spec| FieldValue {
                value: overrides
                    .iter()
                    .find(|(name, _)| *name == spec.name)
                    .map(|(_, v)| v.clone())
                    .or(spec.default)
                    .expect("every parameter has a default"),
                name: spec.name,
            })
            .collect();
        Params::new(values)
    }

    /// Rows of (days since the last purchase, orders, spend).
    fn batch(rows: &[(Option<i64>, i64, f64)]) -> Batch {
        let n = rows.len();
        let present = rows.iter().map(|r| u8::from(r.0.is_some())).collect();
        let raw = ProfileBatch {
            rows: n as u32,
            keys: (0..n as u64).map(|k| k * 7919 + 1).collect(),
            fields: Vec::new(),
            aggregates: vec![
                Column {
                    data: ColumnData::Timestamp(
                        rows.iter()
                            .map(|r| NOW - r.0.unwrap_or(0) * 86_400_000)
                            .collect(),
                    ),
                    present,
                },
                Column {
                    data: ColumnData::Integer(rows.iter().map(|r| r.1).collect()),
                    present: Vec::new(),
                },
                Column {
                    data: ColumnData::Number(rows.iter().map(|r| r.2).collect()),
                    present: Vec::new(),
                },
            ],
            now: NOW,
        };
        Batch::new(raw, &WinbackLadder::describe())
    }

    fn ladder(overrides: &[(&str, Value)], stats: Stats) -> Ladder {
        Ladder::new(Settings::of(&params(overrides)).unwrap(), stats)
    }

    #[test]
    fn rungs_open_with_the_time_away_and_the_best_margin_wins() {
        let greedy = [("epsilon", Value::Number(0.0))];
        // Recent, never, 45 days (reminder only), 400 days (all three).
        let rows = batch(&[
            (Some(3), 5, 500.0),
            (None, 0, 0.0),
            (Some(45), 2, 200.0),
            (Some(400), 3, 300.0),
        ]);
        let decisions = ladder(&greedy, Stats::default())
            .decide(&rows, NOW)
            .unwrap();
        let top: Vec<&str> = decisions
            .iter()
            .map(|d| ACTIONS[d.ranked[0].action as usize].0)
            .collect();
        // At a 40% margin, 20% off converting 10% beats 10% off converting
        // 6% (2.0 against 1.8 per send on a 100 order).
        assert_eq!(top, ["no_offer", "no_offer", "reminder", "twenty_percent"]);
        assert!(
            decisions[3].explanation.contains("10.0% conversion"),
            "{}",
            decisions[3].explanation
        );
        assert!((decisions[3].ranked[0].score - 2.0).abs() < 1e-9);
        // At 25%, the deep discount eats the margin: 10% off wins.
        let thin = [
            ("epsilon", Value::Number(0.0)),
            ("margin", Value::Number(0.25)),
        ];
        let decisions = ladder(&thin, Stats::default()).decide(&rows, NOW).unwrap();
        assert_eq!(decisions[3].ranked[0].action, 2);
    }

    #[test]
    fn propensities_are_the_probabilities_decisions_are_drawn_with() {
        let explore = [("epsilon", Value::Number(0.3))];
        let ladder = ladder(&explore, Stats::default());
        // Many people 400 days away: all three rungs open.
        let rows = batch(&vec![(Some(400), 1, 100.0); 4000]);
        let mut counts = [0usize; 4];
        for at in 0..5 {
            for decision in ladder.decide(&rows, NOW + at).unwrap() {
                let total: f64 = decision.ranked.iter().map(|r| r.propensity).sum();
                assert!((total - 1.0).abs() < 1e-9, "{decision:?}");
                counts[decision.ranked[0].action as usize] += 1;
            }
        }
        // 0.7 + 0.1 for the best rung, 0.1 for each other open rung.
        let shares = counts.map(|c| c as f64 / 20_000.0);
        let expected = [0.0, 0.1, 0.1, 0.8];
        for (share, want) in shares.iter().zip(expected) {
            assert!((share - want).abs() < 0.015, "{shares:?}");
        }
        let forecast = ladder.forecast(&rows).unwrap();
        let forecast_shares: Vec<f64> = forecast.actions.iter().map(|a| a.share).collect();
        for (share, want) in forecast_shares.iter().zip(expected) {
            assert!((share - want).abs() < 1e-9, "{forecast_shares:?}");
        }
        // 0.1 x 1.2 + 0.1 x 1.8 + 0.8 x 2.0 per subject, on 100 orders.
        assert!(
            (forecast.expected_reward - 1.9).abs() < 1e-9,
            "{forecast:?}"
        );
    }

    #[test]
    fn observed_conversions_move_the_ladder() {
        let greedy = [("epsilon", Value::Number(0.0))];
        let rows = batch(&[(Some(400), 1, 100.0)]);
        let feedback = |action: u32, kind: FeedbackKind| Feedback {
            key: 1,
            action,
            kind,
            reward: 1.0,
            propensity: 1.0,
            at: NOW,
        };
        // 20% off was sent 200 times and converted twice; the reminder
        // converted 40 times in 200.
        let mut items = Vec::new();
        for _ in 0..200 {
            items.push(feedback(3, FeedbackKind::Impression));
            items.push(feedback(1, FeedbackKind::Impression));
        }
        items.extend((0..2).map(|_| feedback(3, FeedbackKind::Conversion)));
        items.extend((0..40).map(|_| feedback(1, FeedbackKind::Conversion)));
        items.push(feedback(0, FeedbackKind::Conversion));
        items.push(feedback(2, FeedbackKind::Click));
        let mut stats = Stats::default();
        assert!(stats.learn(&items));
        assert_eq!(stats.sends, [200.0, 0.0, 200.0]);
        assert_eq!(stats.conversions, [40.0, 0.0, 2.0]);
        // (40 + 50 x 0.03) / 250 = 16.6%: the reminder now wins.
        assert!((stats.rate(0, 50.0) - 0.166).abs() < 1e-9);
        let decisions = ladder(&greedy, stats).decide(&rows, NOW).unwrap();
        assert_eq!(decisions[0].ranked[0].action, 1, "{decisions:?}");
        // What is stored reads back; anything else is a fresh start.
        assert_eq!(Stats::from_bytes(&stats.to_bytes()), Some(stats));
        assert_eq!(Stats::from_bytes(&[0; 47]), None);
        assert_eq!(Stats::from_bytes(&f64::NAN.to_le_bytes().repeat(6)), None);
        assert!(!Stats::default().learn(&[feedback(0, FeedbackKind::Impression)]));
    }

    #[test]
    fn rungs_out_of_order_are_refused() {
        let Err(Error::InvalidConfig(message)) =
            Settings::of(&params(&[("ten_after_days", Value::Integer(20))]))
        else {
            panic!("a 10% rung before the reminder was accepted");
        };
        assert!(message.contains("must open in order"), "{message}");
        assert!(WinbackLadder::validate(&params(&[])).is_ok());
    }
}
