"""The `segment` world: decide which subjects of a batch belong to a segment;
with `plan`, the columns of each set of parameters (`tessera:plan/segment-plan`).

    class Rule(Segment):
        def describe(self): ...
        def evaluate(self, params, batch): ...

    WitWorld = export_segment(Rule)

A segment that defines `plan` is built for `tessera:plan/planned-segment`
(`python -m tessera_sdk.build` finds the method in the source), and its
batches carry the planned columns.
"""

import wit_world
from wit_world.imports import segments as _s

from .core import PLANS, Batch, Error, Needs, Params, _manifest, _needs, call

try:
    from wit_world.exports import SegmentPlan as _SegmentPlan
    from wit_world.exports import segment_plan as _plan
except ImportError:  # built for the plain `segment` world
    _SegmentPlan = _plan = None

__all__ = ["Segment", "Memberships", "export_segment"]


class Memberships(_s.Memberships):
    """One result per input row: `member` (one byte per row, 1 = member),
    optional `scores` and `tiers`."""

    @classmethod
    def from_fn(cls, rows, member):
        """Membership computed row by row, with no scores or tiers."""
        return cls(member=bytes(1 if member(row) else 0 for row in range(rows)), scores=[], tiers=None)

    @classmethod
    def from_bools(cls, member):
        """Membership from one boolean per row."""
        return cls(member=bytes(1 if m else 0 for m in member), scores=[], tiers=None)

    def with_scores(self, scores):
        """Attaches one score per row."""
        self.scores = [float(s) for s in scores]
        return self

    def is_member(self, row):
        return 0 <= row < len(self.member) and self.member[row] != 0


class Segment:
    """A segmentation rule. Override `describe` and `evaluate`; `validate`
    accepts everything unless overridden."""

    def describe(self):
        """Name, version, parameters and the fields the rule reads (a `Manifest`)."""
        raise NotImplementedError

    def validate(self, params):
        """Checks parameters once, before the host saves them; raise `Error.config`."""

    def evaluate(self, params, batch):
        """One membership per row of the batch, in row order (`Memberships`)."""
        raise NotImplementedError

    def plan(self, params):
        """The columns the rule reads with these parameters (`Needs`), in
        the order the batch carries them; the host sends these instead of
        the manifest's fields and aggregates. Override it when what the rule
        reads depends on its parameters; the default is the manifest's.
        The answer must depend on the parameters only."""
        return Needs.declared(self.describe())


def export_segment(cls):
    """The component's `WitWorld` for a `Segment` subclass:
    `WitWorld = export_segment(Rule)` in the app module. A subclass that
    overrides `plan` also exports `tessera:plan/segment-plan`."""
    plugin = cls()
    manifest = _manifest(plugin.describe())
    plans = type(plugin).plan is not Segment.plan
    if plans and _plan is None:
        raise RuntimeError(
            f"{PLANS}: {cls.__name__} defines `plan`, but it is being built for the plain "
            "segment world (tessera_sdk.build chooses tessera:plan/planned-segment for it)"
        )

    def names(params):
        """What the batch's columns are called for these parameters."""
        if not plans:
            return manifest
        return _needs(plugin.plan(params), "plan")

    class Exported(wit_world.WitWorld):
        def describe(self):
            return _manifest(plugin.describe())

        def validate(self, params):
            call(plugin.validate, Params(params))

        def evaluate(self, params, batch):
            rows = batch.rows
            p = Params(params)
            out = call(lambda: plugin.evaluate(p, Batch(batch, names(p))))
            if not isinstance(out, _s.Memberships):
                raise Error.internal(f"evaluate returned {type(out).__name__}, not Memberships")
            if not isinstance(out.member, bytes):
                out.member = bytes(out.member)
            if len(out.member) != rows:
                raise Error.internal(f"evaluate returned {len(out.member)} memberships for {rows} rows")
            return out

    Exported.__name__ = Exported.__qualname__ = "WitWorld"
    Exported.tessera_exports = {}
    if _plan is not None:

        class SegmentPlan(_SegmentPlan):
            def plan(self, params):
                p = Params(params)
                return call(lambda: _needs(plugin.plan(p), "plan").build(_plan))

        Exported.tessera_exports["SegmentPlan"] = SegmentPlan
    return Exported
