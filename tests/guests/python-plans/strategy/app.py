"""`campaign-offers`, a Python strategy that plans (the twin of the Rust
test guest `campaign-probe` and the JavaScript `campaign-offers`): its
actions are the `offers` parameter (one `fallback` offer without it), and it
plans the number trait named by `feature` and the membership of the segment
named by `segment`, in that order; `decide` ranks the offers in order, the
first with propensity 1, and names the row's feature value and membership.
With `call-host-plan`, `decide` calls the imported
`tessera:plan/segment-plan` `plan`, which the host links for strategies
only as a stub that traps.
"""

from tessera_sdk import FieldClass, Manifest, Needs, ParamSpec, ValueKind
from tessera_sdk.strategy import ActionSpec, Decision, RankedAction, Strategy, export_strategy
from wit_world.imports import segment_plan


def offers(params):
    if params is None or params.get("offers") is None:
        return [ActionSpec(name="fallback", description="the offer without parameters")]
    return [ActionSpec(name=n, description=f"offer {n}") for n in params.text_list("offers")]


class CampaignOffers(Strategy):
    def describe(self):
        return (Manifest.new("campaign-offers", "0.1.0", "offers and columns taken from its parameters")
                .param(ParamSpec.text_list("offers", "the offers to rank, in order"))
                .param(ParamSpec.text("feature", "a number trait to read").required())
                .param(ParamSpec.text("segment", "a segment whose membership to read").required())
                .param(ParamSpec.boolean("call-host-plan", "call the imported segment-plan.plan in decide")
                       .default(False))
                .purpose("marketing"))

    def actions(self):
        return offers(None)

    def actions_for(self, params):
        return offers(params)

    def plan(self, params):
        return (Needs.new()
                .field(params.text("feature"), ValueKind.NUMBER, FieldClass.STANDARD)
                .segment(params.text("segment")))

    def decide(self, params, batch, context):
        if params.boolean("call-host-plan"):
            segment_plan.plan([])
        count = len(offers(params))
        feature = batch.field(params.text("feature"))
        member = batch.segment(params.text("segment"))
        ranked = [RankedAction.new(a, count - a, 1.0 if a == 0 else 0.0) for a in range(count)]
        # Written as the JavaScript twin writes them, so the tests compare both.
        shown = {True: "true", False: "false", None: "undefined"}
        return [
            Decision(ranked=ranked, explanation=(
                f"feature {feature.number(r)}, member {shown[member.boolean(r)]}"))
            for r in range(batch.rows())
        ]


WitWorld = export_strategy(CampaignOffers)
