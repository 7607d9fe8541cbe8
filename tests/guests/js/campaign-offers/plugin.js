// `campaign-offers`: a JavaScript strategy that plans (the twin of the Rust
// test guest `campaign-probe`). Its actions are the `offers` parameter (one
// `fallback` offer without it), and it plans the number trait named by
// `feature` and the membership of the segment named by `segment`, in that
// order; `decide` ranks the offers in order, the first with propensity 1,
// and names the row's feature value and membership. With `call-host-plan`,
// `decide` calls the imported `tessera:plan/segment-plan` `plan`, which the
// host links for strategies only as a stub that traps.

import {
  ActionSpec, Decision, Manifest, Needs, ParamSpec, RankedAction, Value, ValueKind, FieldClass,
} from 'tessera-sdk';
import { plan as hostPlan } from 'tessera:plan/segment-plan@0.1.0';

const offers = (params) =>
  params.get('offers') === undefined
    ? [new ActionSpec('fallback', 'the offer without parameters')]
    : params.textList('offers').map((name) => new ActionSpec(name, `offer ${name}`));

export default {
  describe() {
    return new Manifest('campaign-offers', '0.1.0', 'offers and columns taken from its parameters')
      .param(ParamSpec.textList('offers', 'the offers to rank, in order'))
      .param(ParamSpec.text('feature', 'a number trait to read').required())
      .param(ParamSpec.text('segment', 'a segment whose membership to read').required())
      .param(ParamSpec.boolean('call-host-plan', 'call the imported segment-plan.plan in decide')
        .default(Value.boolean(false)))
      .purpose('marketing');
  },

  actions() {
    return offers({ get: () => undefined });
  },

  actionsFor(params) {
    return offers(params);
  },

  plan(params) {
    return new Needs()
      .field(params.text('feature'), ValueKind.Number, FieldClass.Standard)
      .segment(params.text('segment'));
  },

  decide(params, batch) {
    if (params.boolean('call-host-plan')) hostPlan([]);
    const count = offers(params).length;
    const feature = batch.field(params.text('feature'));
    const member = batch.segment(params.text('segment'));
    const out = [];
    for (let row = 0; row < batch.rows(); row++) {
      const ranked = [];
      for (let a = 0; a < count; a++) ranked.push(new RankedAction(a, count - a, a === 0 ? 1 : 0));
      out.push(new Decision(ranked, `feature ${feature.number(row)}, member ${member.boolean(row)}`));
    }
    return out;
  },
};
