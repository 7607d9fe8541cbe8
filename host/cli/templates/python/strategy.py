"""`{{name}}`: a Tessera strategy. Offers a discount to customers whose
lifetime value is below a threshold (to win them back) and nothing to the
others, and says why.

Decisions rank every action with the probability it was chosen with (its
propensity): this rule is deterministic, so the chosen action has 1.0.
"""

from tessera_sdk import FieldClass, Manifest, ParamSpec, ValueKind
from tessera_sdk.strategy import ActionSpec, Decision, RankedAction, Strategy, export_strategy

FIELD = "lifetime_value"
DISCOUNT = 0
NO_OFFER = 1


class Offer(Strategy):
    def describe(self):
        return (
            Manifest.new(
                "{{name}}", "0.1.0",
                "A discount for customers below a lifetime value, nothing for the others",
            )
            .field(FIELD, ValueKind.NUMBER, FieldClass.STANDARD)
            .param(ParamSpec.number("threshold", "Below this lifetime value, offer the discount").default(100.0))
            .purpose("personalization")
        )

    def actions(self):
        return [
            ActionSpec(name="discount", description="10% off the next purchase"),
            ActionSpec(name="no_offer", description="No offer"),
        ]

    def decide(self, params, batch, context):
        threshold = params.number("threshold")
        shown = int(threshold) if threshold.is_integer() else threshold
        # Two possible answers, built once: a batch is a list of them.
        low = Decision(
            ranked=[RankedAction.new(DISCOUNT, 1.0, 1.0), RankedAction.new(NO_OFFER, 0.0, 0.0)],
            explanation=f"lifetime value below {shown} (or unknown)",
        )
        high = Decision(
            ranked=[RankedAction.new(NO_OFFER, 1.0, 1.0), RankedAction.new(DISCOUNT, 0.0, 0.0)],
            explanation=f"lifetime value at least {shown}",
        )
        return [low if value is None or value < threshold else high for value in batch.field(FIELD).numbers()]


WitWorld = export_strategy(Offer)
