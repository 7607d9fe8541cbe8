"""The `strategy` world: choose actions for subjects, learn from feedback,
forecast before launch.

    class Offer(Strategy):
        def describe(self): ...
        def actions(self): return [ActionSpec("discount", "10% off"), ...]
        def decide(self, params, batch, context): ...

    WitWorld = export_strategy(Offer)
"""

import wit_world
from wit_world.imports import strategies as _st

from .core import Batch, Error, Params, _manifest, call

ActionSpec = _st.ActionSpec
Context = _st.Context
Decision = _st.Decision
Feedback = _st.Feedback
FeedbackBatch = _st.FeedbackBatch
FeedbackKind = _st.FeedbackKind
Forecast = _st.Forecast
ActionForecast = _st.ActionForecast

__all__ = [
    "Strategy", "ActionSpec", "Context", "Decision", "Feedback", "FeedbackBatch", "FeedbackKind",
    "Forecast", "ActionForecast", "RankedAction", "export_strategy",
]


class RankedAction(_st.RankedAction):
    """An action (its index in `actions()`) with its score and the
    probability it was chosen with (its propensity)."""

    @classmethod
    def new(cls, action, score, propensity):
        return cls(action=int(action), score=float(score), propensity=float(propensity))


class Strategy:
    """A strategy model. Override `describe`, `actions` and `decide`;
    `validate`, `observe` and `simulate` have defaults."""

    def describe(self):
        """Name, version, parameters and the fields the strategy reads (a `Manifest`)."""
        raise NotImplementedError

    def actions(self):
        """The actions the strategy chooses among (a list of `ActionSpec`)."""
        raise NotImplementedError

    def validate(self, params):
        """Checks parameters once, before the host saves them; raise `Error.config`."""

    def decide(self, params, batch, context):
        """One `Decision` per row of the batch."""
        raise NotImplementedError

    def observe(self, params, feedback, profiles):
        """Learns from feedback (a list of `Feedback`; `profiles` is a
        `Batch`, row i for item i). The default learns nothing."""

    def simulate(self, params, batch, context):
        """Forecasts the effect over a batch. The default runs `decide` and
        reports how often each action would be chosen, with no reward model."""
        decisions = self.decide(params, batch, context)
        shares = [0.0] * len(self.actions())
        for decision in decisions:
            if decision.ranked and 0 <= decision.ranked[0].action < len(shares):
                shares[decision.ranked[0].action] += 1.0
        rows = max(len(decisions), 1)
        return Forecast(
            actions=[
                ActionForecast(action=i, share=count / rows, expected_reward=0.0)
                for i, count in enumerate(shares)
            ],
            expected_reward=0.0,
            notes="shares from decide(); this strategy has no reward model",
        )


def export_strategy(cls):
    """The component's `WitWorld` for a `Strategy` subclass:
    `WitWorld = export_strategy(Offer)` in the app module."""
    plugin = cls()
    manifest = _manifest(plugin.describe())

    class Exported(wit_world.WitWorld):
        def describe(self):
            return _manifest(plugin.describe())

        def actions(self):
            return list(plugin.actions())

        def validate(self, params):
            call(plugin.validate, Params(params))

        def decide(self, params, batch, context):
            rows = batch.rows
            out = list(call(plugin.decide, Params(params), Batch(batch, manifest), context))
            if len(out) != rows:
                raise Error.internal(f"decide returned {len(out)} decisions for {rows} rows")
            return out

        def observe(self, params, feedback):
            call(plugin.observe, Params(params), feedback.items, Batch(feedback.profiles, manifest))

        def simulate(self, params, batch, context):
            return call(plugin.simulate, Params(params), Batch(batch, manifest), context)

    Exported.__name__ = Exported.__qualname__ = "WitWorld"
    return Exported
