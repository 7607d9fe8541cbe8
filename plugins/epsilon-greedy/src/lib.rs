//! `epsilon-greedy`: a multi-armed bandit over a fixed list of offers. With
//! probability epsilon it explores (a uniformly random offer), otherwise it
//! exploits the offer with the best mean reward so far. Rewards live in the
//! plugin's host-held state, so any instance can serve any call.

use tessera_sdk::prelude::*;
use tessera_sdk::state;

struct EpsilonGreedy;

const ACTIONS: [(&str, &str); 4] = [
    ("discount_10", "10% off the next purchase"),
    ("free_shipping", "Free shipping on the next order"),
    ("double_points", "Double loyalty points for a week"),
    ("no_offer", "No offer (baseline)"),
];

const STATS_KEY: &str = "arms";

/// Pulls and summed reward per action, kept in plugin state as little-endian f64 pairs.
#[derive(Debug, Clone, PartialEq)]
struct Arms {
    pulls: [f64; ACTIONS.len()],
    reward: [f64; ACTIONS.len()],
}

impl Arms {
    fn load() -> Result<Self, Error> {
        let mut arms = Arms {
            pulls: [0.0; ACTIONS.len()],
            reward: [0.0; ACTIONS.len()],
        };
        let Some(bytes) = state::get(STATS_KEY) else {
            return Ok(arms);
        };
        if bytes.len() != ACTIONS.len() * 16 {
            return Err(Error::internal(format!(
                "stored arm statistics have {} bytes, expected {}",
                bytes.len(),
                ACTIONS.len() * 16
            )));
        }
        for (i, chunk) in bytes.chunks_exact(16).enumerate() {
            arms.pulls[i] = f64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            arms.reward[i] = f64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
        }
        Ok(arms)
    }

    fn save(&self) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(ACTIONS.len() * 16);
        for i in 0..ACTIONS.len() {
            bytes.extend_from_slice(&self.pulls[i].to_le_bytes());
            bytes.extend_from_slice(&self.reward[i].to_le_bytes());
        }
        state::put(STATS_KEY, &bytes)
    }

    /// Mean reward per action; unexplored actions count as 0.
    fn means(&self) -> [f64; ACTIONS.len()] {
        std::array::from_fn(|i| {
            if self.pulls[i] > 0.0 {
                self.reward[i] / self.pulls[i]
            } else {
                0.0
            }
        })
    }

    /// The action to exploit: an action never shown yet (so every offer gets
    /// a first chance), else the best mean. Ties go to the lowest index so
    /// decisions are reproducible.
    fn best(&self) -> usize {
        if let Some(untried) = self.pulls.iter().position(|p| *p == 0.0) {
            return untried;
        }
        let means = self.means();
        (0..ACTIONS.len()).fold(0, |best, i| if means[i] > means[best] { i } else { best })
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
            "Chooses among four offers: explores with probability epsilon, otherwise \
             exploits the offer with the best mean reward observed so far.",
        )
        .param(
            ParamSpec::number("epsilon", "Probability of exploring a random offer")
                .range(0.0, 1.0)
                .default(Value::Number(0.1)),
        )
        .purpose("personalization")
        .purpose("email_marketing")
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
        epsilon(params).map(|_| ())
    }

    fn decide(params: &Params, batch: &Batch, context: &Context) -> Result<Vec<Decision>, Error> {
        let epsilon = epsilon(params)?;
        let arms = Arms::load()?;
        let means = arms.means();
        let best = arms.best();
        let k = ACTIONS.len() as f64;
        let mut order: Vec<usize> = (0..ACTIONS.len()).collect();
        order.sort_by(|a, b| means[*b].total_cmp(&means[*a]).then(a.cmp(b)));

        Ok(batch
            .keys()
            .iter()
            .map(|key| {
                let explore = draw(*key, context.at, 1) < epsilon;
                let chosen = if explore {
                    ((draw(*key, context.at, 2) * k) as usize).min(ACTIONS.len() - 1)
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
                    format!("explored {} (epsilon {epsilon})", ACTIONS[chosen].0)
                } else {
                    format!(
                        "exploited {}: best mean reward {:.4} over {} observations",
                        ACTIONS[chosen].0, means[chosen], arms.pulls[chosen]
                    )
                };
                Decision {
                    ranked,
                    explanation,
                }
            })
            .collect())
    }

    fn observe(_params: &Params, feedback: &[Feedback], _profiles: &Batch) -> Result<(), Error> {
        let mut arms = Arms::load()?;
        for item in feedback {
            let arm = item.action as usize;
            if arm >= ACTIONS.len() {
                return Err(Error::input(format!(
                    "feedback names action {arm}, which does not exist"
                )));
            }
            if !item.reward.is_finite() {
                return Err(Error::input(format!(
                    "feedback for action {arm} has a non-finite reward"
                )));
            }
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
        let arms = Arms::load()?;
        let means = arms.means();
        let best = arms.best();
        let k = ACTIONS.len() as f64;
        let actions: Vec<ActionForecast> = (0..ACTIONS.len())
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
