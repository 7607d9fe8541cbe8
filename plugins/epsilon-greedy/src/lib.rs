//! `epsilon-greedy`: a multi-armed bandit over the campaign's offers (by
//! default four). With probability epsilon it explores (a uniformly random
//! offer), otherwise it exploits the offer with the best mean reward so far.
//! Rewards live in the plugin's host-held state, so any instance can serve
//! any call: under `arms` for the default offers, under `arms/<hash of the
//! names>` for others, one (pulls, summed reward) pair of little-endian f64
//! per offer, in the order of `actions`.

use tessera_sdk::prelude::*;
use tessera_sdk::state;
use tessera_strategy_kit as kit;

struct EpsilonGreedy;

const ACTIONS: &[(&str, &str)] = &[
    ("discount_10", "10% off the next purchase"),
    ("free_shipping", "Free shipping on the next order"),
    ("double_points", "Double loyalty points for a week"),
    ("no_offer", "No offer (baseline)"),
];

/// Pulls and summed reward per action, kept in plugin state as little-endian f64 pairs.
#[derive(Debug, Clone, PartialEq)]
struct Arms {
    key: String,
    pulls: Vec<f64>,
    reward: Vec<f64>,
}

impl Arms {
    fn load(actions: &[ActionSpec]) -> Result<Self, Error> {
        let key = kit::actions_key("arms", actions, ACTIONS);
        let k = actions.len();
        let Some(bytes) = state::get(&key) else {
            return Ok(Arms {
                key,
                pulls: vec![0.0; k],
                reward: vec![0.0; k],
            });
        };
        let pairs = kit::decode(&bytes, 2 * k, "arm statistics")?;
        Ok(Arms {
            key,
            pulls: pairs.iter().step_by(2).copied().collect(),
            reward: pairs.iter().skip(1).step_by(2).copied().collect(),
        })
    }

    fn save(&self) -> Result<(), Error> {
        let pairs: Vec<f64> = self
            .pulls
            .iter()
            .zip(&self.reward)
            .flat_map(|(p, r)| [*p, *r])
            .collect();
        state::put(&self.key, &kit::encode(&pairs))
    }

    /// Mean reward per action; unexplored actions count as 0.
    fn means(&self) -> Vec<f64> {
        self.pulls
            .iter()
            .zip(&self.reward)
            .map(|(p, r)| if *p > 0.0 { r / p } else { 0.0 })
            .collect()
    }

    /// The action to exploit: an action never shown yet (so every offer gets
    /// a first chance), else the best mean. Ties go to the lowest index so
    /// decisions are reproducible.
    fn best(&self) -> usize {
        if let Some(untried) = self.pulls.iter().position(|p| *p == 0.0) {
            return untried;
        }
        kit::argmax(&self.means())
    }
}

/// A deterministic uniform draw in [0, 1) from the row key and the decision
/// time (SplitMix64), so a decision can be replayed from its log.
fn draw(key: u64, at: i64, salt: u64) -> f64 {
    let mut z = key ^ (at as u64).rotate_left(32) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Strategy for EpsilonGreedy {
    fn describe() -> Manifest {
        Manifest::new(
            "epsilon-greedy",
            "0.1.0",
            "Chooses among the campaign's offers (by default four): explores with \
             probability epsilon, otherwise exploits the offer with the best mean reward \
             observed so far.",
        )
        .param(kit::actions_param(ACTIONS))
        .param(
            ParamSpec::number("epsilon", "Probability of exploring a random offer")
                .range(0.0, 1.0)
                .default(Value::Number(0.1)),
        )
        .purpose("personalization")
        .purpose("email_marketing")
    }

    fn actions() -> Vec<ActionSpec> {
        kit::actions_from(&Params::default(), ACTIONS).expect("the default actions")
    }

    fn actions_for(params: &Params) -> Result<Vec<ActionSpec>, Error> {
        kit::actions_from(params, ACTIONS)
    }

    fn validate(params: &Params) -> Result<(), Error> {
        kit::actions_from(params, ACTIONS)?;
        epsilon(params).map(|_| ())
    }

    fn decide(params: &Params, batch: &Batch, context: &Context) -> Result<Vec<Decision>, Error> {
        let epsilon = epsilon(params)?;
        let actions = kit::actions_from(params, ACTIONS)?;
        let arms = Arms::load(&actions)?;
        let means = arms.means();
        let best = arms.best();
        let k = actions.len() as f64;
        let order = kit::order_desc(&means);

        Ok(batch
            .keys()
            .iter()
            .map(|key| {
                let explore = draw(*key, context.at, 1) < epsilon;
                let chosen = if explore {
                    ((draw(*key, context.at, 2) * k) as usize).min(actions.len() - 1)
                } else {
                    best
                };
                let propensity = |a: usize| {
                    if a == best {
                        1.0 - epsilon + epsilon / k
                    } else {
                        epsilon / k
                    }
                };
                let mut ranked = vec![RankedAction::new(
                    chosen as u32,
                    means[chosen],
                    propensity(chosen),
                )];
                ranked.extend(
                    order
                        .iter()
                        .filter(|a| **a != chosen)
                        .map(|a| RankedAction::new(*a as u32, means[*a], propensity(*a))),
                );
                let explanation = if explore {
                    format!("explored {} (epsilon {epsilon})", actions[chosen].name)
                } else {
                    format!(
                        "exploited {}: best mean reward {:.4} over {} observations",
                        actions[chosen].name, means[chosen], arms.pulls[chosen]
                    )
                };
                Decision {
                    ranked,
                    explanation,
                }
            })
            .collect())
    }

    fn observe(params: &Params, feedback: &[Feedback], _profiles: &Batch) -> Result<(), Error> {
        let actions = kit::actions_from(params, ACTIONS)?;
        kit::check_feedback(feedback, actions.len())?;
        let mut arms = Arms::load(&actions)?;
        for item in feedback {
            let arm = item.action as usize;
            match item.kind {
                FeedbackKind::Impression => arms.pulls[arm] += 1.0,
                FeedbackKind::Click | FeedbackKind::Conversion | FeedbackKind::Revenue => {
                    arms.reward[arm] += item.reward
                }
            }
        }
        arms.save()
    }

    fn simulate(params: &Params, batch: &Batch, _context: &Context) -> Result<Forecast, Error> {
        let epsilon = epsilon(params)?;
        let arms = Arms::load(&kit::actions_from(params, ACTIONS)?)?;
        let means = arms.means();
        let best = arms.best();
        let k = means.len() as f64;
        let actions: Vec<ActionForecast> = (0..means.len())
            .map(|a| ActionForecast {
                action: a as u32,
                share: if a == best {
                    1.0 - epsilon + epsilon / k
                } else {
                    epsilon / k
                },
                expected_reward: means[a],
            })
            .collect();
        let expected_reward = actions.iter().map(|a| a.share * a.expected_reward).sum();
        Ok(Forecast {
            actions,
            expected_reward,
            notes: format!(
                "{} subjects; expected reward from {} observed impressions",
                batch.rows(),
                arms.pulls.iter().sum::<f64>()
            ),
        })
    }
}

fn epsilon(params: &Params) -> Result<f64, Error> {
    let epsilon = match params.get("epsilon") {
        None => 0.1,
        Some(_) => params.number("epsilon")?,
    };
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(Error::config(format!(
            "parameter `epsilon` must be within 0..=1, got {epsilon}"
        )));
    }
    Ok(epsilon)
}

tessera_sdk::export_strategy!(EpsilonGreedy);
