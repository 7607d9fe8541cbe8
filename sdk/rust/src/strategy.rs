//! The `strategy` world: choose actions for subjects, learn from feedback,
//! forecast before launch.

use crate::{Batch, Error, FieldValue, Manifest, Params, ProfileBatch};

pub use crate::bindings::strategies::{
    ActionForecast, ActionSpec, Context, Decision, Feedback, FeedbackBatch, FeedbackKind, Forecast,
    RankedAction,
};

/// A strategy model.
pub trait Strategy {
    /// Name, version, parameters and the fields the strategy reads.
    fn describe() -> Manifest;

    /// The actions the strategy chooses among; decisions refer to them by index.
    fn actions() -> Vec<ActionSpec>;

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
        let mut shares = vec![0.0; Self::actions().len()];
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

    pub fn decide<T: Strategy>(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
        context: Context,
    ) -> Result<Vec<Decision>, Error> {
        let batch = Batch::new(batch, &T::describe());
        let out = T::decide(&Params::new(params), &batch, &context)?;
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
        let profiles = Batch::new(profiles, &T::describe());
        T::observe(&Params::new(params), &items, &profiles)
    }

    pub fn simulate<T: Strategy>(
        params: Vec<FieldValue>,
        batch: ProfileBatch,
        context: Context,
    ) -> Result<Forecast, Error> {
        let batch = Batch::new(batch, &T::describe());
        T::simulate(&Params::new(params), &batch, &context)
    }
}

/// Exports a [`Strategy`] implementation as the component's `strategy` world
/// and embeds the contract version.
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

            $crate::bindings::strategy::export_strategy_world!(__TesseraStrategy);
        };
    };
}
