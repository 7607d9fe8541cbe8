"""`{{name}}`: a Tessera segment rule. Subjects whose lifetime value is at
least a threshold are members.

The host hands `evaluate` a batch of profile views: one column per field
declared in `describe` (and granted by the operator), only for subjects who
consented to the declared purpose. Keys are pseudonymous.
"""

import math

from tessera_sdk import Error, FieldClass, Manifest, ParamSpec, ValueKind
from tessera_sdk.segment import Memberships, Segment, export_segment

FIELD = "lifetime_value"


class Rule(Segment):
    def describe(self):
        return (
            Manifest.new("{{name}}", "0.1.0", "Subjects whose lifetime value is at least a threshold")
            .field(FIELD, ValueKind.NUMBER, FieldClass.STANDARD)
            .param(ParamSpec.number("threshold", "The smallest lifetime value of a member").default(500.0))
            .purpose("analytics")
        )

    def validate(self, params):
        if not math.isfinite(params.number("threshold")):
            raise Error.config("parameter `threshold` must be a finite number")

    def evaluate(self, params, batch):
        threshold = params.number("threshold")
        value = batch.field(FIELD)
        # One pass over the column: None (missing) is never a member.
        return Memberships.from_bools(v is not None and v >= threshold for v in value.numbers())


WitWorld = export_segment(Rule)
