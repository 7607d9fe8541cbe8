//! `rule-based`: the baseline a marketer writes by hand. Rules are
//! `segment=action` pairs, tried in order; a person gets the action of the
//! first rule whose segment they belong to, else the default action. The
//! segments are planned as membership columns.
//!
//! The policy is deterministic: the chosen action has propensity 1 and
//! every other action 0. That is honest, and it limits off-policy
//! evaluation: from this policy's log, another policy can only be evaluated
//! on the rows where it would have chosen the same action (an
//! inverse-propensity estimate has nothing to weigh elsewhere). Run a
//! randomising strategy beside it, or as its control, to compare policies.
//! It keeps no state and learns nothing; feedback is only checked.

use tessera_sdk::prelude::*;
use tessera_strategy_kit as kit;

struct RuleBased;

/// The default action when no parameter names one.
const NO_OFFER: &str = "no_offer";

/// A rule: members of `segment` get `action` (an index into the actions).
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    segment: String,
    action: usize,
}

/// The policy for one set of parameters.
#[derive(Debug, Clone)]
struct Policy {
    actions: Vec<ActionSpec>,
    rules: Vec<Rule>,
    default: usize,
}

impl Policy {
    /// Actions are `actions` if given (every rule and the default must name
    /// one of them), else the actions the rules name in order, then the
    /// default's.
    fn from(params: &Params) -> Result<Self, Error> {
        let default = match params.get("default") {
            None => NO_OFFER.to_string(),
            Some(_) => params.text("default")?.to_string(),
        };
        let mut pairs = Vec::new();
        for rule in kit::optional_list(params, "rules")? {
            let Some((segment, action)) = rule.split_once('=') else {
                return Err(Error::config(format!(
                    "parameter `rules`: `{rule}` is not a `segment=action` pair"
                )));
            };
            let (segment, action) = (segment.trim(), action.trim());
            if !kit::is_segment_name(segment) || action.is_empty() {
                return Err(Error::config(format!(
                    "parameter `rules`: `{rule}` needs a segment name (1-64 of a-z, 0-9, `-`, \
                     `_`) and an action"
                )));
            }
            pairs.push((segment.to_string(), action.to_string()));
        }
        if pairs.len() > 256 {
            return Err(Error::config("parameter `rules` has over 256 rules"));
        }
        let listed = params.get("actions").is_some();
        let actions: Vec<ActionSpec> = if listed {
            kit::actions_from(params, &[])?
        } else {
            let mut names: Vec<&str> = Vec::new();
            for name in pairs
                .iter()
                .map(|(_, a)| a.as_str())
                .chain([default.as_str()])
            {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let names = Params::new(vec![FieldValue {
                name: "actions".into(),
                value: Value::TextList(names.iter().map(|n| (*n).to_string()).collect()),
            }]);
            kit::actions_from(&names, &[])?
        };
        let index = |name: &str| {
            actions.iter().position(|a| a.name == name).ok_or_else(|| {
                Error::config(format!(
                    "action `{name}` is not among the parameter `actions`"
                ))
            })
        };
        let rules = pairs
            .iter()
            .map(|(segment, action)| {
                Ok(Rule {
                    segment: segment.clone(),
                    action: index(action)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Policy {
            default: index(&default)?,
            actions,
            rules,
        })
    }

    /// The segments the rules read, each once, in order of first use.
    fn segments(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in &self.rules {
            if !out.contains(&rule.segment) {
                out.push(rule.segment.clone());
            }
        }
        out
    }

    /// The rule that decides for a person who belongs to the segments
    /// `member` says, if any, and the action chosen.
    fn choose(&self, member: impl Fn(&str) -> bool) -> (Option<usize>, usize) {
        match self.rules.iter().position(|r| member(&r.segment)) {
            Some(i) => (Some(i), self.rules[i].action),
            None => (None, self.default),
        }
    }

    /// The decision: the chosen action first with propensity 1, the others
    /// after it in their order with propensity 0.
    fn decision(&self, rule: Option<usize>, chosen: usize) -> Decision {
        let mut ranked = vec![RankedAction::new(chosen as u32, 1.0, 1.0)];
        ranked.extend(
            (0..self.actions.len())
                .filter(|a| *a != chosen)
                .map(|a| RankedAction::new(a as u32, 0.0, 0.0)),
        );
        let explanation = match rule {
            Some(i) => format!(
                "rule {} matched: members of {} get {}",
                i + 1,
                self.rules[i].segment,
                self.actions[chosen].name
            ),
            None => format!("no rule matched: the default {}", self.actions[chosen].name),
        };
        Decision {
            ranked,
            explanation,
        }
    }

    /// The chosen action and its rule for every row of `batch`.
    fn choices(&self, batch: &Batch) -> Result<Vec<(Option<usize>, usize)>, Error> {
        let segments = self.segments();
        let columns = segments
            .iter()
            .map(|s| batch.segment(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((0..batch.rows())
            .map(|row| {
                self.choose(|segment| {
                    segments
                        .iter()
                        .position(|s| s == segment)
                        .is_some_and(|i| columns[i].boolean(row) == Some(true))
                })
            })
            .collect())
    }
}

impl Strategy for RuleBased {
    fn describe() -> Manifest {
        Manifest::new(
            "rule-based",
            "0.1.0",
            "The hand-written baseline: the action of the first rule whose segment a person \
             belongs to, else the default. Deterministic (propensity 1).",
        )
        .param(ParamSpec::text_list(
            "rules",
            "`segment=action` pairs, tried in order; the first whose segment a person belongs \
             to decides",
        ))
        .param(
            ParamSpec::text("default", "The action for people no rule matches")
                .default(Value::Text(NO_OFFER.into())),
        )
        .param(ParamSpec::text_list(
            "actions",
            "The campaign's offers (default: those the rules and the default name, in order)",
        ))
        .purpose("personalization")
        .purpose("email_marketing")
    }

    fn actions() -> Vec<ActionSpec> {
        Policy::from(&Params::default())
            .expect("the default policy")
            .actions
    }

    fn actions_for(params: &Params) -> Result<Vec<ActionSpec>, Error> {
        Ok(Policy::from(params)?.actions)
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        Ok(Policy::from(params)?
            .segments()
            .iter()
            .fold(Needs::new(), |needs, s| needs.segment(s)))
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Policy::from(params).map(|_| ())
    }

    fn decide(params: &Params, batch: &Batch, _context: &Context) -> Result<Vec<Decision>, Error> {
        let policy = Policy::from(params)?;
        Ok(policy
            .choices(batch)?
            .into_iter()
            .map(|(rule, chosen)| policy.decision(rule, chosen))
            .collect())
    }

    fn observe(params: &Params, feedback: &[Feedback], _profiles: &Batch) -> Result<(), Error> {
        kit::check_feedback(feedback, Policy::from(params)?.actions.len())
    }

    fn simulate(params: &Params, batch: &Batch, _context: &Context) -> Result<Forecast, Error> {
        let policy = Policy::from(params)?;
        let mut shares = vec![0.0; policy.actions.len()];
        for (_, chosen) in policy.choices(batch)? {
            shares[chosen] += 1.0;
        }
        let rows = batch.rows().max(1) as f64;
        Ok(Forecast {
            actions: shares
                .iter()
                .enumerate()
                .map(|(a, n)| ActionForecast {
                    action: a as u32,
                    share: n / rows,
                    expected_reward: 0.0,
                })
                .collect(),
            expected_reward: 0.0,
            notes: "shares from the rules; a rule-based policy has no reward model".into(),
        })
    }
}

tessera_sdk::export_strategy!(RuleBased);

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

    fn list(values: &[&str]) -> Value {
        Value::TextList(values.iter().map(|v| (*v).to_string()).collect())
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default() {
        let policy = Policy::from(&params(vec![
            (
                "rules",
                list(&["vip=points", "lapsed=coupon", "new=points"]),
            ),
            ("default", Value::Text("newsletter".into())),
        ]))
        .unwrap();
        let names: Vec<&str> = policy.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["points", "coupon", "newsletter"]);
        assert_eq!(policy.segments(), ["vip", "lapsed", "new"]);
        assert_eq!(policy.choose(|s| s == "lapsed" || s == "vip"), (Some(0), 0));
        assert_eq!(policy.choose(|s| s == "lapsed"), (Some(1), 1));
        assert_eq!(policy.choose(|_| false), (None, 2));
        let d = policy.decision(Some(1), 1);
        let first = d.ranked[0];
        assert_eq!((first.action, first.propensity), (1, 1.0));
        assert_eq!(d.ranked.len(), 3);
        assert!(d.ranked[1..].iter().all(|r| r.propensity == 0.0));
        assert!(d.explanation.contains("lapsed"));
    }

    #[test]
    fn listed_actions_fix_the_indices_and_must_cover_the_rules() {
        let policy = Policy::from(&params(vec![
            ("rules", list(&["vip=b"])),
            ("default", Value::Text("a".into())),
            ("actions", list(&["a", "b", "c"])),
        ]))
        .unwrap();
        assert_eq!((policy.rules[0].action, policy.default), (1, 0));
        for bad in [
            vec![
                ("rules", list(&["vip=z"])),
                ("actions", list(&["no_offer"])),
            ],
            vec![("rules", list(&["vip"]))],
            vec![("rules", list(&["VIP=a"]))],
        ] {
            assert!(matches!(
                Policy::from(&params(bad)),
                Err(Error::InvalidConfig(_))
            ));
        }
        assert_eq!(RuleBased::actions().len(), 1);
    }
}
