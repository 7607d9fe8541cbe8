//! `propensity`: next-best-offer by predicted conversion. Each offer has a
//! logistic regression of "succeeds after being shown" on the person's
//! features, x = (1, feature values…), trained online in `observe` by
//! AdaGrad steps with L2 shrinkage. A decision ranks the offers by predicted
//! probability × the offer's value (`values`, default 1) and shows the best;
//! with probability `epsilon` (default 0.05) a uniformly random offer
//! instead, so every offer keeps a propensity of at least epsilon / K and
//! the log supports off-policy evaluation.
//!
//! Feedback: impressions and successes arrive as separate items, possibly in
//! separate batches, so they are learnt as they come ("fake negatives"):
//! every impression is an example with label 0, every success of the
//! configured kind (click or conversion) an example with label 1. Of n
//! people shown an offer, s succeed: the model sees n negatives and s
//! positives, so its output q estimates s / (n + s), and the success
//! probability is q / (1 − q) (clamped to 0..1), which the decision uses.
//! Other feedback kinds teach nothing.
//!
//! `weighting = inverse-propensity` weighs each example by 1 / its logged
//! propensity, clipped at 20: a log where the offer was shown mostly to some
//! kinds of people then trains the model as if it had been shown at random,
//! at the cost of variance. The default, `none`, weighs every example 1.
//!
//! State: one key per list of offers and features, `propensity/<hash>`, for
//! each offer in order the weights (d), AdaGrad's squared-gradient sums (d)
//! and the impressions learnt (1), little-endian f64, d = features + 1 ≤ 33.

use tessera_sdk::prelude::*;
use tessera_sdk::state;
use tessera_strategy_kit::{self as kit, Rng};

struct Propensity;

const DEFAULT_ACTIONS: &[(&str, &str)] = &[
    ("discount_10", "10% off the next purchase"),
    ("free_shipping", "Free shipping on the next order"),
    ("double_points", "Double loyalty points for a week"),
    ("no_offer", "No offer (baseline)"),
];

/// The largest weight an example gets under inverse-propensity weighting.
const MAX_WEIGHT: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Success {
    Click,
    Conversion,
}

#[derive(Debug, Clone)]
struct Config {
    actions: Vec<ActionSpec>,
    features: Vec<String>,
    values: Vec<f64>,
    epsilon: f64,
    learning_rate: f64,
    l2: f64,
    success: Success,
    weighted: bool,
}

impl Config {
    fn from(params: &Params) -> Result<Self, Error> {
        let actions = kit::actions_from(params, DEFAULT_ACTIONS)?;
        let mut values = vec![1.0; actions.len()];
        for pair in kit::optional_list(params, "values")? {
            let parsed = pair.split_once('=').and_then(|(name, value)| {
                let index = actions.iter().position(|a| a.name == name.trim())?;
                let value: f64 = value.trim().parse().ok()?;
                (value.is_finite() && value >= 0.0).then_some((index, value))
            });
            let Some((index, value)) = parsed else {
                return Err(Error::config(format!(
                    "parameter `values`: `{pair}` is not `offer=value` with one of the offers \
                     and a number of at least 0"
                )));
            };
            values[index] = value;
        }
        let choice = |name: &str, default: &'static str| -> Result<String, Error> {
            Ok(match params.get(name) {
                None => default.to_string(),
                Some(_) => params.text(name)?.to_string(),
            })
        };
        let success = match choice("success", "click")?.as_str() {
            "click" => Success::Click,
            "conversion" => Success::Conversion,
            other => {
                return Err(Error::config(format!(
                    "parameter `success` must be `click` or `conversion`, got `{other}`"
                )));
            }
        };
        let weighted = match choice("weighting", "none")?.as_str() {
            "none" => false,
            "inverse-propensity" => true,
            other => {
                return Err(Error::config(format!(
                    "parameter `weighting` must be `none` or `inverse-propensity`, got `{other}`"
                )));
            }
        };
        Ok(Config {
            features: kit::features_from(params)?,
            values,
            epsilon: kit::number_or(params, "epsilon", 0.05, 0.0, 1.0)?,
            learning_rate: kit::number_or(params, "learning_rate", 0.1, 1e-6, 10.0)?,
            l2: kit::number_or(params, "l2", 1e-4, 0.0, 1.0)?,
            success,
            weighted,
            actions,
        })
    }

    fn dims(&self) -> usize {
        self.features.len() + 1
    }

    fn key(&self) -> String {
        format!(
            "{}/{:016x}",
            kit::actions_key("propensity", &self.actions, DEFAULT_ACTIONS),
            kit::names_hash(self.features.iter().map(String::as_str))
        )
    }
}

/// One offer's logistic regression.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    weights: Vec<f64>,
    squared: Vec<f64>,
    impressions: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    fn new(d: usize) -> Self {
        Model {
            weights: vec![0.0; d],
            squared: vec![0.0; d],
            impressions: 0.0,
        }
    }

    /// The model's output q: the share of positives among its examples.
    fn output(&self, x: &[f64]) -> f64 {
        sigmoid(self.weights.iter().zip(x).map(|(w, x)| w * x).sum())
    }

    /// The success probability after being shown: q / (1 − q), see the
    /// module's documentation.
    fn probability(&self, x: &[f64]) -> f64 {
        let q = self.output(x).min(1.0 - 1e-12);
        (q / (1.0 - q)).clamp(0.0, 1.0)
    }

    /// One AdaGrad step on an example with label `y` and weight `weight`.
    fn step(&mut self, x: &[f64], y: f64, weight: f64, rate: f64, l2: f64) {
        let error = self.output(x) - y;
        for ((w, g), x) in self.weights.iter_mut().zip(&mut self.squared).zip(x) {
            let gradient = weight * error * x + l2 * *w;
            *g += gradient * gradient;
            if *g > 0.0 {
                *w -= rate * gradient / g.sqrt();
            }
        }
    }
}

fn load(config: &Config) -> Result<Vec<Model>, Error> {
    let d = config.dims();
    let k = config.actions.len();
    let Some(bytes) = state::get(&config.key()) else {
        return Ok(vec![Model::new(d); k]);
    };
    let per = 2 * d + 1;
    Ok(kit::decode(&bytes, k * per, "propensity models")?
        .chunks_exact(per)
        .map(|c| Model {
            weights: c[..d].to_vec(),
            squared: c[d..2 * d].to_vec(),
            impressions: c[2 * d],
        })
        .collect())
}

fn save(config: &Config, models: &[Model]) -> Result<(), Error> {
    let values: Vec<f64> = models
        .iter()
        .flat_map(|m| {
            m.weights
                .iter()
                .chain(&m.squared)
                .copied()
                .chain([m.impressions])
        })
        .collect();
    state::put(&config.key(), &kit::encode(&values))
}

/// Learns a checked feedback batch; `contexts[i]` is item i's x.
fn learn(config: &Config, models: &mut [Model], feedback: &[Feedback], contexts: &[Vec<f64>]) {
    for (item, x) in feedback.iter().zip(contexts) {
        let label = match (item.kind, config.success) {
            (FeedbackKind::Impression, _) => 0.0,
            (FeedbackKind::Click, Success::Click)
            | (FeedbackKind::Conversion, Success::Conversion) => 1.0,
            _ => continue,
        };
        let weight = if config.weighted {
            (1.0 / item.propensity).min(MAX_WEIGHT)
        } else {
            1.0
        };
        let model = &mut models[item.action as usize];
        model.step(x, label, weight, config.learning_rate, config.l2);
        if label == 0.0 {
            model.impressions += 1.0;
        }
    }
}

/// Each offer's predicted probability and score (probability × value).
fn scores(config: &Config, models: &[Model], x: &[f64]) -> Vec<(f64, f64)> {
    models
        .iter()
        .zip(&config.values)
        .map(|(m, value)| {
            let p = m.probability(x);
            (p, p * value)
        })
        .collect()
}

impl Strategy for Propensity {
    fn describe() -> Manifest {
        Manifest::new(
            "propensity",
            "0.1.0",
            "Next-best-offer: a logistic model of each offer's success on the features the \
             parameters name, ranked by predicted probability times the offer's value, with an \
             epsilon floor of exploration.",
        )
        .param(kit::actions_param(DEFAULT_ACTIONS))
        .param(ParamSpec::text_list(
            "features",
            "Numeric traits the model reads (at most 32; missing counts as 0)",
        ))
        .param(ParamSpec::text_list(
            "values",
            "`offer=value` pairs: what a success of the offer is worth (default 1)",
        ))
        .param(
            ParamSpec::number(
                "epsilon",
                "Probability of a uniformly random offer: every offer keeps at least epsilon / K",
            )
            .range(0.0, 1.0)
            .default(Value::Number(0.05)),
        )
        .param(
            ParamSpec::text("success", "Which feedback counts as a success")
                .choices(&["click", "conversion"])
                .default(Value::Text("click".into())),
        )
        .param(
            ParamSpec::text(
                "weighting",
                "`inverse-propensity` weighs each example by 1 / its logged propensity (at most 20)",
            )
            .choices(&["none", "inverse-propensity"])
            .default(Value::Text("none".into())),
        )
        .param(
            ParamSpec::number("learning_rate", "AdaGrad's step size")
                .range(1e-6, 10.0)
                .default(Value::Number(0.1)),
        )
        .param(
            ParamSpec::number("l2", "L2 shrinkage of the weights")
                .range(0.0, 1.0)
                .default(Value::Number(1e-4)),
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
        let models = load(&config)?;
        let k = config.actions.len();
        let contexts = kit::contexts(batch, &config.features)?;
        Ok(batch
            .keys()
            .iter()
            .zip(&contexts)
            .enumerate()
            .map(|(row, (key, x))| {
                let scored = scores(&config, &models, x);
                let score: Vec<f64> = scored.iter().map(|s| s.1).collect();
                let greedy = kit::argmax(&score);
                let mut rng = Rng::seeded(*key, context.at, row as u64);
                let (chosen, explored) = kit::epsilon_choice(&mut rng, config.epsilon, k, greedy);
                let p = |a: usize| kit::epsilon_propensity(config.epsilon, k, greedy, a);
                let mut ranked = vec![RankedAction::new(chosen as u32, score[chosen], p(chosen))];
                ranked.extend(
                    kit::order_desc(&score)
                        .into_iter()
                        .filter(|a| *a != chosen)
                        .map(|a| RankedAction::new(a as u32, score[a], p(a))),
                );
                let explanation = format!(
                    "{} {}: predicted success {:.4} x value {} = {:.4}, model trained on {} \
                     impressions{}",
                    if explored { "explored" } else { "chose" },
                    config.actions[chosen].name,
                    scored[chosen].0,
                    config.values[chosen],
                    scored[chosen].1,
                    models[chosen].impressions,
                    if explored {
                        format!("; the best score was {}'s", config.actions[greedy].name)
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
        if config.weighted
            && let Some(i) = feedback.iter().position(|f| f.propensity <= 0.0)
        {
            return Err(Error::input(format!(
                "feedback {i} has propensity 0, which inverse-propensity weighting cannot use"
            )));
        }
        let mut models = load(&config)?;
        learn(&config, &mut models, feedback, &contexts);
        save(&config, &models)
    }

    fn simulate(params: &Params, batch: &Batch, _context: &Context) -> Result<Forecast, Error> {
        let config = Config::from(params)?;
        let models = load(&config)?;
        let k = config.actions.len();
        let mut share = vec![0.0; k];
        let mut reward = vec![0.0; k];
        let contexts = kit::contexts(batch, &config.features)?;
        for x in &contexts {
            let scored = scores(&config, &models, x);
            let greedy = kit::argmax(&scored.iter().map(|s| s.1).collect::<Vec<_>>());
            for a in 0..k {
                let p = kit::epsilon_propensity(config.epsilon, k, greedy, a);
                share[a] += p;
                reward[a] += p * scored[a].1;
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
                "{} subjects; rewards are predicted success probability times value",
                batch.rows()
            ),
        })
    }
}

tessera_sdk::export_strategy!(Propensity);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(weighted: bool) -> Config {
        let params = Params::new(vec![
            FieldValue {
                name: "actions".into(),
                value: Value::TextList(vec!["a".into(), "b".into()]),
            },
            FieldValue {
                name: "features".into(),
                value: Value::TextList(vec!["f".into()]),
            },
            FieldValue {
                name: "values".into(),
                value: Value::TextList(vec!["b=3".into()]),
            },
        ]);
        Config {
            weighted,
            ..Config::from(&params).unwrap()
        }
    }

    /// Offer a succeeds with 0.1 + 0.5 f, offer b with 0.1; b is worth 3.
    fn train(config: &Config, show_a: impl Fn(f64, &mut Rng) -> (bool, f64)) -> Vec<Model> {
        let mut models = vec![Model::new(2); 2];
        let mut rng = Rng::seeded(4, 5, 6);
        let mut items = Vec::new();
        let mut contexts = Vec::new();
        for n in 0..40_000u64 {
            let f = (n % 2) as f64;
            let (a, propensity) = show_a(f, &mut rng);
            let action = u32::from(!a);
            let rate = if a { 0.1 + 0.5 * f } else { 0.1 };
            let item = |kind| Feedback {
                key: n,
                action,
                kind,
                reward: 1.0,
                propensity,
                at: 0,
            };
            items.push(item(FeedbackKind::Impression));
            contexts.push(vec![1.0, f]);
            if rng.uniform() < rate {
                items.push(item(FeedbackKind::Click));
                contexts.push(vec![1.0, f]);
            }
        }
        learn(config, &mut models, &items, &contexts);
        models
    }

    #[test]
    fn fake_negatives_recover_the_success_probability_and_values_rank() {
        let config = config(false);
        let models = train(&config, |_, rng| (rng.uniform() < 0.5, 0.5));
        for (f, rate) in [(0.0, 0.1), (1.0, 0.6)] {
            let p = models[0].probability(&[1.0, f]);
            assert!((p - rate).abs() < 0.05, "f {f}: {p} vs {rate}");
        }
        // b (0.1 x 3 = 0.3) beats a for f = 0 (0.1), a (0.6) beats b for f = 1.
        let s0 = scores(&config, &models, &[1.0, 0.0]);
        let s1 = scores(&config, &models, &[1.0, 1.0]);
        assert!(s0[1].1 > s0[0].1 && s1[0].1 > s1[1].1, "{s0:?} {s1:?}");
    }

    #[test]
    fn parameters_are_checked() {
        let p = |name: &str, value: Value| {
            Params::new(vec![FieldValue {
                name: name.into(),
                value,
            }])
        };
        let list = |v: &str| Value::TextList(vec![v.into()]);
        assert!(Config::from(&p("values", list("nope=2"))).is_err());
        assert!(Config::from(&p("values", list("no_offer=-1"))).is_err());
        assert_eq!(
            Config::from(&p("values", list("no_offer=2.5")))
                .unwrap()
                .values[3],
            2.5
        );
        assert!(Config::from(&p("weighting", Value::Text("doubly".into()))).is_err());
    }

    #[test]
    fn weighting_by_inverse_propensity_is_clipped() {
        let config = config(true);
        let mut models = vec![Model::new(2); 2];
        let item = Feedback {
            key: 1,
            action: 0,
            kind: FeedbackKind::Click,
            reward: 1.0,
            propensity: 0.001,
            at: 0,
        };
        learn(&config, &mut models, &[item], &[vec![1.0, 0.0]]);
        // One step with weight 20 (not 1000): AdaGrad's first step is the rate.
        assert!((models[0].weights[0] - config.learning_rate).abs() < 1e-9);
        assert!(
            (models[0].squared[0] - 100.0).abs() < 1e-6,
            "{:?}",
            models[0]
        );
    }
}
