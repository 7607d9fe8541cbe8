"""`recent-buyers`, a Python segment that plans its columns from its
parameters: people with at least `min_count` events of `event_type` in the
last `window_days` days (an event query, with the sum of `amount`), who are
members of the segment `within` if it is given, scored by the sum of
`amount` plus the trait `feature` (read with the kind the tenant's schema
gives it, a number if the schema does not say; 0 where missing).
"""

from tessera_sdk import Error, EventQuery, Needs, Manifest, ParamSpec, ValueKind, schema
from tessera_sdk.segment import Memberships, Segment, export_segment

DAY_MS = 86_400_000


class RecentBuyers(Segment):
    def describe(self):
        return (Manifest.new("recent-buyers", "0.1.0", "People with recent events of a type")
                .param(ParamSpec.text("event_type", "The event type to count").required())
                .param(ParamSpec.integer("window_days", "How many days back").default(30))
                .param(ParamSpec.integer("min_count", "The fewest events").default(1))
                .param(ParamSpec.text("within", "A segment members must be in"))
                .param(ParamSpec.text("feature", "A trait to read").default("lifetime_value"))
                .purpose("analytics"))

    def validate(self, params):
        if params.integer("window_days") < 1:
            raise Error.config("parameter `window_days` must be at least 1")

    def plan(self, params):
        feature = params.text("feature")
        needs = (Needs.new()
                 .field(feature, schema.trait_kind(feature) or ValueKind.NUMBER)
                 .query(EventQuery(name="recent", event_type=params.text("event_type"),
                                   window_ms=params.integer("window_days") * DAY_MS,
                                   sums=["amount"])))
        if params.get("within") is not None:
            needs.segment(params.text("within"))
        return needs

    def evaluate(self, params, batch):
        least = params.integer("min_count")
        recent = batch.query("recent")
        within = batch.segment(params.text("within")) if params.get("within") is not None else None
        feature = batch.field(params.text("feature"))
        rows = range(batch.rows())
        member = [recent.count(r) >= least and (within is None or within.boolean(r) is True)
                  for r in rows]
        scores = [recent.sum("amount", r) + (feature.number(r) or 0.0) for r in rows]
        return Memberships.from_bools(member).with_scores(scores)


WitWorld = export_segment(RecentBuyers)
