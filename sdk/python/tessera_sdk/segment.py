"""The `segment` world: decide which subjects of a batch belong to a segment.

    class Rule(Segment):
        def describe(self): ...
        def evaluate(self, params, batch): ...

    WitWorld = export_segment(Rule)
"""

import wit_world
from wit_world.imports import segments as _s

from .core import Batch, Error, Params, _manifest, call

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


def export_segment(cls):
    """The component's `WitWorld` for a `Segment` subclass:
    `WitWorld = export_segment(Rule)` in the app module."""
    plugin = cls()
    manifest = _manifest(plugin.describe())

    class Exported(wit_world.WitWorld):
        def describe(self):
            return _manifest(plugin.describe())

        def validate(self, params):
            call(plugin.validate, Params(params))

        def evaluate(self, params, batch):
            rows = batch.rows
            out = call(plugin.evaluate, Params(params), Batch(batch, manifest))
            if not isinstance(out, _s.Memberships):
                raise Error.internal(f"evaluate returned {type(out).__name__}, not Memberships")
            if not isinstance(out.member, bytes):
                out.member = bytes(out.member)
            if len(out.member) != rows:
                raise Error.internal(f"evaluate returned {len(out.member)} memberships for {rows} rows")
            return out

    Exported.__name__ = Exported.__qualname__ = "WitWorld"
    return Exported
