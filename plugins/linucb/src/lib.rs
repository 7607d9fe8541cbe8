//! `linucb`: a contextual bandit (disjoint LinUCB) over a campaign's
//! offers. Each offer has a ridge regression of its success rate on the
//! person's features, x = (1, feature values…): A = I + Σ x xᵀ over the
//! offer's impressions, b = Σ x over its successes, θ = A⁻¹ b. The greedy
//! offer maximises θᵀx + alpha √(xᵀ A⁻¹ x) (estimate plus confidence
//! width); with probability `epsilon` a uniformly random offer is shown
//! instead, so every offer keeps a propensity of at least epsilon / K
//! (LinUCB alone is deterministic, and a deterministic log cannot evaluate
//! other policies off-line).
//!
//! Feedback: an impression of offer a for a person with features x is one
//! observation (A_a += x xᵀ) with reward 0; a success of the configured
//! kind (click or conversion) for the same person adds reward 1 (b_a += x)
//! without another observation, since its impression counted it. Feeding
//! impressions and successes separately thus gives exactly the regression
//! of "succeeded after being shown" on x. Other kinds teach nothing. x is
//! read from the feedback's own profile row (row i for item i); a missing
//! or non-finite feature counts as 0.
//!
//! State: one key per list of offers and features, `linucb/<hash>`, holding
//! for each offer in order A (d × d, row-major) then b (d), little-endian
//! f64, d = features + 1 ≤ 33.

use tessera_sdk::prelude::*;
use tessera_sdk::state;
use tessera_strategy_kit::{self as kit, Rng};

struct LinUcb;

const DEFAULT_ACTIONS: &[(&str, &str)] = &[
    ("discount_10", "10% off the next purchase"),
    ("free_shipping", "Free shipping on the next order"),
    ("double_points", "Double loyalty points for a week"),
    ("no_offer", "No offer (baseline)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Success {
    Click,
    Conversion,
}

#[derive(Debug, Clone)]
struct Config {
    actions: Vec<ActionSpec>,
    features: Vec<String>,
    alpha: f64,
    epsilon: f64,
    success: Success,
}

impl Config {
    fn from(params: &Params) -> Result<Self, Error> {
        let success = match params.get("success") {
            None => Success::Click,
            Some(_) => match params.text("success")? {
                "click" => Success::Click,
                "conversion" => Success::Conversion,
                other => {
                    return Err(Error::config(format!(
                        "parameter `success` must be `click` or `conversion`, got `{other}`"
                    )));
                }
            },
        };
        Ok(Config {
            actions: kit::actions_from(params, DEFAULT_ACTIONS)?,
            features: kit::features_from(params)?,
            alpha: kit::number_or(params, "alpha", 1.0, 0.0, 100.0)?,
            epsilon: kit::number_or(params, "epsilon", 0.05, 0.0, 1.0)?,
            success,
        })
    }

    fn dims(&self) -> usize {
        self.features.len() + 1
    }

    fn key(&self) -> String {
        format!(
            "{}/{:016x}",
            kit::actions_key("linucb", &self.actions, DEFAULT_ACTIONS),
            kit::names_hash(self.features.iter().map(String::as_str))
        )
    }
}

/// One offer's regression: A (row-major) and b.
#[derive(Debug, Clone, PartialEq)]
struct Arm {
    a: Vec<f64>,
    b: Vec<f64>,
    impressions: f64,
}

impl Arm {
    fn new(d: usize) -> Self {
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = 1.0;
        }
        Arm {
            a,
            b: vec![0.0; d],
            impressions: 0.0,
        }
    }

    fn observe(&mut self, x: &[f64]) {
        let d = x.len();
        for i in 0..d {
            for j in 0..d {
                self.a[i * d + j] += x[i] * x[j];
            }
        }
        self.impressions += 1.0;
    }

    fn reward(&mut self, x: &[f64], reward: f64) {
        for (b, x) in self.b.iter_mut().zip(x) {
            *b += reward * x;
        }
    }
}

/// The lower Cholesky factor of a symmetric positive definite matrix.
fn cholesky(a: &[f64], d: usize) -> Result<Vec<f64>, Error> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - sum;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(Error::internal("the stored model is not positive definite"));
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - sum) / l[j * d + j];
            }
        }
    }
    Ok(l)
}

/// Solves L y = v (forward substitution).
fn forward(l: &[f64], v: &[f64]) -> Vec<f64> {
    let d = v.len();
    let mut y = vec![0.0; d];
    for i in 0..d {
        let sum: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (v[i] - sum) / l[i * d + i];
    }
    y
}

/// Solves Lᵀ z = y (back substitution).
fn backward(l: &[f64], y: &[f64]) -> Vec<f64> {
    let d = y.len();
    let mut z = vec![0.0; d];
    for i in (0..d).rev() {
        let sum: f64 = (i + 1..d).map(|k| l[k * d + i] * z[k]).sum();
        z[i] = (y[i] - sum) / l[i * d + i];
    }
    z
}

/// An offer's model ready to score contexts: L (A = L Lᵀ) and θ = A⁻¹ b.
struct Fitted {
    l: Vec<f64>,
    theta: Vec<f64>,
    impressions: f64,
}

impl Fitted {
    fn from(arm: &Arm) -> Result<Self, Error> {
        let l = cholesky(&arm.a, arm.b.len())?;
        let theta = backward(&l, &forward(&l, &arm.b));
        Ok(Fitted {
            l,
            theta,
            impressions: arm.impressions,
        })
    }

    /// The estimate θᵀx and the confidence width √(xᵀ A⁻¹ x).
    fn score(&self, x: &[f64]) -> (f64, f64) {
        let estimate = self.theta.iter().zip(x).map(|(t, x)| t * x).sum();
        let z = forward(&self.l, x);
        (estimate, z.iter().map(|v| v * v).sum::<f64>().sqrt())
    }
}

/// Every offer's model, loaded from state.
fn load(config: &Config) -> Result<Vec<Arm>, Error> {
    let d = config.dims();
    let k = config.actions.len();
    let Some(bytes) = state::get(&config.key()) else {
        return Ok(vec![Arm::new(d); k]);
    };
    let per = d * d + d + 1;
    let values = kit::decode(&bytes, k * per, "LinUCB model")?;
    Ok(values
        .chunks_exact(per)
        .map(|c| Arm {
            a: c[..d * d].to_vec(),
            b: c[d * d..d * d + d].to_vec(),
            impressions: c[d * d + d],
        })
        .collect())
}

fn save(config: &Config, arms: &[Arm]) -> Result<(), Error> {
    let values: Vec<f64> = arms
        .iter()
        .flat_map(|arm| arm.a.iter().chain(&arm.b).copied().chain([arm.impressions]))
        .collect();
    state::put(&config.key(), &kit::encode(&values))
}

/// Learns a checked feedback batch; `contexts[i]` is item i's x.
fn learn(config: &Config, arms: &mut [Arm], feedback: &[Feedback], contexts: &[Vec<f64>]) {
    for (item, x) in feedback.iter().zip(contexts) {
        let arm = &mut arms[item.action as usize];
        match (item.kind, config.success) {
            (FeedbackKind::Impression, _) => arm.observe(x),
            (FeedbackKind::Click, Success::Click)
            | (FeedbackKind::Conversion, Success::Conversion) => arm.reward(x, 1.0),
            _ => {}
        }
    }
}

/// Upper confidence bounds of every offer for one context.
fn bounds(config: &Config, fitted: &[Fitted], x: &[f64]) -> Vec<(f64, f64)> {
    fitted
        .iter()
        .map(|f| {
            let (estimate, width) = f.score(x);
            (estimate, estimate + config.alpha * width)
        })
        .collect()
}

fn fit(arms: &[Arm]) -> Result<Vec<Fitted>, Error> {
    arms.iter().map(Fitted::from).collect()
}

impl Strategy for LinUcb {
    fn describe() -> Manifest {
        Manifest::new(
            "linucb",
            "0.1.0",
            "Contextual bandit (LinUCB) over the campaign's offers: a linear model of each \
             offer's success rate on the features the parameters name, optimistic by its \
             confidence width, with an epsilon floor of exploration.",
        )
        .param(kit::actions_param(DEFAULT_ACTIONS))
        .param(ParamSpec::text_list(
            "features",
            "Numeric traits the model reads (at most 32; missing counts as 0)",
        ))
        .param(
            ParamSpec::number(
                "alpha",
                "Width of the confidence bonus (0: greedy on the estimate)",
            )
            .range(0.0, 100.0)
            .default(Value::Number(1.0)),
        )
        .param(
            ParamSpec::number(
                "epsilon",
                "Probability of a uniformly random offer: every offer keeps at least epsilon / K",
            )
            .range(0.0, 1.0)
            .default(Value::Number(0.05)),
        )
        .param(
            ParamSpec::text(
                "success",
                "Which feedback counts as reward 1 (impressions as reward 0)",
            )
            .choices(&["click", "conversion"])
            .default(Value::Text("click".into())),
        )
        .purpose("personalization")
        .purpose("email_marketing")
    }

    fn actions() -> Vec<ActionSpec> {
        kit::actions_from(&Params::default(), DEFAULT_ACTIONS).expect("the default actions")
    }

    fn actions_for(params: &Params) -> Result<Vec<ActionSpec>, Error> {
        Ok(Config::from(params)?.actions)
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        Ok(kit::plan_features(&Config::from(params)?.features))
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Config::from(params).map(|_| ())
    }

    fn decide(params: &Params, batch: &Batch, context: &Context) -> Result<Vec<Decision>, Error> {
        let config = Config::from(params)?;
        let fitted = fit(&load(&config)?)?;
        let k = config.actions.len();
        let contexts = kit::contexts(batch, &config.features)?;
        Ok(batch
            .keys()
            .iter()
            .zip(&contexts)
            .enumerate()
            .map(|(row, (key, x))| {
                let bounds = bounds(&config, &fitted, x);
                let ucb: Vec<f64> = bounds.iter().map(|b| b.1).collect();
                let greedy = kit::argmax(&ucb);
                let mut rng = Rng::seeded(*key, context.at, row as u64);
                let (chosen, explored) = kit::epsilon_choice(&mut rng, config.epsilon, k, greedy);
                let p = |a: usize| kit::epsilon_propensity(config.epsilon, k, greedy, a);
                let mut ranked = vec![RankedAction::new(chosen as u32, ucb[chosen], p(chosen))];
                ranked.extend(
                    kit::order_desc(&ucb)
                        .into_iter()
                        .filter(|a| *a != chosen)
                        .map(|a| RankedAction::new(a as u32, ucb[a], p(a))),
                );
                let (estimate, bound) = bounds[chosen];
                let explanation = format!(
                    "{} {}: estimated rate {estimate:.4}, upper bound {bound:.4} (alpha {}) \
                     after {} impressions{}",
                    if explored { "explored" } else { "chose" },
                    config.actions[chosen].name,
                    config.alpha,
                    fitted[chosen].impressions,
                    if explored {
                        format!("; the bound favoured {}", config.actions[greedy].name)
                    } else {
                        String::new()
                    }
                );
                Decision {
                    ranked,
                    explanation,
                }
            })
            .collect())
    }

    fn observe(params: &Params, feedback: &[Feedback], profiles: &Batch) -> Result<(), Error> {
        let config = Config::from(params)?;
        let contexts =
            kit::feedback_contexts(feedback, config.actions.len(), profiles, &config.features)?;
        let mut arms = load(&config)?;
        learn(&config, &mut arms, feedback, &contexts);
        save(&config, &arms)
    }

    fn simulate(params: &Params, batch: &Batch, _context: &Context) -> Result<Forecast, Error> {
        let config = Config::from(params)?;
        let fitted = fit(&load(&config)?)?;
        let k = config.actions.len();
        let mut share = vec![0.0; k];
        let mut reward = vec![0.0; k];
        let contexts = kit::contexts(batch, &config.features)?;
        for x in &contexts {
            let bounds = bounds(&config, &fitted, x);
            let greedy = kit::argmax(&bounds.iter().map(|b| b.1).collect::<Vec<_>>());
            for a in 0..k {
                let p = kit::epsilon_propensity(config.epsilon, k, greedy, a);
                share[a] += p;
                reward[a] += p * bounds[a].0.clamp(0.0, 1.0);
            }
        }
        let n = contexts.len().max(1) as f64;
        let actions: Vec<ActionForecast> = (0..k)
            .map(|a| ActionForecast {
                action: a as u32,
                share: (share[a] / n).clamp(0.0, 1.0),
                expected_reward: if share[a] > 0.0 {
                    reward[a] / share[a]
                } else {
                    0.0
                },
            })
            .collect();
        Ok(Forecast {
            expected_reward: actions.iter().map(|a| a.share * a.expected_reward).sum(),
            actions,
            notes: format!(
                "{} subjects; rewards are each offer's estimated success rate for them (clamped \
                 to 0..1), shares its propensity",
                batch.rows()
            ),
        })
    }
}

tessera_sdk::export_strategy!(LinUcb);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(features: usize) -> Config {
        Config {
            actions: kit::actions_from(&Params::default(), DEFAULT_ACTIONS).unwrap()[..2].to_vec(),
            features: (0..features).map(|i| format!("f{i}")).collect(),
            alpha: 1.0,
            epsilon: 0.05,
            success: Success::Click,
        }
    }

    #[test]
    fn cholesky_solves_a_positive_definite_system() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        let x = backward(&l, &forward(&l, &[1.0, 2.0, 3.0]));
        for i in 0..3 {
            let row: f64 = (0..3).map(|j| a[i * 3 + j] * x[j]).sum();
            assert!((row - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_err());
    }

    /// Offer 0 succeeds for people with f = 1, offer 1 for f = 0.
    #[test]
    fn learns_a_planted_linear_preference() {
        let config = config(1);
        let mut arms = vec![Arm::new(2); 2];
        let mut rng = Rng::seeded(1, 2, 3);
        let mut items = Vec::new();
        let mut contexts = Vec::new();
        for n in 0..4_000u64 {
            let f = (n % 2) as f64;
            let action = (rng.uniform() * 2.0) as u32;
            let rate = if action == 0 {
                0.6 * f + 0.1
            } else {
                0.6 * (1.0 - f) + 0.1
            };
            let item = |kind| Feedback {
                key: n,
                action,
                kind,
                reward: 1.0,
                propensity: 0.5,
                at: 0,
            };
            items.push(item(FeedbackKind::Impression));
            contexts.push(vec![1.0, f]);
            if rng.uniform() < rate {
                items.push(item(FeedbackKind::Click));
                contexts.push(vec![1.0, f]);
            }
        }
        learn(&config, &mut arms, &items, &contexts);
        let fitted = fit(&arms).unwrap();
        for (f, best) in [(1.0, 0), (0.0, 1)] {
            let b = bounds(&config, &fitted, &[1.0, f]);
            assert_eq!(
                kit::argmax(&b.iter().map(|b| b.1).collect::<Vec<_>>()),
                best
            );
            assert!((b[best].0 - 0.7).abs() < 0.05, "{b:?}");
            assert!((b[1 - best].0 - 0.1).abs() < 0.05, "{b:?}");
        }
    }

    #[test]
    fn an_unexplored_offer_has_the_widest_bound() {
        let config = config(0);
        let mut arms = vec![Arm::new(1); 2];
        for _ in 0..100 {
            arms[0].observe(&[1.0]);
        }
        arms[0].reward(&[1.0], 30.0);
        let fitted = fit(&arms).unwrap();
        let b = bounds(&config, &fitted, &[1.0]);
        assert!(b[1].1 > b[0].1, "{b:?}");
        assert!((b[0].0 - 30.0 / 101.0).abs() < 1e-12);
    }

    #[test]
    fn parameters_are_checked() {
        let p = |name: &str, value: Value| {
            Params::new(vec![FieldValue {
                name: name.into(),
                value,
            }])
        };
        let many = Value::TextList((0..33).map(|i| format!("f{i}")).collect());
        assert!(Config::from(&p("features", many)).is_err());
        assert!(Config::from(&p("epsilon", Value::Number(1.5))).is_err());
        assert_eq!(
            Config::from(&p("features", Value::TextList(vec!["a".into()])))
                .unwrap()
                .dims(),
            2
        );
    }
}
