//! What the first-party strategy plugins share: the `actions` parameter, a
//! deterministic generator (no WASI randomness: a decision can be replayed
//! from its row key and time), Beta and Gamma draws, state encoding and the
//! checks every `observe` runs before it stores anything. Pure code: it
//! never calls the host.

use tessera_sdk::prelude::*;

/// At most this many actions (the host's own limit).
pub const MAX_ACTIONS: usize = 1024;
/// The longest action name, in bytes (the host's own limit).
pub const MAX_ACTION_NAME: usize = 256;

/// The `actions` parameter's schema: the campaign's own offers.
pub fn actions_param(defaults: &[(&str, &str)]) -> ParamSpec {
    ParamSpec::text_list(
        "actions",
        "The offers this campaign chooses among, by name (each at most once)",
    )
    .default(Value::TextList(
        defaults
            .iter()
            .map(|(name, _)| (*name).to_string())
            .collect(),
    ))
}

/// The actions chosen among with these parameters: `actions` if given, else
/// `defaults`. Names must be non-empty, at most [`MAX_ACTION_NAME`] bytes
/// and distinct, and there must be 1 to [`MAX_ACTIONS`] of them.
pub fn actions_from(params: &Params, defaults: &[(&str, &str)]) -> Result<Vec<ActionSpec>, Error> {
    let Some(_) = params.get("actions") else {
        return Ok(defaults
            .iter()
            .map(|(name, description)| ActionSpec {
                name: (*name).into(),
                description: (*description).into(),
            })
            .collect());
    };
    let names = params.text_list("actions")?;
    if names.is_empty() || names.len() > MAX_ACTIONS {
        return Err(Error::config(format!(
            "parameter `actions` must name 1 to {MAX_ACTIONS} offers, got {}",
            names.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if name.is_empty() || name.len() > MAX_ACTION_NAME || !seen.insert(name.as_str()) {
            return Err(Error::config(format!(
                "parameter `actions`: `{name}` is empty, over {MAX_ACTION_NAME} bytes or named twice"
            )));
        }
        let description = defaults
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| format!("offer `{name}`"), |(_, d)| (*d).to_string());
        out.push(ActionSpec {
            name: name.clone(),
            description,
        });
    }
    Ok(out)
}

/// A state key prefix for one list of actions: `base` for the default list
/// (so state kept before actions were a parameter stays readable), else
/// `base` and a hash of the names, so statistics of one list are never read
/// as another's.
pub fn actions_key(base: &str, actions: &[ActionSpec], defaults: &[(&str, &str)]) -> String {
    let is_default = actions.len() == defaults.len()
        && actions.iter().zip(defaults).all(|(a, (n, _))| a.name == *n);
    if is_default {
        return base.to_string();
    }
    format!(
        "{base}/{:016x}",
        names_hash(actions.iter().map(|a| a.name.as_str()))
    )
}

/// FNV-1a over names, each ended by a 0 byte: stable across builds and
/// platforms, so it can name state.
pub fn names_hash<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for byte in name.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// At most this many features a contextual strategy reads (33 dimensions
/// with the intercept).
pub const MAX_FEATURES: usize = 32;

/// The text-list parameter `features`: numeric traits, each named once, at
/// most [`MAX_FEATURES`].
pub fn features_from(params: &Params) -> Result<Vec<String>, Error> {
    let features = optional_list(params, "features")?;
    if features.len() > MAX_FEATURES {
        return Err(Error::config(format!(
            "parameter `features` names {} traits; at most {MAX_FEATURES} are allowed",
            features.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for name in features {
        if name.is_empty() || name.len() > 256 || !seen.insert(name.as_str()) {
            return Err(Error::config(format!(
                "parameter `features`: `{name}` is empty, too long or named twice"
            )));
        }
    }
    Ok(features.to_vec())
}

/// The columns a contextual strategy plans: one `number` field per feature.
pub fn plan_features(features: &[String]) -> Needs {
    features.iter().fold(Needs::new(), |needs, name| {
        needs.field(name, ValueKind::Number, FieldClass::Standard)
    })
}

/// Each row's context vector: 1 (the intercept), then each feature's value;
/// a missing or non-finite value counts as 0.
pub fn contexts(batch: &Batch, features: &[String]) -> Result<Vec<Vec<f64>>, Error> {
    let columns = features
        .iter()
        .map(|name| batch.field(name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.rows())
        .map(|row| {
            std::iter::once(1.0)
                .chain(
                    columns
                        .iter()
                        .map(|c| c.number(row).filter(|v| v.is_finite()).unwrap_or(0.0)),
                )
                .collect()
        })
        .collect())
}

/// The feedback, checked ([`check_feedback`]), and each item's context
/// vector ([`contexts`]) from its profile: `profiles` holds one row per
/// item, in order.
pub fn feedback_contexts(
    feedback: &[Feedback],
    actions: usize,
    profiles: &Batch,
    features: &[String],
) -> Result<Vec<Vec<f64>>, Error> {
    check_feedback(feedback, actions)?;
    if profiles.rows() != feedback.len() {
        return Err(Error::input(format!(
            "{} feedback items but {} profile rows: the model needs each item's features",
            feedback.len(),
            profiles.rows()
        )));
    }
    contexts(profiles, features)
}

/// Epsilon-floor propensities: the greedy action gets 1 - epsilon +
/// epsilon / K, every other epsilon / K.
pub fn epsilon_propensity(epsilon: f64, actions: usize, greedy: usize, action: usize) -> f64 {
    let explore = epsilon / actions as f64;
    if action == greedy {
        1.0 - epsilon + explore
    } else {
        explore
    }
}

/// With probability `epsilon` a uniformly random action, else `greedy`,
/// drawn from `rng`; returns the action and whether it explored.
pub fn epsilon_choice(rng: &mut Rng, epsilon: f64, actions: usize, greedy: usize) -> (usize, bool) {
    if rng.uniform() < epsilon {
        (
            ((rng.uniform() * actions as f64) as usize).min(actions - 1),
            true,
        )
    } else {
        (greedy, false)
    }
}

/// The text-list parameter `name`, or an empty list when it is absent.
pub fn optional_list<'a>(params: &'a Params, name: &str) -> Result<&'a [String], Error> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(_) => params.text_list(name),
    }
}

/// Whether `name` can name a segment: 1-64 characters of a-z, 0-9, `-`
/// and `_` (the host's rule for planned segment memberships).
pub fn is_segment_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The text-list parameter `name` as segment names: each a valid name, each
/// once, at most 256 (the host's limit on planned segments).
pub fn segment_list(params: &Params, name: &str) -> Result<Vec<String>, Error> {
    let segments = optional_list(params, name)?;
    if segments.len() > 256 {
        return Err(Error::config(format!(
            "parameter `{name}` names over 256 segments"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for segment in segments {
        if !is_segment_name(segment) || !seen.insert(segment.as_str()) {
            return Err(Error::config(format!(
                "parameter `{name}`: `{segment}` is not a segment name (1-64 of a-z, 0-9, `-`, \
                 `_`) or is named twice"
            )));
        }
    }
    Ok(segments.to_vec())
}

/// The number parameter `name`, or `default` when it is absent; checked
/// against `min..=max` (the host checks the schema first; direct callers
/// may not).
pub fn number_or(
    params: &Params,
    name: &str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, Error> {
    let value = match params.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Integer(i)) => *i as f64,
        Some(_) => params.number(name)?,
    };
    if !(min..=max).contains(&value) {
        return Err(Error::config(format!(
            "parameter `{name}` must be within {min}..={max}, got {value}"
        )));
    }
    Ok(value)
}

/// Checks a feedback batch before anything is learnt from it: every item
/// names one of `actions` actions and carries a finite reward and a
/// propensity in 0..=1. One bad item refuses the whole batch, so nothing
/// of it is stored.
pub fn check_feedback(items: &[Feedback], actions: usize) -> Result<(), Error> {
    for (i, item) in items.iter().enumerate() {
        if item.action as usize >= actions {
            return Err(Error::input(format!(
                "feedback {i} names action {}, which does not exist ({actions} actions)",
                item.action
            )));
        }
        if !item.reward.is_finite() {
            return Err(Error::input(format!(
                "feedback {i} for action {} has a non-finite reward",
                item.action
            )));
        }
        if !(0.0..=1.0).contains(&item.propensity) {
            return Err(Error::input(format!(
                "feedback {i} for action {} has a propensity outside 0..=1",
                item.action
            )));
        }
    }
    Ok(())
}

/// Little-endian f64s, the layout every strategy's state uses.
pub fn encode(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes [`encode`]'s bytes, which must hold exactly `len` values.
pub fn decode(bytes: &[u8], len: usize, what: &str) -> Result<Vec<f64>, Error> {
    if bytes.len() != len * 8 {
        return Err(Error::internal(format!(
            "stored {what} has {} bytes, expected {}",
            bytes.len(),
            len * 8
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same draws on every platform, so decisions replay from their log.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one row of one call: seeded from the row's key, the
    /// decision time and a counter local to the call.
    pub fn seeded(key: u64, at: i64, counter: u64) -> Self {
        let mut rng =
            Rng(key ^ (at as u64).rotate_left(32) ^ counter.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in (0, 1): safe to take the logarithm of.
    fn open_uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.open_uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A Gamma(shape, 1) draw (Marsaglia–Tsang; shapes below 1 boosted).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let boost = self.open_uniform().powf(1.0 / shape);
            return self.gamma(shape + 1.0) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.open_uniform();
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }

    /// A Beta(alpha, beta) draw.
    pub fn beta(&mut self, alpha: f64, beta: f64) -> f64 {
        let x = self.gamma(alpha);
        let y = self.gamma(beta);
        if x + y > 0.0 { x / (x + y) } else { 0.5 }
    }
}

/// The index of the largest value; ties go to the lowest index.
pub fn argmax(values: &[f64]) -> usize {
    (0..values.len()).fold(0, |best, i| if values[i] > values[best] { i } else { best })
}

/// Indices of `values`, largest first, ties by index.
pub fn order_desc(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*b].total_cmp(&values[*a]).then(a.cmp(b)));
    order
}

/// The membership column of each segment in `segments`, read row by row:
/// the first segment a row belongs to, if any.
pub fn first_segment(batch: &Batch, segments: &[String]) -> Result<Vec<Option<usize>>, Error> {
    let columns = segments
        .iter()
        .map(|name| batch.segment(name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.rows())
        .map(|row| columns.iter().position(|c| c.boolean(row) == Some(true)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(values: Vec<(&str, Value)>) -> Params {
        Params::new(
            values
                .into_iter()
                .map(|(name, value)| FieldValue {
                    name: name.into(),
                    value,
                })
                .collect(),
        )
    }

    const DEFAULTS: &[(&str, &str)] = &[("a", "offer a"), ("b", "offer b")];

    #[test]
    fn actions_come_from_the_parameter_or_the_defaults() {
        let default = actions_from(&params(vec![]), DEFAULTS).unwrap();
        assert_eq!(default.len(), 2);
        assert_eq!(actions_key("arms", &default, DEFAULTS), "arms");
        let listed = params(vec![(
            "actions",
            Value::TextList(vec!["x".into(), "a".into()]),
        )]);
        let own = actions_from(&listed, DEFAULTS).unwrap();
        assert_eq!(own[1].description, "offer a");
        assert_eq!(own[0].description, "offer `x`");
        let key = actions_key("arms", &own, DEFAULTS);
        assert!(key.starts_with("arms/") && key.len() == 21, "{key}");
        for bad in [
            vec![],
            vec!["a".to_string(), "a".into()],
            vec![String::new()],
        ] {
            let p = params(vec![("actions", Value::TextList(bad))]);
            assert!(matches!(
                actions_from(&p, DEFAULTS),
                Err(Error::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn draws_are_reproducible_and_have_the_right_means() {
        let mut a = Rng::seeded(7, 1_000, 3);
        let mut b = Rng::seeded(7, 1_000, 3);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(
            Rng::seeded(7, 1_000, 4).next_u64(),
            Rng::seeded(7, 1_000, 3).next_u64()
        );
        let n = 20_000;
        let mut rng = Rng::seeded(1, 2, 3);
        let beta: f64 = (0..n).map(|_| rng.beta(2.0, 6.0)).sum::<f64>() / n as f64;
        assert!((beta - 0.25).abs() < 0.01, "{beta}");
        let small: f64 = (0..n).map(|_| rng.gamma(0.3)).sum::<f64>() / n as f64;
        assert!((small - 0.3).abs() < 0.02, "{small}");
        let normal: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = normal.iter().sum::<f64>() / n as f64;
        let var = normal.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn feedback_with_an_unknown_action_or_a_nan_reward_is_refused() {
        let item = |action, reward| Feedback {
            key: 1,
            action,
            kind: FeedbackKind::Click,
            reward,
            propensity: 0.5,
            at: 0,
        };
        assert!(check_feedback(&[item(1, 1.0)], 2).is_ok());
        assert!(matches!(
            check_feedback(&[item(2, 1.0)], 2),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            check_feedback(&[item(0, f64::NAN)], 2),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn state_encoding_round_trips_and_refuses_the_wrong_length() {
        let values = [1.5, -2.0, 0.0];
        assert_eq!(decode(&encode(&values), 3, "x").unwrap(), values);
        assert!(decode(&encode(&values), 4, "x").is_err());
    }
}
