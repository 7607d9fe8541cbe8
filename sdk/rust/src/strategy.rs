//! The `strategy` world: choose actions for subjects, learn from feedback,
//! forecast before launch; with `tessera:strategy/campaign-plan`, the
//! actions and columns of each set of parameters.

use crate::{Batch, Error, FieldValue, Manifest, Needs, Params, ProfileBatch};

pub use crate::bindings::strategies::{
    ActionForecast, ActionSpec, Context, Decision, Feedback, FeedbackBatch, FeedbackKind, Forecast,
    RankedAction,
};

/// A strategy model.
pub trait Strategy {
    /// Name, version, parameters and the fields the strategy reads.
    fn describe() -> Manifest;

    /// The actions the strategy chooses among with default parameters (the
    /// plain world's `actions`, shown at install).
    fn actions() -> Vec<ActionSpec>;

    /// The actions a campaign with these parameters chooses among; decisions,
    /// feedback and forecasts refer to them by index
    /// (`tessera:strategy/campaign-plan`). Override it when the actions
    /// depend on the parameters (a catalog strategy over the campaign's own
    /// offers); the default is [`Strategy::actions`].
    ///
    /// The host has validated `params` first. The answer must depend on the
    /// parameters only (no clock, no state): the host caches it and checks
    /// decisions against it.
    fn actions_for(_params: &Params) -> Result<Vec<ActionSpec>, Error> {
        Ok(Self::actions())
    }

    /// The columns the strategy reads with these parameters, in the order
    /// decide, observe and simulate batches carry them; the host sends these
    /// instead of the manifest's fields and aggregates. Override it when
    /// what the strategy reads depends on its parameters (features named by
    /// a parameter, segments whose members get their own model); the
    /// default is the manifest's fields and aggregates.
    ///
    /// The host has validated `params` first. The answer must depend on the
    /// parameters only. [`Batch::field`], [`Batch::aggregate`],
    /// [`Batch::query`] and [`Batch::segment`] find columns by the names
    /// planned here.
    fn plan(_params: &Params) -> Result<Needs, Error> {
        Ok(Needs::declared(&Self::describe()))
    }

    /// Checks parameters once, before the host saves them.
    fn validate(_params: &Params) -> Result<(), Error> {
        Ok(())
    }

    /// One decision per row of the batch.
    fn decide(params: &Params, batch: &Batch, context: &Context) -> Result<Vec<Decision>, Error>;

    /// Learns from feedback. The default learns nothing.
    fn observe(_params: &Params, _feedback: &[Feedback], _profiles: &Batch) -> Result<(), Error> {
        Ok(())
    }

    /// Forecasts the effect over a batch. The default runs `decide` and reports
    /// how often each action would be chosen, with no reward model.
    fn simulate(params: &Params, batch: &Batch, context: &Context) -> Result<Forecast, Error> {
        let decisions = Self::decide(params, batch, context)?;
        let mut shares = vec![0.0; Self::actions_for(params)?.len()];
        for decision in &decisions {
            if let Some(top) = decision.ranked.first()
                && let Some(share) = shares.get_mut(top.action as usize)
            {
                *share += 1.0;
            }
        }
        let rows = decisions.len().max(1) as f64;
        Ok(Forecast {
            actions: shares
                .into_iter()
                .enumerate()
                .map(|(action, count)| ActionForecast {
                    action: action as u32,
                    share: count / rows,
                    expected_reward: 0.0,
                })
                .collect(),
            expected_reward: 0.0,
            notes: "shares from decide(); this strategy has no reward model".into(),
        })
    }
}

impl RankedAction {
    /// An action with its score and the probability it was chosen with.
    pub fn new(action: u32, score: f64, propensity: f64) -> Self {
        RankedAction {
            action,
            score,
            propensity,
        }
    }
}

#[doc(hidden)]
pub mod __adapter {
    use super::*;

    pub fn validate<T: Strategy>(params: Vec<FieldValue>) -> Result<(), Error> {
        T::validate(&Params::new(params))
    }

    pub fn actions_for<T: Strategy>(params: Vec<FieldValue>) -> Result<Vec<ActionSpec>, Error> {
        T::actions_for(&Params::new(params))
    }

    pub fn plan<T: Strategy>(params: Vec<FieldValue>) -> Result<Needs, Error> {
        T::plan(&Params::new(params))
    }

    /// The batch's columns are the ones planned for these parameters: the
    /// plan is a function of them, so planning again names the columns the
    /// host sent (for a strategy that does not plan, the manifest's).
    pub fn decide<T: Strategy>(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
        context: Context,
    ) -> Result<Vec<Decision>, Error> {
        let params = Params::new(params);
        let batch = Batch::planned(batch, &T::plan(&params)?);
        let out = T::decide(&params, &batch, &context)?;
        if out.len() != batch.rows() {
            return Err(Error::internal(format!(
                "decide returned {} decisions for {} rows",
                out.len(),
                batch.rows()
            )));
        }
        Ok(out)
    }

    pub fn observe<T: Strategy>(
        params: Vec<FieldValue>,
        feedback: FeedbackBatch,
    ) -> Result<(), Error> {
        let FeedbackBatch { items, profiles } = feedback;
        let params = Params::new(params);
        let profiles = Batch::planned(profiles, &T::plan(&params)?);
        T::observe(&params, &items, &profiles)
    }

    pub fn simulate<T: Strategy>(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
        context: Context,
    ) -> Result<Forecast, Error> {
        let params = Params::new(params);
        let batch = Batch::planned(batch, &T::plan(&params)?);
        T::simulate(&params, &batch, &context)
    }
}

/// Exports a [`Strategy`] implementation as the component's `strategy` world,
/// with the `tessera:strategy/campaign-plan` interface
/// ([`Strategy::actions_for`], [`Strategy::plan`]), and embeds the contract
/// version.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        const _: () = {
            $crate::__embed_wit_version!();

            struct __TesseraStrategy;

            impl $crate::bindings::strategy::Guest for __TesseraStrategy {
                fn describe() -> $crate::Manifest {
                    <$ty as $crate::Strategy>::describe()
                }
                fn actions() -> ::std::vec::Vec<$crate::strategy::ActionSpec> {
                    <$ty as $crate::Strategy>::actions()
                }
                fn validate(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    $crate::strategy::__adapter::validate::<$ty>(params)
                }
                fn decide(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    batch: $crate::ProfileBatch,
                    context: $crate::strategy::Context,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::strategy::Decision>, $crate::Error> {
                    $crate::strategy::__adapter::decide::<$ty>(params, batch, context)
                }
                fn observe(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    feedback: $crate::strategy::FeedbackBatch,
                ) -> ::std::result::Result<(), $crate::Error> {
                    $crate::strategy::__adapter::observe::<$ty>(params, feedback)
                }
                fn simulate(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    batch: $crate::ProfileBatch,
                    context: $crate::strategy::Context,
                ) -> ::std::result::Result<$crate::strategy::Forecast, $crate::Error> {
                    $crate::strategy::__adapter::simulate::<$ty>(params, batch, context)
                }
            }

            impl $crate::bindings::campaign::Guest for __TesseraStrategy {
                fn actions(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::strategy::ActionSpec>,
                    $crate::Error,
                > {
                    $crate::strategy::__adapter::actions_for::<$ty>(params)
                }
                fn plan(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<$crate::Needs, $crate::Error> {
                    $crate::strategy::__adapter::plan::<$ty>(params)
                }
            }

            $crate::bindings::strategy::export_strategy_world!(__TesseraStrategy);
        };
    };
}
