"""The `strategy` world: choose actions for subjects, learn from feedback,
forecast before launch; with `actions_for` and `plan`, the actions and
columns of each set of parameters (`tessera:strategy/campaign-plan`).

    class Offer(Strategy):
        def describe(self): ...
        def actions(self): return [ActionSpec("discount", "10% off"), ...]
        def decide(self, params, batch, context): ...

    WitWorld = export_strategy(Offer)

A strategy that defines `actions_for` or `plan` is built for
`tessera:strategy/planned-strategy` (`python -m tessera_sdk.build` finds the
methods in the source). That world imports `tessera:plan/segment-plan` for
its types; the host links its `plan` only as a stub that traps if called.
"""

import wit_world
from wit_world.imports import strategies as _st

from .core import PLANS, Batch, Error, Needs, Params, _manifest, _needs, call

try:
    from wit_world.exports import CampaignPlan as _CampaignPlan
    from wit_world.imports import segment_plan as _plan
except ImportError:  # built for the plain `strategy` world
    _CampaignPlan = _plan = None

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

    def actions_for(self, params):
        """The actions a campaign with these parameters chooses among;
        decisions, feedback and forecasts refer to them by index. Override
        it when the actions depend on the parameters; the default is
        `actions()`. The answer must depend on the parameters only."""
        return self.actions()

    def plan(self, params):
        """The columns the strategy reads with these parameters (`Needs`),
        in the order decide, observe and simulate batches carry them; the
        host sends these instead of the manifest's fields and aggregates.
        The default is the manifest's. The answer must depend on the
        parameters only."""
        return Needs.declared(self.describe())

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
        shares = [0.0] * len(self.actions_for(params))
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
    `WitWorld = export_strategy(Offer)` in the app module. A subclass that
    overrides `actions_for` or `plan` also exports
    `tessera:strategy/campaign-plan`."""
    plugin = cls()
    manifest = _manifest(plugin.describe())
    overrides = [m for m in ("actions_for", "plan") if getattr(type(plugin), m) is not getattr(Strategy, m)]
    plans = type(plugin).plan is not Strategy.plan
    if overrides and _plan is None:
        raise RuntimeError(
            f"{PLANS}: {cls.__name__} defines `{overrides[0]}`, but it is being built for the "
            "plain strategy world (tessera_sdk.build chooses tessera:strategy/planned-strategy "
            "for it)"
        )

    def names(params):
        """What the batch's columns are called for these parameters."""
        if not plans:
            return manifest
        return _needs(plugin.plan(params), "plan")

    class Exported(wit_world.WitWorld):
        def describe(self):
            return _manifest(plugin.describe())

        def actions(self):
            return list(plugin.actions())

        def validate(self, params):
            call(plugin.validate, Params(params))

        def decide(self, params, batch, context):
            rows = batch.rows
            p = Params(params)
            out = list(call(lambda: plugin.decide(p, Batch(batch, names(p)), context)))
            if len(out) != rows:
                raise Error.internal(f"decide returned {len(out)} decisions for {rows} rows")
            return out

        def observe(self, params, feedback):
            p = Params(params)
            call(lambda: plugin.observe(p, feedback.items, Batch(feedback.profiles, names(p))))

        def simulate(self, params, batch, context):
            p = Params(params)
            return call(lambda: plugin.simulate(p, Batch(batch, names(p)), context))

    Exported.__name__ = Exported.__qualname__ = "WitWorld"
    Exported.tessera_exports = {}
    if _plan is not None:

        class CampaignPlan(_CampaignPlan):
            def actions(self, params):
                p = Params(params)
                return list(call(lambda: plugin.actions_for(p)))

            def plan(self, params):
                p = Params(params)
                return call(lambda: _needs(plugin.plan(p), "plan").build(_plan))

        Exported.tessera_exports["CampaignPlan"] = CampaignPlan
    return Exported
