"""`engagement-tiers`: an engagement score from purchase behaviour, in tiers.

Each customer gets a score from 0 to 100 from how recently they bought
(half-life `half_life_days`), how often (purchases in 90 days, saturating at
`frequent_purchases`) and how much (spend over a year against
`high_spend`): 40% recency, 30% frequency, 30% spend. The score's tier is
`hot` (70 and up), `warm` (40 and up) or `cold`; a segment of this plugin is
one tier, and every row also carries its score and tier, for reports.

Customers without a purchase are `cold` with score 0.
"""

import math

from tessera_sdk import AggregateFn, Error, Manifest, ParamSpec, TextColumn
from tessera_sdk.segment import Memberships, Segment, export_segment

DAY_MS = 86_400_000
TIERS = ["hot", "warm", "cold"]


def tier_of(score):
    return 0 if score >= 70 else 1 if score >= 40 else 2


class EngagementTiers(Segment):
    def describe(self):
        return (
            Manifest.new(
                "engagement-tiers", "1.0.0",
                "Customers by engagement (recency, frequency, spend): hot, warm or cold",
            )
            .aggregate("purchases_90d", "purchase", AggregateFn.COUNT, None, 90)
            .aggregate("spend_365d", "purchase", AggregateFn.SUM, "amount", 365)
            .aggregate("last_purchase_at", "purchase", AggregateFn.LAST_AT, None, None)
            .param(ParamSpec.text("tier", "The tier whose customers are members").choices(TIERS).default("hot"))
            .param(ParamSpec.number("half_life_days", "Days after which recency counts half").range(1, 3650).default(30.0))
            .param(ParamSpec.number("frequent_purchases", "Purchases in 90 days that count as fully frequent")
                   .range(1, 1000).default(6.0))
            .param(ParamSpec.number("high_spend", "Yearly spend that counts as fully valuable").range(1, 1e9).default(1000.0))
            .purpose("analytics")
        )

    def validate(self, params):
        if params.text("tier") not in TIERS:
            raise Error.config(f"parameter `tier` must be one of {', '.join(TIERS)}")

    def evaluate(self, params, batch):
        wanted = TIERS.index(params.text("tier"))
        half_life = params.number("half_life_days")
        frequent = params.number("frequent_purchases")
        high_spend = params.number("high_spend")
        purchases = batch.aggregate("purchases_90d").numbers()
        spend = batch.aggregate("spend_365d").numbers()
        last = batch.aggregate("last_purchase_at")
        now = batch.now()

        scores, codes = [], []
        for row in range(batch.rows()):
            at = last.integer(row)
            if at is None:
                score = 0.0
            else:
                days = max(now - at, 0) / DAY_MS
                recency = math.pow(0.5, days / half_life)
                frequency = min((purchases[row] or 0.0) / frequent, 1.0)
                value = min(max(spend[row] or 0.0, 0.0) / high_spend, 1.0)
                score = round(100.0 * (0.4 * recency + 0.3 * frequency + 0.3 * value), 2)
            scores.append(score)
            codes.append(tier_of(score))
        out = Memberships.from_bools(code == wanted for code in codes).with_scores(scores)
        out.tiers = TextColumn(dictionary=list(TIERS), codes=codes)
        return out


WitWorld = export_segment(EngagementTiers)
